"""The bad-input corpus (tests/faults/make_corpus.py) through the real CLI: each entry gives its
exact one-line message or its counted skip, and no input file changes (hashes before/after)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faults.conftest import harness, tree_hashes
from faults.make_corpus import FOREIGN_UID, make_corpus


@pytest.fixture(scope="module")
def corpus(tiny_world, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("corpus")
    return make_corpus(root, tiny_world["pool_dir"], tiny_world["eval_dir"]) | {"root": root}


@pytest.fixture
def untouched(corpus, tiny_world):
    """Every input (corpus and tiny world) hashes the same after the test as before it."""
    roots = (corpus["root"], tiny_world["pool_dir"], tiny_world["eval_dir"])
    before = [tree_hashes(r) for r in roots]
    yield
    assert [tree_hashes(r) for r in roots] == before


def error_line(res) -> str:
    """The CLI's one `error: ...` line (exit 2), last on stderr, no traceback. (open_clip may log a
    "No pretrained weights loaded" line before the checkpoint is read: library noise, not ours.)"""
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error: ")]
    assert errors == lines[-1:] and "Traceback" not in res.stderr, res.stderr[-2000:]
    return errors[0].removeprefix("error: ")


def test_damaged_shards_are_counted_and_skipped(corpus, tmp_path, untouched):
    """truncated tar, json without uid, uid duplicated across shards, ``..``/absolute member names,
    missing _stats.json: each counted in the manifest, the rest written; strict=true refuses."""
    entry = corpus["reshard"]
    args = ("reshard", f"pool_dir={entry['pool']}", f"subset={entry['subset']}", "progress=false")
    res = harness(*args, f"out_dir={tmp_path / 'o'}")
    assert res.returncode == 0, res.stderr[-2000:]
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    counts = {k: v for k, v in man["bad_input"].items() if v}
    assert counts == {"truncated_tar": 1, "json_missing_uid": 1, "duplicate_uid": 1, "unsafe_member_name": 2,
                      "stats_missing": 1, "stats_mismatch": 1}
    lost = man["missing_uids"]["count"]  # the samples after the cut in the truncated shard
    assert 0 < lost < 800 and man["n_samples"] == entry["n_selected"] - lost
    assert "bad input: unsafe_member_name: 2 (member name is absolute or contains '..' (skipped); " \
           "first: 00000002.tar: ../escape.jpg)" in res.stdout
    assert f"first: 00000002.tar: uid {entry['dup_uid']})" in res.stdout
    assert not (tmp_path / "escape.jpg").exists() and not Path("/abs/escape.jpg").exists()
    assert error_line(harness(*args, f"out_dir={tmp_path / 's'}", "strict=true")) == (
        "strict=true and the pool has bad input: truncated_tar=1, unsafe_member_name=2, json_missing_uid=1, "
        "duplicate_uid=1, stats_missing=1, stats_mismatch=1 (first: truncated_tar: 00000001.tar: archive ends "
        "inside a header)")
    assert not list((tmp_path / "s").glob("*.tar"))


@pytest.mark.parametrize("name, message", [
    ("duplicated", "{path}: 1 duplicated uid(s), e.g. "),
    ("wrong_dtype", "{path}: expected a 1-d array of dtype np.dtype('u8,u8') (uid high/low 64 bits), "
                    "got dtype int64, shape (3,)"),
    ("out_of_pool", "strict=true and 1 subset uid(s) are not in the pool (filtering track)"),
])
def test_bad_subsets_are_refused_in_one_line(corpus, tiny_world, tmp_path, untouched, name, message):
    path = corpus["subsets"][name]
    res = harness("reshard", f"pool_dir={tiny_world['pool_dir']}", f"subset={path}", f"out_dir={tmp_path / 'o'}",
                  "strict=true", "progress=false")
    assert error_line(res).startswith(message.format(path=path))
    assert not list((tmp_path / "o").glob("*.tar"))


def test_unsorted_subset_is_sorted_with_a_warning_and_out_of_pool_uid_is_counted(corpus, tiny_world, tmp_path,
                                                                                untouched):
    pool = tiny_world["pool_dir"]
    out = {}
    for name in ("sorted", "unsorted", "out_of_pool"):
        res = harness("reshard", f"pool_dir={pool}", f"subset={corpus['subsets'][name]}",
                      f"out_dir={tmp_path / name}", "progress=false")
        assert res.returncode == 0, res.stderr[-2000:]
        out[name] = (res, tree_hashes(tmp_path / name, skip=("manifest.json",)))
    assert f"{corpus['subsets']['unsorted']}: uids were not sorted; sorted them" in out["unsorted"][0].stderr
    assert out["unsorted"][1] == out["sorted"][1]
    man = json.loads((tmp_path / "out_of_pool" / "manifest.json").read_text())
    assert man["missing_uids"] == {"count": 1, "uids": [FOREIGN_UID]} and man["n_samples"] == 3
    assert f"missing from the pool: 1 of 4 subset uids ({FOREIGN_UID})" in out["out_of_pool"][0].stdout


def test_npz_with_wrong_row_count_is_named(corpus, tmp_path, untouched):
    plugin = corpus["plugins"] / "reads_features.py"
    res = harness("filter", f"pool_dir={corpus['short_npz_pool']}", f"filter={plugin}:has_image_feature",
                  f"out={tmp_path / 'S.npy'}")
    npz = corpus["short_npz_pool"] / "metadata" / "00000000.npz"
    assert error_line(res) == (f"{npz}: feature 'tinyref_img' has 799 rows but 00000000.parquet has 800; "
                               "no subset was written")
    assert not list(tmp_path.iterdir())


def test_plugin_that_raises_is_named_with_file_and_rows(corpus, tiny_world, tmp_path, untouched):
    plugin = corpus["plugins"] / "raises.py"
    res = harness("filter", f"pool_dir={tiny_world['pool_dir']}", f"filter={plugin}:explode", f"out={tmp_path / 'S.npy'}")
    assert error_line(res) == (f"filter {plugin}:explode ({plugin}) on 00000000.parquet rows 0-799 "
                               "raised ValueError: plugin exploded on purpose (verbose=true or HARNESS_DEBUG=1 prints the "
                               "traceback); no subset was written")
    assert not list(tmp_path.iterdir())


def test_plugin_cannot_write_into_pool_dir(corpus, tiny_world, tmp_path, untouched):
    """Filters run with pool_dir write-guarded by an audit hook in the worker process (root too)."""
    plugin, pool = corpus["plugins"] / "writes_pool.py", tiny_world["pool_dir"]
    res = harness("filter", f"pool_dir={pool}", f"filter={plugin}:scribble", f"out={tmp_path / 'S.npy'}")
    assert error_line(res) == (f"filter {plugin}:scribble ({plugin}) on 00000000.parquet rows 0-799 raised "
                               f"PermissionError: pool_dir {pool.resolve()} is read-only for filters "
                               f"(open {pool.resolve()}/metadata/scribble.txt) (verbose=true or HARNESS_DEBUG=1 "
                               "prints the traceback); no subset was written")
    assert not (pool / "metadata" / "scribble.txt").exists() and not list(tmp_path.iterdir())


def _eval(tiny_world, corpus, out: Path, task: str):
    ref = json.loads((tiny_world["pool_dir"] / "reference" / "reference.json").read_text())
    return harness("eval", f"checkpoint={tiny_world['pool_dir'] / 'reference' / ref['checkpoint']}",
                   f"model={ref['model']}", "suite=tiny", f"data_dir={corpus['evalsets']}", f"out_dir={out}",
                   f"tasks=[{task}]", "workers=0", "progress=false")


def test_missing_eval_shard_stops_eval_without_scores(corpus, tiny_world, tmp_path, untouched):
    res = _eval(tiny_world, corpus, tmp_path / "e", "tiny_colors")
    where = corpus["evalsets"] / "tiny_colors" / "test"
    assert error_line(res) == f"{where} holds 0 shard(s) [] but nshards.txt says 1"
    assert not (tmp_path / "e" / "scores.json").exists()


def test_undecodable_jpeg_is_a_counted_skip(corpus, tiny_world, tmp_path, untouched):
    res = _eval(tiny_world, corpus, tmp_path / "e", "tiny_counts")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "warning: task tiny_counts: 1 undecodable image(s) skipped" in res.stdout
    (row,) = [json.loads(l) for l in (tmp_path / "e" / "eval_results.jsonl").read_text().splitlines()]
    assert row["metrics"]["n_undecodable"] == 1 and row["metrics"]["n_examples"] > 0


def test_leaderboard_entry_with_a_foreign_recipe_hash_is_refused(tmp_path):
    from test_leaderboard_runs import make_run, tiny_recipe_hash

    run = make_run(tmp_path / "runs", "basic", recipe_hash="ab" * 32)
    before = tree_hashes(run)
    lb = tmp_path / "lb"
    res = harness("leaderboard", "add", f"run_dir={run}", f"leaderboard_dir={lb}")
    assert error_line(res) == (f"refused entry 'basic-seed0': recipe hash {'ab' * 6} is not the tiny scale's "
                               f"({tiny_recipe_hash()[:12]}); train with scale=tiny and no recipe overrides")
    assert not (lb / "filtering_tiny.json").exists() and tree_hashes(run) == before
