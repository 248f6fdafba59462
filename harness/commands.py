"""The command table: CLI words → (Hydra config name, implementation, one-line help, schema).

The schema is the command's typed config (a dataclass in its package's ``config.py``); Hydra
validates the composed config against it and the implementation receives an instance of it.
Implementations are imported only when their command runs, so ``harness --help`` and the
metadata-only commands never import torch.
"""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):
    config: str
    target: str
    help: str
    schema: str


COMMANDS: dict[tuple[str, ...], Command] = {
    ("pool", "make"): Command("cmd_pool_make", "harness.pool.world.make:main",
            "make the synthetic tiny world (pool + eval suite) deterministically",
            "harness.pool.config:PoolMakeConfig"),
    ("pool", "download"): Command("cmd_pool_download", "harness.pool.download:main",
            "download a pool's images with img2dataset into the CommonPool layout",
            "harness.pool.config:PoolDownloadConfig"),
    ("pool", "featurize"): Command("cmd_pool_featurize", "harness.pool.featurize:main",
            "compute image/text features and similarity scores with an open_clip model",
            "harness.pool.config:PoolFeaturizeConfig"),
    ("filter",): Command("cmd_filter", "harness.filters.cli:main",
            "apply a filter to a pool and write a DataComp subset .npy (a plugin failure is one line; "
            "verbose=true or HARNESS_DEBUG=1 adds its full traceback)",
            "harness.filters.config:FilterCommandConfig"),
    ("reshard",): Command("cmd_reshard", "harness.reshard.command:main",
            "materialize a subset as WebDataset shards",
            "harness.reshard.config:ReshardConfig"),
    ("train",): Command("cmd_train", "harness.train.launch:main",
            "train CLIP with open_clip_train on the scale's fixed recipe",
            "harness.train.config:TrainConfig"),
    ("eval",): Command("cmd_eval", "evals.run:main",
            "zero-shot evaluation of a checkpoint",
            "evals.config:EvalConfig"),
    ("eval", "list"): Command("cmd_eval_list", "evals.run:list_main",
            "list the evaluation tasks",
            "evals.config:EvalListConfig"),
    ("eval", "download"): Command("cmd_eval_download", "evals.download:main",
            "download and verify eval data from the Hugging Face Hub",
            "evals.config:EvalDownloadConfig"),
    ("leaderboard", "show"): Command("cmd_leaderboard_show", "leaderboard.cli:show",
            "print a leaderboard",
            "leaderboard.config:ShowConfig"),
    ("leaderboard", "compare"): Command("cmd_leaderboard_compare", "leaderboard.cli:compare",
            "compare two entries task by task with confidence intervals",
            "leaderboard.config:CompareConfig"),
    ("leaderboard", "render"): Command("cmd_leaderboard_render", "leaderboard.cli:render",
            "render a leaderboard as a static HTML/Markdown page",
            "leaderboard.config:RenderConfig"),
    ("leaderboard", "add"): Command("cmd_leaderboard_add", "leaderboard.cli:add",
            "add an evaluated run to a leaderboard",
            "leaderboard.config:AddConfig"),
    ("leaderboard", "verify"): Command("cmd_leaderboard_verify", "leaderboard.verify:main",
            "re-check entries: rebuild subsets, recompute scores, check recipe hashes",
            "leaderboard.config:VerifyConfig"),
    ("run",): Command("cmd_run", "harness.pipeline:main",
            "run pool → filter → reshard → train → eval → leaderboard",
            "harness.config:RunConfig"),
}
