"""Progress and refusals of `harness run` that need no training: the live training line read from
open_clip's out.log (parser, renderer, follower on a terminal and on a pipe), the default log
frequency, and everything `harness run` refuses before writing anything."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.train.config import TrainOptions
from harness.train.launch import default_log_every, follow, live_text, parse_log_line, resolve
from leaderboard.store import REFERENCE_DIR, user_board_dir
from tracks.recipes import get_recipe

# Lines written by open_clip_train 3.3.0 (out.log of a real tiny run: 2 epochs of 512 samples, batch 64)
REAL_LOG = """\
2026-12-01,20:12:21 | INFO | Start epoch 0
2026-12-01,20:12:25 | INFO | Train Epoch: 0 [ 64/512 (12%)] Data (t): 0.955 Batch (t): 3.994, 16.0254/s, 16.0254/s/gpu LR: 0.000250 Logit Scale: 14.286 Contrastive_loss: 4.4289 (4.4289) Loss: 4.4289 (4.4289)
2026-12-01,20:12:27 | INFO | Train Epoch: 0 [256/512 (50%)] Data (t): 0.021 Batch (t): 0.794, 69.0959/s, 69.0959/s/gpu LR: 0.001000 Logit Scale: 14.267 Contrastive_loss: 4.2708 (4.3499) Loss: 4.2708 (4.3499)
2026-12-01,20:12:32 | INFO | Start epoch 1
2026-12-01,20:12:42 | INFO | Train Epoch: 1 [448/512 (88%)] Data (t): 0.036 Batch (t): 1.096, 85.8972/s, 85.8972/s/gpu LR: 0.000067 Logit Scale: 14.204 Contrastive_loss: 4.1571 (4.1697) Loss: 4.1571 (4.1697)
2026-12-01,20:12:43 | INFO | Train Epoch: 1 [512/512 (100%)] Data (t): 0.064 Batch (t): 0.693, 92.3595/s, 92.3595/s/gpu LR: 0.000017 Logit Scale: 14.203 Contrastive_loss: 4.1506 (4.1649) Loss: 4.1506 (4.1649)
"""
PROGRESS = [line for line in REAL_LOG.splitlines() if "Train Epoch" in line]


def test_parser_reads_open_clip_progress_lines_and_nothing_else():
    assert [parse_log_line(line) for line in REAL_LOG.splitlines()] == [
        None,
        {"epoch": 0, "seen": 64, "per_epoch": 512, "samples_per_s": 16.0254, "loss": 4.4289},
        {"epoch": 0, "seen": 256, "per_epoch": 512, "samples_per_s": 69.0959, "loss": 4.2708},
        None,
        {"epoch": 1, "seen": 448, "per_epoch": 512, "samples_per_s": 85.8972, "loss": 4.1571},
        {"epoch": 1, "seen": 512, "per_epoch": 512, "samples_per_s": 92.3595, "loss": 4.1506},
    ]
    big = ("Train Epoch: 3 [ 1048576/12800000 (8%)] Data (t): 0.101 Batch (t): 0.870, 1.17713e+06/s, "
           "14714.2/s/gpu LR: 0.000500 Logit Scale: 20.137 Contrastive_loss: 6.9871 (7.2012) Loss: 6.9871 (7.2012)")
    assert parse_log_line(big)["samples_per_s"] == 1.17713e6 and parse_log_line(big)["seen"] == 1048576


def test_live_text_gives_epoch_step_rate_loss_and_eta():
    rec = parse_log_line(PROGRESS[1])  # epoch 0, 256 of 512: 256 + 512 samples left
    assert live_text(rec, epochs=2, batch=64, rate=100.0) == \
        "epoch 1/2 step 4/8, 69 samples/s, loss 4.2708, ETA 0:08"
    assert live_text(rec, epochs=2, batch=64, rate=0.1).endswith("ETA 2:08:00")


def _writer(log: Path, pause_s: float) -> subprocess.Popen:
    """A real process appending the real lines to ``log`` as open_clip does: the first progress
    line, a pause, then the rest."""
    code = ("import sys, time\n"
            "lines = sys.stdin.read().splitlines(keepends=True)\n"
            "with open(sys.argv[1], 'a') as f:\n"
            "    for i, line in enumerate(lines):\n"
            "        f.write(line); f.flush()\n"
            f"        time.sleep({pause_s} if i == 1 else 0.02)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(log)], stdin=subprocess.PIPE, text=True)
    proc.stdin.write(REAL_LOG)
    proc.stdin.close()
    return proc


def test_follow_on_a_pipe_prints_the_first_progress_then_the_last(tmp_path):
    log = tmp_path / "out.log"
    log.write_text("2026-12-01,20:12:20 | INFO | Train Epoch: 7 [ 64/512 (12%)] from an earlier attempt\n")
    out = io.StringIO()
    follow(_writer(log, pause_s=2.0), log, "[p] train:", epochs=2, batch=64, stream=out, poll_s=0.05)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("[p] train: epoch 1/2 step 1/8, 16 samples/s, loss 4.4289, ETA ")
    assert lines[1].startswith("[p] train: epoch 2/2 step 8/8, 92 samples/s, loss 4.1506, ETA 0:00")


def _drain(master: int) -> str:
    """All a pty holds once its writer closed (one read returns only the first chunk)."""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the slave side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks).decode()


def test_follow_on_a_terminal_redraws_one_line(tmp_path):
    log = tmp_path / "out.log"
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        follow(_writer(log, pause_s=0.5), log, "[p] train:", epochs=2, batch=64, stream=tty, poll_s=0.05)
    shown = _drain(master)
    assert shown.startswith("\r[p] train: epoch 1/2 step 1/8, 16 samples/s, loss 4.4289, ETA ")
    assert shown.count("\r[p] train: ") >= 2 and shown.count("\n") == 1 and shown.endswith("\n")
    assert "\r[p] train: epoch 2/2 step 8/8, 92 samples/s, loss 4.1506, ETA 0:00" in shown


def test_default_log_frequency_is_a_run_option_not_the_recipe():
    recipe = get_recipe("tiny")  # 16,384 samples an epoch of batch 128: 128 steps, a line every 5
    _, run, off = resolve("tiny")
    assert run.log_every_n_steps == default_log_every(recipe, run) == 5 and not off
    assert resolve("tiny", TrainOptions(log_every_n_steps=50))[1].log_every_n_steps == 50
    _, small, _ = resolve("small")  # 625 steps an epoch: 25 lines; large scales stay at open_clip's 100
    assert small.log_every_n_steps == 25 and resolve("xlarge")[1].log_every_n_steps == 100


# --- refused before anything is written ---------------------------------------------------------

def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


NOT_A_POOL = ("is not a finished pool (no pool.json); pass make_world=true to make the tiny world there, "
              "with eval_dir=<where the eval suite goes>")


@pytest.mark.parametrize("extra", [(), ("make_world=true",)])
def test_run_refuses_a_pool_dir_that_is_not_a_pool(cli, tmp_path, extra):
    (tmp_path / "empty").mkdir()
    res = cli("run", "pool_dir=empty", "work_dir=runs/x", *extra, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == f"error: pool_dir {tmp_path / 'empty'} {NOT_A_POOL}\n"
    assert _listing(tmp_path) == ["empty"]


def test_run_refuses_the_reference_board(cli, tmp_path):
    res = cli("run", f"work_dir={tmp_path / 'w'}", f"leaderboard_dir={REFERENCE_DIR}")
    assert res.returncode == 2
    assert res.stderr == (
        f"error: the reference board {REFERENCE_DIR} is read-only for harness run; leave leaderboard_dir unset "
        f"to use your own board ({user_board_dir()}), or add a finished run to the reference on purpose with "
        f"`harness leaderboard add run_dir=<work_dir> leaderboard_dir={REFERENCE_DIR}`\n")
    assert not (tmp_path / "w").exists()


def test_run_filter_file_without_function_gets_a_hint(cli, tmp_path):
    (tmp_path / "my_filters.py").write_text(
        "import numpy as np\nfrom harness.filters import pool_filter\n\n"
        "@pool_filter(columns=['text'], output='score')\ndef caption_length(batch, features):\n"
        "    return np.zeros(batch.num_rows)\n\n"
        "def helper():\n    pass\n\nraise SystemExit('imported')\n")
    res = cli("run", "filter=my_filters.py", "work_dir=runs/mine", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == ("error: filter 'my_filters.py' names a file; add the function: "
                          "filter=my_filters.py:<func> (its @pool_filter functions: caption_length)\n")
    res = cli("run", "filter=other.py", "work_dir=runs/mine", cwd=tmp_path)
    assert res.stderr == ("error: filter file not found: other.py "
                          "(a filter from a file is filter=path/to/file.py:<func>)\n")
    assert _listing(tmp_path) == ["my_filters.py"]


def test_dry_run_prints_the_plan_and_writes_nothing(cli, tiny_world, tmp_path):
    work, board = tmp_path / "w", tmp_path / "board"
    res = cli("run", f"pool_dir={tiny_world['pool_dir']}", f"eval_dir={tiny_world['eval_dir']}", f"work_dir={work}",
              f"leaderboard_dir={board}", "filter=basic", "dry_run=true", "ray_address=auto")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[:11] == [
        "[harness run] dry run: nothing is run or written",
        f"  work_dir:    {work}",
        f"  pool_dir:    {tiny_world['pool_dir']}",
        f"  eval_dir:    {tiny_world['eval_dir']}",
        f"  board:       {board / 'filtering_tiny.json'}",
        f"  pool:        skipped (done: pool at {tiny_world['pool_dir']}, 2,000 samples)",
        "  filter:      to run",
        "  reshard:     to run",
        "  train:       to run",
        "  eval:        to run",
        "  leaderboard: to run",
    ]
    assert res.stdout.splitlines()[11].startswith(
        f"  train args:  open_clip_train.main --save-frequency 0 --train-data <the shards the reshard stage "
        f"writes to {work / 'reshard'}> --train-num-samples 16384 --warmup 50")
    assert "--log-every-n-steps 5 " in res.stdout
    assert not work.exists() and not board.exists()


def test_dry_run_of_make_world_names_where_the_world_goes(cli, tmp_path):
    res = cli("run", "pool_dir=new/pool", "eval_dir=new/evalsets", "make_world=true", "work_dir=w", "dry_run=true",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"  pool:        to run (making the tiny world at {tmp_path / 'new' / 'pool'})" in res.stdout.splitlines()
    assert f"  eval_dir:    {tmp_path / 'new' / 'evalsets'}" in res.stdout.splitlines()
    assert _listing(tmp_path) == []
