import warnings

import numpy as np
import pyarrow as pa
import pytest

from harness.core.errors import HarnessError
from harness.pool.uids import (UID_DTYPE, hex_to_pairs, isin, pairs_to_hex, read_subset, sort_pairs, write_subset)

UIDS = ["000102030405060708090a0b0c0d0e0f", "ffffffffffffffffffffffffffffffff", "0000000000000001000000000000000a"]


def datacomp_reference(uids):
    """DataComp's own conversion (baselines.py): int of each 16-char half."""
    return np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], UID_DTYPE)


def test_hex_to_pairs_matches_datacomp_and_roundtrips():
    pairs = hex_to_pairs(UIDS)
    assert pairs.dtype == UID_DTYPE
    assert np.array_equal(pairs, datacomp_reference(UIDS))
    assert list(pairs_to_hex(pairs)) == UIDS


def test_hex_to_pairs_accepts_sliced_arrow_arrays():
    arr = pa.chunked_array([pa.array(UIDS[:1]), pa.array(UIDS[1:])]).combine_chunks().slice(1)
    assert np.array_equal(hex_to_pairs(arr), datacomp_reference(UIDS[1:]))


@pytest.mark.parametrize("bad, row", [(["0" * 31], 0), ([UIDS[0], "g" * 32], 1), ([UIDS[0], UIDS[1], "A" * 32], 2)])
def test_non_hex_uid_names_file_and_row(bad, row):
    with pytest.raises(HarnessError, match=rf"meta\.parquet, row {row}: uid .* is not 32 lower-case hex"):
        hex_to_pairs(bad, where="meta.parquet")


def test_subset_write_read_roundtrip(tmp_path):
    pairs = sort_pairs(hex_to_pairs(UIDS))
    path = write_subset(tmp_path / "s.npy", pairs)
    back = np.load(path)
    assert back.dtype == np.dtype("u8,u8") and np.array_equal(back, pairs)
    assert np.array_equal(read_subset(path), pairs)


def test_unsorted_subset_is_sorted_with_warning(tmp_path):
    np.save(tmp_path / "s.npy", hex_to_pairs(UIDS)[::-1].copy())
    with pytest.warns(UserWarning, match="not sorted; sorted them"):
        out = read_subset(tmp_path / "s.npy")
    assert np.array_equal(out, sort_pairs(hex_to_pairs(UIDS)))


def test_duplicated_subset_is_refused_naming_them(tmp_path):
    pairs = hex_to_pairs([UIDS[0], UIDS[1], UIDS[0]])
    np.save(tmp_path / "s.npy", pairs)
    with pytest.raises(HarnessError, match=rf"1 duplicated uid\(s\), e\.g\. {UIDS[0]}"):
        read_subset(tmp_path / "s.npy")


@pytest.mark.parametrize("arr", [np.zeros(3, np.uint64), np.zeros((2, 2), UID_DTYPE), np.zeros(2, np.dtype("u4,u4"))])
def test_malformed_subset_says_expected_dtype(tmp_path, arr):
    np.save(tmp_path / "s.npy", arr)
    with pytest.raises(HarnessError, match=r"expected a 1-d array of dtype np\.dtype\('u8,u8'\)"):
        read_subset(tmp_path / "s.npy")


def test_pickled_or_missing_subset_is_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(HarnessError, match="not a readable .npy subset"):
        read_subset(tmp_path / "o.npy")
    with pytest.raises(HarnessError, match="subset file not found"):
        read_subset(tmp_path / "missing.npy")


def test_isin_uses_both_halves():
    a = hex_to_pairs(["0" * 16 + "1" * 16, "0" * 16 + "2" * 16, "1" * 32])
    subset = sort_pairs(a[[1, 2]])
    assert isin(a, subset).tolist() == [False, True, True]
    assert isin(a, subset[:0]).tolist() == [False] * 3


def test_sorted_unique_subset_is_silent(tmp_path):
    pairs = sort_pairs(hex_to_pairs(UIDS))
    np.save(tmp_path / "s.npy", pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_subset(tmp_path / "s.npy")
