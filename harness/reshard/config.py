"""Typed config of ``harness reshard``: the defaults of the resharder, written once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.core.schema import MISSING, opt
from tracks.config import TrackConfig


@dataclass
class ReshardConfig:
    track: TrackConfig = opt(help="filtering: subset ⊆ pool; byod: track.sources replace pool_dir + subset",
                             factory=TrackConfig)
    pool_dir: Optional[str] = opt(None, "the pool (required, except with track=byod track.sources=[...])")
    subset: Optional[str] = opt(None, "DataComp subset .npy of the uids to keep (required, except for byod)")
    out_dir: str = opt(MISSING, "where the shards go")
    workers: int = opt(2, "parallel tasks")
    shard_size: int = opt(10000, "samples per output shard")
    engine: str = opt("local", "local | ray")
    ray_address: Optional[str] = opt(None, "a running Ray cluster (engine=ray), e.g. auto")
    strict: bool = opt(False, "any bad input (and, in the filtering track, any subset uid missing from the "
                              "pool) is an error")
    overwrite: bool = opt(False, "delete whatever out_dir holds and start again")
    shuffle: bool = opt(False, "a seeded global permutation of the selected samples before cutting output shards")
    seed: int = opt(0, "the shuffle's seed")
    blur: bool = opt(False, "blur faces with the metadata's face_bboxes (decodes and re-encodes those images "
                            "as WebP)")
    progress: bool = opt(True, "a progress bar on stderr")
