"""datacomp-harness: filter a pool, reshard, train open_clip at a fixed scale, evaluate, rank."""

__version__ = "0.1.0"
