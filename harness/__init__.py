"""datacomp-harness: filter a pool, reshard, train open_clip at a fixed scale, evaluate, rank.

``harness.run(RunConfig(...))`` runs the pipeline from Python, as ``harness run`` does; both are
imported on first use so that ``harness --help`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["RunConfig", "run"]


def __getattr__(name: str) -> Any:
    if name == "RunConfig":
        from harness.config import RunConfig

        return RunConfig
    if name == "run":
        from harness.pipeline import run

        return run
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
