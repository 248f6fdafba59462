"""The fixed training recipes, one per scale, as data.

DataComp's five scales are copied from its ``scale_configs.py`` and ``train.py`` (batch, lr,
warmup, samples seen, model, beta2, and the flags its launcher always passes). ``tiny`` and
``tiny_reference`` are the harness's CPU scales. A recipe's identity is :func:`recipe_hash`
over its fixed fields, so a result names exactly the hyperparameters that produced it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from harness.core.errors import HarnessError

# Flags DataComp's train.py passes to open_clip_train for every scale. Defaults that DataComp
# inherited from open_clip (AdamW, wd 0.2, cosine) are spelled out so that a change of
# open_clip's defaults cannot silently change a recipe.
DATACOMP_FLAGS: tuple[str, ...] = (
    "--dataset-type", "webdataset",
    "--dataset-resampled",
    "--ddp-static-graph",
    "--local-loss",
    "--gather-with-grad",
    "--grad-checkpointing",
    "--opt", "adamw",
    "--wd", "0.2",
    "--lr-scheduler", "cosine",
    "--save-most-recent",
    "--resume", "latest",
)

DATACOMP_PRECISIONS = ("amp", "amp_bf16", "amp_bfloat16", "bf16", "fp16", "fp32")


@dataclass(frozen=True)
class Recipe:
    """One scale's training recipe.

    Fixed fields (hashed): ``model``, ``batch_size`` (global), ``lr``, ``warmup`` (steps),
    ``train_num_samples`` (samples seen), ``beta2`` / ``eps`` (None = open_clip's default for
    the model), ``flags``. Run-time defaults (not hashed, overridable): ``precisions`` (first
    is the default; one entry = fixed), ``device``, ``workers``, ``num_checkpoints``,
    ``threads`` (CPU threads per node, fixed so CPU runs are reproducible).
    """

    name: str
    model: str
    batch_size: int
    lr: float
    warmup: int
    train_num_samples: int
    beta2: float | None = None
    eps: float | None = None
    flags: tuple[str, ...] = DATACOMP_FLAGS
    eval_suite: str = "datacomp"
    precisions: tuple[str, ...] = DATACOMP_PRECISIONS
    device: str = "cuda"
    workers: int = 4
    num_checkpoints: int = 5
    threads: int | None = None
    fixed: tuple[str, ...] = field(default=("model", "batch_size", "lr", "warmup", "train_num_samples",
                                            "beta2", "eps", "flags"), repr=False)


def _datacomp(name: str, batch: int, lr: float, samples: int, warmup: int, model: str,
              beta2: float | None = None) -> Recipe:
    return Recipe(name=name, model=model, batch_size=batch, lr=lr, warmup=warmup,
                  train_num_samples=samples, beta2=beta2)


def _tiny(name: str, samples: int) -> Recipe:
    return Recipe(name=name, model="harness-tiny-32", batch_size=128, lr=1e-3, warmup=50,
                  train_num_samples=samples, beta2=0.98, eps=1e-6, eval_suite="tiny",
                  precisions=("fp32",), device="cpu", workers=1, num_checkpoints=4, threads=2)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    _datacomp("debug", 1024, 1e-4, 128_000, 500, "ViT-B-32"),
    _datacomp("small", 4096, 5e-4, 12_800_000, 500, "ViT-B-32"),
    _datacomp("medium", 4096, 5e-4, 128_000_000, 500, "ViT-B-32"),
    _datacomp("large", 8192, 5e-4, 1_280_000_000, 500, "ViT-B-16"),
    _datacomp("xlarge", 90112, 1e-3, 12_800_000_000, 10000, "ViT-L-14", beta2=0.95),
    _tiny("tiny", 65_536),
    _tiny("tiny_reference", 16_384),
)}


def get_recipe(name: str) -> Recipe:
    """The recipe of scale ``name``; an unknown name is refused with the list of scales."""
    try:
        return RECIPES[name]
    except KeyError:
        raise HarnessError(f"unknown scale {name!r} (choose from: {', '.join(RECIPES)})") from None


def fixed_fields(recipe: Recipe) -> dict:
    """The hyperparameters that define the recipe (what the hash covers)."""
    d = asdict(recipe)
    return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in recipe.fixed}


def recipe_hash(recipe: Recipe) -> str:
    """16 hex chars of sha256 over the fixed fields: equal hash ⇔ same hyperparameters."""
    from harness.core.manifest import sha256_json

    return sha256_json(fixed_fields(recipe))[:16]
