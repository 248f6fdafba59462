"""`harness run` end to end on the reduced tiny world, as a user runs it (a subprocess): the status
line of every stage (running / skipped / resuming), the live training line, the summary, and what
the user's board does with the entry (entered, already there, refused: the summary either way)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from harness.reshard.tasks import STALL_ENV
from leaderboard.store import REFERENCE_DIR

FAST_TRAIN = ("train.allow_off_recipe=true", "train.recipe.train_num_samples=1024", "train.recipe.batch_size=64",
              "train.recipe.warmup=4", "train.num_checkpoints=1")
LIVE = re.compile(r"\[harness run\] train: epoch 1/1 step \d+/16, [\d,]+ samples/s, loss \d+\.\d{4}, ETA \d+:\d\d")


def _args(tiny_world, work, *extra, lb):
    return ("run", f"pool_dir={tiny_world['pool_dir']}", f"eval_dir={tiny_world['eval_dir']}",
            f"work_dir={work}", f"leaderboard_dir={lb}", *extra)


def _run(cli, tiny_world, work, *extra, lb):
    return cli(*_args(tiny_world, work, *extra, lb=lb))


def status_lines(stdout: str) -> list[str]:
    """The `[harness run] <stage>: ...` lines, the live training lines left out."""
    return [line for line in stdout.splitlines() if line.startswith("[harness run]") and not LIVE.fullmatch(line)]


def _reference_listing() -> list[tuple[str, int]]:
    return sorted((str(p), p.stat().st_mtime_ns) for p in REFERENCE_DIR.rglob("*"))


def _killed_in_reshard(tiny_world, work, lb) -> str:
    """`harness run` SIGKILLed while reshard writes its first output shard (a test hook parks it)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", *_args(tiny_world, work, "filter=basic", *FAST_TRAIN,
                                                                     lb=lb)],
                            env={**os.environ, STALL_ENV: "write:0"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 300
    while not (work / "reshard" / ".reshard" / "stalled-write-0").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run never reached the reshard hook"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate(timeout=60)[0]


def test_run_prints_each_stage_resumes_and_skips(cli, tiny_world, tmp_path):
    work, lb = tmp_path / "run", tmp_path / "lb"
    pool = f"[harness run] pool: skipped (done: pool at {tiny_world['pool_dir']}, 2,000 samples)"
    reference_before = _reference_listing()

    first = _killed_in_reshard(tiny_world, work, lb)
    assert status_lines(first) == [pool, "[harness run] filter: running", "[harness run] reshard: running"]

    res = _run(cli, tiny_world, work, "filter=basic", *FAST_TRAIN, lb=lb)
    assert res.returncode == 0, res.stderr[-3000:]
    subset = json.loads((work / "filter" / "subset.json").read_text())
    n_input = json.loads((tiny_world["pool_dir"] / "pool.json").read_text())["n_shards"]
    assert status_lines(res.stdout) == [
        pool, f"[harness run] filter: skipped (done: {subset['n_kept']:,} of 2,000 kept)",
        f"[harness run] reshard: resuming from {n_input} input shards indexed, 0 output shards written",
        "[harness run] train: running",
        f"[harness run] train: open_clip_train is running; full log: {work / 'train' / 'tiny_scale' / 'out.log'} "
        f"(console: {work / 'train' / 'train_output.log'})",
        "[harness run] eval: running", "[harness run] leaderboard: running"]
    assert LIVE.search(res.stdout), res.stdout
    for row in ("subset size", f"{subset['n_kept']:,} of 2,000", "not entered (reason below)", "wall: train"):
        assert row in res.stdout
    notes = res.stdout.splitlines()[-4:]
    assert notes == [f"board: {lb / 'filtering_tiny.json'} (not written)", "standing: not on the board",
                     "reason: off-recipe training: its scores are reported here, only the fixed recipe is ranked",
                     f"run folder: {work}"]
    shards = json.loads((work / "reshard" / "manifest.json").read_text())
    assert 0 < subset["n_kept"] < subset["n_pool"] and shards["n_samples"] == subset["n_kept"]
    lines = (work / "eval" / "eval_results.jsonl").read_text().splitlines()
    assert len(lines) == 8 and all("main_metric" in json.loads(line)["metrics"] for line in lines)
    assert not lb.exists() and _reference_listing() == reference_before

    checkpoint_mtime = (work / "train" / "train.json").stat().st_mtime
    again = _run(cli, tiny_world, work, "filter=basic", *FAST_TRAIN, lb=lb)
    assert again.returncode == 0, again.stderr[-3000:]
    n_shards = len(shards["shards"])
    assert status_lines(again.stdout) == [
        pool, f"[harness run] filter: skipped (done: {subset['n_kept']:,} of 2,000 kept)",
        f"[harness run] reshard: skipped (done: {n_shards} shard{'s' * (n_shards != 1)}, {subset['n_kept']:,} samples)",
        "[harness run] train: skipped (done: checkpoint epoch_1.pt)",
        "[harness run] eval: skipped (done: 8 tasks)", "[harness run] leaderboard: running"]
    assert re.search(r"wall: train\s+│ skipped \(took \d+\.\d s\)", again.stdout), again.stdout
    assert (work / "train" / "train.json").stat().st_mtime == checkpoint_mtime

    (work / "train" / "train.json").unlink()  # as if killed after the last checkpoint, and during eval
    (work / "eval" / "scores.json").unlink()
    (work / "eval" / "eval_results.jsonl").write_text("\n".join(lines[:5]) + "\n")
    resumed = _run(cli, tiny_world, work, "filter=basic", *FAST_TRAIN, lb=lb)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "[harness run] train: resuming from epoch 1 of 1" in status_lines(resumed.stdout)
    assert "[harness run] eval: resuming from 5 of 8 tasks done" in status_lines(resumed.stdout)
    assert len((work / "eval" / "eval_results.jsonl").read_text().splitlines()) == 8


@pytest.mark.slow  # long end-to-end check; `pytest -m slow` runs it
def test_run_enters_finds_and_refuses_with_the_summary_each_time(cli, tiny_world, tmp_path):
    """On-recipe (the tiny_reference scale, 16k samples): entered, then already on the board (both
    exit 0), then refused under another method name (same checkpoint): summary printed, exit 1."""
    work, lb = tmp_path / "run", tmp_path / "lb"
    board = lb / "filtering_tiny_reference.json"
    res = _run(cli, tiny_world, work, "scale=tiny_reference", "filter=basic", lb=lb)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "│ leaderboard         │ entered as basic-seed0" in res.stdout
    assert f"board: {board}" in res.stdout.splitlines()
    assert ("standing: rank 1 of 1 methods by mean Average over seeds (your board; per seed: 1 of 1 entries)"
            in res.stdout.splitlines())
    assert [e["id"] for e in json.loads(board.read_text())["entries"]] == ["basic-seed0"]

    again = _run(cli, tiny_world, work, "scale=tiny_reference", "filter=basic", lb=lb)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"[harness run] leaderboard: skipped (done: basic-seed0 is on {board})" in again.stdout.splitlines()
    assert "already on the board as basic-seed0" in again.stdout

    other = _run(cli, tiny_world, work, "scale=tiny_reference", "filter=basic", "method_name=mine", lb=lb)
    assert other.returncode == 1, other.stderr[-3000:]
    assert "│ leaderboard         │ refused (reason below)" in other.stdout and "│ Average" in other.stdout
    assert other.stdout.splitlines()[-4:] == [
        f"board: {board} (not written)", "standing: not on the board",
        "reason: refused entry 'mine-seed0': duplicate entry: the same checkpoint is already entry 'basic-seed0'",
        f"run folder: {work}"]
    assert [e["id"] for e in json.loads(board.read_text())["entries"]] == ["basic-seed0"]


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
    assert "entered as no_filter-seed0" in res.stdout and "standing: rank " in res.stdout


def test_world_with_other_knobs_gets_its_own_cache_folder():
    """`harness run world.bg_bias=0.4` must not reuse the default cached world (nor pool_size=N)."""
    from harness.core.paths import world_dir_name

    assert world_dir_name(0, None, {}) == "tiny-world-seed0"
    assert world_dir_name(0, None, {"bg_bias": None}) == "tiny-world-seed0"
    other = {world_dir_name(0, None, {"bg_bias": 0.4}), world_dir_name(0, None, {"bg_bias": 0.5}),
             world_dir_name(0, 2000, {}), world_dir_name(1, 2000, {})}
    assert len(other) == 4 and all(n.startswith("tiny-world-seed") and n != "tiny-world-seed0" for n in other)
