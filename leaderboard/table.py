"""The leaderboard as a table of columns, shared by ``show`` (rich), and ``render`` (HTML, Markdown).

Columns are data: (header, how to read it from an entry). Sorting works on any header or task
key; numbers sort high-first and text A-first unless ``ascending`` says otherwise.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from harness.errors import HarnessError
from leaderboard.store import ranks


class Column(NamedTuple):
    header: str
    get: Callable[[dict, dict], Any]  # (entry, ranks) → value
    numeric: bool


def spec_text(spec: dict) -> str:
    """``clip_score(threshold=0.3)``; compositions as ``intersect(basic, clip_score(...))``."""
    if "filters" in spec:
        return f"{spec['name']}({', '.join(spec_text(c) for c in spec['filters'])})"
    params = {**(spec.get("params") or {}), **{k: v for k, v in spec.items() if k not in ("name", "params", "source_hash")}}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "name")
    return f"{spec['name']}({shown})" if shown else spec["name"]


def _filter_text(e: dict) -> str:
    f = e["filter"]
    if f is None:
        return "—"
    return spec_text(f.get("spec") or {"name": f["name"], "params": f["params"]})


BASE_COLUMNS = (
    Column("rank", lambda e, r: r.get(e["id"]), True),
    Column("id", lambda e, r: e["id"], False),
    Column("method", lambda e, r: e["method_name"], False),
    Column("filter", lambda e, r: _filter_text(e), False),
    Column("size", lambda e, r: e["subset"]["size"] if e["subset"] else None, True),
    Column("seed", lambda e, r: e["seed"], True),
)


def aggregate_names(doc: dict) -> list[str]:
    """Aggregates that at least one entry reports (null everywhere means the suite has none)."""
    names = dict.fromkeys(k for e in doc["entries"] for k, v in e["aggregates"].items() if v is not None)
    return [n for n in names if n != "Average"] + ["Average"]


def task_keys(doc: dict) -> list[str]:
    return list(dict.fromkeys(k for e in doc["entries"] for k in e["tasks"]))


def columns(doc: dict, tasks: bool = False) -> list[Column]:
    cols = list(BASE_COLUMNS)
    cols += [Column(a, (lambda e, r, a=a: e["aggregates"].get(a)), True) for a in aggregate_names(doc)]
    if tasks:
        cols += [Column(k, (lambda e, r, k=k: e["tasks"].get(k, {}).get("value")), True) for k in task_keys(doc)]
    cols.append(Column("reference", lambda e, r: "reference" if e["reference"] else ("unranked" if not e["ranked"] else ""), False))
    return cols


def build(doc: dict, sort: str = "rank", ascending: bool | None = None, tasks: bool = False
          ) -> tuple[list[str], list[list[Any]]]:
    """Headers and raw rows, sorted by column ``sort`` (any header, case-insensitive)."""
    cols = columns(doc, tasks=tasks or sort in task_keys(doc))
    by_name = {c.header.lower(): c for c in cols}
    col = by_name.get(str(sort).lower())
    if col is None:
        raise HarnessError(f"cannot sort by {sort!r}; columns: {', '.join(c.header for c in cols)}")
    if ascending is None:
        ascending = col.header == "rank" or not col.numeric
    table = ranks(doc)
    rows = [[c.get(e, table) for c in cols] for e in doc["entries"]]
    i = cols.index(col)
    present = sorted((r for r in rows if r[i] is not None), key=lambda r: r[i] if col.numeric else str(r[i]),
                     reverse=not ascending)
    return [c.header for c in cols], present + [r for r in rows if r[i] is None]


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
