"""Filter labels: a short one for tables and headers, the full spec for a details view.

The short label keeps the filter's name and its scalar parameters (numbers, booleans, short words
such as ``language=en``), so ``clip_score(fraction=0.3)`` fits a table cell; fitted arrays
(``<array float32 [267, 128]>``), long strings, regex patterns and nulls appear only in the full
spec, which is what ``show details=true`` and the page's collapsible details print.
"""

from __future__ import annotations

import re
from typing import Any

SHORT_WORD = re.compile(r"[\w.+-]{1,8}")  # a string parameter short enough for the label
NOT_PARAMS = ("name", "params", "filters", "source_hash")


def _scalar(value: Any) -> bool:
    if isinstance(value, (bool, int, float)):
        return True
    return isinstance(value, str) and SHORT_WORD.fullmatch(value) is not None


def spec_params(spec: dict) -> dict[str, Any]:
    """A leaf's parameters with its selection (threshold, fraction, top_k) joined in."""
    return {**(spec.get("params") or {}), **{k: v for k, v in spec.items() if k not in NOT_PARAMS}}


def spec_label(spec: dict, short: bool = True) -> str:
    """``clip_score(fraction=0.3)``; compositions as ``intersect(clip_score(...), image_based(...))``.

    ``short=False`` keeps every parameter (the details view)."""
    if "filters" in spec:
        return f"{spec['name']}({', '.join(spec_label(c, short) for c in spec['filters'])})"
    shown = ", ".join(f"{k}={v}" for k, v in sorted(spec_params(spec).items()) if not short or _scalar(v))
    return f"{spec['name']}({shown})" if shown else spec["name"]


def entry_spec(filt: dict) -> dict:
    """An entry's filter as a spec tree (compositions keep theirs under ``spec``)."""
    return filt.get("spec") or {"name": filt["name"], "params": filt["params"]}
