"""Time the whole ``harness filter ... filter=clip_score filter.fraction=0.3`` command on a synthetic
CommonPool-small-sized metadata set (12.8M rows, 26 parquet files) against a baseline measured in
the same run: a plain pandas implementation of DataComp's approach (``baselines/apply_filter.py``:
global threshold from the sorted score column, per-file uid parsing with Python ints, 2 workers).

Prints wall time, rows/s and peak RSS of each process tree, the ratios, and whether both subsets
are identical. The data is generated once into a cache dir (≈ 2.5 GB; never committed).

    .venv/bin/python benchmarks/bench_filter.py [--rows 12800000] [--files 26] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
CAPTIONS = [f"a photo of {a} {b} on a {c} background" for a in ("one", "two", "a red", "a small", "the big")
            for b in ("cat", "dog", "car", "house", "tree", "boat", "lamp", "chair")
            for c in ("white", "blue", "busy", "wooden", "grassy")]

BASELINE = r'''
import sys, numpy as np, pandas as pd
from multiprocessing import Pool
from pathlib import Path
meta, out, key, fraction, workers = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
paths = sorted(str(p) for p in Path(meta).glob("*.parquet"))

def scores(p):
    return pd.read_parquet(p, columns=[key])

def keep(args):
    p, thr = args
    df = pd.read_parquet(p, columns=["uid", key])
    return np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in df[df[key] >= thr]["uid"].values],
                    np.dtype("u8,u8"))

if __name__ == "__main__":
    with Pool(workers) as pool:
        df = pd.concat(pool.map(scores, paths))
        n = int(len(df) * fraction)
        thr = -np.sort(-df[key].values)[n]
        uids = np.concatenate(pool.map(keep, [(p, thr) for p in paths]))
    uids.sort()
    np.save(out, uids)
'''


def _hex_strings(rng: np.random.Generator, n: int) -> pa.Array:
    """n random 32-char lower-case hex uids, built straight into an Arrow buffer."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    chars = np.empty((n, 32), np.uint8)
    chars[:, 0::2] = digits[raw >> 4]
    chars[:, 1::2] = digits[raw & 15]
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def make_metadata(root: Path, rows: int, files: int, seed: int = 0) -> Path:
    """Generate (once) ``files`` parquet files totalling ``rows`` rows in the CommonPool column layout."""
    meta = root / "metadata"
    done = root / "DONE"
    if done.is_file() and done.read_text() == f"{rows} {files} {seed}":
        return root
    meta.mkdir(parents=True, exist_ok=True)
    for old in meta.glob("*.parquet"):
        old.unlink()
    rng = np.random.default_rng(seed)
    caps = pa.array(CAPTIONS)
    per = np.diff(np.linspace(0, rows, files + 1).astype(np.int64))
    t0 = time.time()
    for i, n in enumerate(per):
        uid = _hex_strings(rng, int(n))
        table = pa.table({
            "uid": uid,
            "url": pa.compute.binary_join_element_wise("http://img.example/", uid, ".jpg", ""),
            "text": caps.take(pa.array(rng.integers(0, len(CAPTIONS), int(n)))),
            "original_width": rng.integers(64, 2048, int(n)),
            "original_height": rng.integers(64, 2048, int(n)),
            "clip_b32_similarity_score": rng.normal(0.3, 0.05, int(n)).astype(np.float32),
            "clip_l14_similarity_score": rng.normal(0.25, 0.05, int(n)).astype(np.float32),
        })
        pq.write_table(table, meta / f"{i:08d}.parquet")
    done.write_text(f"{rows} {files} {seed}")
    print(f"generated {rows} rows in {files} files under {meta} in {time.time() - t0:.1f} s", flush=True)
    return root


def _tree_rss(pid: int) -> int:
    """Sum of VmRSS (bytes) of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak process-tree RSS of a command (polled every 10 ms)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    out = proc.stdout.read()
    if proc.returncode:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    return wall, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=12_800_000)
    ap.add_argument("--files", type=int, default=26)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=0.3)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each command; the best is reported")
    ap.add_argument("--cache", default=os.environ.get("BENCH_CACHE", Path(tempfile.gettempdir()) / "datacomp-harness-bench"))
    args = ap.parse_args()
    pool = make_metadata(Path(args.cache) / f"filter-{args.rows}x{args.files}", args.rows, args.files)
    work = Path(tempfile.mkdtemp(prefix="bench_filter_"))
    py = sys.executable
    harness = [py, "-m", "harness", "filter", f"pool_dir={pool}", "filter=clip_score",
               f"filter.fraction={args.fraction}", "filter.arch=l14", f"out={work / 'harness.npy'}",
               f"workers={args.workers}", "overwrite=true"]
    script = work / "datacomp_baseline.py"
    script.write_text(BASELINE)
    baseline = [py, str(script), str(pool / "metadata"), str(work / "baseline.npy"), "clip_l14_similarity_score",
                str(args.fraction), str(args.workers)]
    results = {}
    for name, cmd in (("baseline (pandas, DataComp's approach)", baseline), ("harness filter", harness)):
        runs = [timed(cmd) for _ in range(args.repeat)]
        results[name] = (min(r[0] for r in runs), max(r[1] for r in runs))
    a = np.load(work / "baseline.npy")
    b = np.load(work / "harness.npy")
    print(f"rows {args.rows}, files {args.files}, workers {args.workers}, fraction {args.fraction}, "
          f"cpus {os.cpu_count()} (shared machine: timings are noisy)")
    for name, (wall, rss) in results.items():
        print(f"{name:40s} wall {wall:6.2f} s  {args.rows / wall / 1e6:6.2f} M rows/s  peak RSS {rss / 2**30:5.2f} GiB")
    (bw, brss), (hw, hrss) = results.values()
    print(f"speed-up {bw / hw:.1f}x, memory ratio {hrss / brss:.2f}; kept {len(b)} "
          f"(baseline {len(a)}), identical subsets: {bool(len(a) == len(b) and (a == b).all())}")


if __name__ == "__main__":
    main()
