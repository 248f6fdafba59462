"""``harness leaderboard show|compare|render|add``: thin wrappers that print with rich."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def _need(cfg, command: str, *keys: str) -> None:
    """Required keys (``???`` in the YAML) named in one line instead of an OmegaConf traceback."""
    from omegaconf import OmegaConf

    missing = [k for k in keys if OmegaConf.is_missing(cfg, k)]
    if missing:
        raise HarnessError(f"harness leaderboard {command} needs {', '.join(k + '=...' for k in missing)}")


def _where(cfg) -> tuple[Path, str, str]:
    return Path(cfg.leaderboard_dir), cfg.track.name, cfg.scale.name


def _console():
    """A terminal's own width; piped output is not wrapped (wide tables stay one line per row)."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 400)


def show(cfg) -> int:
    """Print the leaderboard, sorted by any column (``sort=``; ``tasks=true`` adds per-task columns)."""
    from rich.table import Table

    from leaderboard import table as lbtable
    from leaderboard.compare import stability_line
    from leaderboard.store import load_leaderboard

    doc = load_leaderboard(*_where(cfg))
    headers, rows = lbtable.build(doc, sort=cfg.sort, ascending=cfg.ascending, tasks=cfg.tasks)
    out = Table(title=f"{doc['track']} / {doc['scale']} leaderboard (recipe {doc['recipe_hash'][:12]}, "
                      f"suite {doc['suite']})")
    for h in headers:
        out.add_column(h, justify="left" if h in ("id", "method", "filter", "reference") else "right",
                       no_wrap=h in ("rank", "id"))
    for r in rows:
        out.add_row(*(lbtable.fmt(v) for v in r))
    con = _console()
    con.print(out)
    con.print(stability_line(doc))
    return 0


def _ci_text(ci: list[float] | None, beyond: bool | None) -> str:
    if ci is None:
        return "—"
    return f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" + (" *" if beyond else "")


def compare(cfg) -> int:
    """Task-by-task deltas of a over b with paired bootstrap CIs, and each method's seed spread."""
    from rich.table import Table

    from leaderboard.compare import compare_entries
    from leaderboard.store import load_leaderboard

    _need(cfg, "compare", "a", "b")
    where = _where(cfg)
    doc = load_leaderboard(*where)
    res = compare_entries(doc, str(cfg.a), str(cfg.b), n_boot=int(cfg.n_boot), seed=int(cfg.seed),
                          level=float(cfg.level), base=where[0])
    con = _console()
    tab = Table(title=f"{res['a']} − {res['b']}  ({res['level']:.0%} paired bootstrap CI over test images, "
                      f"{res['n_boot']} resamples; * = beyond noise)")
    spreads = {s["method"]: s for s in res["seed_spread"]}
    seeded = [s for s in res["seed_spread"] if s["n"] > 1]
    for h in ("task", "metric", "a", "b", "delta", "CI", *(f"seed sd {s['method']}" for s in seeded)):
        tab.add_column(h, justify="left" if h in ("task", "metric") else "right")
    for r in res["tasks"]:
        sds = [f"{s['task_sd'][r['task']]:.4f}" for s in seeded]
        tab.add_row(r["task"], r["metric"], f"{r['a']:.4f}", f"{r['b']:.4f}", f"{r['delta']:+.4f}",
                    _ci_text(r["ci"], r["beyond_noise"]), *sds)
    avg = res["average"]
    tab.add_row("average", "mean of tasks", f"{avg['a']:.4f}", f"{avg['b']:.4f}", f"{avg['delta']:+.4f}",
                _ci_text(avg["ci"], avg["beyond_noise"]), *(f"{spreads[s['method']]['sd']:.4f}" for s in seeded),
                style="bold")
    con.print(tab)
    spread = Table(title="seed spread of Average per method")
    for h in ("method", "seeds", "mean", "sd", "min", "max"):
        spread.add_column(h, justify="left" if h == "method" else "right")
    for s in res["seed_spread"]:
        sd = "—" if s["sd"] is None else f"{s['sd']:.4f}"
        spread.add_row(s["method"], ",".join(map(str, s["seeds"])), f"{s['mean']:.4f}", sd,
                       f"{s['min']:.4f}", f"{s['max']:.4f}")
    con.print(spread)
    for note in res["notes"]:
        con.print(f"note: {note}")
    if cfg.get("json_out"):
        Path(cfg.json_out).write_text(json.dumps(res, indent=2))
    return 0


def render(cfg) -> int:
    """Write the static HTML page, Markdown and figures into ``out``."""
    from leaderboard.render import render as render_doc
    from leaderboard.store import load_leaderboard

    _need(cfg, "render", "out")
    written = render_doc(load_leaderboard(*_where(cfg)), cfg.out, sort=cfg.sort)
    print(f"wrote {written['html']}, {written['markdown']} and {len(written['figures'])} figures")
    return 0


def _default_method_name(run_dir: Path) -> str:
    report = run_dir / "filter" / "subset.json"
    try:
        return json.loads(report.read_text())["filter"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir.name


def add(cfg) -> int:
    """Add a finished run to its leaderboard; every refusal names its reason."""
    from leaderboard.store import add_entry, entry_from_run, rank_of

    _need(cfg, "add", "run_dir")
    leaderboard_dir, track, scale = _where(cfg)
    run_dir = Path(cfg.run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"run_dir {run_dir} is not a directory")
    name: Any = cfg.method_name or _default_method_name(run_dir)
    entry = entry_from_run(run_dir, str(name), track, scale, reference=bool(cfg.reference),
                           seed=None if cfg.seed is None else int(cfg.seed))
    entry_id = add_entry(leaderboard_dir, entry)
    rank = rank_of(leaderboard_dir, entry)
    where = f"rank {rank}" if rank is not None else "unranked reference"
    print(f"added {entry_id} to {leaderboard_dir / f'{track}_{scale}.json'} ({where})")
    return 0
