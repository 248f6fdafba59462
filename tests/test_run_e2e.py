"""`harness run` end to end on the reduced tiny world, as a user runs it (a subprocess)."""

from __future__ import annotations

import json

import pytest

FAST_TRAIN = ("train.allow_off_recipe=true", "train.train_num_samples=1024", "train.batch_size=64",
              "train.warmup=4", "train.num_checkpoints=1")


def _run(cli, tiny_world, work, *extra, lb):
    return cli("run", f"pool_dir={tiny_world['pool_dir']}", f"eval_dir={tiny_world['eval_dir']}",
               f"work_dir={work}", f"leaderboard_dir={lb}", *extra)


def test_run_end_to_end_then_skip_on_rerun(cli, tiny_world, tmp_path):
    work, lb = tmp_path / "run", tmp_path / "lb"
    res = _run(cli, tiny_world, work, "filter=basic", *FAST_TRAIN, lb=lb)
    assert res.returncode == 0, res.stderr[-3000:]
    for path in ("filter/subset.npy", "filter/subset.json", "reshard/manifest.json", "train/train.json",
                 "eval/eval_results.jsonl", "eval/scores.json", "run.json"):
        assert (work / path).is_file(), path
    doc = json.loads((work / "run.json").read_text())
    assert list(doc["stages"]) == ["pool", "filter", "reshard", "train", "eval", "leaderboard"]
    assert doc["stages"]["leaderboard"]["result"] == {"entered": False, "reason": "off-recipe run"}
    subset = json.loads((work / "filter" / "subset.json").read_text())
    shards = json.loads((work / "reshard" / "manifest.json").read_text())
    assert 0 < subset["n_kept"] < subset["n_pool"] and shards["n_samples"] == subset["n_kept"]
    lines = [json.loads(l) for l in (work / "eval" / "eval_results.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and all("main_metric" in l["metrics"] for l in lines)
    assert "subset size" in res.stdout and "wall: train" in res.stdout
    assert not (lb / "filtering_tiny.json").exists()

    checkpoint_mtime = (work / "train" / "train.json").stat().st_mtime
    again = _run(cli, tiny_world, work, "filter=basic", *FAST_TRAIN, lb=lb)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (work / "train" / "train.json").stat().st_mtime == checkpoint_mtime


def test_run_refuses_work_dir_of_another_config(cli, tiny_world, tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    (work / "run.json").write_text(json.dumps({"fingerprint": "x", "config": {"seed": 7}, "stages": {}}))
    res = _run(cli, tiny_world, work, "filter=basic", lb=tmp_path / "lb")
    assert res.returncode == 2
    assert "holds a run with another config" in res.stderr and "overwrite=true" in res.stderr


def test_run_unknown_filter_and_track_are_one_line(cli, tmp_path):
    res = cli("run", "track=filterin", f"work_dir={tmp_path}")
    assert res.returncode == 2 and "unknown track 'filterin'" in res.stderr and "filtering" in res.stderr
    res = cli("run", "filter=nope_filter", f"work_dir={tmp_path / 'w'}", f"pool_dir={tmp_path / 'pool'}")
    assert res.returncode == 2 and "nope_filter" in res.stderr
    assert not (tmp_path / "pool").exists() and not (tmp_path / "w").exists()


@pytest.mark.slow
def test_run_on_recipe_enters_leaderboard(cli, tiny_world, tmp_path):
    work, lb = tmp_path / "run", tmp_path / "lb"
    res = _run(cli, tiny_world, work, "filter=no_filter", lb=lb)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads((lb / "filtering_tiny.json").read_text())
    assert [e["id"] for e in doc["entries"]] == ["no_filter-seed0"]
    assert "leaderboard rank" in res.stdout


def test_world_with_other_knobs_gets_its_own_cache_folder():
    """`harness run world.bg_bias=0.4` must not reuse the default cached world (nor pool_size=N)."""
    from harness.run import world_dir_name

    assert world_dir_name(0, None, {}) == "tiny-world-seed0"
    assert world_dir_name(0, None, {"bg_bias": None}) == "tiny-world-seed0"
    other = {world_dir_name(0, None, {"bg_bias": 0.4}), world_dir_name(0, None, {"bg_bias": 0.5}),
             world_dir_name(0, 2000, {}), world_dir_name(1, 2000, {})}
    assert len(other) == 4 and all(n.startswith("tiny-world-seed") and n != "tiny-world-seed0" for n in other)
