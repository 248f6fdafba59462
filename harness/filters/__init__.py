"""Filters: the plugin contract, the registry, DataComp's baselines, and ``run_filter``."""

from harness.filters.api import FilterDecl, PoolInfo, pool_filter
from harness.filters.registry import available, resolve
from harness.filters.run import run_filter

__all__ = ["FilterDecl", "PoolInfo", "pool_filter", "available", "resolve", "run_filter"]
