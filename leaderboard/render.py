"""Render a leaderboard as a static page: HTML and Markdown with PNG figures beside them.

No JavaScript and nothing fetched from the network: tables plus images made by matplotlib's Agg
canvas (``Figure`` objects, no pyplot global state). The per-method table comes first (mean ± sd
over seeds, the delta to no_filter with its paired bootstrap CI), then one row per seed; per-task
scores sit in a heatmap and a collapsible table, full filter specs in another. Bar charts are
horizontal with the method names on the y axis, and a method run with one seed has no error bar.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from harness.core.errors import HarnessError
from leaderboard import table as lbtable
from leaderboard.boards import boards_text, methods
from leaderboard.compare import method_deltas, stability_line
from leaderboard.store import entry_key, write_bytes_atomic, write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIG_DIR = "figures"
PNG_META = {"Software": None}  # no version stamp: the same leaderboard renders to the same bytes
COLORS = {"ranked": "#3b75af", "unranked": "#b0b0b0", "yours": "#e07b39"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _color(m: dict) -> str:
    return COLORS["yours"] if m["board"] == "yours" else COLORS["ranked" if m["ranked"] else "unranked"]


def _save(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata=PNG_META)
    write_bytes_atomic(path, buf.getvalue())


def bar_chart(rows: list[dict], aggregate: str) -> Figure:
    """Horizontal bars of the mean over seeds, best on top; ± sd whiskers only where n > 1."""
    from matplotlib.figure import Figure

    rows = [m for m in rows if aggregate in m["stats"]][::-1]
    fig = Figure(figsize=(6.4, 0.32 * len(rows) + 1.1), layout="tight")
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.barh(y, [m["stats"][aggregate][0] for m in rows], color=[_color(m) for m in rows])
    spread = [(i, m["stats"][aggregate]) for i, m in enumerate(rows) if m["stats"][aggregate][1] is not None]
    if spread:
        ax.errorbar([s[0] for _, s in spread], [i for i, _ in spread], xerr=[s[1] for _, s in spread],
                    fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_yticks(y, [f"{m['label']} (n={m['n']})" for m in rows], fontsize=8)
    ax.set_xlabel(f"{aggregate} (mean over seeds; whisker ± sd where n > 1)", fontsize=8)
    ax.set_title(f"{aggregate} by method (blue: ranked, grey: unranked reference, orange: yours)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    return fig


def size_vs_score(rows: list[dict]) -> Figure:
    """Subset size against Average, one colour per method named in a legend (no labels to collide)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.8), layout="tight")
    ax = fig.subplots()
    shown = [r for r in rows if r["size"] is not None]
    palette = colormaps["tab10" if len(shown) <= 10 else "tab20"]
    for i, m in enumerate(shown):
        sizes = [e["subset"]["size"] for e in m["entries"]]
        scores = [e["aggregates"]["Average"] for e in m["entries"]]
        ax.scatter(sizes, scores, color=palette(i % palette.N), marker="o" if m["ranked"] else "x", s=22,
                   label=f"{m['label']} (n={m['n']})")
    ax.set_xlabel("subset size (samples kept)", fontsize=8)
    ax.set_ylabel("Average", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.set_title("subset size vs Average, one point per seed (x: unranked reference)", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return fig


def heatmap(doc: dict, rows: list[dict]) -> Figure:
    """Methods × tasks, the mean main metric over seeds in each cell."""
    from matplotlib.figure import Figure

    keys = lbtable.task_keys(doc)
    grid = np.array([[m["stats"].get(k, (np.nan, None))[0] for k in keys] for m in rows])
    fig = Figure(figsize=(max(4.5, 0.75 * len(keys) + 3), 0.4 * len(rows) + 1.8), layout="tight")
    ax = fig.subplots()
    top = max(1e-9, float(np.nanmax(grid)))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=top, aspect="auto")
    ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [m["label"] for m in rows], fontsize=7)
    if grid.size <= 600:
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 * top else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title("main metric per task (mean over seeds)", fontsize=9)
    return fig


def figures(doc: dict, out: Path) -> list[tuple[str, str]]:
    """Write every figure into ``out/figures``; return (relative path, caption) pairs."""
    (out / FIG_DIR).mkdir(parents=True, exist_ok=True)
    rows = methods(doc)
    made = [(f"bars_{_slug(agg)}.png", f"{agg} by method", bar_chart(rows, agg)) for agg in lbtable.aggregate_names(doc)]
    made += [("size_vs_score.png", "subset size vs Average", size_vs_score(rows)),
             ("heatmap.png", "per-task heatmap", heatmap(doc, rows))]
    for name, _, fig in made:
        _save(fig, out / FIG_DIR / name)
    return [(f"{FIG_DIR}/{name}", caption) for name, caption, _ in made]


def _cells(row: list[Any]) -> str:
    """Text left-aligned (class t), numbers right; a mean's sd and a delta's CI on a second line."""
    return "".join(f"<td{' class=t' if isinstance(v, str) else ''}>"
                   f"{html.escape(lbtable.fmt(v, multiline=True)).replace(chr(10), '<br>')}</td>" for v in row)


TEXT_HEADERS = ("id", "method", "board", "filter", "filter spec", "source")


def _table(table_id: str, headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th{' class=t' if h in TEXT_HEADERS else ''}>{html.escape(h)}</th>" for h in headers)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table>"


def _tr(attrs: dict[str, str], cells: str, yours: bool) -> str:
    extra = "".join(f' {k}="{html.escape(v)}"' for k, v in attrs.items())
    return f"<tr{extra}{' class=yours' if yours else ''}>{cells}</tr>"


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}.t{text-align:left}td.t{max-width:24em;overflow-wrap:anywhere}
tr.yours{background:#fdf0e6}details{margin:1em 0}summary{cursor:pointer;font-weight:bold}.notes{font-size:13px;color:#444}
#tasks-wrap{overflow-x:auto}figure{display:inline-block;margin:1em;vertical-align:top}figure img{max-width:560px}"""


def to_html(doc: dict, page: dict[str, Any], figs: list[tuple[str, str]]) -> str:
    esc = html.escape
    title = f"Leaderboard: {doc['track']} / {doc['scale']}"
    mh, mrows, notes = page["methods"]
    methods_rows = [_tr({"data-method": m["key"], "data-board": m["board"]}, _cells(r), m["board"] == "yours")
                    for m, r in zip(methods(doc), mrows)]
    by_key = {entry_key(e): e for e in doc["entries"]}
    sh, srows = page["seeds"]
    seed_rows = [_tr({"data-id": str(r[1]), "data-board": by_key[r[1]].get("board", "reference")}, _cells(r),
                     by_key[r[1]].get("board") == "yours") for r in srows]
    th, trows = page["tasks"]
    task_rows = [_tr({"data-id": str(r[0])}, _cells(r), by_key[r[0]].get("board") == "yours") for r in trows]
    spec_rows = [f"<tr><td class=t>{esc(entry_key(e))}</td><td class=t>{esc(lbtable.filter_label(e, short=False))}</td>"
                 f"<td class=t><code>{esc(((e['filter'] or {}).get('source_hash') or '—')[:12])}</code></td></tr>"
                 for e in doc["entries"]]
    figs_html = "\n".join(f'<figure><img src="{esc(p)}" alt="{esc(c)}"><figcaption>{esc(c)}</figcaption></figure>'
                          for p, c in figs)
    note_items = "".join(f"<li>— {esc(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{STYLE}</style>
</head><body>
<h1>{esc(title)}</h1>
<p>{esc(boards_text(doc).capitalize())}: {len(doc['entries'])} entries. Scale recipe hash <code>{esc(doc['recipe_hash'])}</code>,
eval suite <code>{esc(doc['suite'])}</code>. Rank is by Average among ranked entries; reference entries (rank —) are not ranked.</p>
<h2>Methods</h2>
{_table("methods", mh, methods_rows)}
<div class="notes"><p>{esc(page["delta_note"])}</p><ul id="method-notes">{note_items}</ul></div>
<p id="stability">{esc(stability_line(doc))}</p>
<h2>Entries (one row per seed)</h2>
{_table("leaderboard", sh, seed_rows)}
<details id="per-task"><summary>Per-task scores (one row per seed)</summary><div id="tasks-wrap">
{_table("tasks", th, task_rows)}
</div></details>
<details id="filter-specs"><summary>Full filter specs (arrays, lists, patterns)</summary>
{_table("specs", ["id", "filter spec", "source"], spec_rows)}
</details>
<h2>Figures</h2>
{figs_html}
</body></html>
"""


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    cell = (lambda v: lbtable.fmt(v).replace("|", "\\|"))
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + [
        "| " + " | ".join(cell(v) for v in r) + " |" for r in rows]


def to_markdown(doc: dict, page: dict[str, Any], figs: list[tuple[str, str]]) -> str:
    mh, mrows, notes = page["methods"]
    lines = [f"# Leaderboard: {doc['track']} / {doc['scale']}", "",
             f"{boards_text(doc).capitalize()}: {len(doc['entries'])} entries. Recipe hash `{doc['recipe_hash']}`, "
             f"eval suite `{doc['suite']}`. Rank is by Average among ranked entries; reference entries (rank —) "
             "are not ranked.", "", "## Methods", "", *_md_table(mh, mrows), "", page["delta_note"], "",
             *(f"- — {n}" for n in notes), *([""] if notes else []), stability_line(doc), "",
             "## Entries (one row per seed)", "", *_md_table(*page["seeds"]), "",
             "<details><summary>Per-task scores (one row per seed)</summary>", "", *_md_table(*page["tasks"]), "",
             "</details>", "", "<details><summary>Full filter specs</summary>", ""]
    lines += [f"- `{entry_key(e)}`: `{lbtable.filter_label(e, short=False)}`" for e in doc["entries"]]
    lines += ["", "</details>", "", "## Figures", ""] + [f"![{c}]({p})" for p, c in figs]
    return "\n".join(lines) + "\n"


def page_tables(doc: dict, sort: str = "rank", n_boot: int = 1000, level: float = 0.95,
                announce: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The page's tables: per method, per seed (no task columns), per task (id + task columns)."""
    headers, rows = lbtable.build(doc, sort=sort, tasks=True)
    keys = lbtable.task_keys(doc)
    split = [i for i, h in enumerate(headers) if h not in keys]
    task_cols = [headers.index("id")] + [headers.index(k) for k in keys]
    delta_note = (f"Δ: mean Average minus no_filter's (the method's own board's no_filter, else the reference's), "
                  f"paired by seed over the seeds both have; {level:.0%} CI from {n_boot} paired bootstrap resamples "
                  "of the test images, averaged over the paired seeds; * = beyond test-set noise.")
    deltas = method_deltas(doc, n_boot=n_boot, level=level, announce=announce)
    return {"methods": lbtable.method_table(doc, deltas),
            "seeds": ([headers[i] for i in split], [[r[i] for i in split] for r in rows]),
            "tasks": ([headers[i] for i in task_cols], [[r[i] for i in task_cols] for r in rows]),
            "delta_note": delta_note}


def render(doc: dict, out_dir: str | Path, sort: str = "rank", n_boot: int = 1000, level: float = 0.95,
           announce: Callable[[int], None] | None = None) -> dict[str, str]:
    """Write ``index.html``, ``leaderboard.md`` and ``figures/*.png`` into ``out_dir``."""
    if not doc["entries"]:
        raise HarnessError(f"the {doc['track']}/{doc['scale']} leaderboard has no entries to render")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = page_tables(doc, sort=sort, n_boot=n_boot, level=level, announce=announce)
    figs = figures(doc, out)
    write_text_atomic(out / "leaderboard.md", to_markdown(doc, page, figs))
    write_text_atomic(out / "index.html", to_html(doc, page, figs))
    return {"html": str(out / "index.html"), "markdown": str(out / "leaderboard.md"),
            "figures": [str(out / p) for p, _ in figs]}
