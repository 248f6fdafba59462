"""Sampling scenes (as arrays) and writing their captions.

A scene is a dict of equal-length arrays (struct of arrays) so that sampling and rendering are
vectorised; captions are the only per-sample Python work.
"""

from __future__ import annotations

import numpy as np

from harness.pool.world import vocab
from harness.pool.world.render import SPRITE_SIZES_32

COUNT_P = (0.4, 0.2, 0.2, 0.2)
# Sprite size indices allowed per count (1..4): big objects alone, small ones in groups.
SIZES_BY_COUNT = {1: (3, 4, 5), 2: (1, 2), 3: (0, 1), 4: (0, 1)}
QUADRANTS = np.array([(-7, -7), (-7, 7), (7, -7), (7, 7)])
PAIRS = np.array([[(0, -7), (0, 7)], [(-7, 0), (7, 0)]])
POSITIONS = tuple(vocab.POSITION_WORDS)


def _fixed_or(rng_draw, n: int, fixed: np.ndarray | int | None) -> np.ndarray:
    if fixed is None:
        return rng_draw(n)
    return np.broadcast_to(np.asarray(fixed, np.int64), (n,)).copy()


def _layout(rng: np.random.Generator, count: np.ndarray, size: np.ndarray, image_size: int):
    """Object offsets (n, 4) from the image centre, in pixels, non-overlapping by construction."""
    n = len(count)
    s = image_size / 32
    d = np.asarray(SPRITE_SIZES_32)[size] * s
    m = np.floor(np.minimum(8 * s, image_size / 2 - d / 2 - 1)).astype(np.int64)
    single = np.stack([rng.integers(-m, m + 1), rng.integers(-m, m + 1)], 1)
    order = np.argsort(rng.random((n, 4)), 1)
    quad = QUADRANTS[order] * s + rng.integers(-1, 2, (n, 4, 2))
    pair = PAIRS[rng.integers(0, 2, n)] * s + rng.integers(-3, 4, (n, 1, 2)) * (PAIRS[0] == 0)
    off = np.where((count >= 3)[:, None, None], quad, 0.0)
    off[count == 2, :2] = pair[count == 2]
    off[count == 1, 0] = single[count == 1]
    off = np.round(off).astype(np.int64)
    return off[..., 0], off[..., 1]


def _position_word(dy: np.ndarray, dx: np.ndarray, count: np.ndarray, image_size: int) -> np.ndarray:
    """Index into POSITIONS for single objects (-1 for groups)."""
    y, x = dy[:, 0], dx[:, 0]
    near = np.maximum(np.abs(x), np.abs(y)) <= 2 * image_size / 32
    horiz = np.abs(x) >= np.abs(y)
    pos = np.where(horiz, np.where(x < 0, 1, 2), np.where(y < 0, 3, 4))
    pos = np.where(near, 0, pos)
    return np.where(count == 1, pos, -1)


def sample_scenes(rng: np.random.Generator, n: int, image_size: int, *, sketch_share: float = 0.08,
                  bg_bias: float = 0.7, **fixed) -> dict[str, np.ndarray]:
    """Draw ``n`` random scenes; any field may be fixed (e.g. ``style=1``, ``bg=array``).

    ``bg_bias`` is the chance that a shape sits on its preferred background (a spurious cue the
    worst-group task measures).
    """
    n_sh, n_col = len(vocab.SHAPES), len(vocab.COLORS)
    sc: dict[str, np.ndarray] = {}
    sc["shape"] = _fixed_or(lambda k: rng.integers(0, n_sh, k), n, fixed.get("shape"))
    sc["color"] = _fixed_or(lambda k: rng.integers(0, n_col, k), n, fixed.get("color"))
    sc["texture"] = _fixed_or(lambda k: rng.integers(0, len(vocab.TEXTURES), k), n, fixed.get("texture"))
    sc["count"] = _fixed_or(lambda k: rng.choice(np.arange(1, 5), k, p=COUNT_P), n, fixed.get("count"))
    sc["style"] = _fixed_or(lambda k: (rng.random(k) < sketch_share).astype(np.int64), n, fixed.get("style"))
    preferred = sc["shape"] % len(vocab.BACKGROUNDS)
    random_bg = rng.integers(0, len(vocab.BACKGROUNDS), n)
    biased = np.where(rng.random(n) < bg_bias, preferred, random_bg)
    sc["bg"] = _fixed_or(lambda k: biased, n, fixed.get("bg"))
    sc["bg"] = np.where(sc["style"] == 1, 0, sc["bg"])
    choices = np.array([SIZES_BY_COUNT[c] + SIZES_BY_COUNT[c][-1:] * (3 - len(SIZES_BY_COUNT[c]))
                        for c in range(1, 5)])
    sc["size"] = choices[sc["count"] - 1, rng.integers(0, 3, n)]
    sc["rot"] = rng.integers(0, 6, (n, 4))
    sc["dy"], sc["dx"] = _layout(rng, sc["count"], sc["size"], image_size)
    sc["pos"] = _position_word(sc["dy"], sc["dx"], sc["count"], image_size)
    base = np.array(list(vocab.COLORS.values()), np.float32)[sc["color"]]
    sc["rgb"] = np.clip(base + rng.normal(0, 7, (n, 3)), 0, 255).astype(np.float32)
    sc["light"] = rng.uniform(*fixed.get("light_range", (0.62, 1.22)), n).astype(np.float32)
    sc["tint"] = rng.uniform(0.92, 1.08, (n, 3)).astype(np.float32)
    sc["tex_var"] = rng.integers(0, 4, n)
    sc["bg_var"] = rng.integers(0, 8, n)
    sc["noise"] = rng.integers(0, 32, n)
    sc["noise_amp"] = rng.uniform(2, 6, n).astype(np.float32)
    return sc


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def object_phrase(shape: int, color: int, count: int, texture: int | None, with_color: bool = True,
                  generic: bool = False, say_one: bool = False) -> str:
    """E.g. 'three striped red circles', 'an orange star', 'one blue shape' (``generic``)."""
    name = "shape" if generic else vocab.SHAPES[shape]
    noun = name if count == 1 else ("shapes" if generic else vocab.SHAPE_PLURAL[name])
    words = [vocab.TEXTURE_ADJ[vocab.TEXTURES[texture]]] if texture is not None else []
    words += [vocab.COLOR_NAMES[color]] if with_color else []
    words.append(noun)
    head = ("one" if say_one else _article(words[0])) if count == 1 else vocab.COUNT_WORDS[count - 1]
    return " ".join([head, *words])


def english_captions(rng: np.random.Generator, sc: dict[str, np.ndarray], color_mention: float = 0.95) -> list[str]:
    """Templated English captions; each attribute is mentioned with some probability
    (``color_mention``: the colour's, when a texture is named; otherwise it always is)."""
    n = len(sc["shape"])
    r = rng.random((n, 6))
    t_photo = rng.integers(0, len(vocab.EN_TEMPLATES), n)
    t_sketch = rng.integers(0, len(vocab.SKETCH_TEMPLATES), n)
    out = []
    for i in range(n):
        tex = int(sc["texture"][i])
        sketch = sc["style"][i] == 1
        mention_tex = bool(not sketch and (r[i, 0] < 0.7 if tex else r[i, 0] < 0.15))
        # colour or texture is always named, so captions of clean samples have more than two words
        with_color = bool(r[i, 1] < color_mention or not mention_tex)
        obj = object_phrase(int(sc["shape"][i]), int(sc["color"][i]), int(sc["count"][i]),
                            tex if mention_tex else None, with_color=with_color,
                            generic=r[i, 4] < 0.1, say_one=r[i, 5] < 0.2)
        bg = " " + vocab.BACKGROUND_PHRASE[vocab.BACKGROUNDS[sc["bg"][i]]] if r[i, 2] < 0.5 and not sketch else ""
        p = sc["pos"][i]
        pos = " " + vocab.POSITION_WORDS[POSITIONS[p]] if p >= 0 and r[i, 3] < 0.4 else ""
        tpl = vocab.SKETCH_TEMPLATES[t_sketch[i]] if sketch else vocab.EN_TEMPLATES[t_photo[i]]
        out.append(tpl.format(obj=obj, bg=bg, pos=pos))
    return out


def full_caption(sc: dict[str, np.ndarray], i: int) -> str:
    """A caption naming every attribute (unique per attribute combination): retrieval task."""
    obj = object_phrase(int(sc["shape"][i]), int(sc["color"][i]), int(sc["count"][i]), int(sc["texture"][i]))
    return f"a photo of {obj} {vocab.BACKGROUND_PHRASE[vocab.BACKGROUNDS[sc['bg'][i]]]}."


def foreign_captions(rng: np.random.Generator, sc: dict[str, np.ndarray]) -> tuple[list[str], list[str]]:
    """Correct descriptions in another language; returns (captions, language codes)."""
    n = len(sc["shape"])
    langs = rng.integers(0, len(vocab.LANGUAGES), n)
    tpl = rng.integers(0, 3, n)
    caps, codes = [], []
    for i in range(n):
        lang = vocab.LANGUAGES[langs[i]]
        table = vocab.FOREIGN[lang]
        caps.append(table["templates"][tpl[i]].format(shape=table["shape"][vocab.SHAPES[sc["shape"][i]]],
                                                      color=table["color"][vocab.COLOR_NAMES[sc["color"][i]]]))
        codes.append(lang)
    return caps, codes


def fill_words(rng: np.random.Generator, templates: tuple[str, ...], sc: dict[str, np.ndarray]) -> list[str]:
    """Boilerplate / too-short captions, with numbers and scene words filled in."""
    n = len(sc["shape"])
    pick = rng.integers(0, len(templates), n)
    nums = rng.integers(10, 99999, n)
    return [templates[pick[i]].format(n=nums[i], shape=vocab.SHAPES[sc["shape"][i]],
                                      color=vocab.COLOR_NAMES[sc["color"][i]]) for i in range(n)]


DIGIT_TEMPLATES = ("the number {name}", "a picture of the digit {d}", "the digit {name} written in {color}",
                   "a sign showing the number {d}")


def digit_captions(rng: np.random.Generator, digits: np.ndarray, colors: np.ndarray) -> list[str]:
    pick = rng.integers(0, len(DIGIT_TEMPLATES), len(digits))
    return [DIGIT_TEMPLATES[p].format(name=vocab.DIGIT_NAMES[d], d=d, color=vocab.COLOR_NAMES[c])
            for p, d, c in zip(pick, digits, colors)]
