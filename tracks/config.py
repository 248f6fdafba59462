"""The track and scale config groups (``track=``, ``scale=``): what the YAML members may set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from harness.core.schema import opt


@dataclass
class ScaleConfig:
    name: str = opt("tiny", "the scale: its fixed recipe (tracks/recipes.py) and its eval suite")


@dataclass
class TrackConfig:
    name: str = opt("filtering", "filtering (subset a pool) | byod (bring your own data)")
    subset_of_pool: bool = opt(True, "the subset's uids must come from the pool (filtering track)")
    sources: list[Any] = opt(help="byod: the data sources (folders, webdataset shards, url parquets)", factory=list)
    work_dir: Optional[str] = opt(None, "byod: where sources are gathered (default: beside the shards)")
    download: dict[str, Any] = opt(help="byod: img2dataset options for url sources",
                                   factory=lambda: {"processes": 2, "threads": 32})
