"""scripts/seed_tiny_leaderboard.py builds its commands right: `harness run` onto a scratch board
(never the reference), then an explicit `harness leaderboard add` to the reference board, the
oracle as a reference entry. Checked by composing each command with the CLI's own configs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from harness.cli import load_config
from harness.pipeline import resolve_board

REPO = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("seed_tiny_leaderboard", REPO / "scripts" / "seed_tiny_leaderboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_command_writes_a_scratch_board_in_the_work_folder(tmp_path):
    seed = _script()
    cmd = seed.run_command("clip_score_0.3", ("filter=clip_score", "filter.fraction=0.3"), 2, tmp_path)
    assert cmd[:4] == [sys.executable, "-m", "harness", "run"]
    cfg = load_config("cmd_run", cmd[4:])
    assert (cfg.filter["name"], cfg.filter["fraction"], cfg.seed, cfg.method_name) == ("clip_score", 0.3, 2, "clip_score_0.3")
    assert cfg.work_dir == str(tmp_path / "clip_score_0.3-seed2") and cfg.leaderboard_dir == str(tmp_path / "board")
    assert resolve_board(cfg) == tmp_path / "board"  # not refused


def test_add_command_adds_to_the_reference_board_explicitly(tmp_path):
    seed = _script()
    ref = REPO / "leaderboard"
    plain = load_config("cmd_leaderboard_add", seed.add_command("basic", 1, tmp_path, ref, reference=False)[5:])
    oracle = load_config("cmd_leaderboard_add", seed.add_command("oracle", 0, tmp_path, ref, reference=True)[5:])
    assert (plain.run_dir, plain.leaderboard_dir, plain.method_name, plain.reference) == (
        str(tmp_path / "basic-seed1"), str(ref), "basic", False)
    assert (oracle.run_dir, oracle.method_name, oracle.reference) == (str(tmp_path / "oracle-seed0"), "oracle", True)


def test_reference_entries_are_read_from_the_runs_filter_output(tiny_world, tmp_path):
    from harness.filters import run_filter

    seed = _script()
    for name, expected in (("oracle", True), ("basic", False)):
        run_filter(tiny_world["pool_dir"], {"name": name}, tmp_path / name / "filter" / "subset.npy")
        assert seed.is_reference(tmp_path / name) is expected
