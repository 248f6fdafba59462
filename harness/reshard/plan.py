"""``harness reshard``: materialise a subset of a pool as WebDataset shards in DataComp's output layout.

Two passes over the input shards in name order. The index pass reads only tar headers and json
members to learn which samples the subset selects; the plan cuts the selected samples, in input
order (or a seeded permutation), into output shards of ``shard_size``; the write pass copies each
output shard's members as raw byte ranges. The plan depends only on the inputs, so the output is
byte-identical for any ``workers`` or engine, and a killed run resumes from the index records and
finished shards it left in ``out_dir/.reshard``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.core.engine import map_tasks
from harness.core.errors import HarnessError
from harness.core.manifest import fingerprint, read_manifest, sha256_file, sha256_json, write_manifest
from harness.pool.format import STATS_PATTERN
from harness.reshard.config import ReshardConfig
from harness.reshard.tasks import (BAD_KINDS, EXAMPLES_PER_KIND, index_shard, new_bad, note, uid_pairs, uids_digest,
                                   write_json_atomic, write_shard)
from harness.pool.uids import hex_to_pairs, isin, pair_keys, pairs_to_hex, read_subset, sort_pairs, write_subset

WORK = ".reshard"
LOCK = ".reshard.lock"
MISSING_LISTED = 1000  # more missing uids than this go to missing_uids.npy instead of the manifest


def input_shards(pool_dir: str | Path) -> list[Path]:
    """The pool's ``shards/*.tar`` in name order (or ``*.tar`` of a bare shards directory)."""
    root = Path(pool_dir)
    if not root.is_dir():
        raise HarnessError(f"pool_dir {root} does not exist")
    shards_dir = root / "shards" if (root / "shards").is_dir() else root
    shards = sorted(shards_dir.glob("*.tar"))
    if not shards:
        raise HarnessError(f"{shards_dir} holds no *.tar shards: not a pool in the CommonPool layout")
    return shards


def pool_identity(pool_dir: str | Path, shards: list[Path], blur: bool) -> dict[str, Any]:
    """A cheap identity of the inputs: name, size and mtime of every file read, hashes of small ones.

    Hashing terabytes of shards to recognise a rerun would cost as much as the reshard itself.
    """
    root = Path(pool_dir)
    files = list(shards) + [p.with_name(STATS_PATTERN.replace("{:08d}", p.stem)) for p in shards]
    if blur:
        files += sorted((root / "metadata").glob("*.parquet"))
    listing = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()]
    small = {n: sha256_file(root / n) for n in ("pool.json", "manifest.json") if (root / n).is_file()}
    return {"path": str(root.resolve()), "identity": sha256_json({"files": listing, "small": small}),
            "n_shards": len(shards), "bytes": sum(p.stat().st_size for p in shards)}


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One resharder per ``out_dir`` at a time (the OS drops the lock of a killed process)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(out / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise HarnessError(f"{out} is being written by another `harness reshard` (lock {out / LOCK})") from None
    try:
        yield
    finally:
        lock.release()


def _clear(out: Path) -> None:
    """overwrite=true: really delete everything in ``out_dir`` (except our own lock)."""
    for entry in out.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _prepare(out: Path, fp: str, overwrite: bool) -> dict[str, Any] | None:
    """Return the finished manifest to skip to, or None to (re)start; refuse foreign contents."""
    man = read_manifest(out)
    if man is not None and man.get("stage") == "reshard" and man.get("fingerprint") == fp and not overwrite:
        lost = [s["name"] for s in man.get("shards", []) if not (out / s["name"]).is_file()]
        if lost:
            raise HarnessError(f"{out}: finished reshard lists {lost[0]} but it is gone; rerun with overwrite=true")
        shutil.rmtree(out / WORK, ignore_errors=True)
        return man
    if not [e for e in out.iterdir() if e.name != LOCK]:
        return None
    if overwrite:
        _clear(out)
        return None
    state_path = out / WORK / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    if man is None and state is not None and state.get("fingerprint") == fp:
        return None
    what = ("a finished reshard" if man is not None and man.get("stage") == "reshard" else
            "an unfinished reshard" if state is not None else "files that are not this reshard's output")
    raise HarnessError(f"{out} holds {what} of other inputs or settings; "
                       "use another out_dir or overwrite=true to delete it and start again")


def _start_work(out: Path, fp: str, subset: np.ndarray) -> Path:
    work = out / WORK
    for sub in ("index", "done"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    if not (work / "state.json").is_file():
        write_json_atomic(work / "state.json", {"fingerprint": fp})
    keys = work / "subset_keys.npy"
    with open(keys.with_name(".subset_keys.npy.tmp"), "wb") as fh:
        np.save(fh, pair_keys(subset), allow_pickle=False)
    keys.with_name(".subset_keys.npy.tmp").replace(keys)
    return work


def _progress(total: int, unit: str, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled, file=sys.stderr, unit_scale=True,
                smoothing=0.1, mininterval=0.5)


def _index_all(shards: list[Path], work: Path, o: ReshardConfig, workers: int) -> list[dict[str, Any]]:
    """Index records of every input shard: from the work dir when a previous run left them."""
    results: list[dict[str, Any] | None] = [None] * len(shards)
    tasks = []
    for i, path in enumerate(shards):
        cache = work / "index" / f"{path.name}.json"
        if cache.is_file():
            results[i] = json.loads(cache.read_text())
            continue
        tasks.append({"position": i, "path": str(path), "cache": str(cache), "work": str(work),
                      "stats": str(path.with_name(STATS_PATTERN.replace("{:08d}", path.stem))),
                      "subset_keys": str(work / "subset_keys.npy")})
    with _progress(len(shards), "shard", "index", o.progress) as bar:
        bar.update(len(shards) - len(tasks))
        for task, res in zip(tasks, map_tasks(index_shard, tasks, o.engine, workers, o.ray_address)):
            results[task["position"]] = res
            bar.update(1)
    return results  # type: ignore[return-value]


def make_plan(results: list[dict[str, Any]], subset: np.ndarray, shard_size: int, shuffle: bool,
              seed: int) -> dict[str, Any]:
    """Cut the selected samples (input order, first occurrence of each uid) into output shards."""
    counts = [len(r["uids"]) for r in results]
    src = np.repeat(np.arange(len(results)), counts)
    uids = [u for r in results for u in r["uids"]]
    members = [m for r in results for m in r["members"]]
    pairs = uid_pairs(uids)
    _, first = np.unique(pair_keys(pairs), return_index=True)
    keep = np.zeros(len(uids), bool)
    keep[first] = True
    dups = new_bad()
    for i in np.flatnonzero(~keep)[:EXAMPLES_PER_KIND]:
        note(dups, "duplicate_uid", f"{results[src[i]]['shard']}: uid {uids[i]}")
    if (~keep).any():
        dups["counts"]["duplicate_uid"] = int((~keep).sum())
    order = np.flatnonzero(keep)
    if shuffle:
        order = order[np.random.default_rng(seed).permutation(len(order))]
    missing = subset[~isin(subset, sort_pairs(pairs[keep]))]
    chunks = [order[i:i + shard_size] for i in range(0, len(order), shard_size)]
    return {"uids": uids, "src": src, "members": members, "chunks": chunks, "missing": missing,
            "duplicates": dups, "n_found": int(keep.sum())}


def face_boxes(pool_dir: str | Path, subset: np.ndarray) -> dict[str, list]:
    """uid → ``face_bboxes`` for the subset's rows of the pool metadata (empty lists included)."""
    from harness.pool.format import open_pool, read_columns

    out: dict[str, list] = {}
    for path in open_pool(pool_dir).parquet_files():
        try:
            table = read_columns(path, ["uid", "face_bboxes"])
        except HarnessError as exc:
            raise HarnessError(f"blur=true needs the face_bboxes column: {exc}") from None
        rows = np.flatnonzero(isin(hex_to_pairs(table.column("uid"), where=str(path)), subset))
        table = table.take(rows)
        boxes = [b or [] for b in table.column("face_bboxes").to_pylist()]
        out.update(zip(table.column("uid").to_pylist(), boxes))
    return out


def _write_tasks(plan: dict[str, Any], shards: list[Path], out: Path, work: Path,
                 boxes: dict[str, list] | None) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """One task per output shard not yet done; done records whose plan still matches are reused."""
    tasks, done = [], {}
    uids, src, members = plan["uids"], plan["src"], plan["members"]
    for j, chunk in enumerate(plan["chunks"]):
        record = work / "done" / f"{j:08d}.json"
        if record.is_file():
            rec = json.loads(record.read_text())
            if rec.get("uids_sha256") == uids_digest([uids[g] for g in chunk]):
                done[j] = rec
                continue
        used = sorted(set(src[chunk].tolist()))
        local = {s: k for k, s in enumerate(used)}
        samples = [[local[int(src[g])], uids[g], members[g]] for g in chunk]
        task_boxes = {uids[g]: boxes[uids[g]] for g in chunk if boxes and boxes.get(uids[g])}
        tasks.append({"index": j, "out_dir": str(out), "work": str(work), "samples": samples,
                      "inputs": [str(shards[s]) for s in used], "boxes": task_boxes})
    return tasks, done


def _write_all(plan: dict[str, Any], shards: list[Path], out: Path, work: Path, boxes: dict[str, list] | None,
               o: ReshardConfig, workers: int) -> list[dict[str, Any]]:
    tasks, done = _write_tasks(plan, shards, out, work, boxes)
    total = sum(len(c) for c in plan["chunks"])
    with _progress(total, "sample", "write", o.progress) as bar:
        bar.update(sum(r["n_samples"] for r in done.values()))
        for rec in map_tasks(write_shard, tasks, o.engine, workers, o.ray_address):
            done[rec["index"]] = rec
            bar.update(rec["n_samples"])
    return [done[j] for j in range(len(plan["chunks"]))]


def verify(plan: dict[str, Any], records: list[dict[str, Any]], out: Path) -> None:
    """Every subset uid found in the pool is in exactly one output shard, and nothing else is there."""
    problems = []
    uids = plan["uids"]
    for chunk, rec in zip(plan["chunks"], records):
        path = out / rec["name"]
        if rec["n_samples"] != len(chunk) or rec["uids_sha256"] != uids_digest([uids[g] for g in chunk]):
            problems.append(f"{rec['name']} holds other samples than planned")
        elif not path.is_file() or path.stat().st_size != rec["size"]:
            problems.append(f"{rec['name']} is missing or has another size than written")
    planned = {r["name"] for r in records}
    stray = sorted(p.name for p in out.glob("*.tar") if p.name not in planned)
    if stray:
        problems.append(f"{len(stray)} tar file(s) not in the plan, e.g. {stray[0]}")
    written = sum(r["n_samples"] for r in records)
    if written != plan["n_found"]:
        problems.append(f"wrote {written} samples but the pool holds {plan['n_found']} of the subset")
    if problems:
        raise HarnessError(f"verification of {out} failed: {'; '.join(problems[:3])}; "
                           "rerun with overwrite=true to write it again")


def _missing_field(out: Path, missing: np.ndarray) -> dict[str, Any]:
    if len(missing) <= MISSING_LISTED:
        return {"count": int(len(missing)), "uids": pairs_to_hex(missing).tolist()}
    write_subset(out / "missing_uids.npy", missing)
    return {"count": int(len(missing)), "file": "missing_uids.npy"}


def _merge_bad(results: list[dict[str, Any]], extra: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {kind: 0 for kind in BAD_KINDS}
    examples: dict[str, list[str]] = {}
    for part in [*results, *extra]:
        for kind, n in part["counts"].items():
            counts[kind] += n
        for kind, ex in part["examples"].items():
            examples.setdefault(kind, []).extend(ex)
    return {"counts": counts, "examples": {k: v[:EXAMPLES_PER_KIND] for k, v in examples.items() if v}}


def check_strict(bad: dict[str, int], examples: dict[str, list[str]], n_missing: int, o: ReshardConfig) -> None:
    """strict=true: any bad input, or (filtering track) any subset uid missing from the pool, is an error."""
    if not o.strict:
        return
    kinds = [k for k, n in bad.items() if n]
    if kinds:
        first = (examples.get(kinds[0]) or ["?"])[0]
        raise HarnessError(f"strict=true and the pool has bad input: {', '.join(f'{k}={bad[k]}' for k in kinds)} "
                           f"(first: {kinds[0]}: {first})")
    if n_missing and o.track.subset_of_pool:
        raise HarnessError(f"strict=true and {n_missing} subset uid(s) are not in the pool (filtering track)")


def _blur_boxes(pool_dir: str | Path, subset: np.ndarray, plan: dict[str, Any]) -> tuple[dict[str, list], list]:
    """Face boxes of the planned samples; a planned uid without a metadata row is bad input."""
    boxes = face_boxes(pool_dir, subset)
    bad = new_bad()
    for chunk in plan["chunks"]:
        for g in chunk:
            if plan["uids"][g] not in boxes:
                note(bad, "blur_metadata_missing", f"uid {plan['uids'][g]}")
    return boxes, [bad]


def _finish(out: Path, work: Path, fp: str, inputs: dict[str, str], config: dict[str, Any], pool: dict[str, Any],
            n_subset: int, results: list, plan: dict[str, Any], records: list, bad: dict, start: float,
            phases: dict[str, float]) -> dict:
    """sizes.json (open_clip reads it), then the manifest, written last: it marks the run finished."""
    write_json_atomic(out / "sizes.json", {r["name"]: r["n_samples"] for r in records})
    shards = [{"name": r["name"], "n_samples": r["n_samples"], "sha256": r["sha256"]} for r in records]
    n = sum(r["n_samples"] for r in records)
    wall = time.time() - start
    fields = {"n_samples": n, "shards": shards, "subset_sha256": inputs["subset"], "subset_size": n_subset,
              "pool": {**pool, "n_samples": sum(r["n_samples"] for r in results)},
              "missing_uids": _missing_field(out, plan["missing"]), "bad_input": bad["counts"],
              "bad_input_examples": bad["examples"], "blurred": sum(r["blurred"] for r in records),
              "output_hash": sha256_json(shards), "wall_s": round(wall, 3), "samples_per_s": round(n / wall, 1),
              "phase_s": {k: round(v, 3) for k, v in phases.items()}}
    for tmp in out.glob(".*.tmp"):
        tmp.unlink()
    path = write_manifest(out, "reshard", fp, inputs, config, **fields)
    shutil.rmtree(work, ignore_errors=True)
    return {**json.loads(path.read_text()), "skipped": False}


def reshard(o: ReshardConfig) -> dict[str, Any]:
    """Write the pool's samples whose uid is in ``o.subset`` as ``{:08d}.tar`` shards in ``o.out_dir``.

    Returns the manifest, plus ``skipped`` (true when a finished run with the same inputs was found).
    """
    if o.pool_dir is None or o.subset is None:
        raise HarnessError("reshard needs pool_dir and subset")
    pool_dir, shard_size, workers = o.pool_dir, int(o.shard_size), int(o.workers)
    if shard_size < 1:
        raise HarnessError(f"shard_size must be at least 1, got {shard_size}")
    start = time.time()
    shards = input_shards(pool_dir)
    subset_path = Path(o.subset)
    pairs = read_subset(subset_path)
    pool = pool_identity(pool_dir, shards, bool(o.blur))
    inputs = {"pool": pool["identity"], "subset": sha256_file(subset_path)}
    config = {"shard_size": int(shard_size), "shuffle": bool(o.shuffle), "seed": int(o.seed),
              "blur": bool(o.blur)}
    fp = fingerprint(inputs, config)
    out = Path(o.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        man = _prepare(out, fp, bool(o.overwrite))
        if man is not None:
            check_strict(man["bad_input"], man.get("bad_input_examples", {}), man["missing_uids"]["count"], o)
            return {**man, "skipped": True}
        work = _start_work(out, fp, pairs)
        phases = {"prepare": time.time() - start}
        results = _index_all(shards, work, o, workers)
        phases["index"] = time.time() - start - sum(phases.values())
        plan = make_plan(results, pairs, int(shard_size), config["shuffle"], config["seed"])
        boxes, extra = _blur_boxes(pool_dir, pairs, plan) if o.blur else (None, [])
        bad = _merge_bad(results, [plan["duplicates"], *extra])
        check_strict(bad["counts"], bad["examples"], len(plan["missing"]), o)
        phases["plan"] = time.time() - start - sum(phases.values())
        records = _write_all(plan, shards, out, work, boxes, o, workers)
        phases["write"] = time.time() - start - sum(phases.values())
        verify(plan, records, out)
        return _finish(out, work, fp, inputs, config, pool, len(pairs), results, plan, records, bad, start, phases)


def summary(man: dict[str, Any], out_dir: str | Path) -> str:
    """The end-of-run report: what was written, what was missing, every kind of bad input seen."""
    head = "already done (same inputs): " if man.get("skipped") else ""
    lines = [f"{head}{man['n_samples']} samples in {len(man['shards'])} shard(s) in {out_dir} "
             f"({man['samples_per_s']:.0f} samples/s, {man['wall_s']:.1f} s)"]
    missing = man["missing_uids"]
    if missing["count"]:
        where = missing.get("file") or ", ".join(missing["uids"][:3]) + (", ..." if missing["count"] > 3 else "")
        lines.append(f"missing from the pool: {missing['count']} of {man['subset_size']} subset uids ({where})")
    for kind, n in man["bad_input"].items():
        if n:
            first = (man["bad_input_examples"].get(kind) or ["?"])[0]
            lines.append(f"bad input: {kind}: {n} ({BAD_KINDS[kind]}; first: {first})")
    return "\n".join(lines)
