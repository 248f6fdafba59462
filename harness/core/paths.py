"""Every location the harness reads or writes outside a command's own folders, in one place.

``conf_dir()`` (the Hydra configs), ``cache_dir()`` (where the tiny world is made once),
``harness_home()`` (per-user state: the user's leaderboard, caches), and the cached tiny
world's folder name, so that ``harness run`` and ``harness eval`` find the same world.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.core.manifest import sha256_json


def conf_dir() -> Path:
    """The ``conf/`` tree: $HARNESS_CONF, else the one beside the installed (editable) package."""
    env = os.environ.get("HARNESS_CONF")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "conf"


def group_options(group: str) -> list[str]:
    """The members of a config group: the names of ``conf/<group>/*.yaml``."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def cache_dir() -> Path:
    """Where the tiny world is made once and reused: $HARNESS_CACHE, else the user's cache dir."""
    env = os.environ.get("HARNESS_CACHE")
    return Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "datacomp-harness"


def harness_home() -> Path:
    """Per-user state: $HARNESS_HOME, else $XDG_DATA_HOME/datacomp-harness (~/.local/share/...)."""
    env = os.environ.get("HARNESS_HOME")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "datacomp-harness"


def world_dir_name(seed: int, pool_size: int | None = None, knobs: dict[str, Any] | None = None) -> str:
    """The cached world's folder: the default world is ``tiny-world-seed<S>``; a world made with
    other knobs (or pool_size) gets a suffix hashed from them, so it is never mistaken for it."""
    changed = {k: v for k, v in (knobs or {}).items() if v is not None} | ({"pool_size": pool_size} if pool_size else {})
    return f"tiny-world-seed{seed}" + (f"-{sha256_json(changed)[:10]}" if changed else "")
