import numpy as np
import pyarrow as pa
import pytest

from harness.core.errors import HarnessError
from harness.pool.format import load_features, open_pool, read_columns, read_uid_pairs, write_metadata, write_stats


def test_pool_reads_only_requested_columns(small_metadata):
    pool = open_pool(small_metadata)
    files = pool.parquet_files()
    assert [f.name for f in files] == ["00000000.parquet", "00000001.parquet"]
    table = read_columns(files[0], ["uid", "text"])
    assert table.column_names == ["uid", "text"] and table.num_rows == 5
    assert len(read_uid_pairs(files[1])) == 7
    feats = load_features(files[1], ["img"])
    assert feats["img"].shape == (7, 4)


def test_missing_column_and_feature_are_named(small_metadata):
    f = open_pool(small_metadata).parquet_files()[0]
    with pytest.raises(HarnessError, match=r"00000000\.parquet: missing column\(s\) clip_l14_similarity_score"):
        read_columns(f, ["uid", "clip_l14_similarity_score"])
    with pytest.raises(HarnessError, match=r"missing feature\(s\) l14_img \(has: img\)"):
        load_features(f, ["l14_img"])


def test_npz_with_wrong_row_count_is_refused(small_metadata):
    f = open_pool(small_metadata).parquet_files()[0]
    np.savez(f.with_suffix(".npz"), img=np.zeros((4, 4)))
    with pytest.raises(HarnessError, match=r"feature 'img' has 4 rows but 00000000\.parquet has 5"):
        load_features(f, ["img"])


def test_not_a_pool_is_refused(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        open_pool(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no metadata/\\*.parquet"):
        open_pool(tmp_path / "empty")


def test_bad_uid_in_metadata_names_file_and_row(tmp_path):
    path = tmp_path / "metadata" / "00000000.parquet"
    write_metadata(path, pa.table({"uid": ["a" * 32, "not-hex"]}))
    with pytest.raises(HarnessError, match=r"00000000\.parquet, row 1: uid 'not-hex'"):
        read_uid_pairs(path)


def test_stats_file_layout(tmp_path):
    import json

    p = write_stats(tmp_path, 3, 17)
    assert p.name == "00000003_stats.json" and json.loads(p.read_text())["successes"] == 17


def test_metadata_and_npz_bytes_are_deterministic(tmp_path):
    import time

    table = pa.table({"uid": ["a" * 32]})
    feats = {"img": np.ones((1, 3), np.float16)}
    write_metadata(tmp_path / "a" / "m.parquet", table, feats)
    time.sleep(2.1)  # zip timestamps have 2 s resolution: a clock stamp would differ
    write_metadata(tmp_path / "b" / "m.parquet", table, feats)
    for name in ("m.parquet", "m.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert np.array_equal(np.load(tmp_path / "a" / "m.npz")["img"], feats["img"])
