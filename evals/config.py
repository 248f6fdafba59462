"""Typed configs of ``harness eval``, ``eval list`` and ``eval download``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from harness.core.schema import MISSING, opt
from tracks.config import ScaleConfig


@dataclass
class EvalConfig:
    scale: ScaleConfig = opt(help="the scale: its model and eval suite", factory=ScaleConfig)
    checkpoint: str = opt(MISSING, "a `harness train` run dir (train.json) or a .pt file (then model= or scale=)")
    model: Optional[str] = opt(None, "open_clip model name for a bare .pt (default: the scale's model)")
    data_dir: Optional[str] = opt(None, "folder of CLIP_benchmark-layout task folders (tiny suite: the cached "
                                        "tiny world's evalsets)")
    world_seed: int = opt(0, "which cached tiny world data_dir defaults to")
    out_dir: str = opt(MISSING, "where results.jsonl, per-example arrays and scores.json go")
    tasks: Optional[Any] = opt(None, "[key,key,...] or key,key; null = the whole suite")
    suite: Optional[str] = opt(None, "datacomp | tiny | path/to/suite.yaml; null = the scale's eval suite")
    batch_size: int = opt(256, "images per batch")
    workers: int = opt(2, "DataLoader decode workers (0 = decode in the main process)")
    device: str = opt("auto", "auto | cpu | cuda")
    stream: bool = opt(False, "read tasks absent from data_dir from the Hugging Face Hub")
    progress: bool = opt(True, "a progress bar per task")
    text_cache: bool = opt(True, "reuse zero-shot heads across tasks with the same classnames/templates")
    overwrite: bool = opt(False, "discard results of another checkpoint in out_dir")


@dataclass
class EvalListConfig:
    suite: str = opt("datacomp", "datacomp | tiny | path/to/suite.yaml")
    format: str = opt("table", "table | json")


@dataclass
class EvalDownloadConfig:
    data_dir: str = opt(MISSING, "where the task folders go (the same data_dir `harness eval` reads)")
    suite: str = opt("datacomp", "datacomp | tiny | path/to/suite.yaml")
    tasks: Optional[list[str]] = opt(None, "[key,key,...]; null = every task with a Hub repo")
    revision: str = opt("main", "the Hub revision")
    workers: int = opt(4, "parallel file downloads")
