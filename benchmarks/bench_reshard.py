"""Resharder speed against baselines measured in the same run.

Builds once (cached outside the repo) a 100k-sample pool: 10 shards × 10k samples of a ≈25 KB
JPEG-sized blob (random bytes: the resharder never decodes), a caption and a json with the uid;
and a 30% subset. Then times, from page cache:
  (a) ``harness.reshard.reshard(workers=2)``,
  (b) the plainest correct resharder: Python's ``tarfile`` streaming each input shard and copying
      the selected samples' members into output tars, 2 processes (half the input shards each),
  (c) ``cat`` of the input shards to /dev/null (the read floor).
and prints samples/s and ratios. Usage: ``python benchmarks/bench_reshard.py [--repeats 3] [--cache DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

N_SHARDS, PER_SHARD, IMAGE_BYTES, FRACTION = 10, 10_000, 25_000, 0.30
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "datacomp-harness" / "bench_reshard"


def build_pool(root: Path) -> tuple[Path, Path]:
    """The 100k-sample pool and 30% subset, built once (an atomic rename marks it complete)."""
    from harness.pool.uids import hex_to_pairs, sort_pairs, write_subset

    pool = root / "pool"
    if (pool / "subset.npy").is_file():
        return pool, pool / "subset.npy"
    tmp = root / "pool.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "shards").mkdir(parents=True)
    rng = np.random.default_rng(0)
    uids = []
    t0 = time.time()
    for s in range(N_SHARDS):
        with tarfile.open(tmp / "shards" / f"{s:08d}.tar", "w") as tar:
            for k in range(PER_SHARD):
                key, uid = f"{s:04d}{k:05d}", hashlib.md5(f"{s}/{k}".encode()).hexdigest()
                uids.append(uid)
                meta = {"uid": uid, "url": f"http://example.test/{uid}.jpg", "caption": f"photo {key}",
                        "width": 256, "height": 256, "original_width": 512, "original_height": 384}
                for ext, data in (("jpg", rng.bytes(IMAGE_BYTES)), ("txt", f"photo {key}".encode()),
                                  ("json", json.dumps(meta).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        (tmp / "shards" / f"{s:08d}_stats.json").write_text(json.dumps({"successes": PER_SHARD}))
        print(f"  built shard {s + 1}/{N_SHARDS} ({time.time() - t0:.0f} s)", file=sys.stderr)
    chosen = rng.choice(len(uids), int(FRACTION * len(uids)), replace=False)
    write_subset(tmp / "subset.npy", sort_pairs(hex_to_pairs([uids[i] for i in chosen])))
    tmp.rename(pool)
    return pool, pool / "subset.npy"


def _tarfile_worker(args: tuple[list[str], list[str], str, int]) -> int:
    """Baseline (b), one process: stream shards with tarfile, group by key, copy selected samples."""
    shards, subset_hex, out_prefix, shard_size = args
    wanted = set(subset_hex)
    written, out_index, out = 0, 0, None

    def flush_sample(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        nonlocal written, out_index, out
        js = [d for m, d in members if m.name.endswith(".json")]
        if not js or json.loads(js[0]).get("uid") not in wanted:
            return
        if out is None or written % shard_size == 0:
            if out is not None:
                out.close()
            out = tarfile.open(f"{out_prefix}_{out_index:05d}.tar", "w")
            out_index += 1
        for info, data in members:
            out.addfile(info, io.BytesIO(data))
        written += 1

    for shard in shards:
        with tarfile.open(shard, "r|") as tar:
            key, members = None, []
            for info in tar:
                if not info.isreg():
                    continue
                k = info.name.split(".", 1)[0]
                if k != key and members:
                    flush_sample(members)
                    members = []
                key = k
                members.append((info, tar.extractfile(info).read()))
            if members:
                flush_sample(members)
    if out is not None:
        out.close()
    return written


def run_tarfile_baseline(shards: list[Path], subset: Path, out: Path) -> int:
    from harness.pool.uids import pairs_to_hex, read_subset

    out.mkdir(parents=True)
    hexes = pairs_to_hex(read_subset(subset)).tolist()
    halves = [[str(p) for p in shards[i::2]] for i in range(2)]
    with ProcessPoolExecutor(2) as pool:
        return sum(pool.map(_tarfile_worker, [(h, hexes, str(out / f"w{i}"), 10_000) for i, h in enumerate(halves)]))


def run_harness(pool: Path, subset: Path, out: Path) -> int:
    from harness.reshard.config import ReshardConfig
    from harness.reshard.plan import reshard

    return reshard(ReshardConfig(pool_dir=pool, subset=subset, out_dir=out, workers=2))["n_samples"]


def run_cat(shards: list[Path]) -> int:
    subprocess.run(["cat", *map(str, shards)], stdout=subprocess.DEVNULL, check=True)
    return N_SHARDS * PER_SHARD


def timed(fn, *args) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (this process + its finished children: worker pools, cat), result."""
    c0, t0 = os.times(), time.perf_counter()
    n = fn(*args)
    c1, t1 = os.times(), time.perf_counter()
    cpu = sum(c1[:4]) - sum(c0[:4])
    return t1 - t0, cpu, n


def setup(description: str, repeats: int) -> tuple[argparse.Namespace, Path, Path, list[Path]]:
    """Parse ``--repeats``/``--cache``, build (or reuse) the pool, print what it is: the part every
    reshard benchmark shares. Returns (args, pool, subset, input shards)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    pool, subset = build_pool(args.cache)
    shards = sorted((pool / "shards").glob("*.tar"))
    gb = sum(p.stat().st_size for p in shards) / 1e9
    print(f"pool: {N_SHARDS * PER_SHARD} samples, {gb:.2f} GB in {len(shards)} shards; subset {FRACTION:.0%}; "
          f"{os.cpu_count()} CPUs (shared: timings are noisy)")
    return args, pool, subset, shards


def main() -> None:
    args, pool, subset, shards = setup(__doc__.splitlines()[0], repeats=3)
    outs = {"a": args.cache / "out_harness", "b": args.cache / "out_tarfile"}
    cases = {"(a) harness reshard, workers=2": lambda: run_harness(pool, subset, outs["a"]),
             "(b) tarfile streaming, 2 processes": lambda: run_tarfile_baseline(shards, subset, outs["b"]),
             "(c) cat shards > /dev/null": lambda: run_cat(shards)}
    walls: dict[str, list[float]] = {k: [] for k in cases}
    cpus: dict[str, list[float]] = {k: [] for k in cases}
    counts: dict[str, int] = {}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every case alike
        for name, fn in cases.items():
            for out in outs.values():  # deleting last run's output is not part of any case
                shutil.rmtree(out, ignore_errors=True)
            run_cat(shards)  # other processes on a shared machine evict pages: re-warm before each case
            wall, cpu, counts[name] = timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
    if counts["(a) harness reshard, workers=2"] != counts["(b) tarfile streaming, 2 processes"]:
        raise SystemExit(f"sample counts differ: {counts}")
    med = {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in cases}
    for name in cases:
        unit = "read" if name.startswith("(c)") else "written"
        print(f"{name:36s} wall median {med[name][0]:6.2f} s (runs {', '.join(f'{t:.2f}' for t in walls[name])})"
              f"  cpu {med[name][1]:6.2f} s  {counts[name] / med[name][0]:8.0f} samples/s {unit}")
    (a, ca), (b, cb), (c, _) = med.values()
    print(f"speed-up of (a) over (b): {b / a:.2f}x wall (target >= 3x), {cb / ca:.2f}x CPU; "
          f"(a) takes {a / c:.1f}x the wall time of reading the shards (cat)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
