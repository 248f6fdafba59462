"""Caption helpers shared by the text rules: offline language ID, word counts, vocabulary match.

Language ID is langid.py (its model ships inside the package, so it works offline); DataComp used
fastText lid.176, which cannot be downloaded here. Identical captions are classified once.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@lru_cache(maxsize=1)
def _identifier():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=False)


@lru_cache(maxsize=1 << 18)
def language_of(text: str) -> str:
    """ISO 639-1 code of one caption (newlines read as spaces, as DataComp does); cached, since
    web and synthetic pools repeat captions and several filters ask about the same ones."""
    return _identifier().classify(text.replace("\n", " "))[0]


def languages(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Language code per caption; null → ''."""
    return np.array(["" if t is None else language_of(t) for t in text.to_pylist()], dtype=object)


def is_language(text: pa.Array | pa.ChunkedArray, lang: str = "en") -> np.ndarray:
    return languages(text) == lang


def _fill(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.fill_null(text, "")


def word_counts(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``len(caption.split())`` for every caption, vectorised (Arrow splits on Unicode whitespace)."""
    trimmed = pc.utf8_trim_whitespace(_fill(text))
    n = pc.list_value_length(pc.utf8_split_whitespace(trimmed)).to_numpy(zero_copy_only=False)
    return np.where(pc.utf8_length(trimmed).to_numpy(zero_copy_only=False) == 0, 0, n)


def char_counts(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``len(caption)`` in code points."""
    return pc.utf8_length(_fill(text)).to_numpy(zero_copy_only=False)


def read_vocabulary(path: str | Path) -> list[str]:
    """One concept per line; ``#`` starts a comment; commas separate synonyms on a line."""
    words = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0]
        words += [w.strip() for w in line.split(",") if w.strip()]
    return words


def vocabulary_pattern(words: Iterable[str]) -> str:
    """An RE2 pattern matching any vocabulary entry as whole words, optionally plural (-s/-es)."""
    # longest first (a prefix must not win the alternation), then alphabetical: the same
    # vocabulary gives the same pattern (and filter spec) in every process
    alts = sorted({re.escape(w.lower()) for w in words if w.strip()}, key=lambda w: (-len(w), w))
    return r"(?:^|[^\pL\pN])(?:" + "|".join(alts) + r")(?:e?s)?(?:$|[^\pL\pN])"


def matches_vocabulary(text: pa.Array | pa.ChunkedArray, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(_fill(text), pattern, ignore_case=True).to_numpy(zero_copy_only=False)
