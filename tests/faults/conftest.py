"""Helpers for the fault suite: start the real CLI with fault hooks, hash trees before/after."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

HOOKS = Path(__file__).resolve().parent / "hooks"
REPO = HOOKS.parents[2]


def hook_env(**faults: str) -> dict[str, str]:
    """os.environ plus the fault hooks (tests/faults/hooks/sitecustomize.py) on PYTHONPATH."""
    path = os.pathsep.join(p for p in (str(HOOKS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "FAULT_TEST_PGRP": str(os.getpgrp()), **faults}


def harness(*args: str, timeout: float = 300, **faults: str) -> subprocess.CompletedProcess:
    """``python -m harness ARGS`` in its own session (a kill hook takes down its workers too)."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, env=hook_env(**faults),
                          capture_output=True, text=True, timeout=timeout, start_new_session=True)


def killed_at(point: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the command with FAULT_KILL_AT=point and check that the kill really happened there."""
    res = harness(*args, timeout=timeout, FAULT_KILL_AT=point)
    assert res.returncode == -9, f"not killed at {point} (rc {res.returncode}): {res.stderr[-2000:]}"
    return res


def tree_hashes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """relative path → sha256 for every file under root (names in ``skip`` left out)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file() and p.name not in skip}


def leftovers(root: Path) -> list[str]:
    """Temporary names (dot-files, *.tmp*) under root, lock files aside (they are kept on purpose)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                  if (p.name.startswith(".") or ".tmp" in p.name) and not p.name.endswith(".lock"))
