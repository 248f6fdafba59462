"""Reshard wall time on Ray against the local engine, on the resharder benchmark's 100k pool.

Same pool and 30% subset as ``bench_reshard.py`` (built once, cached). Times, interleaved:
  (a) ``reshard(engine="local", workers=2)`` (a process pool), the baseline;
  (b) ``reshard(engine="ray", workers=2)`` on a local 2-CPU Ray cluster already running;
and, once, the cost of starting that cluster. Checks that both outputs are byte-identical
(shard sha256 lists equal) and prints the ratio. On one machine Ray can only add overhead:
the number to read is how much, since Ray pays off only when a cluster adds machines.
Usage: ``python benchmarks/bench_ray_reshard.py [--repeats 2] [--cache DIR]``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reshard import FRACTION, N_SHARDS, PER_SHARD, run_cat, setup  # noqa: E402


def run(pool: Path, subset: Path, out: Path, engine: str) -> list[str]:
    from harness.reshard.config import ReshardConfig
    from harness.reshard.plan import reshard

    man = reshard(ReshardConfig(pool_dir=pool, subset=subset, out_dir=out, workers=2, engine=engine))
    return [s["sha256"] for s in man["shards"]]


def main() -> None:
    args, pool, subset, shards = setup(__doc__.splitlines()[0], repeats=2)
    from harness.core.engine import ray_init

    t0 = time.perf_counter()
    ray_init(None, workers=2)
    start_s = time.perf_counter() - t0
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    hashes: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for engine in walls:
            out = args.cache / f"out_{engine}"
            shutil.rmtree(out, ignore_errors=True)
            run_cat(shards)  # warm the page cache alike for both cases
            t0 = time.perf_counter()
            hashes[engine] = run(pool, subset, out, engine)
            walls[engine].append(time.perf_counter() - t0)
    if hashes["local"] != hashes["ray"]:
        raise SystemExit("engine=ray wrote other bytes than engine=local")
    med = {k: statistics.median(v) for k, v in walls.items()}
    n = round(FRACTION * N_SHARDS * PER_SHARD)
    for engine, runs in walls.items():
        print(f"{engine:6s} wall median {med[engine]:6.2f} s (runs {', '.join(f'{t:.2f}' for t in runs)}), "
              f"{n / med[engine]:.0f} samples/s written")
    print(f"ray / local wall: {med['ray'] / med['local']:.2f}x; starting the local Ray cluster: {start_s:.1f} s; "
          f"outputs byte-identical ({len(hashes['ray'])} shards)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
