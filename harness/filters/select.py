"""Global selection over a whole pool's scores, with DataComp's semantics.

DataComp's ``fraction``: n = int(N·f) over all N rows, the threshold is the (n+1)-th largest
score (index n of the descending sort) and every row with score ≥ threshold is kept, so it keeps
n + 1 rows plus ties at the threshold. We find that value with a partition instead of a full sort.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from harness.core.errors import HarnessError

SELECTION_KEYS = ("threshold", "fraction", "top_k")


def _nth_largest(scores: np.ndarray, n: int) -> float:
    """The value at index ``n`` of the descending order (0 = largest), NaN ranked last as in
    DataComp's ``-np.sort(-x)``; past the last number, the smallest number (keep all but NaN)."""
    nan = np.isnan(scores) if scores.dtype.kind == "f" else None
    finite = scores[~nan] if nan is not None and nan.any() else scores
    if not len(finite):
        return math.inf
    if n >= len(finite):
        return finite.min()
    k = len(finite) - 1 - n
    return np.partition(finite, k)[k]


def _threshold(scores: np.ndarray, value: float) -> float:
    return value


def _fraction(scores: np.ndarray, value: float) -> float:
    return _nth_largest(scores, int(len(scores) * value))


def _top_k(scores: np.ndarray, value: int) -> float:
    return _nth_largest(scores, value - 1)


MODES = {"threshold": _threshold, "fraction": _fraction, "top_k": _top_k}


def check_selection(label: str, key: str, value: object) -> float | int:
    """Validate one selection key's value: one clear line per mistake."""
    bad = isinstance(value, bool) or not isinstance(value, Real)
    if bad:
        raise HarnessError(f"filter {label}: {key} must be a number, got {value!r}")
    if math.isnan(value):
        raise HarnessError(f"filter {label}: {key} is NaN; give a real number")
    if key == "fraction" and not 0 < value <= 1:
        raise HarnessError(f"filter {label}: fraction must be in (0, 1], got {value}")
    if key == "top_k" and (value != int(value) or value < 1):
        raise HarnessError(f"filter {label}: top_k must be a positive integer, got {value}")
    return int(value) if key == "top_k" else float(value)


def select(scores: np.ndarray, key: str, value: float | int) -> tuple[np.ndarray, float]:
    """Keep mask (score ≥ threshold; NaN never kept) and the threshold used."""
    thr = MODES[key](scores, value)
    return scores >= thr, float(thr)
