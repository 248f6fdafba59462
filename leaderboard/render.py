"""Render a leaderboard as a static page: HTML and Markdown with PNG figures beside them.

No JavaScript and nothing fetched from the network: the page is a table plus images made by
matplotlib's Agg canvas (``Figure`` objects, no pyplot global state). Figures show the mean over
a method's seeds with the seed spread as error bars, so a ranking can be judged by eye.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from leaderboard import table as lbtable
from leaderboard.compare import stability_line
from leaderboard.store import write_bytes_atomic, write_text_atomic

FIG_DIR = "figures"
PNG_META = {"Software": None}  # no version stamp: the same leaderboard renders to the same bytes


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def method_summary(doc: dict) -> list[dict[str, Any]]:
    """One row per method: mean and seed sd of each aggregate and task, mean subset size."""
    out = []
    for name in dict.fromkeys(e["method_name"] for e in doc["entries"]):
        runs = [e for e in doc["entries"] if e["method_name"] == name]
        vals = {a: [e["aggregates"].get(a) for e in runs] for a in lbtable.aggregate_names(doc)}
        vals.update({k: [e["tasks"].get(k, {}).get("value") for e in runs] for k in lbtable.task_keys(doc)})
        stats = {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
                 for k, v in vals.items() if None not in v}
        sizes = [e["subset"]["size"] for e in runs if e["subset"]]
        out.append({"method": name, "n": len(runs), "reference": not all(e["ranked"] for e in runs),
                    "size": float(np.mean(sizes)) if sizes else None, "stats": stats})
    return sorted(out, key=lambda m: -m["stats"].get("Average", (0.0, 0.0))[0])


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata=PNG_META)
    write_bytes_atomic(path, buf.getvalue())


def bar_chart(methods: list[dict], aggregate: str, path: Path) -> None:
    from matplotlib.figure import Figure

    rows = [m for m in methods if aggregate in m["stats"]]
    fig = Figure(figsize=(max(4.0, 0.7 * len(rows) + 2), 3.2))
    ax = fig.subplots()
    means = [m["stats"][aggregate][0] for m in rows]
    sds = [m["stats"][aggregate][1] for m in rows]
    colors = ["#b0b0b0" if m["reference"] else "#3b75af" for m in rows]
    ax.bar(range(len(rows)), means, yerr=sds, capsize=3, color=colors)
    ax.set_xticks(range(len(rows)), [m["method"] + (" (ref)" if m["reference"] else "") for m in rows],
                  rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(aggregate)
    ax.set_title(f"{aggregate}: mean over seeds ± sd (grey: unranked reference)", fontsize=9)
    _save(fig, path)


def size_vs_score(doc: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for e in doc["entries"]:
        if e["subset"] is None:
            continue
        ax.scatter(e["subset"]["size"], e["aggregates"]["Average"], marker="x" if e["reference"] else "o",
                   color="#888888" if not e["ranked"] else "#3b75af")
    for m in method_summary(doc):
        if m["size"] is not None:
            ax.annotate(m["method"], (m["size"], m["stats"]["Average"][0]), fontsize=7,
                        xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel("subset size (samples kept)")
    ax.set_ylabel("Average")
    ax.set_title("filtered subset size vs average score (x: reference)", fontsize=9)
    _save(fig, path)


def heatmap(doc: dict, methods: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    keys = lbtable.task_keys(doc)
    grid = np.array([[m["stats"].get(k, (np.nan, 0))[0] for k in keys] for m in methods])
    fig = Figure(figsize=(max(4.5, 0.75 * len(keys) + 2.5), 0.4 * len(methods) + 1.8))
    ax = fig.subplots()
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(1e-9, float(np.nanmax(grid))), aspect="auto")
    ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(methods)), [m["method"] for m in methods], fontsize=7)
    if grid.size <= 600:
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 * np.nanmax(grid) else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title("main metric per task (mean over seeds)", fontsize=9)
    _save(fig, path)


def figures(doc: dict, out: Path) -> list[tuple[str, str]]:
    """Write every figure into ``out/figures``; return (relative path, caption) pairs."""
    (out / FIG_DIR).mkdir(parents=True, exist_ok=True)
    methods = method_summary(doc)
    made = []
    for agg in lbtable.aggregate_names(doc):
        rel = f"{FIG_DIR}/bars_{_slug(agg)}.png"
        bar_chart(methods, agg, out / rel)
        made.append((rel, f"{agg} by method"))
    size_vs_score(doc, out / f"{FIG_DIR}/size_vs_score.png")
    made.append((f"{FIG_DIR}/size_vs_score.png", "subset size vs Average"))
    heatmap(doc, methods, out / f"{FIG_DIR}/heatmap.png")
    made.append((f"{FIG_DIR}/heatmap.png", "per-task heatmap"))
    return made


def to_html(doc: dict, headers: list[str], rows: list[list[Any]], figs: list[tuple[str, str]]) -> str:
    esc = html.escape
    title = f"Leaderboard: {doc['track']} / {doc['scale']}"
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "\n".join(
        f'<tr data-id="{esc(str(r[1]))}">' + "".join(f"<td{' class=t' if isinstance(v, str) else ''}>{esc(lbtable.fmt(v))}</td>" for v in r) + "</tr>"
        for r in rows)
    figs_html = "\n".join(f'<figure><img src="{esc(p)}" alt="{esc(c)}"><figcaption>{esc(c)}</figcaption></figure>'
                          for p, c in figs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td.t{{text-align:left}}figure{{display:inline-block;margin:1em}}</style>
</head><body>
<h1>{esc(title)}</h1>
<p>Scale recipe hash <code>{esc(doc['recipe_hash'])}</code>, eval suite <code>{esc(doc['suite'])}</code>,
{len(doc['entries'])} entries. Rank is by Average among ranked entries; reference entries are not ranked.</p>
<p id="stability">{esc(stability_line(doc))}</p>
<table id="leaderboard"><thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody></table>
<h2>Figures</h2>
{figs_html}
</body></html>
"""


def to_markdown(doc: dict, headers: list[str], rows: list[list[Any]], figs: list[tuple[str, str]]) -> str:
    cell = (lambda v: lbtable.fmt(v).replace("|", "\\|"))
    lines = [f"# Leaderboard: {doc['track']} / {doc['scale']}", "",
             f"Recipe hash `{doc['recipe_hash']}`, eval suite `{doc['suite']}`, {len(doc['entries'])} entries. "
             "Rank is by Average among ranked entries; reference entries are not ranked.", "",
             stability_line(doc), "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    lines += [""] + [f"![{c}]({p})" for p, c in figs]
    return "\n".join(lines) + "\n"


def render(doc: dict, out_dir: str | Path, sort: str = "rank") -> dict[str, str]:
    """Write ``index.html``, ``leaderboard.md`` and ``figures/*.png`` into ``out_dir``."""
    if not doc["entries"]:
        raise HarnessError(f"the {doc['track']}/{doc['scale']} leaderboard has no entries to render")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    headers, rows = lbtable.build(doc, sort=sort, tasks=True)
    figs = figures(doc, out)
    write_text_atomic(out / "leaderboard.md", to_markdown(doc, headers, rows, figs))
    write_text_atomic(out / "index.html", to_html(doc, headers, rows, figs))
    return {"html": str(out / "index.html"), "markdown": str(out / "leaderboard.md"),
            "figures": [str(out / p) for p, _ in figs]}
