"""The leaderboard as tables, shared by ``show`` (rich) and ``render`` (HTML, Markdown).

Two tables: one row per method (mean ± sd over seeds, n seeds, subset size, the delta of mean
Average to no_filter with its paired bootstrap CI), then one row per seed. Columns are data:
(header, how to read it from an entry). The per-seed table sorts on any header or task key;
numbers sort high-first and text A-first unless ``ascending`` says otherwise.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from harness.core.errors import HarnessError
from leaderboard.boards import BASELINE, aggregate_names, board_of, method_label, method_ranks, methods, task_keys
from harness.core.labels import entry_spec, spec_label
from leaderboard.store import entry_key, ranks


class Column(NamedTuple):
    header: str
    get: Callable[[dict, dict], Any]  # (entry, ranks) → value
    numeric: bool


class MeanSd(NamedTuple):
    """Mean over a method's seeds and the sample sd (None with one seed)."""
    mean: float
    sd: float | None


class Delta(NamedTuple):
    """Delta of mean Average to the baseline with its CI; ``text`` replaces it ("baseline", "—")."""
    delta: float | None
    ci: list[float] | None
    beyond: bool | None
    text: str | None = None


def filter_label(entry: dict, short: bool = True) -> str:
    """The entry's filter in one line: name and scalar parameters, or (``short=False``) all of them."""
    f = entry["filter"]
    return "—" if f is None else spec_label(entry_spec(f), short=short)


BASE_COLUMNS = (
    Column("rank", lambda e, r: r.get(entry_key(e)), True),
    Column("id", lambda e, r: entry_key(e), False),
    Column("method", lambda e, r: method_label(e["method_name"], board_of(e)), False),
    Column("filter", lambda e, r: filter_label(e), False),
    Column("size", lambda e, r: e["subset"]["size"] if e["subset"] else None, True),
    Column("seed", lambda e, r: e["seed"], True),
)


def columns(doc: dict, tasks: bool = False) -> list[Column]:
    cols = list(BASE_COLUMNS)
    cols += [Column(a, (lambda e, r, a=a: e["aggregates"].get(a)), True) for a in aggregate_names(doc)]
    if tasks:
        cols += [Column(k, (lambda e, r, k=k: e["tasks"].get(k, {}).get("value")), True) for k in task_keys(doc)]
    return cols


def build(doc: dict, sort: str = "rank", ascending: bool | None = None, tasks: bool = False
          ) -> tuple[list[str], list[list[Any]]]:
    """Headers and raw per-seed rows, sorted by column ``sort`` (any header, case-insensitive)."""
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


DELTA_HEADER = f"Δ vs {BASELINE}"


def _delta(d: dict | None) -> Delta:
    if d is None:
        return Delta(None, None, None, "—")
    if d.get("baseline"):
        return Delta(None, None, None, "baseline")
    if d["delta"] is None:
        return Delta(None, None, None, "—")
    return Delta(d["delta"], d["ci"], d.get("beyond_noise"))


def method_table(doc: dict, deltas: dict[str, dict] | None = None) -> tuple[list[str], list[list[Any]], list[str]]:
    """Headers, one row per method (best mean Average first) and the footnotes of its "—" cells.

    ``deltas`` is :func:`leaderboard.compare.method_deltas`; without it (``ci=false``) the delta column says "—"."""
    rows_in = methods(doc)
    by_rank = method_ranks(rows_in)
    aggs = aggregate_names(doc)
    headers = ["rank", "method", "board", "seeds", "size", "Average", DELTA_HEADER,
               *(a for a in aggs if a != "Average")]
    rows, notes = [], []
    for m in rows_in:
        d = (deltas or {}).get(m["key"])
        if d and d.get("note"):
            notes.append(f"{m['label']}: {d['note']}")
        stat = (lambda a: MeanSd(*m["stats"][a]) if a in m["stats"] else None)
        size = None if m["size"] is None else round(m["size"])
        rows.append([by_rank.get(m["key"]), m["label"], m["board"], m["n"], size, stat("Average"), _delta(d),
                     *(stat(a) for a in aggs if a != "Average")])
    return headers, rows, notes


def fmt(value: Any, multiline: bool = False) -> str:
    """One cell as text; ``multiline`` puts a mean's sd and a delta's CI on a second line."""
    sep = "\n" if multiline else " "
    if value is None:
        return "—"
    if isinstance(value, MeanSd):
        return f"{value.mean:.4f}" if value.sd is None else f"{value.mean:.4f}{sep}± {value.sd:.4f}"
    if isinstance(value, Delta):
        if value.text:
            return value.text
        ci = "" if value.ci is None else f"{sep}[{value.ci[0]:+.4f}, {value.ci[1]:+.4f}]" + (" *" if value.beyond else "")
        return f"{value.delta:+.4f}{ci}"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
