"""``run_filter``: prepare each filter once, evaluate files (pure per-file tasks), select globally,
then read uids of the kept rows only and write the DataComp subset + its JSON report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.core.engine import map_tasks
from harness.core.errors import HarnessError
from harness.filters.api import PoolInfo, read_pool_info
from harness.filters.guard import Sealed, guarded, refusals, sealed_paths, truth_file
from harness.filters.registry import (REFERENCE_FILTERS, absolute_ref, identity, ineligible_reason, is_builtin, resolve,
                                      source_file, source_hash)
from harness.filters.select import select
from harness.filters.spec import COMBINERS, Leaf, build, combine, describe, expand, leaves
from harness.core.manifest import sha256_file, sha256_json, versions
from harness.pool.format import load_features, read_columns
from harness.pool.uids import hex_to_pairs, sort_pairs, write_subset

BATCH_ROWS = 1 << 18
HIST_BINS = 40


class LeafTask(NamedTuple):
    label: str
    ref: str
    params: dict
    columns: tuple[str, ...]
    features: tuple[str, ...]
    output: str


class FileTask(NamedTuple):
    path: Path
    leaves: tuple[LeafTask, ...]
    batch_rows: int
    pool_root: str = ""
    sealed: tuple[str, ...] = ()  # participant code in the spec: the guard's sealed paths
    debug: bool = False  # a plugin failure carries its full traceback


class Job(NamedTuple):
    """Everything the value phase needs: it runs in a guarded worker when participant code is in the spec."""

    pool_dir: str
    spec: dict | str
    seed: int
    batch_rows: int
    workers: int
    engine: str
    ray_address: str | None
    sealed: tuple[str, ...]
    debug: bool


@contextmanager
def pool_read_only(pool_root: str | Path):
    """Refuse, in this process, any write under ``pool_root`` while the block runs."""
    with guarded(Sealed((), os.path.realpath(pool_root))):
        yield


def _check_values(values: Any, n: int, output: str, where: str) -> np.ndarray:
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy(zero_copy_only=False)
    values = np.asarray(values)
    if values.shape != (n,):
        raise HarnessError(f"{where} returned shape {values.shape}, expected ({n},): one value per row")
    if output == "mask" and values.dtype != np.bool_:
        raise HarnessError(f"{where} returned dtype {values.dtype}; a mask filter must return bool")
    if output == "score" and values.dtype.kind not in "fiu":
        raise HarnessError(f"{where} returned dtype {values.dtype}; a score filter must return numbers")
    return values


def _failure(where: str, exc: BaseException, debug: bool) -> HarnessError:
    """The one-line summary of a plugin failure; with ``debug`` the full traceback underneath."""
    if isinstance(exc, HarnessError):
        return HarnessError(f"{where}: {exc}")
    first = (str(exc).splitlines() or [""])[0]
    tb = "\n" + "".join(traceback.format_exception(exc)).rstrip() if debug else ""
    hint = "" if debug else " (verbose=true or HARNESS_DEBUG=1 prints the traceback)"
    return HarnessError(f"{where} raised {type(exc).__name__}: {first}{hint}{tb}")


def _call(leaf: LeafTask, batch, feats: dict, path: Path, start: int, debug: bool = False) -> np.ndarray:
    decl = resolve(leaf.ref)
    stop = start + batch.num_rows
    where = f"filter {leaf.label} ({source_file(decl)}) on {path.name} rows {start}-{stop - 1}"
    try:
        values = decl.fn(batch, feats, **leaf.params)
    except Exception as exc:
        raise _failure(where, exc, debug) from None
    return _check_values(values, batch.num_rows, leaf.output, where)


def evaluate_file(task: FileTask) -> tuple[list[np.ndarray], list[str]]:
    """One value array per leaf for one parquet file, and the guard's refusals. Pure: safe for
    processes and Ray tasks. Participant code (``sealed`` set) runs under the guard."""
    if task.sealed:
        with guarded(Sealed(task.sealed, task.pool_root)):
            try:
                return _evaluate_file(task), refusals()
            except HarnessError:
                refusals()
                raise
    if task.pool_root:
        with pool_read_only(task.pool_root):
            return _evaluate_file(task), []
    return _evaluate_file(task), []


def _evaluate_file(task: FileTask) -> list[np.ndarray]:
    columns = sorted({c for lt in task.leaves for c in lt.columns}) or ["uid"]
    keys = sorted({k for lt in task.leaves for k in lt.features})
    table = read_columns(task.path, columns)
    feats = load_features(task.path, keys, table.num_rows)
    parts: list[list[np.ndarray]] = [[] for _ in task.leaves]
    start = 0
    for batch in table.to_batches(max_chunksize=task.batch_rows):
        stop = start + batch.num_rows
        for i, lt in enumerate(task.leaves):
            sub = batch.select(list(lt.columns)) if lt.columns else batch
            part = {k: feats[k][start:stop] for k in lt.features}
            parts[i].append(_call(lt, sub, part, task.path, start, task.debug))
        start = stop
    return [np.concatenate(p) if p else np.empty(0, bool if lt.output == "mask" else np.float32)
            for p, lt in zip(parts, task.leaves)]


def kept_uids(task: tuple[Path, np.ndarray]) -> np.ndarray:
    """The ``u8,u8`` uids of the kept rows of one file (only those are converted)."""
    path, mask = task
    if not mask.any():
        return np.empty(0, np.dtype("u8,u8"))
    uids = pq.read_table(path, columns=["uid"]).column("uid")
    return hex_to_pairs(pc.filter(uids, mask), where=str(path))


def _prepare(info: PoolInfo, leaf: Leaf, debug: bool = False) -> LeafTask:
    if leaf.decl.prepare is not None:
        if leaf.ref in REFERENCE_FILTERS and is_builtin(leaf.ref):  # only the harness's own get the truth
            info = dataclasses.replace(info, truth=truth_file(info.root))
        try:
            leaf.params = leaf.decl.prepare(info, dict(leaf.params))
        except Exception as exc:
            raise _failure(f"filter {leaf.label} ({source_file(leaf.decl)}) prepare", exc, debug) from None
    columns = tuple(leaf.decl.columns_for(leaf.params))
    features = tuple(leaf.decl.features_for(leaf.params))
    schema = set(info.schema_names())
    missing = [c for c in columns if c not in schema]
    if missing:
        raise HarnessError(f"filter {leaf.label} reads column(s) {', '.join(missing)} missing from "
                           f"{info.files[0]} (has: {', '.join(sorted(schema))})")
    if features:
        load_features(info.files[0], features, pq.ParquetFile(info.files[0]).metadata.num_rows)
    return LeafTask(leaf.label, leaf.ref, leaf.params, columns, features, leaf.decl.output)


def _histogram(values: np.ndarray, thr: float | None) -> dict:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if not len(finite):
        return {"counts": [], "edges": [], "threshold": thr}
    counts, edges = np.histogram(finite, bins=HIST_BINS)
    return {"counts": counts.tolist(), "edges": [float(e) for e in edges], "threshold": thr}


def _pool_identity(info: PoolInfo) -> str:
    """Cheap identity of the metadata (names, sizes, mtimes) + pool.json: no hashing of GBs."""
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in info.files]
    return sha256_json({"files": stats, "meta": info.meta})


def _select_all(ls: list[Leaf], values: dict[str, np.ndarray]) -> tuple[dict, dict]:
    keeps, per_filter = {}, {}
    for leaf in ls:
        v = values[leaf.label]
        thr = None
        if leaf.selection:
            keep, thr = select(v, *leaf.selection)
        else:
            keep = v
        keeps[leaf.label] = keep
        n_kept = int(keep.sum())
        per_filter[leaf.label] = {"kept": n_kept, "dropped": int(len(keep) - n_kept),
                                  "histogram": _histogram(v, thr) if leaf.decl.output == "score" else None}
    return keeps, per_filter


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(path)


def _up_to_date(out: Path, report_path: Path, fp: str, overwrite: bool) -> dict | None:
    if not out.exists():
        return None
    old = json.loads(report_path.read_text()) if report_path.is_file() else {}
    if old.get("fingerprint") == fp and not overwrite:
        return old
    if not overwrite:
        raise HarnessError(f"{out} exists and was made from another pool or filter spec; "
                           "choose another out= or pass overwrite=true")
    return None


def _spec_leaves(spec: dict | str) -> list[tuple[str, dict]]:
    """(ref, expanded leaf spec) of every leaf, found without importing any filter's code."""
    spec = expand(spec)
    if spec["name"] in COMBINERS and isinstance(spec.get("filters"), list):
        return [leaf for sub in spec["filters"] for leaf in _spec_leaves(sub)]
    return [(absolute_ref(spec["name"]), spec)]


def _described_leaves(d: dict) -> list[dict]:
    if d.get("name") in COMBINERS and isinstance(d.get("filters"), list):
        return [leaf for sub in d["filters"] for leaf in _described_leaves(sub)]
    return [{k: v for k, v in d.items() if k != "name"}]


def _identities(refs: list[tuple[str, dict]]) -> list[dict]:
    return [identity(ref, {k: v for k, v in leaf.items() if k != "name"}) for ref, leaf in refs]


def _compute(job: Job) -> dict:
    """Resolve (import), prepare and evaluate the spec, select and combine: the part that runs
    participants' code, so it runs under the guard in a worker process when there is any."""
    if job.debug:
        os.environ["HARNESS_DEBUG"] = "1"  # this is a worker process of its own: import errors too
    if not job.sealed:
        return _compute_values(job)
    info_root = os.path.realpath(job.pool_dir)
    with guarded(Sealed(job.sealed, info_root)):
        try:
            res = _compute_values(job)
        except HarnessError as exc:
            refused = refusals()  # a refusal the plugin turned into another error is the cause
            raise HarnessError(f"{refused[0] if refused else exc}; no subset was written") from None
    res["refused"] += refusals()
    return res


def _compute_values(job: Job) -> dict:
    info = read_pool_info(job.pool_dir)
    tree = build(job.spec)
    ls = list(leaves(tree))
    for leaf in ls:
        if "seed" in leaf.params and leaf.params["seed"] is None:
            leaf.params["seed"] = job.seed
    tasks_leaf = tuple(_prepare(info, leaf, job.debug) for leaf in ls)
    tasks = [FileTask(p, tasks_leaf, job.batch_rows, str(info.root), job.sealed, job.debug) for p in info.files]
    per_file = list(map_tasks(evaluate_file, tasks, engine=job.engine, workers=job.workers,
                              ray_address=job.ray_address))
    values = {lt.label: np.concatenate([r[0][i] for r in per_file]) for i, lt in enumerate(tasks_leaf)}
    keeps, per_filter = _select_all(ls, values)
    return {"final": combine(tree, keeps), "values": values, "per_filter": per_filter,
            "sizes": [len(r[0][0]) for r in per_file], "describe": describe(tree),
            "name": ls[0].label if len(ls) == 1 else tree.op, "refused": [m for r in per_file for m in r[1]],
            "sources": {l.label: {"ref": l.ref, "file": source_file(l.decl), "sha256": source_hash(l.decl)}
                        for l in ls}}


def _run_guarded(job: Job) -> dict:
    """The value phase in one fresh worker process (its own file-evaluation workers inherit the guard)."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(max_workers=1) as pool:
            return pool.submit(_compute, job).result()
    except BrokenProcessPool:
        raise HarnessError("the filter's worker process died (a participant filter exited or was killed); "
                           "no subset was written") from None


def run_filter(pool_dir: str | Path, spec: dict | str, out: str | Path, workers: int = 1, engine: str = "local",
               report: bool = False, overwrite: bool = False, ray_address: str | None = None,
               seed: int = 0, batch_rows: int = BATCH_ROWS, verbose: bool = False) -> dict:
    """Apply a filter spec to a pool, write ``out`` (.npy subset) and ``out``.json; return the JSON.

    Participants' code never runs in this process: it is imported, prepared and run in a worker
    under the guard (``harness.filters.guard``); this process only writes the subset."""
    t0 = time.time()
    out = Path(out)
    if out.suffix != ".npy":
        raise HarnessError(f"out={out} must end in .npy (a DataComp subset file)")
    info = read_pool_info(pool_dir)
    refs = _spec_leaves(spec)
    plugin = [r for r, _ in refs if not is_builtin(r)]
    reference = [r for r, _ in refs if r in REFERENCE_FILTERS and is_builtin(r)]
    if plugin and reference:
        raise HarnessError(f"{', '.join(reference)} reads the world's truth and cannot be combined with "
                           f"participant filters ({', '.join(plugin)}), which run under the truth guard")
    ids = _identities(refs)
    fp = sha256_json({"pool": _pool_identity(info), "spec": expand(spec), "seed": seed,
                      "sources": [i["sha256"] for i in ids]})
    report_path = out.with_suffix(".json")
    done = _up_to_date(out, report_path, fp, overwrite)
    if done is not None:
        return done
    debug = verbose or os.environ.get("HARNESS_DEBUG", "") not in ("", "0")
    job = Job(str(info.root), spec, seed, batch_rows, workers, engine, ray_address,
              sealed_paths(info.root) if plugin else (), debug)
    res = _run_guarded(job) if plugin else _compute(job)
    if res["refused"]:
        raise HarnessError(f"{res['refused'][0]}; no subset was written")
    final, values, per_filter = res["final"], res["values"], res["per_filter"]
    bounds = np.cumsum([0, *res["sizes"]])
    masks = [(p, final[a:b]) for p, a, b in zip(info.files, bounds[:-1], bounds[1:])]
    pairs = list(map_tasks(kept_uids, masks, engine=engine, workers=workers, ray_address=ray_address))
    pairs = sort_pairs(np.concatenate(pairs)) if pairs else np.empty(0, np.dtype("u8,u8"))
    if not len(pairs):
        warnings.warn(f"filter {res['name']} kept no samples; writing an empty subset {out}", stacklevel=2)
    staged = out.with_name(f".{out.name}.staged.npy")
    write_subset(staged, pairs)
    reasons = {r: ineligible_reason(r) for r, _ in refs if ineligible_reason(r)}
    # the recorded identity: code + the parameters as resolved (the same however the spec was spelled)
    ids = [identity(ref, leaf) for (ref, _), leaf in zip(refs, _described_leaves(res["describe"]))]
    doc = {
        "filter": {**res["describe"], "source_hash": _combined([i["sha256"] for i in ids])},
        "identity": ids, "sources": res["sources"],
        "eligible": not reasons, "ineligible": reasons or None,
        "pool_dir": str(info.root), "n_pool": int(len(final)), "n_kept": int(len(pairs)),
        "n_dropped": int(len(final) - len(pairs)), "per_filter": per_filter,
        "subset": str(out), "subset_sha256": sha256_file(staged), "fingerprint": fp,
        "workers": workers, "engine": engine, "wall_s": round(time.time() - t0, 3), "versions": versions(),
    }
    doc["histograms"] = {k: v.pop("histogram") for k, v in per_filter.items()}
    _write_json(report_path, doc)
    staged.replace(out)  # the subset lands last: its presence means its report is complete (crash-safe)
    if report:
        from harness.filters.report import write_report

        doc["report"] = str(write_report(info, doc, final, values, out.with_suffix(".html")))
        _write_json(report_path, doc)
    return doc


def _combined(hashes: list[str]) -> str:
    """One identity for a composition: the leaves' identities in order."""
    return hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()
