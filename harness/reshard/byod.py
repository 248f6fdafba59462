"""BYOD track: build one shards directory from external WebDataset shards, url+caption parquets
(downloaded with ``harness pool download``) and pool subsets, alone or mixed.

Nothing here copies samples itself: every source is turned into shards whose samples carry a
uid (external shards lacking one are rewritten once with a generated uid), all of them are
linked into one input directory in source order, and the resharder selects and writes them
(byte-range copies, verification, resume, manifest). The manifest then gains ``track: byod``
and ``sources``, one entry per source. The filtering track's rule (subset ⊆ pool) does not
apply: the resharder runs with ``subset_of_pool=False``.

Source specs (CLI list items or dicts): ``shards:<dir or glob of .tar>``, ``parquet:<file or
dir>``, ``pool:<pool_dir>@<subset.npy>``; or ``{kind: ..., path: ..., subset: ...}``.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.reshard.config import ReshardConfig
from harness.pool.uids import hex_to_pairs, sort_pairs, write_subset

KINDS = ("shards", "parquet", "pool")
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_UID = re.compile(r"[0-9a-f]{32}")


def parse_source(spec: Any) -> dict[str, str]:
    """``kind:path`` (``pool:<pool_dir>@<subset.npy>``) or a mapping → {kind, path[, subset]}."""
    if isinstance(spec, str):
        kind, sep, rest = spec.partition(":")
        if not sep:
            raise HarnessError(f"source {spec!r}: expected <kind>:<path> with kind one of {', '.join(KINDS)}")
        path, _, subset = rest.partition("@") if kind == "pool" else (rest, "", "")
        spec = {"kind": kind, "path": path, **({"subset": subset} if subset else {})}
    src = {k: str(v) for k, v in dict(spec).items()}
    if src.get("kind") not in KINDS:
        raise HarnessError(f"source {spec!r}: unknown kind {src.get('kind')!r} (choose from: {', '.join(KINDS)})")
    if not src.get("path"):
        raise HarnessError(f"source {spec!r}: no path")
    if src["kind"] == "pool" and not src.get("subset"):
        raise HarnessError(f"source {spec!r}: a pool source needs a subset (pool:<pool_dir>@<subset.npy>)")
    return src


def external_tars(path: str) -> list[Path]:
    """The .tar files of a shards source: a directory's ``*.tar`` or a glob, in name order."""
    p = Path(path)
    tars = sorted(p.glob("*.tar")) if p.is_dir() else sorted(Path(x) for x in glob.glob(path))
    if not tars:
        raise HarnessError(f"shards source {path}: no .tar files found")
    return tars


def _split(name: str) -> tuple[str, str]:
    """WebDataset key and extension: the key ends at the first dot of the file's base name."""
    head, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext


def _read_samples(path: Path) -> list[tuple[str, list[tuple[tarfile.TarInfo, bytes]]]]:
    """Samples of one tar in member order (consecutive members with the same key)."""
    samples: list[tuple[str, list[tuple[tarfile.TarInfo, bytes]]]] = []
    try:
        with tarfile.open(path, "r:") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                key, _ = _split(m.name)
                if not samples or samples[-1][0] != key:
                    samples.append((key, []))
                samples[-1][1].append((m, tf.extractfile(m).read()))
    except tarfile.TarError as exc:
        raise HarnessError(f"{path}: not a readable tar file ({exc})") from None
    return samples


def _sample_uid(members: list[tuple[tarfile.TarInfo, bytes]]) -> tuple[str | None, dict | None]:
    for m, data in members:
        if _split(m.name)[1] == "json":
            try:
                meta = json.loads(data)
            except ValueError:
                return None, None
            uid = meta.get("uid") if isinstance(meta, dict) else None
            return (uid if isinstance(uid, str) and _UID.fullmatch(uid) else None), (meta if isinstance(meta, dict) else None)
    return None, None


def normalize_shard(task: dict[str, str]) -> dict[str, Any]:
    """Make one external shard usable: complete samples (image + caption), each with a uid in its json.

    A shard that already is so is used as it is; otherwise it is rewritten (same member names,
    bytes and tar headers; json updated) under a fixed name, atomically, so a rerun or a retried
    task replaces it. Generated uids are md5(source label, shard name, sample key).
    """
    src, dest = Path(task["src"]), Path(task["dest"])
    record = dest.with_suffix(".json")
    stamp = {"src": str(src.resolve()), "size": src.stat().st_size, "mtime_ns": src.stat().st_mtime_ns}
    if record.is_file() and (done := json.loads(record.read_text())).get("stamp") == stamp:
        return done["result"]  # finished by an earlier run from the same input: keep its bytes and mtime
    kept, uids, incomplete, changed = [], [], 0, False
    for key, members in _read_samples(src):
        exts = {_split(m.name)[1] for m, _ in members}
        if not exts & set(IMAGE_EXTS) or "txt" not in exts:
            incomplete, changed = incomplete + 1, True
            continue
        uid, meta = _sample_uid(members)
        if uid is None:
            uid = hashlib.md5(f"{task['label']}\0{src.name}\0{key}".encode()).hexdigest()
            members = _with_uid(key, members, {**(meta or {}), "uid": uid})
            changed = True
        kept.append(members)
        uids.append(uid)
    result = {"path": str(src), "uids": uids, "incomplete": 0, "rewritten": False}
    if changed:
        tmp = dest.with_name(f".{dest.name}.tmp")
        with tarfile.open(tmp, "w") as out:
            for members in kept:
                for m, data in members:
                    out.addfile(m, io.BytesIO(data))
        tmp.replace(dest)
        result = {"path": str(dest), "uids": uids, "incomplete": incomplete, "rewritten": True}
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.write_text(json.dumps({"stamp": stamp, "result": result}))
    tmp.replace(record)
    return result


def _with_uid(key: str, members: list, meta: dict) -> list:
    """The sample's members with its json replaced (or added) holding ``meta``."""
    data = json.dumps(meta, sort_keys=True).encode()
    rest = [(m, d) for m, d in members if _split(m.name)[1] != "json"]
    info = tarfile.TarInfo(f"{key}.json")
    template = members[0][0]
    info.size, info.mtime, info.mode = len(data), template.mtime, template.mode
    return rest + [(info, data)]


def _shards_source(src: dict[str, str], i: int, work: Path, engine: str, workers: int,
                   ray_address: str | None) -> tuple[list[Path], list[str], dict[str, Any]]:
    from harness.core.engine import map_tasks

    tars = external_tars(src["path"])
    out = work / "normalized" / f"{i:03d}"
    out.mkdir(parents=True, exist_ok=True)
    tasks = [{"src": str(t), "dest": str(out / f"{j:08d}.tar"), "label": f"{i}:{src['path']}"}
             for j, t in enumerate(tars)]
    results = list(map_tasks(normalize_shard, tasks, engine, workers, ray_address))
    uids = [u for r in results for u in r["uids"]]
    if not uids:
        raise HarnessError(f"shards source {src['path']}: no complete sample (image + .txt caption) in {len(tars)} tar(s)")
    info = {"n_tars": len(tars), "rewritten_tars": sum(r["rewritten"] for r in results),
            "incomplete_samples_skipped": sum(r["incomplete"] for r in results)}
    return [Path(r["path"]) for r in results], uids, info


def _parquet_source(src: dict[str, str], i: int, work: Path, download: dict[str, Any]
                    ) -> tuple[list[Path], list[str], dict[str, Any]]:
    import pyarrow.parquet as pq

    from harness.pool.download import download_pool

    path = Path(src["path"])
    if path.is_file():  # download_pool reads a directory of parquets: give it one holding this file
        meta = work / "metadata" / f"{i:03d}"
        meta.mkdir(parents=True, exist_ok=True)
        link = meta / path.name
        if not link.is_symlink():
            link.symlink_to(path.resolve())
        path = meta
    pool_dir = work / "downloads" / f"{i:03d}"
    from harness.core.schema import build
    from harness.pool.config import PoolDownloadConfig

    opts = build(PoolDownloadConfig, {**download, "metadata_dir": str(path), "pool_dir": str(pool_dir)},
                 "track.download")
    summary = download_pool(opts)
    shards = sorted((pool_dir / "shards").glob("*.tar"))
    uids: list[str] = []
    for status in sorted((pool_dir / "shards").glob("*.parquet")):  # img2dataset's per-sample status
        table = pq.read_table(status, columns=["uid", "status"])
        uids += [u for u, s in zip(table["uid"].to_pylist(), table["status"].to_pylist()) if s == "success"]
    if not uids:
        raise HarnessError(f"parquet source {src['path']}: none of {summary['count']} images could be downloaded")
    info = {"pool_dir": str(pool_dir), "rows": summary["n_rows"], "downloaded": summary["successes"],
            "success_rate": summary["success_rate"]}
    return shards, uids, info


def _pool_source(src: dict[str, str]) -> tuple[list[Path], np.ndarray, dict[str, Any]]:
    from harness.core.manifest import sha256_file
    from harness.reshard.plan import input_shards
    from harness.pool.uids import read_subset

    pairs = read_subset(src["subset"])
    return input_shards(src["path"]), pairs, {"subset_size": int(len(pairs)),
                                              "subset_sha256": sha256_file(src["subset"])}


def _link_inputs(inputs: Path, tars: list[Path]) -> None:
    """One input directory for the resharder: links ``{:08d}.tar`` (+ stats) in source order."""
    inputs.mkdir(parents=True, exist_ok=True)
    for old in inputs.iterdir():
        old.unlink()
    for j, tar in enumerate(tars):
        (inputs / f"{j:08d}.tar").symlink_to(tar.resolve())
        stats = tar.with_name(f"{tar.stem}_stats.json")
        if stats.is_file():
            (inputs / f"{j:08d}_stats.json").symlink_to(stats.resolve())


def _add_sources(out: Path, sources: list[dict[str, Any]]) -> dict[str, Any]:
    path = out / "manifest.json"
    man = json.loads(path.read_text())
    man.update(track="byod", sources=sources)
    tmp = path.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(man, indent=2, sort_keys=True, default=str))
    tmp.replace(path)
    return man


def build_byod(cfg: ReshardConfig) -> dict:
    """Build ``cfg.out_dir`` (the shards-directory contract) from ``cfg.track.sources``; returns
    its manifest.

    ``track.work_dir`` (default: a hidden sibling of ``out_dir``) keeps downloads and rewritten
    shards so that a rerun resumes; ``track.download`` holds :class:`harness.pool.config.DownloadOptions`.
    """
    from harness.reshard.plan import reshard

    track, workers, engine, ray_address = cfg.track, int(cfg.workers), cfg.engine, cfg.ray_address
    parsed = [parse_source(s) for s in track.sources]
    if not parsed:
        raise HarnessError("track=byod needs at least one source (track.sources=[shards:<dir>,parquet:<file>,...])")
    out = Path(cfg.out_dir)
    work = Path(track.work_dir) if track.work_dir else out.with_name(f".{out.name}.byod")
    tars: list[Path] = []
    pairs: list[np.ndarray] = []
    records: list[dict[str, Any]] = []
    for i, src in enumerate(parsed):
        if src["kind"] == "pool":
            shards, selected, info = _pool_source(src)
        else:
            shards, uids, info = (_shards_source(src, i, work, engine, workers, ray_address) if src["kind"] == "shards"
                                  else _parquet_source(src, i, work, dict(track.download or {})))
            selected = hex_to_pairs(uids, where=src["path"])
        tars += shards
        pairs.append(selected)
        records.append({**src, **info, "n_uids": int(len(selected)), "n_input_tars": len(shards)})
    union = sort_pairs(np.concatenate(pairs))
    keep = np.ones(len(union), bool)
    keep[1:] = (union["f0"][1:] != union["f0"][:-1]) | (union["f1"][1:] != union["f1"][:-1])
    _link_inputs(work / "inputs", tars)
    subset = write_subset(work / "subset.npy", union[keep])
    man = reshard(replace(cfg, pool_dir=str(work / "inputs"), subset=str(subset),
                          track=replace(track, subset_of_pool=False)))
    return {**_add_sources(out, records), "skipped": man.get("skipped", False)}
