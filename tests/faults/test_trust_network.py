"""No network behind the user's back: the tiny pipeline (`harness run`) under a socket guard
(tests/faults/hooks/sitecustomize.py) that refuses and records any non-loopback connect or name
lookup in every Python process of the run (CLI, workers, trainer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from faults.conftest import hook_env

PICKLE_HEADERS = {bytes([0x80, proto]) for proto in range(2, 6)}
TINY_TRAIN = ("train.allow_off_recipe=true", "train.recipe.train_num_samples=256", "train.recipe.batch_size=64",
              "train.recipe.warmup=1", "train.num_checkpoints=1")


def test_guard_refuses_and_records_a_real_connect(tmp_path):
    """The guard itself works (else the pipeline test below would pass vacuously)."""
    log = tmp_path / "net.log"
    code = ("import socket\n"
            "for addr in (('192.0.2.1', 80), ('example.com', 443)):\n"
            "    try:\n        socket.create_connection(addr, timeout=1)\n    except OSError as e:\n        print(e)\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); socket.create_connection(s.getsockname())\n")
    res = subprocess.run([sys.executable, "-c", code], env=hook_env(FAULT_NET_LOG=str(log)), capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("network blocked by the fault-injection guard") == 2
    attempts = log.read_text().splitlines()
    assert len(attempts) == 2 and "192.0.2.1" in attempts[0] and "example.com" in attempts[1]


@pytest.mark.slow  # long end-to-end check; `pytest -m slow` runs it
def test_tiny_pipeline_runs_with_the_network_blocked(tiny_world, tmp_path):
    log = tmp_path / "net.log"
    env_off = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "WANDB_MODE")}
    work = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "harness", "run", f"pool_dir={tiny_world['pool_dir']}",
         f"eval_dir={tiny_world['eval_dir']}", f"work_dir={work}", f"leaderboard_dir={tmp_path / 'lb'}",
         "filter=clip_score", *TINY_TRAIN],
        env={**env_off, "PYTHONPATH": hook_env()["PYTHONPATH"], "FAULT_NET_LOG": str(log)},
        capture_output=True, text=True, timeout=600, start_new_session=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not log.exists(), log.read_text()  # nothing even tried, with HF/wandb offline flags unset
    procs = (tmp_path / "net.log.procs").read_text()
    assert "-m harness run " in procs and "-m harness.train.entry " in procs, procs  # the trainer ran guarded too
    doc = json.loads((work / "run.json").read_text())
    assert {k: s["status"] for k, s in doc["stages"].items()} == dict.fromkeys(
        ("pool", "filter", "reshard", "train", "eval", "leaderboard"), "done")
    assert (work / "eval" / "scores.json").is_file()
    # no raw pickle stream anywhere in the run (checkpoints are torch's zip format, read weights_only)
    pickles = [p for p in work.rglob("*") if p.is_file() and p.read_bytes()[:2] in PICKLE_HEADERS]
    assert pickles == []
