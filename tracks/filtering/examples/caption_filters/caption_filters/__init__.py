"""Two example filters: a score (caption length in words, selected globally by the harness) and a
keep mask (drop captions containing digits). Install with ``pip install -e`` and run
``harness filter pool_dir=P filter=caption_length filter.fraction=0.5 out=S.npy``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.filters import pool_filter


@pool_filter(columns=["text"], output="score")
def caption_length(batch: pa.RecordBatch, features: dict, min_words: int = 0) -> np.ndarray:
    """Number of words; captions shorter than ``min_words`` score -inf (never kept)."""
    text = pc.utf8_trim_whitespace(pc.fill_null(batch.column("text"), ""))
    words = pc.list_value_length(pc.utf8_split_whitespace(text)).to_numpy(zero_copy_only=False).astype(float)
    words[pc.utf8_length(text).to_numpy(zero_copy_only=False) == 0] = 0
    return np.where(words >= min_words, words, -np.inf)


@pool_filter(columns=["text"], output="mask")
def no_digits(batch: pa.RecordBatch, features: dict) -> np.ndarray:
    return ~pc.match_substring_regex(pc.fill_null(batch.column("text"), ""), r"[0-9]").to_numpy(zero_copy_only=False)
