"""The filter contract: global selection (DataComp's fraction rule, exact counts), composition,
discovery by file/name, worker identity, S.json, and every bad input with its one-line message."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.filters import run_filter
from harness.filters.select import select
from harness.pool.uids import UID_DTYPE, read_subset
from test_filter_support import expected, make_pool


@pytest.fixture
def scored(tmp_path):
    """600 rows over 3 files; scores rounded so that many rows tie at any threshold."""
    rng = np.random.default_rng(1)
    n = 600
    score = np.round(rng.random(n), 2).astype(np.float32)
    score[5] = np.nan
    feats = {"l14_img": rng.standard_normal((n, 4)).astype(np.float16)}
    root = make_pool(tmp_path / "pool", {"clip_l14_similarity_score": score,
                                         "clip_b32_similarity_score": (score * 0.5).astype(np.float32)},
                     features=feats, files=3)
    return root, score


def datacomp_threshold(scores: np.ndarray, fraction: float) -> float:
    """DataComp's baselines/apply_filter.py get_threshold, stated independently."""
    n = int(len(scores) * fraction)
    return -np.sort(-scores)[n]


@pytest.mark.parametrize("fraction", [0.3, 0.1, 0.55])
def test_fraction_keeps_datacomp_count_with_ties(scored, tmp_path, fraction):
    root, score = scored
    doc = run_filter(root, {"name": "clip_score", "fraction": fraction}, tmp_path / "s.npy")
    thr = datacomp_threshold(score, fraction)
    keep = score >= thr
    n = int(len(score) * fraction)
    ties_below_rank = int((score == thr).sum()) - int((np.sort(-score)[:n + 1] == -thr).sum())
    assert ties_below_rank > 0, "the fixture must have ties at the threshold"
    assert doc["n_kept"] == n + 1 + ties_below_rank == int(keep.sum())
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, keep))
    assert doc["histograms"]["clip_score"]["threshold"] == pytest.approx(float(thr))


def test_top_k_threshold_and_nan_never_kept():
    s = np.array([0.5, np.nan, 0.9, 0.9, 0.1, 0.7], np.float32)
    assert select(s, "top_k", 2)[0].tolist() == [False, False, True, True, False, False]
    assert select(s, "top_k", 3)[0].tolist() == [False, False, True, True, False, True]
    assert select(s, "threshold", 0.5)[0].tolist() == [True, False, True, True, False, True]
    assert select(s, "fraction", 1.0)[0].tolist() == [True, False, True, True, True, True]
    assert select(s, "top_k", 100)[0].sum() == 5


def test_workers_give_identical_bytes(scored, tmp_path):
    root, _ = scored
    spec = {"name": "intersect", "filters": [{"name": "clip_score", "fraction": 0.4},
                                             {"name": "random", "fraction": 0.5, "seed": 3}]}
    run_filter(root, spec, tmp_path / "one.npy", workers=1)
    run_filter(root, spec, tmp_path / "two.npy", workers=2)
    assert (tmp_path / "one.npy").read_bytes() == (tmp_path / "two.npy").read_bytes()


def test_composition_is_set_logic(scored, tmp_path):
    root, score = scored
    a = {"name": "clip_score", "threshold": 0.6}
    b = {"name": "clip_score", "arch": "b32", "threshold": 0.2}
    inter = run_filter(root, {"name": "intersect", "filters": [a, b]}, tmp_path / "i.npy")
    union = run_filter(root, {"name": "union", "filters": [a, b]}, tmp_path / "u.npy")
    ka, kb = score >= np.float32(0.6), (score * 0.5).astype(np.float32) >= np.float32(0.2)
    assert np.array_equal(read_subset(tmp_path / "i.npy"), expected(root, ka & kb))
    assert np.array_equal(read_subset(tmp_path / "u.npy"), expected(root, ka | kb))
    assert inter["per_filter"]["intersect[0].clip_score"]["kept"] == int(ka.sum())
    assert union["per_filter"]["union[1].clip_score"]["kept"] == int(kb.sum())


def test_sjson_holds_the_contract_fields(scored, tmp_path):
    root, _ = scored
    doc = run_filter(root, {"name": "clip_score", "fraction": 0.3}, tmp_path / "s.npy")
    on_disk = json.loads((tmp_path / "s.json").read_text())
    for key in ("filter", "eligible", "n_pool", "n_kept", "per_filter", "histograms", "subset_sha256",
                "wall_s", "versions"):
        assert key in on_disk, key
    assert on_disk["filter"]["name"] == "clip_score"
    assert on_disk["filter"]["params"]["column"] == "clip_l14_similarity_score"
    assert len(on_disk["filter"]["source_hash"]) == 64
    assert on_disk["eligible"] is True and on_disk["n_pool"] == 600 and doc["n_kept"] == on_disk["n_kept"]
    assert sum(on_disk["histograms"]["clip_score"]["counts"]) == 599  # the NaN row is not binned


def test_rerun_is_skipped_and_changed_spec_refused(scored, tmp_path):
    root, _ = scored
    out = tmp_path / "s.npy"
    first = run_filter(root, {"name": "clip_score", "fraction": 0.3}, out)
    again = run_filter(root, {"name": "clip_score", "fraction": 0.3}, out)
    assert again["wall_s"] == first["wall_s"]
    with pytest.raises(HarnessError, match="overwrite=true"):
        run_filter(root, {"name": "clip_score", "fraction": 0.2}, out)
    assert run_filter(root, {"name": "clip_score", "fraction": 0.2}, out, overwrite=True)["n_kept"] < first["n_kept"]


PLUGIN = textwrap.dedent('''
    import numpy as np
    from harness.filters import pool_filter

    @pool_filter(columns=["text"], output="score")
    def text_len(batch, features, scale=1.0):
        return np.array([len(t) for t in batch.column("text").to_pylist()], float) * scale

    @pool_filter(columns=["clip_l14_similarity_score"])
    def boom(batch, features):
        raise ValueError("bad things happened")

    @pool_filter(columns=["text"])
    def short(batch, features):
        return np.ones(batch.num_rows - 1, bool)

    @pool_filter(columns=["text"])
    def floats(batch, features):
        return np.ones(batch.num_rows)

    @pool_filter(columns=["defect"])
    def peek(batch, features):
        return np.ones(batch.num_rows, bool)

    @pool_filter(features=["nope_img"])
    def needs_feature(batch, features):
        return np.ones(batch.num_rows, bool)

    @pool_filter(columns=["text"])
    def nothing(batch, features):
        return np.zeros(batch.num_rows, bool)

    def undecorated(batch, features):
        return None
''')


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "my_filters.py"
    path.write_text(PLUGIN)
    return path


def test_plugin_file_with_params(scored, plugin, tmp_path):
    root, _ = scored
    doc = run_filter(root, {"name": f"{plugin}:text_len", "scale": 2.0, "top_k": 7}, tmp_path / "s.npy")
    assert doc["n_kept"] >= 7
    assert doc["sources"][f"{plugin}:text_len"]["file"] == str(plugin)


@pytest.mark.parametrize("func, spec_extra, message", [
    ("boom", {}, r"filter .*:boom \(.*my_filters\.py\) on 00000000\.parquet rows 0-199 raised ValueError: bad things happened"),
    ("short", {}, r"rows 0-199 returned shape \(199,\), expected \(200,\)"),
    ("floats", {}, r"returned dtype float64; a mask filter must return bool"),
    ("peek", {}, r"reads column\(s\) defect missing from .*00000000\.parquet"),
    ("needs_feature", {}, r"missing feature\(s\) nope_img"),
    ("undecorated", {}, r"is not a pool filter"),
    ("text_len", {}, r"give exactly one of filter\.threshold, filter\.fraction, filter\.top_k"),
    ("text_len", {"fraction": 1.5}, r"fraction must be in \(0, 1\], got 1\.5"),
    ("text_len", {"fraction": 0}, r"fraction must be in \(0, 1\]"),
    ("text_len", {"threshold": float("nan")}, r"threshold is NaN"),
    ("text_len", {"threshold": 1, "fraction": 0.5}, r"exactly one of .*got threshold, fraction"),
    ("text_len", {"scael": 2, "top_k": 1}, r"has no parameter 'scael'; did you mean scale\?"),
    ("nothing", {"fraction": 0.5}, r"returns a keep mask; fraction apply only to score filters"),
    ("tex_len", {}, r"has no function 'tex_len'; did you mean text_len\?"),
])
def test_bad_plugins_fail_with_one_line_and_no_output(scored, plugin, tmp_path, func, spec_extra, message):
    root, _ = scored
    (root / "ground_truth.parquet").write_bytes(b"")  # exists, but is never reachable through the API
    out = tmp_path / "s.npy"
    with pytest.raises(HarnessError, match=message) as info:
        run_filter(root, {"name": f"{plugin}:{func}", **spec_extra}, out)
    assert "\n" not in str(info.value)
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert not list(tmp_path.glob(".s.npy*"))


def test_empty_result_warns_and_writes_valid_empty_file(scored, plugin, tmp_path):
    root, _ = scored
    with pytest.warns(UserWarning, match="kept no samples"):
        doc = run_filter(root, {"name": f"{plugin}:nothing"}, tmp_path / "s.npy")
    arr = np.load(tmp_path / "s.npy")
    assert arr.dtype == UID_DTYPE and arr.shape == (0,) and doc["n_kept"] == 0


def test_unknown_name_lists_close_matches(scored, tmp_path):
    root, _ = scored
    with pytest.raises(HarnessError, match=r"unknown filter 'clip_scor'; did you mean clip_score\?"):
        run_filter(root, "clip_scor", tmp_path / "s.npy")


def test_spec_yaml_file_and_composite_keys(scored, tmp_path):
    root, score = scored
    spec = tmp_path / "combo.yaml"
    spec.write_text("name: intersect\nfilters:\n  - {name: clip_score, threshold: 0.5}\n  - {name: no_filter}\n")
    doc = run_filter(root, str(spec), tmp_path / "s.npy")
    assert doc["n_kept"] == int((score >= np.float32(0.5)).sum())
    with pytest.raises(HarnessError, match="fraction do not apply to 'intersect'"):
        run_filter(root, {"name": str(spec), "fraction": 0.3}, tmp_path / "t.npy")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "harness", "filter", *args], capture_output=True, text=True, timeout=120)


def test_cli_clip_score_fraction_as_typed_without_torch(scored, tmp_path):
    root, score = scored
    out = tmp_path / "s.npy"
    code = ("import sys; from harness.cli import run_command; "
            f"rc = run_command(['filter', 'pool_dir={root}', 'filter=clip_score', 'filter.fraction=0.3', 'out={out}']); "
            "assert 'torch' not in sys.modules and 'open_clip' not in sys.modules, 'torch imported'; sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(read_subset(out)) == int((score >= datacomp_threshold(score, 0.3)).sum())
    res = run_cli(f"pool_dir={root}", "filter=intersect", "filter.filters=[{name:basic},{name:clip_score,fraction:0.5}]",
                  f"out={tmp_path / 'i.npy'}")
    assert res.returncode == 0, res.stderr
    assert "intersect[0].basic: kept" in res.stdout


def test_cli_errors_are_one_line(scored, tmp_path):
    root, _ = scored
    res = run_cli(f"pool_dir={root}", "filter=clip_score", "filter.threshold=nan", f"out={tmp_path / 's.npy'}")
    assert res.returncode == 2 and res.stderr.strip() == "error: filter clip_score: threshold is NaN; give a real number"
    res = run_cli(f"pool_dir={root}", "filter=basicc", f"out={tmp_path / 's.npy'}")
    assert res.returncode == 2 and "did you mean basic?" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.npy").exists()
