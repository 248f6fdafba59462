"""Typed config of ``harness run``, the whole pipeline; also its Python API:
``harness.run(RunConfig(work_dir="runs/basic", filter={"name": "basic"}))``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from harness.core.schema import MISSING, opt
from harness.pool.config import WorldConfig
from harness.train.config import TrainOptions
from tracks.config import ScaleConfig, TrackConfig


@dataclass
class RunConfig:
    track: TrackConfig = opt(help="filtering | byod", factory=TrackConfig)
    scale: ScaleConfig = opt(help="the scale: its recipe and eval suite", factory=ScaleConfig)
    filter: dict[str, Any] = opt(help="the filter spec (filter=NAME, filter.<param>=v)",
                                 factory=lambda: {"name": "no_filter"})
    work_dir: str = opt(MISSING, "the run's folder: one subfolder per stage, run.json")
    pool_dir: Optional[str] = opt(None, "null = the tiny world, made once for world_seed and cached; a pool_dir "
                                        "must be a finished pool (make_world=true with eval_dir= makes it there)")
    eval_dir: Optional[str] = opt(None, "the eval suite's folder (default: beside the pool)")
    make_world: bool = opt(False, "make the tiny world at pool_dir (with eval_dir=)")
    world_seed: int = opt(0, "the tiny world's seed")
    pool_size: Optional[int] = opt(None, "a smaller tiny world (null = world.pool_size)")
    world: WorldConfig = opt(help="tiny-world knobs used when the world is made (e.g. world.reference_samples=256)",
                             factory=WorldConfig)
    train: TrainOptions = opt(help="`harness train` run options (e.g. train.threads=2); recipe fields only with "
                                   "train.allow_off_recipe=true, which keeps the result off the leaderboard",
                              factory=TrainOptions)
    seed: int = opt(0, "training seed")
    method_name: Optional[str] = opt(None, "the entry's method (default: the filter's name)")
    leaderboard_dir: Optional[str] = opt(None, "where the entry goes: null = your own board ($HARNESS_HOME/"
                                               "leaderboard); the committed reference board is read-only here")
    workers: int = opt(2, "parallel tasks of the filter and reshard stages")
    engine: str = opt("local", "local | ray (filter and reshard stages)")
    ray_address: Optional[str] = opt(None, "e.g. auto, for engine=ray on a running cluster")
    overwrite: bool = opt(False, "start fresh in a work_dir holding a run of another config")
    dry_run: bool = opt(False, "print the plan (folders, each stage's state, the training arguments); run nothing")
