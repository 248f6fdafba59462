"""Typed config of ``harness train`` (and of ``harness run``'s ``train.`` keys).

The scale's recipe (tracks/recipes.py) fixes every hyperparameter; :class:`TrainOptions` are the
run options a user may set (None = the recipe's default) plus, under ``recipe``, the recipe
fields that only ``allow_off_recipe=true`` may change (the run then cannot enter the leaderboard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.core.schema import MISSING, opt
from tracks.config import ScaleConfig


@dataclass
class SlurmOptions:
    partition: Optional[str] = opt(None, "SLURM partition")
    account: Optional[str] = opt(None, "SLURM account")
    gpus_per_node: int = opt(8, "GPUs per node")
    cpus_per_task: int = opt(6, "CPUs per task")
    timeout_min: int = opt(4320, "the job's time limit, minutes")
    folder: Optional[str] = opt(None, "submitit's job folder; default <out_dir>/slurm")
    submit: bool = opt(True, "false: write the sbatch script and stop")


@dataclass
class RecipeFields:
    """Fixed by the recipe: setting one is refused unless allow_off_recipe=true."""

    model: Optional[str] = opt(None, "open_clip model config name")
    batch_size: Optional[int] = opt(None, "global batch")
    lr: Optional[float] = opt(None, "peak learning rate")
    warmup: Optional[int] = opt(None, "warmup steps")
    train_num_samples: Optional[int] = opt(None, "samples seen in total")
    beta2: Optional[float] = opt(None, "AdamW beta2")
    eps: Optional[float] = opt(None, "AdamW eps")


@dataclass
class TrainOptions:
    workers: Optional[int] = opt(None, "dataloader workers per process")
    precision: Optional[str] = opt(None, "only where the scale allows it (DataComp's choices; tiny: fp32 only)")
    device: Optional[str] = opt(None, "cuda | cpu")
    num_checkpoints: Optional[int] = opt(None, "epochs the budget is split into (one resumable checkpoint each)")
    accum_freq: int = opt(1, "gradient accumulation; the global batch stays the recipe's")
    threads: Optional[int] = opt(None, "CPU threads per node, split over nproc (fixed for reproducible CPU runs)")
    logger: str = opt("none", "none | wandb (offline unless WANDB_MODE says otherwise) | tensorboard")
    wandb_project: str = opt("datacomp-harness", "wandb project name")
    log_every_n_steps: Optional[int] = opt(None, "open_clip's progress lines; null = ~25 an epoch (at most every "
                                                 "100 steps)")
    nnodes: int = opt(1, "nodes (launcher=slurm)")
    launcher: str = opt("local", "local | slurm (submitit)")
    slurm: SlurmOptions = opt(help="launcher=slurm: the allocation", factory=SlurmOptions)
    allow_off_recipe: bool = opt(False, "allow recipe.* changes; the run is marked off-recipe (not ranked)")
    dry_run: bool = opt(False, "print recipe, hash and the open_clip_train argument list; do not train")
    recipe: RecipeFields = opt(help="off-recipe overrides of the scale's recipe", factory=RecipeFields)


@dataclass
class TrainConfig(TrainOptions):
    scale: ScaleConfig = opt(help="the scale whose fixed recipe is trained", factory=ScaleConfig)
    data: str = opt(MISSING, "a shards directory (manifest.json + .tar), as `harness reshard` writes it")
    out_dir: str = opt(MISSING, "the run folder (checkpoints, logs, train.json)")
    seed: int = opt(0, "training seed")
    nproc: int = opt(1, "processes on this node (torchrun when > 1)")
