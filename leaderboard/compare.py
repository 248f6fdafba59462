"""Compare entries or methods: per-task deltas with paired bootstrap CIs over test images.

All entries of a suite were evaluated on the same test images, so each bootstrap replicate draws
one set of image indices per task and recomputes the main metric on it. :func:`resample` draws
the indices from a seeded generator, the same for every entry: the difference of two entries'
resampled metrics is therefore a paired bootstrap, and each entry's resamples can be computed
once and cached (``harness_home()/cache/bootstrap``). The CI of a paired difference is much
tighter than two independent CIs would suggest, and a CI that excludes 0 says the gain is beyond
test-set noise. Methods are compared paired by seed (the seeds both have): per replicate the
delta is averaged over the paired seeds. Seed noise is shown separately, as the spread over a
method's seeds.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.core.errors import HarnessError
from leaderboard.boards import BASELINE, board_of, method_label, methods, resolve, split_ref
from harness.core.paths import harness_home
from leaderboard.store import entry_key, write_bytes_atomic

CACHE_VERSION = 1


def load_per_example(entry: dict, base: str | Path | None = None) -> dict[str, dict[str, np.ndarray]] | None:
    """Arrays of every task from the entry's per_example folder (relative paths are under the
    leaderboard folder ``base``), or None when it is gone."""
    folder = entry.get("per_example_dir")
    if folder and base is not None and not Path(folder).is_absolute():
        folder = str(Path(base) / folder)
    if not folder or not Path(folder).is_dir():
        return None
    out = {}
    for key in entry["tasks"]:
        path = Path(folder) / f"{key}.npz"
        if not path.is_file():
            return None
        with np.load(path) as npz:
            out[key] = {k: npz[k] for k in npz.files}
    return out


def _cache_path(entry: dict, tasks: dict[str, str], n_boot: int, seed: int, base: str | Path | None) -> Path | None:
    """Where the entry's resamples are cached: keyed by its arrays' files (path, size, mtime), the
    tasks and metrics, n_boot and seed; None when the arrays are gone."""
    folder = entry.get("per_example_dir")
    if folder and base is not None and not Path(folder).is_absolute():
        folder = str(Path(base) / folder)
    if not folder:
        return None
    files = [Path(folder) / f"{k}.npz" for k in tasks]
    if not all(f.is_file() for f in files):
        return None
    ident = {"v": CACHE_VERSION, "tasks": tasks, "n_boot": n_boot, "seed": seed,
             "files": [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
    return harness_home() / "cache" / "bootstrap" / f"{digest[:32]}.npz"


def resample(arrays: dict[str, dict[str, np.ndarray]], tasks: dict[str, str], n_boot: int, seed: int
             ) -> dict[str, np.ndarray]:
    """The entry's main metric of each task on ``n_boot`` resamples of its test images, plus the
    number of units per task (``n:<task>``). A task's indices depend only on ``seed``, the task key
    and its test set size, so every entry of a suite gets the same draws."""
    from evals.metrics import n_units, recompute

    out = {}
    for key, metric in tasks.items():
        rng = np.random.default_rng([seed, int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)])
        n = n_units(arrays[key])
        out[key] = np.array([recompute(metric, arrays[key], rng.integers(0, n, size=n)) for _ in range(n_boot)])
        out[f"n:{key}"] = np.array(n)
    return out


def resampled(entry: dict, tasks: dict[str, str], n_boot: int, seed: int, base: str | Path | None = None
              ) -> dict[str, np.ndarray] | None:
    """:func:`resample` of one entry, read from the cache when it was computed before; None when
    the entry has no per-example arrays."""
    path = _cache_path(entry, tasks, n_boot, seed, base)
    if path is None:
        return None
    if path.is_file():
        with np.load(path) as npz:
            return {k: npz[k] for k in npz.files}
    arrays = load_per_example(entry, base)
    if arrays is None:
        return None
    out = resample(arrays, tasks, n_boot, seed)
    buf = io.BytesIO()
    np.savez(buf, **out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, buf.getvalue())
    except OSError:
        pass  # a read-only home only costs the recomputation next time
    return out


def pair_by_seed(a_runs: list[dict], b_runs: list[dict], strict: bool = False) -> list[tuple[dict, dict]]:
    """(a, b) pairs with the same seed; two single entries pair as they are unless ``strict``."""
    if len(a_runs) == len(b_runs) == 1 and not strict:
        return [(a_runs[0], b_runs[0])]
    b_by_seed = {e["seed"]: e for e in b_runs}
    return [(a, b_by_seed[a["seed"]]) for a in sorted(a_runs, key=lambda e: e["seed"]) if a["seed"] in b_by_seed]


def paired_deltas(pairs: list[tuple[dict, dict]], tasks: dict[str, str], n_boot: int, seed: int,
                  base: str | Path | None = None) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    """Per task, the resampled delta a − b averaged over the pairs (None, with the reasons, when an
    entry has no per-example arrays)."""
    entries = {id(e): e for pair in pairs for e in pair}
    boots = {i: resampled(e, tasks, n_boot, seed, base) for i, e in entries.items()}
    missing = [f"entry {entry_key(e)!r} has no per-example arrays (per_example_dir missing): no confidence intervals"
               for i, e in entries.items() if boots[i] is None]
    if missing:
        return None, missing
    out = {}
    for key in tasks:
        sizes = {int(boots[id(e)][f"n:{key}"]) for pair in pairs for e in pair}
        if len(sizes) > 1:
            raise HarnessError(f"task {key!r}: the entries were evaluated on different test sets "
                               f"({' vs '.join(map(str, sorted(sizes)))} examples); they cannot be compared pairwise")
        out[key] = np.mean([boots[id(a)][key] - boots[id(b)][key] for a, b in pairs], axis=0)
    return out, []


def interval(deltas: np.ndarray, level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(deltas, tail)), float(np.percentile(deltas, 100 - tail))]


def _beyond(ci: list[float] | None) -> bool | None:
    return None if ci is None else (ci[0] > 0 or ci[1] < 0)


def seed_spread(runs: list[dict], label: str) -> dict[str, Any]:
    """Mean, sd, min and max of Average and of each task over a method's seeds."""
    avg = np.array([e["aggregates"]["Average"] for e in runs], dtype=float)
    sd = (lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else None)
    per_task = {k: sd(np.array([e["tasks"][k]["value"] for e in runs])) for k in runs[0]["tasks"]}
    return {"method": label, "n": len(runs), "seeds": sorted(e["seed"] for e in runs),
            "mean": float(avg.mean()), "sd": sd(avg), "min": float(avg.min()), "max": float(avg.max()),
            "task_sd": per_task}


def _side(doc: dict, ref: str) -> tuple[list[dict], str, str | None]:
    """The entries ``ref`` names, how to call them in a title, and the ambiguity note."""
    runs, note = resolve(doc, ref)
    if split_ref(ref)[1] == runs[0]["id"]:
        return runs, entry_key(runs[0]), note
    label = method_label(runs[0]["method_name"], board_of(runs[0]))
    return runs, f"{label} (seeds {','.join(str(e['seed']) for e in runs)})", note


def compare_entries(doc: dict, a_ref: str, b_ref: str, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95, base: str | Path | None = None) -> dict[str, Any]:
    """Task-by-task and average deltas of ``a`` over ``b`` (entry keys/ids, or method names: all
    seeds, paired by seed), with paired bootstrap CIs when the per-example arrays are there
    (``base``: the leaderboard folder, for a single board's relative per_example paths)."""
    a_runs, a_name, a_note = _side(doc, a_ref)
    b_runs, b_name, b_note = _side(doc, b_ref)
    pairs = pair_by_seed(a_runs, b_runs)
    if not pairs:
        raise HarnessError(f"{a_ref!r} (seeds {', '.join(str(e['seed']) for e in a_runs)}) and {b_ref!r} "
                           f"(seeds {', '.join(str(e['seed']) for e in b_runs)}) share no seed to pair by")
    tasks = {k: t["metric"] for k, t in pairs[0][0]["tasks"].items() if k in pairs[0][1]["tasks"]}
    boots, notes = paired_deltas(pairs, tasks, n_boot, seed, base)
    mean = (lambda side, key: float(np.mean([p[side]["tasks"][key]["value"] for p in pairs])))
    rows = []
    for key, metric in tasks.items():
        ci = interval(boots[key], level) if boots else None
        rows.append({"task": key, "metric": metric, "a": mean(0, key), "b": mean(1, key),
                     "delta": mean(0, key) - mean(1, key), "ci": ci, "beyond_noise": _beyond(ci)})
    avg_ci = interval(np.mean(np.stack(list(boots.values())), axis=0), level) if boots else None
    average = {"a": float(np.mean([r["a"] for r in rows])), "b": float(np.mean([r["b"] for r in rows])),
               "delta": float(np.mean([r["delta"] for r in rows])), "ci": avg_ci, "beyond_noise": _beyond(avg_ci)}
    by_method = {(m["board"], m["method"]): m for m in methods(doc)}
    wanted = dict.fromkeys((board_of(runs[0]), runs[0]["method_name"]) for runs in (a_runs, b_runs))
    spreads = [seed_spread(by_method[k]["entries"], by_method[k]["label"]) for k in wanted]
    return {"a": a_name, "b": b_name, "seeds": [p[0]["seed"] for p in pairs],
            "pairs": [[entry_key(x), entry_key(y)] for x, y in pairs], "level": level, "n_boot": n_boot,
            "tasks": rows, "average": average, "seed_spread": spreads,
            "notes": [n for n in (a_note, b_note) if n] + notes}


def _method_pairs(doc: dict) -> dict[str, tuple[dict, list | str | None]]:
    """Per method key: (its baseline row, its pairs by seed, or why there are none; None: it is the baseline)."""
    rows = methods(doc)
    base_of = {r["board"]: r for r in rows if r["method"] == BASELINE}
    plan: dict[str, tuple[dict, list | str | None]] = {}
    for m in rows:
        baseline = base_of.get(m["board"]) or base_of.get("reference")
        if baseline is None:
            plan[m["key"]] = ({}, f"no {BASELINE} entry on the board")
        elif baseline is m:
            plan[m["key"]] = (baseline, None)
        else:
            pairs = pair_by_seed(m["entries"], baseline["entries"], strict=True)
            plan[m["key"]] = (baseline, pairs or f"no seed in common with {baseline['label']} "
                                                 f"(seeds {', '.join(map(str, baseline['seeds']))})")
    return plan


def method_deltas(doc: dict, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                  announce: Callable[[int], None] | None = None) -> dict[str, dict[str, Any]]:
    """Per method (by key): the delta of mean Average to no_filter over the seeds both have, with its
    paired bootstrap CI, or the reason there is none (``note``). The baseline is the method's own
    board's no_filter, else the reference's; the baseline row itself gets ``baseline: True``.
    ``announce`` hears how many entries' resamples are not cached yet, before they are computed."""
    plan = _method_pairs(doc)
    involved = {id(e): e for _, pairs in plan.values() if isinstance(pairs, list) for pair in pairs for e in pair}
    if announce:
        pending = 0
        for e in involved.values():
            path = _cache_path(e, {k: t["metric"] for k, t in e["tasks"].items()}, n_boot, seed, None)
            pending += path is not None and not path.is_file()
        if pending:
            announce(pending)
    out: dict[str, dict[str, Any]] = {}
    for key, (baseline, pairs) in plan.items():
        if pairs is None:
            out[key] = {"baseline": True, "delta": 0.0, "ci": None, "note": None}
            continue
        if isinstance(pairs, str):
            out[key] = {"delta": None, "ci": None, "note": pairs}
            continue
        tasks = {k: t["metric"] for k, t in pairs[0][0]["tasks"].items()}
        try:
            boots, missing = paired_deltas(pairs, tasks, n_boot, seed)
        except HarnessError as exc:  # e.g. evaluated on another version of the test sets: say so in the table
            boots, missing = None, [str(exc)]
        delta = float(np.mean([a["aggregates"]["Average"] - b["aggregates"]["Average"] for a, b in pairs]))
        ci = interval(np.mean(np.stack(list(boots.values())), axis=0), level) if boots else None
        out[key] = {"delta": delta, "ci": ci, "beyond_noise": _beyond(ci), "against": baseline["label"],
                    "seeds": [a["seed"] for a, _ in pairs], "note": "; ".join(missing) or None}
    return out


def seed_stability(doc: dict) -> dict[str, Any]:
    """Kendall τ between the rankings of methods by Average under each pair of seeds.

    Only ranked methods that ran with both seeds of a pair count; τ = 1 means every seed orders
    the methods the same way, so a ranking is not an accident of one seed.
    """
    from itertools import combinations

    from scipy.stats import kendalltau

    ranked = [e for e in doc["entries"] if e["ranked"]]
    score = {(board_of(e), e["method_name"], e["seed"]): e["aggregates"]["Average"] for e in ranked}
    names = list(dict.fromkeys((board_of(e), e["method_name"]) for e in ranked))
    pairs = []
    for s, t in combinations(sorted({e["seed"] for e in ranked}), 2):
        both = [m for m in names if (*m, s) in score and (*m, t) in score]
        if len(both) >= 2:
            tau = kendalltau([score[(*m, s)] for m in both], [score[(*m, t)] for m in both]).statistic
            pairs.append({"seeds": [s, t], "n_methods": len(both), "tau": float(tau)})
    taus = [p["tau"] for p in pairs if not np.isnan(p["tau"])]
    return {"pairs": pairs, "mean_tau": float(np.mean(taus)) if taus else None}


def stability_line(doc: dict) -> str:
    """One sentence on whether the method ranking holds across seeds (Kendall τ of seed pairs)."""
    st = seed_stability(doc)
    if st["mean_tau"] is None:
        return "Ranking stability across seeds: needs ranked methods run with at least two common seeds."
    pairs = ", ".join(f"seeds {p['seeds'][0]}/{p['seeds'][1]}: {p['tau']:.2f}" for p in st["pairs"])
    return f"Ranking stability across seeds (Kendall τ of methods by Average): mean {st['mean_tau']:.2f} ({pairs})."
