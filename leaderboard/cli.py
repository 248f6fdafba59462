"""``harness leaderboard show|compare|render|add``: thin wrappers that print with rich.

``show``, ``compare`` and ``render`` read the reference board together with the user's
(``leaderboard.boards.load_boards``); ``add`` writes the user's board unless told another folder.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from leaderboard.config import AddConfig, BoardConfig, CompareConfig, RenderConfig, ShowConfig

PIPED_WIDTH = 120  # piped output with no $COLUMNS: wide enough for the tables, not one endless line
TEXT_MIN = 10  # narrowest a folding text column (method, id, filter) gets
TEXT_COLUMNS = ("id", "method", "filter")
IN_THE_ID = ("method", "seed")  # columns show leaves out: the id names both (and yours:<id> marks your rows)


def _boards(cfg: BoardConfig) -> dict:
    from leaderboard.boards import load_boards

    return load_boards(cfg.track.name, cfg.scale.name, cfg.leaderboard_dir)


def terminal_width() -> int:
    """$COLUMNS, else the terminal's width, else (piped) ``PIPED_WIDTH``."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return os.get_terminal_size(sys.stdout.fileno()).columns
    return PIPED_WIDTH


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _header(header: str, width: int) -> str:
    """A numeric column's header wrapped to the column's values (never wider than its longest word)."""
    return "\n".join(textwrap.wrap(header, width=max(width, *map(len, header.split())), break_long_words=False))


def rich_table(title: str, headers: list[str], cells: list[list[str]], text_columns: tuple[str, ...] = TEXT_COLUMNS,
               styles: list[str | None] | None = None, show_lines: bool = False):
    """A rich Table whose numeric columns never shrink below their widest value (no_wrap, min_width)
    while the text columns fold; returns (table, the narrowest width it needs)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title or None, box=box.SIMPLE_HEAD, show_lines=show_lines, title_justify="left",
                  collapse_padding=True)
    need = 2  # the edges
    for i, h in enumerate(headers):
        widest = max((len(line) for row in cells for line in _lines(row[i])), default=1)
        if h in text_columns:
            width = min(TEXT_MIN, max(widest, len(h)))
            table.add_column(h, justify="left", overflow="fold", min_width=width)
        else:
            head = _header(h, widest)
            width = max(widest, *map(len, _lines(head)))
            table.add_column(head, justify="right", no_wrap=True, min_width=width)
        need += width + 2  # padding and the separator
    for row, style in zip(cells, styles or [None] * len(cells)):
        table.add_row(*row, style=style)
    return table, need


def console(tables: list[tuple[Any, int]]):
    """A rich Console of the terminal's width, widened where a table would otherwise cut a number."""
    from rich.console import Console

    return Console(width=max([terminal_width(), *(need for _, need in tables)]), highlight=False, markup=False,
                   emoji=False)


def _method_tables(doc: dict, deltas: dict | None, width: int) -> tuple[Any, int]:
    """The per-method table on one line per method if it fits, else with the sd and CI beneath."""
    from leaderboard import table as lbtable

    headers, rows, _ = lbtable.method_table(doc, deltas)
    styles = ["bold" if r[2] == "yours" else None for r in rows]
    title = "Methods: mean ± sd over seeds; Δ with its paired bootstrap CI (* = beyond test-set noise)"
    made = None
    for multiline in (False, True):
        cells = [[lbtable.fmt(v, multiline=multiline) for v in r] for r in rows]
        made = rich_table(title, headers, cells, text_columns=("method",), styles=styles, show_lines=multiline)
        if made[1] <= width:
            break
    return made


def _ci_footer(notes: list[str], n_boot: int, level: float, computed: bool = True) -> list[str]:
    from leaderboard.boards import BASELINE

    if not computed:
        return [f"Δ to {BASELINE} not computed (ci=false). Rank —: unranked reference entry."]
    lines = [f"Δ: mean Average minus {BASELINE}'s (the method's own board's {BASELINE}, else the reference's), "
             f"paired by seed over the seeds both have; {level:.0%} CI from {n_boot} paired bootstrap resamples of "
             "the test images, averaged over the paired seeds. Rank —: unranked reference entry."]
    return lines + [f"— {n}" for n in notes]


def _deltas(doc: dict, cfg: ShowConfig) -> dict | None:
    from leaderboard.compare import method_deltas

    if not cfg.ci:
        return None
    return method_deltas(doc, n_boot=int(cfg.n_boot), level=float(cfg.level), announce=announce_resamples)


def announce_resamples(n: int) -> None:
    """Say why the first show of a board takes a while (the resamples are cached afterwards)."""
    from harness.core.paths import harness_home

    print(f"computing the paired bootstrap resamples of {n} entries (once; cached in {harness_home() / 'cache'})",
          file=sys.stderr, flush=True)


def board_files(doc: dict) -> str:
    """The two files read, and whether the user's exists yet."""
    yours = doc["boards"]["yours"]
    state = "not read (leaderboard_dir is the reference)" if yours is None else (
        yours if Path(yours).is_file() else f"{yours} (no entries yet)")
    return f"boards: reference {doc['boards']['reference']}; yours {state}"


def show(cfg: ShowConfig) -> int:
    """Print the per-method table, then the per-seed rows (``sort=``, ``tasks=true``, ``details=true``)."""
    from leaderboard import table as lbtable
    from leaderboard.boards import boards_text
    from leaderboard.compare import stability_line

    doc = _boards(cfg)
    width = terminal_width()
    deltas = _deltas(doc, cfg)
    _, _, notes = lbtable.method_table(doc, deltas)
    headers, rows = lbtable.build(doc, sort=cfg.sort, ascending=cfg.ascending, tasks=cfg.tasks)
    keep = [i for i, h in enumerate(headers) if h not in IN_THE_ID]
    styles = ["bold" if str(r[headers.index("id")]).startswith("yours:") else None for r in rows]
    headers, cells = [headers[i] for i in keep], [[lbtable.fmt(r[i]) for i in keep] for r in rows]
    methods_table = _method_tables(doc, deltas, width)
    seeds_table = rich_table("Entries: one row per seed", headers, cells, styles=styles)
    con = console([methods_table, seeds_table])
    con.print(f"{doc['track']} / {doc['scale']} leaderboard ({boards_text(doc)}; recipe {doc['recipe_hash'][:12]}, "
              f"suite {doc['suite']})")
    con.print(board_files(doc))
    con.print(methods_table[0])
    for line in _ci_footer(notes, int(cfg.n_boot), float(cfg.level), deltas is not None):
        con.print(line)
    con.print(seeds_table[0])
    con.print(stability_line(doc))
    for note in doc["notes"]:
        con.print(f"note: {note}")
    if cfg.details:
        print_details(doc)
    return 0


def print_details(doc: dict) -> None:
    """Every entry's full filter spec (arrays, lists and patterns included) and source hash."""
    from leaderboard.store import entry_key
    from leaderboard.table import filter_label

    print("\nFilter specs (full):")
    for e in doc["entries"]:
        source = (e["filter"] or {}).get("source_hash") or "—"
        print(f"  {entry_key(e)}: {filter_label(e, short=False)}  [source {source[:12]}]")


def _ci_text(ci: list[float] | None, beyond: bool | None) -> str:
    if ci is None:
        return "—"
    return f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" + (" *" if beyond else "")


def compare(cfg: CompareConfig) -> int:
    """Task-by-task deltas of a over b (entries, or methods paired by seed) with paired bootstrap CIs."""
    from leaderboard.compare import compare_entries

    doc = _boards(cfg)
    res = compare_entries(doc, str(cfg.a), str(cfg.b), n_boot=int(cfg.n_boot), seed=int(cfg.seed),
                          level=float(cfg.level))
    for note in res["notes"]:
        print(f"note: {note}")
    spreads = {s["method"]: s for s in res["seed_spread"]}
    seeded = [s for s in res["seed_spread"] if s["n"] > 1]
    headers = ["task", "metric", "a", "b", "delta", "CI", *(f"seed sd {s['method']}" for s in seeded)]
    cells = []
    for r in res["tasks"]:
        cells.append([r["task"], r["metric"], f"{r['a']:.4f}", f"{r['b']:.4f}", f"{r['delta']:+.4f}",
                      _ci_text(r["ci"], r["beyond_noise"]), *(f"{s['task_sd'][r['task']]:.4f}" for s in seeded)])
    avg = res["average"]
    cells.append(["average", "mean of tasks", f"{avg['a']:.4f}", f"{avg['b']:.4f}", f"{avg['delta']:+.4f}",
                  _ci_text(avg["ci"], avg["beyond_noise"]), *(f"{spreads[s['method']]['sd']:.4f}" for s in seeded)])
    seeds = res["seeds"]
    paired = "" if len(res["pairs"]) == 1 and not res["a"].endswith(")") and not res["b"].endswith(")") else (
        f", paired by seed over seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}")
    title = (f"{res['a']} − {res['b']}  ({res['level']:.0%} paired bootstrap CI over test images, "
             f"{res['n_boot']} resamples{paired}; * = beyond noise)")
    spread_cells = [[s["method"], ",".join(map(str, s["seeds"])), f"{s['mean']:.4f}",
                     "—" if s["sd"] is None else f"{s['sd']:.4f}", f"{s['min']:.4f}", f"{s['max']:.4f}"]
                    for s in res["seed_spread"]]
    tables = [rich_table("", headers, cells, text_columns=("task", "metric"),
                         styles=[None] * (len(cells) - 1) + ["bold"]),
              rich_table("seed spread of Average per method", ["method", "seeds", "mean", "sd", "min", "max"],
                         spread_cells, text_columns=("method",))]
    con = console(tables)
    con.print(title)
    for table, _ in tables:
        con.print(table)
    if cfg.json_out:
        Path(cfg.json_out).write_text(json.dumps(res, indent=2))
    return 0


def render(cfg: RenderConfig) -> int:
    """Write the static HTML page, Markdown and figures into ``out``."""
    from leaderboard.render import render as render_doc

    doc = _boards(cfg)
    written = render_doc(doc, cfg.out, sort=cfg.sort, n_boot=int(cfg.n_boot), level=float(cfg.level),
                         announce=announce_resamples)
    print(f"wrote {written['html']}, {written['markdown']} and {len(written['figures'])} figures")
    return 0


def _default_method_name(run_dir: Path) -> str:
    report = run_dir / "filter" / "subset.json"
    try:
        return json.loads(report.read_text())["filter"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir.name


def add(cfg: AddConfig) -> int:
    """Add a finished run to the user's board (or ``leaderboard_dir``); every refusal names its reason."""
    from leaderboard.boards import load_boards, standing_line
    from leaderboard.store import AlreadyOnBoard, add_entry, entry_from_run, leaderboard_path, user_board_dir

    track, scale = cfg.track.name, cfg.scale.name
    board_dir = Path(cfg.leaderboard_dir) if cfg.leaderboard_dir is not None else user_board_dir()
    run_dir = Path(cfg.run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"run_dir {run_dir} is not a directory")
    name: Any = cfg.method_name or _default_method_name(run_dir)
    entry = entry_from_run(run_dir, str(name), track, scale, reference=bool(cfg.reference),
                           seed=None if cfg.seed is None else int(cfg.seed))
    path = leaderboard_path(board_dir, track, scale)
    try:
        add_entry(board_dir, entry)
        print(f"added {entry['id']} to {path}")
    except AlreadyOnBoard as exc:
        print(f"{exc}: nothing to add ({path})")
    print(standing_line(load_boards(track, scale, board_dir), entry["id"]))
    return 0
