"""Shared fixtures: a hand-built CommonPool-layout pool, and a CLI runner in a subprocess."""

from __future__ import annotations

import os
import subprocess
import tempfile
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from harness.pool.config import WorldConfig

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# the user's own leaderboard (and any other per-user state) goes to a throw-away folder, never ~
os.environ["HARNESS_HOME"] = tempfile.mkdtemp(prefix="harness-home-")

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``harness`` as a user would, in a fresh process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def make_uids(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{int(a):016x}{int(b):016x}" for a, b in rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)]


@pytest.fixture
def small_metadata(tmp_path: Path) -> Path:
    """A two-file metadata-only pool (no shards) with features, for format and filter tests."""
    from harness.pool.format import write_metadata

    root = tmp_path / "pool"
    for i, n in enumerate((5, 7)):
        uids = make_uids(n, seed=i)
        table = pa.table({
            "uid": uids,
            "url": [f"http://example.test/{u}.jpg" for u in uids],
            "text": [f"a photo number {j}" for j in range(n)],
            "original_width": np.full(n, 256, np.int64),
            "original_height": np.full(n, 256, np.int64),
        })
        feats = {"img": np.random.default_rng(i).standard_normal((n, 4)).astype(np.float16)}
        write_metadata(root / "metadata" / f"{i:08d}.parquet", table, feats)
    return root


# A small tiny world for tests (same shares as the default; a 2-step reference model, off-recipe).
TINY_WORLD_KNOBS = {"reference_size": 1000, "reference_samples": 256, "eval_per_class": 10, "shard_size": 800}
TINY_WORLD_ARGS = {"seed": 0, "pool_size": 2000, "world": WorldConfig(**TINY_WORLD_KNOBS)}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> dict:
    """Build the small tiny world once per session: {"pool_dir", "eval_dir", "summary"}."""
    from harness.pool.world.make import make_world

    root = tmp_path_factory.mktemp("tiny_world")
    summary = make_world(root / "pool", **TINY_WORLD_ARGS)
    return {"pool_dir": root / "pool", "eval_dir": root / "evalsets", "summary": summary}
