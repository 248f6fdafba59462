"""Planting the defects of web pools into clean rendered samples.

``assign`` labels each row with exactly one defect (exact counts from the shares, shuffled);
``PLANTERS`` maps each defect to a function that rewrites those rows of the world in place:
captions, pixels, original sizes. Sources of duplicates are clean rows.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from harness.core.errors import HarnessError
from harness.pool.world import render, scenes, vocab

DEFECT_TYPES: tuple[str, ...] = ("mismatched", "non_english", "boilerplate", "too_short", "tiny_image",
                                 "extreme_aspect", "exact_duplicate", "near_duplicate", "text_only",
                                 "eval_copy")
CLEAN = "clean"


def assign(rng: np.random.Generator, n: int, shares: dict[str, float], digit_share: float) -> tuple[np.ndarray, np.ndarray]:
    """(defect label per row, digit-sample mask): exact counts, random positions."""
    labels = np.full(n, CLEAN, dtype=object)
    start = 0
    order = rng.permutation(n)
    for name in DEFECT_TYPES:
        k = int(round(shares.get(name, 0.0) * n))
        labels[order[start:start + k]] = name
        start += k
    clean = np.flatnonzero(labels == CLEAN)
    digits = np.zeros(n, bool)
    digits[rng.choice(clean, min(len(clean), int(round(digit_share * n))), replace=False)] = True
    return labels.astype(str), digits


def _subset(sc: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in sc.items()}


def _mismatched(rng, idx, w):
    """Caption of another row showing a different shape."""
    n = len(w["captions"])
    donor = rng.integers(0, n, len(idx))
    for _ in range(8):
        same = w["scenes"]["shape"][donor] == w["scenes"]["shape"][idx]
        if not same.any():
            break
        donor[same] = rng.integers(0, n, int(same.sum()))
    base = w["base_captions"]
    for i, d in zip(idx, donor):
        w["captions"][i] = base[d]


def _non_english(rng, idx, w):
    caps, langs = scenes.foreign_captions(rng, _subset(w["scenes"], idx))
    for i, c, lang in zip(idx, caps, langs):
        w["captions"][i], w["lang"][i] = c, lang


def _fill(templates):
    def plant(rng, idx, w):
        for i, c in zip(idx, scenes.fill_words(rng, templates, _subset(w["scenes"], idx))):
            w["captions"][i] = c
    return plant


def _tiny_image(rng, idx, w):
    side = rng.integers(24, 150, len(idx))
    w["orig_w"][idx], w["orig_h"][idx] = side, np.round(side * rng.uniform(0.8, 1.25, len(idx)))
    w["images"][idx] = render.pixelate(w["images"][idx], 4)


def _extreme_aspect(rng, idx, w):
    long = rng.integers(800, 2400, len(idx))
    short = np.round(long / rng.uniform(3.5, 8.0, len(idx)))
    vertical = rng.random(len(idx)) < 0.5
    w["orig_w"][idx] = np.where(vertical, short, long)
    w["orig_h"][idx] = np.where(vertical, long, short)
    w["images"][idx] = render.squeeze_strip(w["images"][idx], 4, vertical)


def _copy_source(rng, idx, w) -> np.ndarray:
    src = rng.choice(w["clean_rows"], len(idx))
    for key in ("shape", "color", "count", "texture", "bg", "style"):
        w["scenes"][key][idx] = w["scenes"][key][src]
    w["kind"][idx] = w["kind"][src]
    w["source"][idx] = w["uids"][src]
    return src


def _exact_duplicate(rng, idx, w):
    src = _copy_source(rng, idx, w)
    w["images"][idx] = w["images"][src]
    w["orig_w"][idx], w["orig_h"][idx] = w["orig_w"][src], w["orig_h"][src]
    for i, s in zip(idx, src):
        w["captions"][i] = w["captions"][s]


def _near_duplicate(rng, idx, w):
    src = _copy_source(rng, idx, w)
    w["images"][idx] = render.jitter(w["images"][src], rng)
    for i, s in zip(idx, src):
        w["captions"][i] = w["alt_captions"][s]


def _text_only(rng, idx, w):
    sc = w["scenes"]
    words = [f"{vocab.COLOR_NAMES[sc['color'][i]]}\n{vocab.SHAPES[sc['shape'][i]]}" for i in idx]
    ink = np.array(list(vocab.COLORS.values()))[sc["color"][idx]]
    paper = rng.integers(215, 250, (len(idx), 3))
    w["images"][idx] = render.render_text(words, ink, paper, w["images"].shape[1])
    w["kind"][idx] = "text"


def _eval_copy(rng, idx, w):
    """Near-copies of eval images, captioned like pool samples (contamination)."""
    pool = w["eval_rendered"]
    keys = sorted(pool)
    if not keys:
        raise HarnessError("eval_copy share > 0 but no eval images were rendered to copy from")
    sizes = np.array([len(pool[k]["images"]) for k in keys])
    flat = rng.choice(sizes.sum(), len(idx), replace=False)
    task = np.searchsorted(np.cumsum(sizes), flat, side="right")
    local = flat - np.concatenate([[0], np.cumsum(sizes)[:-1]])[task]
    for t in np.unique(task):
        rows, j = idx[task == t], local[task == t]
        ev = pool[keys[t]]
        w["images"][rows] = render.jitter(ev["images"][j], rng)
        sub = _subset(ev["scenes"], j)
        for key in ("shape", "color", "count", "texture", "bg", "style"):
            w["scenes"][key][rows] = sub[key]
        for i, c, jj in zip(rows, scenes.english_captions(rng, sub), j):
            w["captions"][i] = c
            w["source"][i] = f"{keys[t]}/s{jj:07d}"


PLANTERS: dict[str, Callable] = {
    "mismatched": _mismatched, "non_english": _non_english, "boilerplate": _fill(vocab.BOILERPLATE),
    "too_short": _fill(vocab.SHORT), "tiny_image": _tiny_image, "extreme_aspect": _extreme_aspect,
    "exact_duplicate": _exact_duplicate, "near_duplicate": _near_duplicate, "text_only": _text_only,
    "eval_copy": _eval_copy,
}


def plant_all(rng: np.random.Generator, labels: np.ndarray, world: dict) -> None:
    """Apply every defect to its rows, in DEFECT_TYPES order (each with its own random stream)."""
    for t, name in enumerate(DEFECT_TYPES):
        idx = np.flatnonzero(labels == name)
        if len(idx):
            PLANTERS[name](np.random.default_rng([int(rng.integers(2**32)), t]), idx, world)
