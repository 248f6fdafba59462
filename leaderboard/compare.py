"""Compare two leaderboard entries: per-task deltas with paired bootstrap CIs over test images.

Both entries were evaluated on the same test images, so each bootstrap replicate draws one set
of image indices per task and recomputes both models' main metric on it (a paired bootstrap):
the CI of the difference is much tighter than two independent CIs would suggest, and a CI that
excludes 0 says the gain is beyond test-set noise. Seed noise is separate: it is shown as the
spread over the entries of the same method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

def find_entry(doc: dict, entry_id: str) -> dict:
    for e in doc["entries"]:
        if e["id"] == entry_id:
            return e
    ids = ", ".join(e["id"] for e in doc["entries"]) or "none"
    raise HarnessError(f"no entry {entry_id!r} in the {doc['track']}/{doc['scale']} leaderboard (entries: {ids})")


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


def _paired_bootstrap(a: dict, b: dict, tasks: dict[str, str], n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Delta (a − b) of each task's main metric on ``n_boot`` paired resamples of its test images."""
    from evals.metrics import n_units, recompute

    rng = np.random.default_rng(seed)
    out = {}
    for key, metric in tasks.items():
        n = n_units(a[key])
        if n != n_units(b[key]):
            raise HarnessError(f"task {key!r}: the entries were evaluated on different test sets "
                               f"({n} vs {n_units(b[key])} examples); they cannot be compared pairwise")
        draws = (rng.integers(0, n, size=n) for _ in range(n_boot))
        out[key] = np.array([recompute(metric, a[key], idx) - recompute(metric, b[key], idx) for idx in draws])
    return out


def seed_spread(doc: dict, method_name: str) -> dict[str, Any]:
    """Mean, sd, min and max of Average and of each task over the method's seeds."""
    runs = [e for e in doc["entries"] if e["method_name"] == method_name]
    avg = np.array([e["aggregates"]["Average"] for e in runs], dtype=float)
    sd = (lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else None)
    per_task = {k: sd(np.array([e["tasks"][k]["value"] for e in runs])) for k in runs[0]["tasks"]}
    return {"method": method_name, "n": len(runs), "seeds": sorted(e["seed"] for e in runs),
            "mean": float(avg.mean()), "sd": sd(avg), "min": float(avg.min()), "max": float(avg.max()),
            "task_sd": per_task}


def _interval(deltas: np.ndarray, level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(deltas, tail)), float(np.percentile(deltas, 100 - tail))]


def compare_entries(doc: dict, a_id: str, b_id: str, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95, base: str | Path | None = None) -> dict[str, Any]:
    """Task-by-task and average deltas of entry ``a`` over ``b``, with bootstrap CIs when possible
    (``base``: the leaderboard folder, where entries keep their per-example arrays)."""
    a, b = find_entry(doc, a_id), find_entry(doc, b_id)
    tasks = {k: t["metric"] for k, t in a["tasks"].items() if k in b["tasks"]}
    arrays_a, arrays_b = load_per_example(a, base), load_per_example(b, base)
    notes = [f"entry {e['id']!r} has no per-example arrays (per_example_dir missing): no confidence intervals"
             for e, arr in ((a, arrays_a), (b, arrays_b)) if arr is None]
    boots = _paired_bootstrap(arrays_a, arrays_b, tasks, n_boot, seed) if not notes else None
    rows = []
    for key, metric in tasks.items():
        delta = a["tasks"][key]["value"] - b["tasks"][key]["value"]
        ci = _interval(boots[key], level) if boots else None
        rows.append({"task": key, "metric": metric, "a": a["tasks"][key]["value"], "b": b["tasks"][key]["value"],
                     "delta": delta, "ci": ci, "beyond_noise": None if ci is None else (ci[0] > 0 or ci[1] < 0)})
    avg_delta = float(np.mean([r["delta"] for r in rows]))
    avg_ci = _interval(np.mean(np.stack(list(boots.values())), axis=0), level) if boots else None
    average = {"a": float(np.mean([r["a"] for r in rows])), "b": float(np.mean([r["b"] for r in rows])),
               "delta": avg_delta, "ci": avg_ci,
               "beyond_noise": None if avg_ci is None else (avg_ci[0] > 0 or avg_ci[1] < 0)}
    spreads = [seed_spread(doc, m) for m in dict.fromkeys((a["method_name"], b["method_name"]))]
    return {"a": a["id"], "b": b["id"], "level": level, "n_boot": n_boot, "tasks": rows, "average": average,
            "seed_spread": spreads, "notes": notes}


def seed_stability(doc: dict) -> dict[str, Any]:
    """Kendall τ between the rankings of methods by Average under each pair of seeds.

    Only ranked methods that ran with both seeds of a pair count; τ = 1 means every seed orders
    the methods the same way, so a ranking is not an accident of one seed.
    """
    from itertools import combinations

    from scipy.stats import kendalltau

    ranked = [e for e in doc["entries"] if e["ranked"]]
    score = {(e["method_name"], e["seed"]): e["aggregates"]["Average"] for e in ranked}
    methods = list(dict.fromkeys(e["method_name"] for e in ranked))
    pairs = []
    for s, t in combinations(sorted({e["seed"] for e in ranked}), 2):
        both = [m for m in methods if (m, s) in score and (m, t) in score]
        if len(both) >= 2:
            tau = kendalltau([score[m, s] for m in both], [score[m, t] for m in both]).statistic
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
