"""compare: task deltas with paired bootstrap CIs over test images, and the seed spread."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from test_leaderboard_runs import make_run

from harness.core.errors import HarnessError
from leaderboard.compare import compare_entries
from leaderboard.store import add_entry, entry_from_run, load_leaderboard

LB = ("filtering", "tiny")


def _board(tmp_path, runs: list[tuple[str, int, float]], **kw):
    lb = tmp_path / "lb"
    for method, seed, quality in runs:
        add_entry(lb, entry_from_run(make_run(tmp_path / "runs", method, seed, quality, **kw), method, *LB))
    return lb, load_leaderboard(lb, *LB)


def test_a_clearly_better_entry_is_beyond_noise(tmp_path):
    lb, doc = _board(tmp_path, [("good", 0, 0.8), ("weak", 0, 0.3)])
    res = compare_entries(doc, "good-seed0", "weak-seed0", n_boot=300, base=lb)
    assert len(res["tasks"]) == 8 and not res["notes"]
    for row in res["tasks"]:
        lo, hi = row["ci"]
        assert lo <= row["delta"] <= hi
    avg = res["average"]
    assert avg["delta"] == pytest.approx(np.mean([r["delta"] for r in res["tasks"]]))
    assert avg["ci"][0] > 0.3 and avg["beyond_noise"]
    # the average's CI is narrower than a single task's: it pools eight test sets
    assert avg["ci"][1] - avg["ci"][0] < min(r["ci"][1] - r["ci"][0] for r in res["tasks"])


def test_paired_bootstrap_of_an_entry_against_itself_is_exactly_zero(tmp_path):
    lb, doc = _board(tmp_path, [("basic", 0, 0.5)])
    twin = dict(doc["entries"][0], id="twin-seed0", method_name="twin", checkpoint_sha256="1" * 64)
    add_entry(lb, twin)
    res = compare_entries(load_leaderboard(lb, *LB), "basic-seed0", "twin-seed0", n_boot=50, base=lb)
    assert all(r["ci"] == [0.0, 0.0] and r["beyond_noise"] is False for r in res["tasks"])


def test_a_small_gain_on_one_task_stays_within_noise(tmp_path):
    lb, doc = _board(tmp_path, [("basic", 0, 0.5)])
    base = doc["entries"][0]
    folder = tmp_path / "tweaked"
    shutil.copytree(lb / base["per_example_dir"], folder)
    arrays = dict(np.load(folder / "tiny_objects.npz"))
    wrong = np.flatnonzero(arrays["pred"] != arrays["target"])[:2]  # fix 2 of 200 answers: +1 point
    arrays["pred"][wrong] = arrays["target"][wrong]
    np.savez(folder / "tiny_objects.npz", **arrays)
    tasks = {**base["tasks"], "tiny_objects": {"metric": "acc1", "value": base["tasks"]["tiny_objects"]["value"] + 0.01}}
    add_entry(lb, dict(base, id="tweak-seed0", method_name="tweak", checkpoint_sha256="2" * 64,
                       per_example_dir=str(folder), tasks=tasks))
    res = compare_entries(load_leaderboard(lb, *LB), "tweak-seed0", "basic-seed0", n_boot=400, base=lb)
    row = next(r for r in res["tasks"] if r["task"] == "tiny_objects")
    assert row["delta"] == pytest.approx(0.01)
    # paired: only the 2 changed answers vary, each drawn Poisson(1) times → delta = k/200, k ~ Poisson(2)
    assert row["ci"][0] == 0.0 and 0.01 < row["ci"][1] <= 0.035
    assert row["beyond_noise"] is False


def test_seed_spread_over_a_methods_entries(tmp_path):
    _, doc = _board(tmp_path, [("basic", s, 0.5) for s in range(3)] + [("clip", 0, 0.6)])
    res = compare_entries(doc, "basic-seed1", "clip-seed0", n_boot=20)
    basic, clip = res["seed_spread"]
    averages = [e["aggregates"]["Average"] for e in doc["entries"][:3]]
    assert basic["n"] == 3 and basic["seeds"] == [0, 1, 2]
    assert basic["sd"] == pytest.approx(np.std(averages, ddof=1)) and basic["sd"] > 0
    assert basic["min"] == min(averages) and basic["max"] == max(averages)
    assert clip["n"] == 1 and clip["sd"] is None


def test_without_per_example_arrays_deltas_come_with_a_note(tmp_path):
    lb, doc = _board(tmp_path, [("a", 0, 0.6), ("b", 0, 0.4)])
    shutil.rmtree(lb / doc["entries"][1]["per_example_dir"])
    res = compare_entries(doc, "a-seed0", "b-seed0", base=lb)
    assert all(r["ci"] is None and r["delta"] > -1 for r in res["tasks"])
    assert "entry 'b-seed0' has no per-example arrays" in res["notes"][0]


def test_leaderboard_folder_is_portable_without_the_runs(tmp_path):
    """add copies each run's per-example arrays beside the JSON: a clone of the leaderboard folder
    (the runs deleted, the folder moved) still gets bootstrap CIs."""
    lb, doc = _board(tmp_path, [("a", 0, 0.7), ("b", 0, 0.4)])
    assert all(e["per_example_dir"] == f"per_example/filtering_tiny/{e['id']}" for e in doc["entries"])
    shutil.rmtree(tmp_path / "runs")
    moved = tmp_path / "clone" / "leaderboard"
    shutil.copytree(lb, moved)
    shutil.rmtree(lb)
    res = compare_entries(load_leaderboard(moved, *LB), "a-seed0", "b-seed0", n_boot=50, base=moved)
    assert not res["notes"] and res["average"]["beyond_noise"]


def test_entries_with_absolute_per_example_paths_are_localized(tmp_path):
    """A leaderboard written before the copies existed gets them, without other changes."""
    from leaderboard.store import leaderboard_path, localize_per_example, read_document, write_text_atomic

    lb, doc = _board(tmp_path, [("a", 0, 0.7), ("b", 0, 0.4)])
    old = [dict(e, per_example_dir=str(tmp_path / "runs" / f"{e['method_name']}-s0" / "eval" / "per_example"))
           for e in doc["entries"]]
    shutil.rmtree(lb / "per_example")
    write_text_atomic(leaderboard_path(lb, *LB), json.dumps({**doc, "entries": old}))
    assert localize_per_example(lb, *LB) == 2 and localize_per_example(lb, *LB) == 0
    assert read_document(leaderboard_path(lb, *LB)) == doc
    assert not compare_entries(doc, "a-seed0", "b-seed0", n_boot=20, base=lb)["notes"]


def test_per_example_copy_keeps_datacomp_subfolder_keys(tmp_path):
    from leaderboard.store import keep_per_example

    src = tmp_path / "run" / "eval" / "per_example"
    (src / "wilds").mkdir(parents=True)
    np.savez(src / "wilds" / "iwildcam.npz", pred=np.arange(3))
    np.savez(src / "imagenet1k.npz", pred=np.arange(4))
    entry = {"id": "m-seed0", "track": "filtering", "scale": "small", "per_example_dir": str(src),
             "tasks": {"wilds/iwildcam": {}, "imagenet1k": {}, "vtab/pcam": {}}}
    kept = keep_per_example(tmp_path / "lb", entry)
    dest = tmp_path / "lb" / kept["per_example_dir"]
    assert kept["per_example_dir"] == "per_example/filtering_small/m-seed0"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.npz")) == ["imagenet1k.npz", "wilds/iwildcam.npz"]
    assert np.load(dest / "wilds" / "iwildcam.npz")["pred"].tolist() == [0, 1, 2]


def test_unknown_entry_lists_the_ids(tmp_path):
    _, doc = _board(tmp_path, [("a", 0, 0.6)])
    with pytest.raises(HarnessError) as err:
        compare_entries(doc, "zz", "a-seed0")
    assert str(err.value) == "no entry or method 'zz' in the filtering/tiny leaderboard (methods: a; entries: a-seed0)"


def test_unknown_name_suggests_close_ids_and_methods(tmp_path):
    _, doc = _board(tmp_path, [("caption_length", 0, 0.6), ("basic", 0, 0.5)])
    with pytest.raises(HarnessError) as err:
        compare_entries(doc, "caption_lenght-seed0", "basic")
    assert str(err.value) == ("no entry or method 'caption_lenght-seed0' in the filtering/tiny leaderboard; "
                              "did you mean caption_length-seed0 or caption_length?")
    with pytest.raises(HarnessError) as err:
        compare_entries(doc, "basic", "caption-seed0")
    assert str(err.value) == ("no entry or method 'caption-seed0' in the filtering/tiny leaderboard; "
                              "did you mean caption_length-seed0 or basic-seed0?")
    assert compare_entries(doc, "caption_length", "basic", n_boot=10)["a"] == "caption_length (seeds 0)"


def test_methods_compare_paired_by_seed(tmp_path):
    """a=<method> b=<method>: the seeds both have, each task's delta averaged over the paired seeds,
    and the CI from the same test-image draws for every seed (so it is the mean of paired deltas)."""
    from leaderboard.compare import paired_deltas

    lb, doc = _board(tmp_path, [("good", 0, 0.8), ("good", 1, 0.78), ("good", 2, 0.79),
                                ("weak", 0, 0.3), ("weak", 1, 0.32)])
    res = compare_entries(doc, "good", "weak", n_boot=200, base=lb)
    assert res["a"] == "good (seeds 0,1,2)" and res["b"] == "weak (seeds 0,1)"
    assert res["seeds"] == [0, 1] and res["pairs"] == [["good-seed0", "weak-seed0"], ["good-seed1", "weak-seed1"]]
    by_id = {e["id"]: e for e in doc["entries"]}
    for row in res["tasks"]:
        want = np.mean([by_id[f"good-seed{s}"]["tasks"][row["task"]]["value"]
                        - by_id[f"weak-seed{s}"]["tasks"][row["task"]]["value"] for s in (0, 1)])
        assert row["delta"] == pytest.approx(want)
    one = [compare_entries(doc, f"good-seed{s}", f"weak-seed{s}", n_boot=200, base=lb) for s in (0, 1)]
    tasks = {r["task"]: r["metric"] for r in res["tasks"]}
    pairs = [(by_id[f"good-seed{s}"], by_id[f"weak-seed{s}"]) for s in (0, 1)]
    joint, _ = paired_deltas(pairs, tasks, 200, 0, base=lb)
    singles = [paired_deltas([p], tasks, 200, 0, base=lb)[0] for p in pairs]
    for key in tasks:  # the same draws for both seeds: the joint replicate is the mean of the two
        assert np.allclose(joint[key], (singles[0][key] + singles[1][key]) / 2)
    assert res["average"]["delta"] == pytest.approx(np.mean([o["average"]["delta"] for o in one]))
    assert res["average"]["ci"][0] > 0.3 and res["average"]["beyond_noise"]
    mixed = compare_entries(doc, "good-seed1", "weak", n_boot=20, base=lb)  # an entry against a method: its seed
    assert mixed["pairs"] == [["good-seed1", "weak-seed1"]] and mixed["a"] == "good-seed1"


def test_methods_without_a_common_seed_are_refused(tmp_path):
    _, doc = _board(tmp_path, [("good", 0, 0.8), ("good", 1, 0.8), ("weak", 2, 0.3), ("weak", 3, 0.3)])
    with pytest.raises(HarnessError) as err:
        compare_entries(doc, "good", "weak", n_boot=20)
    assert str(err.value) == "'good' (seeds 0, 1) and 'weak' (seeds 2, 3) share no seed to pair by"


def test_resamples_are_cached_per_entry(tmp_path):
    from leaderboard.compare import resampled
    from harness.core.paths import harness_home

    lb, doc = _board(tmp_path, [("a", 0, 0.6)])
    entry = doc["entries"][0]
    tasks = {k: t["metric"] for k, t in entry["tasks"].items()}
    before = set((harness_home() / "cache" / "bootstrap").glob("*.npz"))
    first = resampled(entry, tasks, 30, 0, base=lb)
    made = set((harness_home() / "cache" / "bootstrap").glob("*.npz")) - before
    assert len(made) == 1
    again = resampled(entry, tasks, 30, 0, base=lb)
    assert all(np.array_equal(first[k], again[k]) for k in first) and len(first["tiny_objects"]) == 30
    assert resampled(entry, tasks, 31, 0, base=lb)["tiny_objects"].shape == (31,)  # n_boot is in the key


def test_compare_command_prints_deltas_cis_and_seed_spread(tmp_path, cli):
    lb, _ = _board(tmp_path, [("good", 0, 0.8), ("good", 1, 0.78), ("weak", 0, 0.3)])
    out_json = tmp_path / "cmp.json"
    res = cli("leaderboard", "compare", f"leaderboard_dir={lb}", "a=good-seed0", "b=weak-seed0", "n_boot=200",
              f"json_out={out_json}")
    assert res.returncode == 0, res.stderr
    for word in ("tiny_objects", "tiny_retrieval", "average", "seed spread", "*"):
        assert word in res.stdout
    saved = json.loads(out_json.read_text())
    assert saved["average"]["beyond_noise"] is True and saved["seed_spread"][0]["n"] == 2


def test_seed_stability_is_kendall_tau_of_method_rankings(tmp_path):
    from leaderboard.compare import seed_stability, stability_line

    # seeds 0 and 1 order a > b > c; seed 2 swaps b and c: τ(0,2) = τ(1,2) = (2 − 1)/3
    runs = [("a", 0, 0.8), ("b", 0, 0.6), ("c", 0, 0.4), ("a", 1, 0.8), ("b", 1, 0.6), ("c", 1, 0.4),
            ("a", 2, 0.8), ("b", 2, 0.4), ("c", 2, 0.6)]
    _, doc = _board(tmp_path, runs)
    st = seed_stability(doc)
    assert [p["seeds"] for p in st["pairs"]] == [[0, 1], [0, 2], [1, 2]]
    assert [p["tau"] for p in st["pairs"]] == pytest.approx([1.0, 1 / 3, 1 / 3])
    assert st["mean_tau"] == pytest.approx(5 / 9)
    assert "mean 0.56" in stability_line(doc)


def test_compare_command_by_method_and_its_hints(tmp_path, cli):
    """a=<method>: all seeds, paired by seed; a bare name on both boards is yours, with a note; a typo
    gets the close names (exit 2, one line)."""
    lb, _ = _board(tmp_path, [("basic", 0, 0.8), ("basic", 1, 0.78), ("weak", 1, 0.3), ("weak", 2, 0.3)])
    res = cli("leaderboard", "compare", f"leaderboard_dir={lb}", "a=basic", "b=weak", "n_boot=50",
              env={"COLUMNS": "160"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == ("note: 'basic' is a method on both boards: using yours (yours:basic); "
                        "write ref:basic for the reference board's")
    assert lines[1].startswith("basic (yours) (seeds 0,1) − weak (yours) (seeds 1,2)  (95% paired bootstrap CI "
                               "over test images, 50 resamples, paired by seed over seed 1; * = beyond noise)")
    assert any(re.match(r"\s+basic \(yours\)\s+0,1\s+0\.\d{4}", ln) for ln in lines)  # seed spread, per board
    one = cli("leaderboard", "compare", f"leaderboard_dir={lb}", "a=basic-seed1", "b=weak-seed2", "n_boot=20")
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines()[:2] == [
        "note: 'basic-seed1' is an entry on both boards: using yours (yours:basic-seed1); "
        "write ref:basic-seed1 for the reference board's",
        "yours:basic-seed1 − yours:weak-seed2  (95% paired bootstrap CI over test images, 20 resamples; * = beyond noise)"]
    typo = cli("leaderboard", "compare", f"leaderboard_dir={lb}", "a=clip_score_0.3-seed9", "b=no_filter")
    assert typo.returncode == 2 and typo.stderr.splitlines() == [
        "error: no entry or method 'clip_score_0.3-seed9' in the filtering/tiny leaderboard; did you mean "
        "clip_score_0.3-seed2 or clip_score_0.3-seed1 or clip_score_0.3-seed0?"]
