"""Typed configs of the ``harness leaderboard`` commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.core.schema import MISSING, opt
from tracks.config import ScaleConfig, TrackConfig

BOARD_HELP = ("your board, read together with the committed reference board; null: $HARNESS_HOME/leaderboard "
              "(else ~/.local/share/datacomp-harness/leaderboard); the reference folder itself: only the reference")
N_BOOT_HELP = "paired bootstrap resamples of the test images"
LEVEL_HELP = "confidence level of the intervals"


@dataclass
class BoardConfig:
    track: TrackConfig = opt(help="the board's track", factory=TrackConfig)
    scale: ScaleConfig = opt(help="the board's scale", factory=ScaleConfig)
    leaderboard_dir: Optional[str] = opt(None, BOARD_HELP)


@dataclass
class ShowConfig(BoardConfig):
    sort: str = opt("rank", "per-seed rows: any column header (rank, id, method, filter, size, seed, an "
                            "aggregate, a task key)")
    ascending: Optional[bool] = opt(None, "null: numbers high-first (rank low-first), text A-first")
    tasks: bool = opt(False, "add one column per task to the per-seed rows")
    details: bool = opt(False, "also print every entry's full filter spec (arrays, lists, regex patterns)")
    ci: bool = opt(True, "the per-method table's paired bootstrap CI of the delta to no_filter (cached per entry "
                         "in $HARNESS_HOME/cache)")
    n_boot: int = opt(1000, N_BOOT_HELP)
    level: float = opt(0.95, LEVEL_HELP)


@dataclass
class CompareConfig(BoardConfig):
    a: str = opt(MISSING, "an entry id (clip_score_0.3-seed0) or a method name (all its seeds, paired by seed "
                          "with b's); ref:<id or method> / yours:<id or method> pick a board")
    b: str = opt(MISSING, "the entry or method compared with a")
    n_boot: int = opt(1000, N_BOOT_HELP)
    level: float = opt(0.95, LEVEL_HELP)
    seed: int = opt(0, "the bootstrap's seed")
    json_out: Optional[str] = opt(None, "also write the comparison as JSON here")


@dataclass
class RenderConfig(BoardConfig):
    out: str = opt(MISSING, "the page to write (.html or .md)")
    sort: str = opt("rank", "per-seed rows: any column header")
    n_boot: int = opt(1000, N_BOOT_HELP)
    level: float = opt(0.95, "the per-method table's paired bootstrap CI of the delta to no_filter")


@dataclass
class VerifyConfig(BoardConfig):
    leaderboard_dir: Optional[str] = opt(None, "the board folder: null = the committed reference board (leaderboard/)")
    id: str = opt("all", "an entry id, several separated by commas, or all")
    subset: bool = opt(True, "rebuild each entry's subset from its recorded filter spec and compare sha256 and size")
    pool_dir: Optional[str] = opt(None, "the pool to rebuild on: null = the cached tiny world of world_seed (made by "
                                        "`harness run` / `pool make`)")
    world_seed: int = opt(0, "the cached tiny world's seed")


@dataclass
class AddConfig(BoardConfig):
    run_dir: str = opt(MISSING, "a finished `harness run` work_dir (or a folder with train/ and eval/)")
    method_name: Optional[str] = opt(None, "default: the filter's name from run_dir/filter/subset.json")
    reference: bool = opt(False, "an unranked reference entry (required for ineligible filters such as oracle)")
    seed: Optional[int] = opt(None, "default: train/train.json or run.json")
