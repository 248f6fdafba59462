"""Built-ins that need metadata only (never torch): DataComp's no_filter, basic, clip_score, laion2b,
text_based, plus a seeded random subset. Rules and constants follow DataComp's ``baselines/``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa

from harness.core.errors import HarnessError
from harness.filters.api import PoolInfo, pool_filter
from harness.filters.text import (char_counts, is_language, matches_vocabulary, read_vocabulary,
                                  vocabulary_pattern, word_counts)
from harness.pool.uids import hex_to_pairs

TINY_OBJECTS = "tiny_objects"  # the tiny suite's object task: the tiny world's concept vocabulary
COMMONPOOL_ARCH = {"clip_score": "l14", "laion2b": "b32"}
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def score_column(info: PoolInfo, params: dict, commonpool_arch: str) -> dict:
    """``column=`` wins; else ``clip_<arch>_similarity_score`` with arch from params, pool.json, DataComp."""
    if not params.get("column"):
        arch = params.get("arch") or info.meta.get("default_score_arch") or commonpool_arch
        params["column"] = f"clip_{arch}_similarity_score"
    return params


def _column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False)


@pool_filter(columns=(), output="mask")
def no_filter(batch: pa.RecordBatch, features: dict) -> np.ndarray:
    return np.ones(batch.num_rows, dtype=bool)


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@pool_filter(columns=("uid",), output="score")
def random(batch: pa.RecordBatch, features: dict, seed: int = 0) -> np.ndarray:
    """A uniform score from a hash of (uid, seed): the same subset for any file split or worker count."""
    pairs = hex_to_pairs(batch.column("uid"))
    with np.errstate(over="ignore"):
        h = _splitmix(pairs["f0"] ^ _splitmix(pairs["f1"] ^ np.uint64(seed)))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@pool_filter(columns=("text", "original_width", "original_height"), output="mask")
def basic(batch: pa.RecordBatch, features: dict, language: str = "en", min_words_exclusive: int = 2,
          min_chars_exclusive: int = 5, min_side: int = 200, max_aspect: float = 3.0) -> np.ndarray:
    """DataComp's basic filter: English, > 2 words, > 5 characters, min side ≥ 200 px, aspect ≤ 3."""
    text = batch.column("text")
    w = _column(batch, "original_width").astype(np.float64)
    h = _column(batch, "original_height").astype(np.float64)
    lo, hi = np.minimum(w, h), np.maximum(w, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = hi / lo
    image_ok = (lo >= min_side) & (aspect <= max_aspect)
    caption_ok = (word_counts(text) > min_words_exclusive) & (char_counts(text) > min_chars_exclusive)
    keep = image_ok & caption_ok
    if keep.any():
        keep[keep] = is_language(text.filter(pa.array(keep)), language)
    return keep


def _prepare_clip(info: PoolInfo, params: dict) -> dict:
    return score_column(info, params, COMMONPOOL_ARCH["clip_score"])


@pool_filter(columns=lambda p: (p["column"],), output="score", prepare=_prepare_clip)
def clip_score(batch: pa.RecordBatch, features: dict, arch: str | None = None,
               column: str | None = None) -> np.ndarray:
    """The CLIP image-text similarity column; DataComp keeps the top 30 % (``fraction=0.3``)."""
    return _column(batch, column)


def _prepare_laion(info: PoolInfo, params: dict) -> dict:
    return score_column(info, params, COMMONPOOL_ARCH["laion2b"])


@pool_filter(columns=lambda p: (p["column"], "text"), output="score", prepare=_prepare_laion)
def laion2b(batch: pa.RecordBatch, features: dict, arch: str | None = None, column: str | None = None,
            language: str = "en") -> np.ndarray:
    """LAION-2B's rule: English captions, selected by CLIP score (DataComp: B/32 ≥ 0.28)."""
    score = _column(batch, column).astype(np.float64)
    return np.where(is_language(batch.column("text"), language), score, -np.inf)


def imagenet_classnames() -> list[str]:
    """ImageNet-1k class names from open_clip's metadata module, loaded without importing torch."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError("text_based vocab=imagenet1k needs open_clip_torch installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "zero_shot_metadata.py"
    mspec = importlib.util.spec_from_file_location("harness_in1k_names", path)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return list(module.IMAGENET_CLASSNAMES)


def _vocabulary(info: PoolInfo, vocab: object) -> list[str]:
    if isinstance(vocab, (list, tuple)):
        return [str(v) for v in vocab]
    if vocab in (None, "auto"):
        names = info.meta.get("class_names") or info.meta.get("classnames")
        if names:
            return list(names)
        tiny = info.root.parent / "evalsets" / TINY_OBJECTS / "classnames.txt"
        return read_vocabulary(tiny) if info.meta.get("eval_tasks") and tiny.is_file() else imagenet_classnames()
    if vocab == "imagenet1k":
        return imagenet_classnames()
    if not Path(str(vocab)).is_file():
        raise HarnessError(f"text_based: vocab {vocab!r} is not auto, imagenet1k, a list or an existing file")
    return read_vocabulary(vocab)


def _prepare_text(info: PoolInfo, params: dict) -> dict:
    words = _vocabulary(info, params.get("vocab"))
    if not words:
        raise HarnessError("text_based: the concept vocabulary is empty")
    params["pattern"] = vocabulary_pattern(words)
    params["vocab_size"] = len(set(w.lower() for w in words))
    return params


@pool_filter(columns=("text",), output="mask", prepare=_prepare_text)
def text_based(batch: pa.RecordBatch, features: dict, vocab: object = None, language: str = "en",
               pattern: str = "", vocab_size: int = 0) -> np.ndarray:
    """English captions naming a concept of the vocabulary (DataComp: ImageNet-21k synsets)."""
    text = batch.column("text")
    keep = matches_vocabulary(text, pattern)
    if keep.any():
        keep[keep] = is_language(text.filter(pa.array(keep)), language)
    return keep
