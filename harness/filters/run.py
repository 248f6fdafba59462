"""``run_filter``: prepare each filter once, evaluate files (pure per-file tasks), select globally,
then read uids of the kept rows only and write the DataComp subset + its JSON report.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
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
from harness.filters.registry import resolve, source_file, source_hash
from harness.filters.select import select
from harness.filters.spec import Leaf, build, combine, describe, leaves
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


# Audit events that change the file system, and which of their arguments are paths.
WRITE_EVENTS = {"os.rename": (0, 1), "os.replace": (0, 1), "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,),
                "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.link": (0, 1), "os.symlink": (1,),
                "os.utime": (0,), "shutil.rmtree": (0,), "shutil.move": (0, 1), "shutil.copyfile": (1,)}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_READ_ONLY: list[str] = []  # real paths filters may not write under (this process)
_HOOKED: list = []  # audit hooks cannot be removed: install once per process


def _under_read_only(path: Any) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    real = os.path.realpath(os.fsdecode(path))
    return next((r for r in _READ_ONLY if real == r or real.startswith(r + os.sep)), None)


def _deny_pool_writes(event: str, args: tuple) -> None:
    """Audit hook: a filter that writes into pool_dir fails (works as root, unlike chmod)."""
    if not _READ_ONLY:
        return
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITE_FLAGS)
        paths = (path,) if writes else ()
    else:
        paths = tuple(args[i] for i in WRITE_EVENTS.get(event, ()) if i < len(args))
    for p in paths:
        root = _under_read_only(p)
        if root:
            raise PermissionError(f"pool_dir {root} is read-only for filters ({event} {os.fsdecode(p)})")


@contextmanager
def pool_read_only(pool_root: str | Path):
    """Refuse, in this process, any write under ``pool_root`` while the block runs."""
    if _deny_pool_writes not in _HOOKED:
        sys.addaudithook(_deny_pool_writes)
        _HOOKED.append(_deny_pool_writes)
    _READ_ONLY.append(os.path.realpath(pool_root))
    try:
        yield
    finally:
        _READ_ONLY.pop()


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


def _call(leaf: LeafTask, batch, feats: dict, path: Path, start: int) -> np.ndarray:
    decl = resolve(leaf.ref)
    stop = start + batch.num_rows
    where = f"filter {leaf.label} ({source_file(decl)}) on {path.name} rows {start}-{stop - 1}"
    try:
        values = decl.fn(batch, feats, **leaf.params)
    except HarnessError as exc:
        raise HarnessError(f"{where}: {exc}") from None
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise HarnessError(f"{where} raised {type(exc).__name__}: {first}") from None
    return _check_values(values, batch.num_rows, leaf.output, where)


def evaluate_file(task: FileTask) -> list[np.ndarray]:
    """One value array per leaf for one parquet file. Pure: safe for processes and Ray tasks."""
    if task.pool_root:
        with pool_read_only(task.pool_root):
            return _evaluate_file(task)
    return _evaluate_file(task)


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
            parts[i].append(_call(lt, sub, part, task.path, start))
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


def _prepare(info: PoolInfo, leaf: Leaf) -> LeafTask:
    if leaf.decl.prepare is not None:
        leaf.params = leaf.decl.prepare(info, dict(leaf.params))
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


def run_filter(pool_dir: str | Path, spec: dict | str, out: str | Path, workers: int = 1, engine: str = "local",
               report: bool = False, overwrite: bool = False, ray_address: str | None = None,
               seed: int = 0, batch_rows: int = BATCH_ROWS) -> dict:
    """Apply a filter spec to a pool, write ``out`` (.npy subset) and ``out``.json; return the JSON."""
    t0 = time.time()
    out = Path(out)
    if out.suffix != ".npy":
        raise HarnessError(f"out={out} must end in .npy (a DataComp subset file)")
    info = read_pool_info(pool_dir)
    tree = build(spec)
    ls = list(leaves(tree))
    for leaf in ls:
        if "seed" in leaf.params and leaf.params["seed"] is None:
            leaf.params["seed"] = seed
    fp = sha256_json({"pool": _pool_identity(info), "spec": describe(tree),
                      "sources": [source_hash(l.decl) for l in ls]})
    report_path = out.with_suffix(".json")
    done = _up_to_date(out, report_path, fp, overwrite)
    if done is not None:
        return done
    tasks_leaf = tuple(_prepare(info, leaf) for leaf in ls)
    tasks = [FileTask(p, tasks_leaf, batch_rows, str(info.root)) for p in info.files]
    if engine == "local" and any(_is_plugin(leaf) for leaf in ls):
        with ProcessPoolExecutor(max_workers=max(1, min(workers, len(tasks)))) as pool:
            per_file = list(pool.map(evaluate_file, tasks))
    else:
        per_file = list(map_tasks(evaluate_file, tasks, engine=engine, workers=workers, ray_address=ray_address))
    values = {lt.label: np.concatenate([r[i] for r in per_file]) for i, lt in enumerate(tasks_leaf)}
    sizes = [len(r[0]) for r in per_file]
    keeps, per_filter = _select_all(ls, values)
    final = combine(tree, keeps)
    bounds = np.cumsum([0, *sizes])
    masks = [(p, final[a:b]) for p, a, b in zip(info.files, bounds[:-1], bounds[1:])]
    pairs = list(map_tasks(kept_uids, masks, engine=engine, workers=workers, ray_address=ray_address))
    pairs = sort_pairs(np.concatenate(pairs)) if pairs else np.empty(0, np.dtype("u8,u8"))
    if not len(pairs):
        warnings.warn(f"filter {ls[0].label if len(ls) == 1 else tree.op} kept no samples; "
                      f"writing an empty subset {out}", stacklevel=2)
    staged = out.with_name(f".{out.name}.staged.npy")
    write_subset(staged, pairs)
    doc = {
        "filter": {**describe(tree), "source_hash": _source_hash(ls)},
        "sources": {l.label: {"ref": l.ref, "file": source_file(l.decl), "sha256": source_hash(l.decl)} for l in ls},
        "eligible": all(l.decl.eligible for l in ls),
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


def _is_plugin(leaf: Leaf) -> bool:
    """Participants' code runs in worker processes, never in the process that writes the subset."""
    return not getattr(leaf.decl.fn, "__module__", "").startswith("harness.filters.builtin")


def _source_hash(ls: list[Leaf]) -> str:
    hashes = [source_hash(l.decl) for l in ls]
    return hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()
