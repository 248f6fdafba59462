"""The recipe table is DataComp's, field by field, and a recipe's hash names its hyperparameters."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from harness.core.errors import HarnessError
from tracks.recipes import RECIPES, get_recipe, recipe_hash

# mlfoundations/datacomp scale_configs.py (batch, lr, samples seen, warmup, model, beta2)
DATACOMP = {
    "debug": (1024, 1e-4, 128_000, 500, "ViT-B-32", None),
    "small": (4096, 5e-4, 12_800_000, 500, "ViT-B-32", None),
    "medium": (4096, 5e-4, 128_000_000, 500, "ViT-B-32", None),
    "large": (8192, 5e-4, 1_280_000_000, 500, "ViT-B-16", None),
    "xlarge": (90112, 1e-3, 12_800_000_000, 10000, "ViT-L-14", 0.95),
}
# the flags DataComp's train.py always passes (or inherits from open_clip: AdamW, wd 0.2, cosine)
DATACOMP_FLAGS = ["--dataset-type webdataset", "--dataset-resampled", "--local-loss", "--gather-with-grad",
                  "--grad-checkpointing", "--ddp-static-graph", "--opt adamw", "--wd 0.2", "--lr-scheduler cosine",
                  "--save-most-recent", "--resume latest"]


@pytest.mark.parametrize("scale", sorted(DATACOMP))
def test_datacomp_scale_equals_datacomp_numbers(scale):
    r = get_recipe(scale)
    assert (r.batch_size, r.lr, r.train_num_samples, r.warmup, r.model, r.beta2) == DATACOMP[scale]
    assert r.eps is None and r.eval_suite == "datacomp" and r.precisions[0] == "amp"
    flags = " ".join(r.flags)
    for flag in DATACOMP_FLAGS:
        assert flag in flags


def test_tiny_recipes_are_cpu_fp32_on_the_harness_model():
    from harness.core.models import MODEL_CONFIG_DIR

    for name in ("tiny", "tiny_reference"):
        r = get_recipe(name)
        assert (MODEL_CONFIG_DIR / f"{r.model}.json").is_file()
        assert r.precisions == ("fp32",) and r.device == "cpu" and r.eval_suite == "tiny"
        assert r.flags == get_recipe("small").flags
    assert get_recipe("tiny_reference").train_num_samples < get_recipe("tiny").train_num_samples


def test_hash_covers_fixed_fields_only():
    tiny = get_recipe("tiny")
    hashes = {recipe_hash(r) for r in RECIPES.values()}
    assert len(hashes) == len(RECIPES)
    assert recipe_hash(dataclasses.replace(tiny, lr=2e-3)) != recipe_hash(tiny)
    assert recipe_hash(dataclasses.replace(tiny, flags=tiny.flags[:-2])) != recipe_hash(tiny)
    assert recipe_hash(dataclasses.replace(tiny, workers=7, num_checkpoints=9)) == recipe_hash(tiny)


def test_unknown_scale_lists_the_scales():
    with pytest.raises(HarnessError, match="unknown scale 'huge'.*debug.*tiny"):
        get_recipe("huge")


def test_conf_scale_files_name_their_recipe():
    from harness.core.paths import conf_dir

    names = {p.stem: yaml.safe_load(p.read_text())["name"] for p in (conf_dir() / "scale").glob("*.yaml")}
    assert names and all(stem == name for stem, name in names.items())
    assert set(names) <= set(RECIPES) and set(DATACOMP) | {"tiny"} <= set(names)
