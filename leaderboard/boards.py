"""Two boards read as one: the committed reference board and the user's own board beside it.

``harness run`` and ``leaderboard add`` write a user's entries to their own board (by default
``user_board_dir()``), never into the reference; ``show``, ``compare`` and ``render`` read both
with :func:`load_boards`. Every entry of the combined document carries two fields that are never
written to a file: ``board`` (``"reference"`` or ``"yours"``) and ``key``, its address as printed:
``yours:<id>`` for the user's entries, the bare id for the reference's, or ``ref:<id>`` when the
user's board holds that id too (a user who runs ``basic`` with seed 0 gets ``basic-seed0``, which
the reference has). Methods are grouped per board, so the user's ``basic`` is the row
"basic (yours)", apart from the reference's ``basic``.

Addressing (``compare a=... b=...``, :func:`standing_line`): ``ref:``/``yours:`` pick a board; a
bare id or method name that is on both boards means the user's, with a note saying so.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from leaderboard.store import (REFERENCE_DIR, entry_key, is_reference_dir, leaderboard_path, ranks, read_document,
                               user_board_dir)

PREFIX = {"reference": "ref", "yours": "yours"}  # board → address prefix
BOARD_OF_PREFIX = {"ref": "reference", "reference": "reference", "yours": "yours"}
BASELINE = "no_filter"  # the method every other method's delta is measured against


def board_of(entry: dict) -> str:
    """The entry's board; a single board's document (``load_leaderboard``) counts as the reference."""
    return entry.get("board", "reference")


def _marked(entry: dict, board: str, folder: Path) -> dict:
    """The entry with its board, and its per-example folder made absolute (each board keeps its own)."""
    rel = entry.get("per_example_dir")
    absolute = str(folder / rel) if rel and not Path(rel).is_absolute() else rel
    return {**entry, "board": board, "per_example_dir": absolute}


def _address(entries: list[dict]) -> None:
    """Give each entry its key: ``yours:<id>`` for the user's (so their rows are marked wherever an id
    is printed), the bare id for the reference's unless the user's board holds it too (``ref:<id>``)."""
    yours = {e["id"] for e in entries if e["board"] == "yours"}
    for e in entries:
        clash = e["board"] == "yours" or e["id"] in yours
        e["key"] = f"{PREFIX[e['board']]}:{e['id']}" if clash else e["id"]


def load_boards(track: str, scale: str, leaderboard_dir: str | Path | None = None) -> dict:
    """The reference board and the user's board (``leaderboard_dir``, else ``user_board_dir()``) as
    one document; ``boards`` records both files. Either may be missing, not both; when
    ``leaderboard_dir`` is the reference folder only the reference is read."""
    user_dir = Path(leaderboard_dir).expanduser() if leaderboard_dir is not None else user_board_dir()
    paths = {"reference": leaderboard_path(REFERENCE_DIR, track, scale),
             "yours": None if is_reference_dir(user_dir) else leaderboard_path(user_dir, track, scale)}
    docs = {b: read_document(p) for b, p in paths.items() if p is not None}
    present = {b: d for b, d in docs.items() if d is not None}
    if not present:
        where = " or ".join(str(p) for p in paths.values() if p is not None)
        raise HarnessError(f"no leaderboard at {where}: add a run with `harness leaderboard add run_dir=...`")
    base = present.get("reference") or present["yours"]
    entries, notes = [], []
    for board, d in present.items():
        if (d["recipe_hash"], d["suite"]) != (base["recipe_hash"], base["suite"]):
            notes.append(f"{paths[board]} was made for recipe {d['recipe_hash'][:12]} (suite {d['suite']}), the "
                         f"reference for {base['recipe_hash'][:12]} (suite {base['suite']}): its entries are not "
                         "shown; move the file aside to start a new board")
            continue
        entries += [_marked(e, board, paths[board].parent) for e in d["entries"]]
    _address(entries)
    return {**{k: v for k, v in base.items() if k != "entries"}, "entries": entries,
            "boards": {b: None if p is None else str(p) for b, p in paths.items()}, "notes": notes}


def boards_text(doc: dict) -> str:
    """Which boards the document's entries come from, in words."""
    have = {board_of(e) for e in doc["entries"]}
    return {frozenset({"reference", "yours"}): "reference board + yours",
            frozenset({"yours"}): "your board"}.get(frozenset(have), "reference board")


def method_label(name: str, board: str) -> str:
    return name if board == "reference" else f"{name} (yours)"


def _stats(values: list) -> tuple[float, float | None] | None:
    """(mean, sample sd over seeds, None for one seed), or None when a seed lacks the value."""
    if not values or None in values:
        return None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def aggregate_names(doc: dict) -> list[str]:
    """Aggregates that at least one entry reports (null everywhere means the suite has none)."""
    names = dict.fromkeys(k for e in doc["entries"] for k, v in e["aggregates"].items() if v is not None)
    return [n for n in names if n != "Average"] + ["Average"]


def task_keys(doc: dict) -> list[str]:
    return list(dict.fromkeys(k for e in doc["entries"] for k in e["tasks"]))


def methods(doc: dict) -> list[dict[str, Any]]:
    """One row per (board, method name), best mean Average first: its entries, seeds, mean subset
    size, and mean ± sd over seeds of every aggregate and task (sd None with one seed)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for e in doc["entries"]:
        groups.setdefault((board_of(e), e["method_name"]), []).append(e)
    names = [n for _, n in groups]
    rows = []
    for (board, name), runs in groups.items():
        values = {a: [e["aggregates"].get(a) for e in runs] for a in aggregate_names(doc)}
        values |= {k: [e["tasks"].get(k, {}).get("value") for e in runs] for k in task_keys(doc)}
        stats = {k: s for k, v in values.items() if (s := _stats(v)) is not None}
        sizes = [e["subset"]["size"] for e in runs if e["subset"]]
        rows.append({"method": name, "board": board, "label": method_label(name, board),
                     "key": name if names.count(name) == 1 else f"{PREFIX[board]}:{name}",
                     "entries": runs, "n": len(runs), "seeds": sorted(e["seed"] for e in runs),
                     "ranked": all(e["ranked"] for e in runs), "reference": any(e["reference"] for e in runs),
                     "size": float(np.mean(sizes)) if sizes else None, "stats": stats})
    return sorted(rows, key=lambda m: -m["stats"].get("Average", (0.0, None))[0])


def method_ranks(rows: list[dict]) -> dict[str, int]:
    """Competition rank of each ranked method (by key) by mean Average over its seeds."""
    means = {m["key"]: m["stats"]["Average"][0] for m in rows if m["ranked"] and "Average" in m["stats"]}
    return {k: 1 + sum(v > mine for v in means.values()) for k, mine in means.items()}


def split_ref(ref: str) -> tuple[str | None, str]:
    """(board or None, the bare id or method name) of ``ref:x``, ``yours:x`` or ``x``."""
    prefix, sep, rest = ref.partition(":")
    return (BOARD_OF_PREFIX[prefix], rest) if sep and prefix in BOARD_OF_PREFIX else (None, ref)


def _unknown(doc: dict, ref: str) -> str:
    """'no entry ...; did you mean ...?' with the closest ids and methods (difflib), else all of them."""
    keys = [entry_key(e) for e in doc["entries"]]
    names = [m["key"] for m in methods(doc)]
    where = f"in the {doc['track']}/{doc['scale']} leaderboard"
    close = difflib.get_close_matches(ref, keys + names, n=3, cutoff=0.6)
    if close:
        return f"no entry or method {ref!r} {where}; did you mean {' or '.join(close)}?"
    return f"no entry or method {ref!r} {where} (methods: {', '.join(names) or 'none'}; entries: {', '.join(keys) or 'none'})"


def resolve(doc: dict, ref: str, allow_method: bool = True) -> tuple[list[dict], str | None]:
    """The entries ``ref`` names and a note when it was ambiguous: an entry key or id → [entry]; a
    method name (``allow_method``) → its entries, all seeds. A bare name on both boards is yours."""
    board, bare = split_ref(str(ref))
    pool = [e for e in doc["entries"] if board is None or board_of(e) == board]
    for field in ("id", "method_name") if allow_method else ("id",):
        hits = [e for e in pool if e[field] == bare]
        if not hits:
            continue
        if len({board_of(e) for e in hits}) > 1:
            kind = "an entry" if field == "id" else "a method"
            note = (f"{bare!r} is {kind} on both boards: using yours (yours:{bare}); "
                    f"write ref:{bare} for the reference board's")
            return [e for e in hits if board_of(e) == "yours"], note
        return hits, None
    raise HarnessError(_unknown(doc, str(ref)))


def find_entry(doc: dict, ref: str) -> tuple[dict, str | None]:
    """One entry by key or id (a bare id on both boards is yours), and the note if it was ambiguous."""
    hits, note = resolve(doc, ref, allow_method=False)
    return hits[0], note


def standing_line(doc: dict, entry_id: str) -> str:
    """Where an entry stands on the combined board, in one line: its method's rank among ranked
    methods by mean Average over seeds, and the entry's own rank among ranked entries."""
    entry, _ = find_entry(doc, entry_id)
    if not entry["ranked"]:
        return "unranked reference entry"
    rows = methods(doc)
    mine = next(m for m in rows if any(e is entry for e in m["entries"]))
    by_method = method_ranks(rows)
    n_entries = sum(e["ranked"] for e in doc["entries"])
    return (f"rank {by_method[mine['key']]} of {len(by_method)} methods by mean Average over seeds "
            f"({boards_text(doc)}; per seed: {ranks(doc)[entry_key(entry)]} of {n_entries} entries)")
