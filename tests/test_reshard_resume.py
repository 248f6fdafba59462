"""SIGKILL the real CLI mid-run (a test hook parks one task), rerun, and get the uninterrupted output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.reshard.plan import reshard
from harness.reshard.tasks import STALL_ENV
from test_reshard import make_pool, make_subset, outputs
from harness.reshard.config import ReshardConfig

REPO = Path(__file__).resolve().parent.parent


def start(pool: Path, subset: Path, out: Path, stall: str | None = None, *extra: str,
          shard_size: int = 7) -> subprocess.Popen:
    """The CLI in its own process group, so the kill reaches its worker processes too."""
    env = {**os.environ, STALL_ENV: stall or ""}
    args = [sys.executable, "-m", "harness", "reshard", f"pool_dir={pool}", f"subset={subset}", f"out_dir={out}",
            f"shard_size={shard_size}", "workers=2", "progress=false", *extra]
    return subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before reaching the hook: {proc.communicate()}")
        assert time.monotonic() < deadline, f"hook {path.name} not reached"
        time.sleep(0.05)


@pytest.fixture
def job(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """4 input shards; 20 selected samples → output shards of 7, 7, 6; plus the uninterrupted output."""
    images = make_pool(tmp_path / "pool", n_shards=4, per_shard=10)
    subset = make_subset(tmp_path / "s.npy", [u for i, u in enumerate(images) if i % 2 == 0])
    reshard(ReshardConfig(pool_dir=tmp_path / "pool", subset=subset, out_dir=tmp_path / "ref", shard_size=7, workers=1))
    return tmp_path / "pool", subset, outputs(tmp_path / "ref")


def test_sigkill_while_writing_then_rerun_finishes_only_the_rest(job, tmp_path):
    pool, subset, reference = job
    out = tmp_path / "o"
    proc = start(pool, subset, out, "write:1")
    wait_for(out / ".reshard" / "stalled-write-1", proc)
    wait_for(out / ".reshard" / "done" / "00000000.json", proc)  # the other worker finished shard 0
    kill(proc)
    assert not (out / "manifest.json").exists()
    assert (out / ".00000001.tar.tmp").stat().st_size > 0  # the half-written shard, under its temporary name
    assert not (out / "00000001.tar").exists()
    done = {p.stem for p in (out / ".reshard" / "done").glob("*.json")}
    assert "00000000" in done
    kept = {name: (out / f"{name}.tar").stat().st_mtime_ns for name in done}
    rerun = start(pool, subset, out)
    assert rerun.wait(timeout=120) == 0, rerun.communicate()
    assert outputs(out) == reference
    assert {name: (out / f"{name}.tar").stat().st_mtime_ns for name in done} == kept
    assert not list(out.glob(".*.tmp")) and not (out / ".reshard").exists()


def test_sigkill_while_indexing_then_rerun_is_identical(job, tmp_path):
    pool, subset, reference = job
    out = tmp_path / "o"
    proc = start(pool, subset, out, "index:2")
    wait_for(out / ".reshard" / "stalled-index-2", proc)
    kill(proc)
    assert not list(out.glob("*.tar")) and not (out / "manifest.json").exists()
    rerun = start(pool, subset, out)
    assert rerun.wait(timeout=120) == 0, rerun.communicate()
    assert outputs(out) == reference


def test_damaged_finished_shard_fails_verification_with_nonzero_exit(job, tmp_path):
    pool, subset, reference = job
    out = tmp_path / "o"
    proc = start(pool, subset, out, "write:1")
    wait_for(out / ".reshard" / "stalled-write-1", proc)
    wait_for(out / ".reshard" / "done" / "00000000.json", proc)
    kill(proc)
    with open(out / "00000000.tar", "r+b") as fh:
        fh.truncate(2048)
    rerun = start(pool, subset, out)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 2 and "verification of" in err and "00000000.tar" in err
    assert not (out / "manifest.json").exists()
    fixed = start(pool, subset, out, None, "overwrite=true")
    assert fixed.wait(timeout=120) == 0
    assert outputs(out) == reference


def started_work(out: Path, proc: subprocess.Popen, since: float) -> bool:
    """Wait until this run has (re)written its subset keys, i.e. past start-up and into real work."""
    keys = out / ".reshard" / "subset_keys.npy"
    while proc.poll() is None:
        if keys.exists() and keys.stat().st_mtime >= since:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow
def test_sigkill_at_arbitrary_moments_then_rerun_is_identical(tmp_path):
    """Timing kills (no hook) at growing delays into the work, each run resuming the last, until one finishes."""
    images = make_pool(tmp_path / "pool", n_shards=12, per_shard=200, size=25_000)
    subset = make_subset(tmp_path / "s.npy", [u for i, u in enumerate(images) if i % 3])
    reshard(ReshardConfig(pool_dir=tmp_path / "pool", subset=subset, out_dir=tmp_path / "ref", shard_size=40, workers=1))
    out = tmp_path / "o"
    states = []
    for extra in [0.03 * k for k in range(60)]:
        since = time.time() - 1
        proc = start(tmp_path / "pool", subset, out, shard_size=40)
        if not started_work(out, proc, since):
            break
        time.sleep(extra)
        if proc.poll() is not None:
            break
        kill(proc)
        done = out / ".reshard" / "done"
        states.append(len(list(done.glob("*.json"))) if done.exists() else None)
    print("finished output shards at each kill:", states)
    assert len(states) >= 3 and any(states) and not all(states)
    final = start(tmp_path / "pool", subset, out, shard_size=40)
    assert final.wait(timeout=300) == 0, final.communicate()
    assert outputs(out) == outputs(tmp_path / "ref")
