"""The tiny eval suite in the CLIP_benchmark WebDataset layout.

Per task folder: ``dataset_type.txt`` (classification | retrieval), ``classnames.txt``,
``zeroshot_classification_templates.txt`` (classification),
``test/nshards.txt`` and ``test/{i}.tar`` whose samples are ``s%07d.png`` + ``.cls`` (the label
as ASCII digits), retrieval samples carry ``.txt`` (captions, one per line), worst-group samples
a ``.json`` with ``group``. Tasks are rows of a table, rendered with the pool's renderer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.pool.world import render, scenes, tario, vocab

OBJ_TEMPLATES = ("a photo of a {c}.", "a picture of a {c}.", "an image showing a {c}.", "a {c}.")
COLOR_TEMPLATES = ("a photo of a {c} shape.", "a {c} shape.", "a picture of a {c} shape.")
COUNT_TEMPLATES = ("a photo of {c}.", "a picture of {c}.", "{c}.")
TEXTURE_TEMPLATES = ("a photo of a {c} shape.", "a {c} shape.")
DIGIT_TEMPLATES = ("the number {c}.", "a picture of the digit {c}.", "a sign showing the number {c}.")

# key → (label field, class names, templates, fixed scene fields)
TASKS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], dict]] = {
    "tiny_objects": ("shape", vocab.SHAPES, OBJ_TEMPLATES, {"style": 0}),
    "tiny_colors": ("color", vocab.COLOR_NAMES, COLOR_TEMPLATES, {"style": 0, "count": 1, "texture": 0,
                                                                   "light_range": (0.5, 1.3)}),
    "tiny_counts": ("count", ("one shape", "two shapes", "three shapes", "four shapes"), COUNT_TEMPLATES,
                    {"style": 0}),
    "tiny_textures": ("texture", tuple(vocab.TEXTURE_ADJ[t] for t in vocab.TEXTURES), TEXTURE_TEMPLATES,
                      {"style": 0, "count": 1}),
    "tiny_digits": ("digit", vocab.DIGIT_NAMES, DIGIT_TEMPLATES, {}),
    "tiny_objects_sketch": ("shape", vocab.SHAPES, OBJ_TEMPLATES, {"style": 1}),
    "tiny_retrieval": ("", (), (), {"style": 0}),
    "tiny_worst_group": ("shape", vocab.SHAPES, OBJ_TEMPLATES, {"style": 0}),
}
EVAL_IMAGE_EXT = "png"


def _balanced(rng: np.random.Generator, n_classes: int, per_class: int) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(n_classes), per_class))


def _task_scenes(key: str, rng: np.random.Generator, per_class: int, image_size: int):
    """Scenes (or None for digits) and integer labels of one task."""
    field, classes, _, fixed = TASKS[key]
    fixed = dict(fixed)
    if key == "tiny_digits":
        return None, _balanced(rng, 10, per_class)
    if key == "tiny_retrieval":
        n = per_class * 10
        combos = rng.choice(len(vocab.SHAPES) * len(vocab.COLORS) * 4 * len(vocab.TEXTURES) * len(vocab.BACKGROUNDS),
                            n, replace=False)
        dims = (len(vocab.SHAPES), len(vocab.COLORS), 4, len(vocab.TEXTURES), len(vocab.BACKGROUNDS))
        sh, co, cn, tx, bg = np.unravel_index(combos, dims)
        sc = scenes.sample_scenes(rng, n, image_size, shape=sh, color=co, count=cn + 1, texture=tx, bg=bg, **fixed)
        return sc, np.arange(n)
    if key == "tiny_worst_group":
        n_bg = len(vocab.BACKGROUNDS)
        cell = _balanced(rng, len(classes) * n_bg, max(1, per_class // n_bg))
        labels, bg = cell // n_bg, cell % n_bg
        return scenes.sample_scenes(rng, len(cell), image_size, shape=labels, bg=bg, **fixed), labels
    labels = _balanced(rng, len(classes), per_class)
    fixed[field] = labels + 1 if field == "count" else labels
    return scenes.sample_scenes(rng, len(labels), image_size, **fixed), labels


def _digit_images(rng: np.random.Generator, labels: np.ndarray, image_size: int) -> np.ndarray:
    n = len(labels)
    colors = np.array(list(vocab.COLORS.values()))[rng.integers(0, len(vocab.COLORS), n)]
    dark = rng.random(n) < 0.5
    paper = np.where(dark[:, None], rng.integers(10, 60, (n, 3)), rng.integers(200, 250, (n, 3)))
    return render.render_text([str(d) for d in labels], colors, paper, image_size)


def _write_task(folder: Path, key: str, images: np.ndarray, labels: np.ndarray, extra: list[dict]) -> None:
    _, classes, templates, _ = TASKS[key]
    (folder / "test").mkdir(parents=True)
    (folder / "dataset_type.txt").write_text(("classification" if classes else "retrieval") + "\n")
    if classes:
        (folder / "classnames.txt").write_text("\n".join(classes) + "\n")
        (folder / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
    samples = []
    for i, img in enumerate(images):
        members = {EVAL_IMAGE_EXT: tario.encode_image(img, EVAL_IMAGE_EXT)}
        members.update({k: v.encode() if isinstance(v, str) else v for k, v in extra[i].items()})
        if classes:
            members["cls"] = str(int(labels[i])).encode()
        samples.append((f"s{i:07d}", members))
    tario.write_tar(folder / "test" / "0.tar", samples)
    (folder / "test" / "nshards.txt").write_text("1\n")


def make_eval_suite(eval_dir: Path, banks: render.Banks, seed: int, per_class: int) -> dict:
    """Write all tasks; return per-task counts and the rendered scenes (for contamination)."""
    rendered: dict[str, dict] = {}
    counts = {}
    for t, key in enumerate(TASKS):
        rng = np.random.default_rng([seed, 0xE7A1, t])
        sc, labels = _task_scenes(key, rng, per_class, banks.size)
        images = _digit_images(rng, labels, banks.size) if sc is None else render.render_scenes(banks, sc)
        extra: list[dict] = [{} for _ in labels]
        if key == "tiny_retrieval":
            extra = [{"txt": scenes.full_caption(sc, i)} for i in range(len(labels))]
        elif key == "tiny_worst_group":
            extra = [{"json": json.dumps({"group": vocab.BACKGROUNDS[g], "group_id": int(g)})}
                     for g in sc["bg"]]
        _write_task(eval_dir / key, key, images, labels, extra)
        counts[key] = len(labels)
        if sc is not None:
            rendered[key] = {"scenes": sc, "images": images}
    return {"tasks": counts, "rendered": rendered}
