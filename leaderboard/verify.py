"""``harness leaderboard verify``: re-check entries from what they record, so a board is only worth
what anyone can recompute. Per entry: rebuild the subset from the recorded filter spec on the local
pool (sha256 and size), recompute every task's main metric from the per-example arrays and every
aggregate from those, check the recipe hash against the scale's. One line per entry; any
difference names the field and makes the command exit non-zero.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from leaderboard.config import VerifyConfig

TOLERANCE = 1e-9  # recomputed from the same arrays: only float summation order may differ
SUMMARY = re.compile(r"^<(array .*|\d+ chars)>$")  # fitted state the report summarised (prepare refits it)


def runnable_spec(filt: dict) -> dict:
    """The filter spec to rebuild from an entry's ``filter`` (summarised fitted state left out)."""
    if filt.get("spec"):
        return _leaf_or_node(filt["spec"])
    return _leaf_or_node({"name": filt["name"], "params": filt.get("params") or {}})


def _leaf_or_node(spec: dict) -> dict:
    if spec.get("name") in ("intersect", "union") and isinstance(spec.get("filters"), list):
        return {"name": spec["name"], "filters": [_leaf_or_node(s) for s in spec["filters"]]}
    params = {k: v for k, v in (spec.get("params") or {}).items() if not (isinstance(v, str) and SUMMARY.match(v))}
    extra = {k: v for k, v in spec.items() if k not in ("name", "params")}
    return {"name": spec["name"], **params, **extra}


def check_scores(entry: dict, board_dir: Path, suite: str) -> list[str]:
    """Differences between the recorded task values/aggregates and those recomputed from the arrays."""
    from evals.metrics import n_units, recompute
    from evals.registry import aggregate_members, load_suite

    folder = Path(entry["per_example_dir"] or "")
    folder = folder if folder.is_absolute() else board_dir / folder
    if not entry["per_example_dir"] or not folder.is_dir():
        return [f"per_example_dir: no per-example arrays at {entry['per_example_dir']!r} (scores cannot be recomputed)"]
    diffs, values = [], {}
    for key, rec in entry["tasks"].items():
        path = folder / f"{key}.npz"
        if not path.is_file():
            diffs.append(f"tasks.{key}: no per-example arrays ({path.name})")
            continue
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        values[key] = recompute(rec["metric"], arrays, np.arange(n_units(arrays)))
        if abs(values[key] - rec["value"]) > TOLERANCE:
            diffs.append(f"tasks.{key}: recorded {rec['value']:.6g}, recomputed {values[key]:.6g}")
    for name, keys in aggregate_members(load_suite(suite)).items():
        recorded = entry["aggregates"].get(name)
        if not keys or any(k not in values for k in keys):
            continue
        again = sum(values[k] for k in keys) / len(keys)
        if recorded is None or abs(again - recorded) > TOLERANCE:
            diffs.append(f"aggregates.{name}: recorded {recorded}, recomputed {again:.6g}")
    return diffs


def check_recipe(entry: dict, doc: dict, facts: dict) -> list[str]:
    diffs = []
    if entry["recipe_hash"] != facts["recipe_hash"]:
        diffs.append(f"recipe_hash: recorded {entry['recipe_hash'][:12]}, the {doc['scale']} recipe is "
                     f"{facts['recipe_hash'][:12]}")
    if entry["off_recipe"]:
        diffs.append("off_recipe: the run was trained off-recipe")
    return diffs


def check_subset(entry: dict, pool_dir: Path, work: Path) -> tuple[list[str], str]:
    """(differences, note): rebuild the subset from the recorded spec and compare sha256 and size."""
    from harness.filters.run import run_filter

    if entry["filter"] is None or entry["subset"] is None:
        return [], "no filter recorded (byod)"
    out = work / f"{entry['id']}.npy"
    try:
        doc = run_filter(pool_dir, runnable_spec(entry["filter"]), out, overwrite=True)
    except HarnessError as exc:
        return [f"subset: the recorded filter does not run here ({str(exc).splitlines()[0]})"], ""
    diffs = []
    if doc["subset_sha256"] != entry["subset"]["sha256"]:
        diffs.append(f"subset.sha256: recorded {str(entry['subset']['sha256'])[:12]}, rebuilt {doc['subset_sha256'][:12]}")
    if doc["n_kept"] != entry["subset"]["size"]:
        diffs.append(f"subset.size: recorded {entry['subset']['size']}, rebuilt {doc['n_kept']}")
    recorded = (entry["filter"] or {}).get("source_hash")
    note = "" if recorded == doc["filter"]["source_hash"] else "filter code differs from the entry's source_hash"
    return diffs, note


def verify_entry(entry: dict, doc: dict, board_dir: Path, facts: dict, pool_dir: Path | None,
                 work: Path) -> tuple[list[str], list[str]]:
    """(differences, notes) for one entry."""
    diffs = check_recipe(entry, doc, facts) + check_scores(entry, board_dir, doc["suite"])
    notes = []
    if pool_dir is not None:
        more, note = check_subset(entry, pool_dir, work)
        diffs += more
        notes += [note] if note else []
    else:
        notes.append("subset not rebuilt (subset=false)")
    return diffs, notes


def verify_board(path: Path, ids: list[str] | None, pool_dir: Path | None) -> list[tuple[str, list[str], list[str]]]:
    """One (id, differences, notes) per chosen entry of the board file at ``path``."""
    from leaderboard.store import read_document, scale_facts

    doc = read_document(path)
    if doc is None:
        raise HarnessError(f"no leaderboard at {path}")
    entries = doc["entries"] if ids is None else [e for e in doc["entries"] if e["id"] in ids]
    unknown = sorted(set(ids or ()) - {e["id"] for e in entries})
    if unknown:
        raise HarnessError(f"{path}: no entry {', '.join(unknown)} (ids: {', '.join(e['id'] for e in doc['entries'])})")
    facts = scale_facts(doc["scale"])
    with tempfile.TemporaryDirectory(prefix="harness-verify-") as work:
        return [(e["id"], *verify_entry(e, doc, path.parent, facts, pool_dir, Path(work))) for e in entries]


def _pool(cfg: VerifyConfig) -> Path | None:
    from harness.core.paths import cache_dir, world_dir_name

    if not cfg.subset:
        return None
    if cfg.pool_dir:
        return Path(cfg.pool_dir)
    cached = cache_dir() / world_dir_name(int(cfg.world_seed)) / "pool"
    if not (cached / "pool.json").is_file():
        raise HarnessError(f"no local pool to rebuild subsets on ({cached} not made): pass pool_dir=, "
                           "or subset=false to check scores and recipes only")
    return cached


def main(cfg: VerifyConfig) -> int:
    """CLI: ``harness leaderboard verify track=... scale=... id=<entry>|all [pool_dir=] [subset=false]``."""
    from leaderboard.store import REFERENCE_DIR, leaderboard_path

    board = Path(cfg.leaderboard_dir) if cfg.leaderboard_dir else REFERENCE_DIR
    path = leaderboard_path(board, cfg.track.name, cfg.scale.name)
    ids = None if str(cfg.id) == "all" else [s.strip() for s in str(cfg.id).split(",") if s.strip()]
    rows = verify_board(path, ids, _pool(cfg))
    bad = 0
    for entry_id, diffs, notes in rows:
        extra = f" ({'; '.join(notes)})" if notes else ""
        if diffs:
            bad += 1
            print(f"DIFFERS  {entry_id}: {'; '.join(diffs)}{extra}")
        else:
            print(f"verified {entry_id}{extra}")
    print(f"{len(rows) - bad} of {len(rows)} entries verified in {path}")
    return 1 if bad else 0
