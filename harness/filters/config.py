"""Typed config of ``harness filter``. A filter's own parameters are not listed here: they are
its function's keyword defaults (``filter.<param>=v`` sets one; the spec checks the names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from harness.core.schema import MISSING, opt
from tracks.config import TrackConfig


@dataclass
class FilterCommandConfig:
    track: TrackConfig = opt(help="the track (filtering)", factory=TrackConfig)
    filter: dict[str, Any] = opt(help="filter=NAME: a conf/filter/*.yaml (built-ins, intersect, union), an "
                                      "installed plugin name, path/to/file.py:func or path/to/spec.yaml",
                                 factory=lambda: {"name": "no_filter"})
    pool_dir: str = opt(MISSING, "the pool to filter")
    out: str = opt(MISSING, "the subset file to write (.npy, DataComp's u8,u8 uids) and its .json beside it")
    seed: int = opt(0, "seed of seeded filters (random, image_based's k-means)")
    workers: int = opt(1, "parallel tasks over the pool's parquet files")
    engine: str = opt("local", "local | ray")
    ray_address: Optional[str] = opt(None, "a running Ray cluster (engine=ray), e.g. auto")
    report: bool = opt(False, "also write an HTML report of what was kept and dropped")
    overwrite: bool = opt(False, "replace an existing subset")
    verbose: bool = opt(False, "a plugin failure prints one line; verbose=true (or HARNESS_DEBUG=1) adds its full "
                               "traceback")
