"""``harness pool download``: fetch a pool's images with img2dataset into the CommonPool layout.

img2dataset does the downloading, resizing and sharding (the options DataComp's own download
script uses: 512 px ``keep_ratio_largest`` only if bigger, 8-digit shard names, ``uid`` saved in
each sample's json, face-box blurring when the metadata has ``face_bboxes``). This module adds
what a benchmark needs around it: metadata checked and copied into ``pool_dir/metadata`` first,
resume through img2dataset's incremental mode (a shard counts as done once its stats file
exists), a check that every shard finished in this run is whole (so a full disk never leaves a
truncated shard marked done), and a success-rate summary in ``pool_dir/download.json``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import signal
import tarfile
import threading
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from harness.core.errors import HarnessError
from harness.pool.config import DownloadOptions, PoolDownloadConfig
from harness.pool.format import Pool
from harness.pool.uids import hex_to_pairs

SUMMARY = "download.json"
OOM_SHARD_COUNT = 8  # shard names {:08d}, as in DataComp's pools
STAT_KEYS = ("count", "successes", "failed_to_download", "failed_to_resize")

# img2dataset options that DataComp's download_upstream.py fixes; ours are overridable keys.
IMG2DATASET_FIXED = dict(output_format="webdataset", input_format="parquet", url_col="url", caption_col="text",
                         save_additional_columns=["uid"], oom_shard_count=OOM_SHARD_COUNT,
                         incremental_mode="incremental", enable_wandb=False, distributor="multiprocessing")


def _sha256(path: Path) -> str:
    from harness.core.manifest import sha256_file

    return sha256_file(path)


def _metadata_files(metadata_dir: Path) -> list[Path]:
    if not metadata_dir.is_dir():
        raise HarnessError(f"metadata_dir {metadata_dir} does not exist")
    files = sorted(metadata_dir.glob("*.parquet"))
    if not files:
        raise HarnessError(f"metadata_dir {metadata_dir} has no *.parquet files")
    return files


def check_metadata(files: list[Path], url_col: str, caption_col: str) -> None:
    """Refuse metadata without url/caption columns before anything is written."""
    for path in files:
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowInvalid, OSError) as exc:
            raise HarnessError(f"{path}: not a readable parquet file ({exc})") from None
        missing = [c for c in (url_col, caption_col) if c not in names]
        if missing:
            raise HarnessError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(names)}); "
                               "set url_col=/caption_col= to the columns holding image urls and captions")


def generated_uids(name: str, table: pa.Table) -> pa.Array:
    """Deterministic 128-bit uids for metadata that has none (bring-your-own data).

    md5 of (file name, row, url, caption): unique within a pool and stable across reruns.
    """
    urls, texts = table.column("url").to_pylist(), table.column("text").to_pylist()
    return pa.array([hashlib.md5(f"{name}\0{i}\0{u}\0{t}".encode()).hexdigest()
                     for i, (u, t) in enumerate(zip(urls, texts))], pa.string())


def _pool_table(src: Path, url_col: str, caption_col: str) -> pa.Table | None:
    """The metadata as the pool stores it (``url``/``text``/``uid``), or None if it already is."""
    names = pq.read_schema(src).names
    if url_col == "url" and caption_col == "text" and "uid" in names:
        return None
    table = pq.read_table(src)
    renames = {url_col: "url", caption_col: "text"}
    table = table.rename_columns([renames.get(c, c) for c in table.column_names])
    if "uid" not in table.column_names:
        table = table.append_column("uid", generated_uids(src.name, table))
    return table


def _copy_one(src: Path, dest: Path, url_col: str, caption_col: str) -> dict[str, Any]:
    """Write one pool metadata file (+ its npz) atomically, its uids checked before it lands."""
    generated = "uid" not in pq.read_schema(src).names
    table = _pool_table(src, url_col, caption_col)
    uids = table.column("uid") if table is not None else pq.read_table(src, columns=["uid"]).column("uid")
    hex_to_pairs(uids, where=str(src))
    if table is not None or dest.resolve() != src.resolve():
        tmp = dest.with_name(f".{dest.name}.tmp")
        if table is not None:
            pq.write_table(table, tmp)
        else:
            shutil.copyfile(src, tmp)
        tmp.replace(dest)
    npz, dest_npz = src.with_suffix(".npz"), dest.with_suffix(".npz")
    if npz.is_file() and npz.resolve() != dest_npz.resolve():
        shutil.copyfile(npz, dest.with_suffix(".npz.tmp"))
        dest.with_suffix(".npz.tmp").replace(dest_npz)
    return {"source": str(src), "rows": len(uids), "uids_generated": generated}


def copy_metadata(files: list[Path], pool: Pool, url_col: str, caption_col: str, overwrite: bool,
                  done: dict[str, Any]) -> dict[str, Any]:
    """Copy parquet (+npz) files into ``pool/metadata``; a rerun skips files copied from the same source."""
    pool.metadata_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {}
    for src in files:
        dest = pool.metadata_dir / src.name
        src_hash = _sha256(src)
        if dest.is_file() and done.get(src.name, {}).get("source_sha256") == src_hash:
            record[src.name] = done[src.name]
            continue
        if dest.is_file() and dest.resolve() != src.resolve() and not overwrite:
            raise HarnessError(f"{dest} exists and was not copied from {src}; "
                               "use another pool_dir or overwrite=true")
        record[src.name] = {**_copy_one(src, dest, url_col, caption_col), "source_sha256": src_hash}
    return record


def expected_shards(record: dict[str, Any], shard_size: int) -> int:
    """img2dataset numbers shards consecutively over the input files in name order."""
    return sum(math.ceil(r["rows"] / shard_size) for _, r in sorted(record.items()))


def _stats_files(shards_dir: Path) -> dict[int, Path]:
    return {int(p.name.split("_")[0]): p for p in shards_dir.glob("*_stats.json")}


def count_tar_samples(tar_path: Path, image_ext: str) -> int:
    """Samples with an image in a shard, from its tar headers (no image decoding)."""
    with tarfile.open(tar_path, "r:") as tf:
        return sum(1 for m in tf if m.isfile() and m.name.endswith("." + image_ext))


def _drop_shard(shards_dir: Path, idx: int) -> None:
    for suffix in ("_stats.json", ".tar", ".parquet"):
        (shards_dir / f"{idx:0{OOM_SHARD_COUNT}d}{suffix}").unlink(missing_ok=True)


def verify_new_shards(shards_dir: Path, before: set[int], image_ext: str) -> list[int]:
    """Un-mark shards finished in this run whose tar is truncated or short (full disk): rerun redoes them."""
    bad = []
    for idx, stats_path in sorted(_stats_files(shards_dir).items()):
        if idx in before:
            continue
        tar_path = shards_dir / f"{idx:0{OOM_SHARD_COUNT}d}.tar"
        try:
            ok = json.loads(stats_path.read_text())["successes"] == count_tar_samples(tar_path, image_ext)
        except (OSError, tarfile.TarError, ValueError, KeyError):
            ok = False
        if not ok:
            bad.append(idx)
            _drop_shard(shards_dir, idx)
    return bad


def summarize(shards_dir: Path, indices: set[int] | None = None) -> dict[str, int]:
    """Add up img2dataset's per-shard stats (all finished shards, or only ``indices``)."""
    files = _stats_files(shards_dir)
    totals = dict.fromkeys(STAT_KEYS, 0)
    for idx in files if indices is None else indices:
        stats = json.loads(files[idx].read_text())
        for k in STAT_KEYS:
            totals[k] += int(stats.get(k, 0))
    return totals


@contextmanager
def stop_when_disk_low(path: Path, min_free_bytes: int, interval: float = 0.2) -> Iterator[Callable[[], bool]]:
    """Interrupt the main thread (img2dataset's own SIGINT path: workers terminated, tmp removed)
    when free space under ``path`` falls below the floor, so a full disk stops the run cleanly."""
    low, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.wait(interval):
            if shutil.disk_usage(path).free < min_free_bytes:
                low.set()
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                return

    thread = threading.Thread(target=watch, daemon=True) if min_free_bytes > 0 else None
    if thread:
        thread.start()
    try:
        yield low.is_set
    finally:
        done.set()
        if thread:
            thread.join()


def _disk_full(pool: Pool, detail: str) -> HarnessError:
    return HarnessError(f"disk full while downloading into {pool.shards_dir} ({detail}); "
                        "free space and rerun the same command to resume")


def _run_img2dataset(pool: Pool, opts: dict[str, Any], min_free_mb: float) -> None:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    try:
        import img2dataset
    except ImportError:
        raise HarnessError("pool download needs img2dataset: pip install img2dataset") from None
    pool.shards_dir.mkdir(parents=True, exist_ok=True)
    floor = int(min_free_mb * (1 << 20))
    if floor and shutil.disk_usage(pool.shards_dir).free < floor:
        raise _disk_full(pool, f"less than min_free_mb={min_free_mb} MiB free before starting")
    old_handler = signal.getsignal(signal.SIGINT)  # img2dataset installs its own and never restores it
    try:
        with stop_when_disk_low(pool.shards_dir, floor) as was_low:
            img2dataset.download(url_list=str(pool.metadata_dir), output_folder=str(pool.shards_dir),
                                 **IMG2DATASET_FIXED, **opts)
    except (SystemExit, KeyboardInterrupt):
        if was_low():
            raise _disk_full(pool, f"free space fell below min_free_mb={min_free_mb} MiB") from None
        raise KeyboardInterrupt from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(pool, exc.strerror) from None
        raise
    finally:
        signal.signal(signal.SIGINT, old_handler)


def _img2dataset_options(cfg: dict[str, Any], files: list[Path]) -> dict[str, Any]:
    has_boxes = all("face_bboxes" in pq.read_schema(f).names for f in files)
    return dict(image_size=cfg["image_size"], resize_mode=cfg["resize_mode"],
                resize_only_if_bigger=cfg["resize_only_if_bigger"], encode_format=cfg["encode_format"],
                processes_count=cfg["processes"], thread_count=cfg["threads"], timeout=cfg["timeout"],
                retries=cfg["retries"], number_sample_per_shard=cfg["shard_size"],
                bbox_col="face_bboxes" if cfg["blur_faces"] and has_boxes else None)


def _write_summary(pool: Pool, summary: dict[str, Any]) -> None:
    path = pool.root / SUMMARY
    tmp = path.with_name(f".{SUMMARY}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    tmp.replace(path)


def prepare_pool(metadata_dir: Path, pool: Pool, cfg: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """Check and copy the metadata, and record it at once so that a killed run resumes."""
    files = _metadata_files(metadata_dir)
    check_metadata(files, cfg["url_col"], cfg["caption_col"])
    summary_path = pool.root / SUMMARY
    previous = json.loads(summary_path.read_text()) if summary_path.is_file() and not overwrite else {}
    if previous and previous.get("shard_size") != cfg["shard_size"]:
        raise HarnessError(f"{pool.root} was downloaded with shard_size={previous.get('shard_size')}; "
                           "rerun with that value or overwrite=true")
    if overwrite and pool.shards_dir.exists():
        shutil.rmtree(pool.shards_dir)
    pool.root.mkdir(parents=True, exist_ok=True)
    record = copy_metadata(files, pool, cfg["url_col"], cfg["caption_col"], overwrite, previous.get("metadata", {}))
    stale = sorted({p.name for p in pool.parquet_files()} - set(record))
    if stale:
        raise HarnessError(f"{pool.metadata_dir} holds parquet files not in {metadata_dir}: {', '.join(stale)}")
    state = {"metadata_dir": str(metadata_dir), "metadata": record, "shard_size": cfg["shard_size"],
             "options": cfg, "n_rows": sum(r["rows"] for r in record.values()),
             "shards_expected": expected_shards(record, cfg["shard_size"]), "complete": False}
    _write_summary(pool, {**previous, **state})
    return state


def download_pool(opts: PoolDownloadConfig) -> dict:
    """Download every image named in ``opts.metadata_dir``'s parquets into ``opts.pool_dir`` (resumable).

    Returns the summary also written to ``pool_dir/download.json``; raises HarnessError when
    shards are still missing (a full disk, a crash), after which the same call resumes.
    """
    cfg = {f.name: getattr(opts, f.name) for f in fields(DownloadOptions)}
    pool_dir, metadata_dir, overwrite = opts.pool_dir, opts.metadata_dir, bool(opts.overwrite)
    pool = Pool(Path(pool_dir))
    state = prepare_pool(Path(metadata_dir), pool, cfg, overwrite)
    n_shards = state["shards_expected"]
    before = set(_stats_files(pool.shards_dir)) if pool.shards_dir.exists() else set()
    start = time.perf_counter()
    stopped: HarnessError | None = None
    if len(before) < n_shards:
        try:
            _run_img2dataset(pool, _img2dataset_options(cfg, pool.parquet_files()), cfg["min_free_mb"])
        except HarnessError as exc:  # still check and record what did finish
            stopped = exc
    wall = time.perf_counter() - start
    bad = verify_new_shards(pool.shards_dir, before, cfg["encode_format"])
    done = _stats_files(pool.shards_dir)
    totals, new = summarize(pool.shards_dir), summarize(pool.shards_dir, set(done) - before)
    summary = {**state, **totals, "shards_done": len(done), "complete": len(done) == n_shards and not bad,
               "success_rate": totals["successes"] / totals["count"] if totals["count"] else 0.0,
               "this_run": {"wall_s": round(wall, 3), "successes": new["successes"],
                            "images_per_s": round(new["successes"] / wall, 2) if wall > 0 else None}}
    _write_summary(pool, summary)
    if stopped is not None:
        raise stopped
    if not summary["complete"]:
        low = shutil.disk_usage(pool.root).free < max(cfg["min_free_mb"], 16) * (1 << 20)
        reason = "disk full" if low else "see img2dataset's messages above"
        raise HarnessError(f"{n_shards - len(done)} of {n_shards} shards did not finish ({reason}); "
                           "rerun the same command to resume")
    return summary


def format_summary(s: dict[str, Any]) -> str:
    return (f"downloaded {s['successes']} of {s['count']} images ({100 * s['success_rate']:.1f}%): "
            f"{s['failed_to_download']} failed to download, {s['failed_to_resize']} failed to decode/resize; "
            f"{s['shards_done']}/{s['shards_expected']} shards; this run {s['this_run']['successes']} images "
            f"in {s['this_run']['wall_s']:.1f} s")


def main(cfg: PoolDownloadConfig) -> int:
    """CLI: ``harness pool download metadata_dir=M pool_dir=P [processes=..] [threads=..]``."""
    print(format_summary(download_pool(cfg)))
    return 0
