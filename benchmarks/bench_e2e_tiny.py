"""Wall time per stage of ``harness run`` on the tiny world (the world made once and cached).

Prints each stage's seconds and the total against the 5-minute target, and the first-run cost
of making the world when it is not cached yet. ``--from-run W`` reports an existing run's
``run.json`` instead of running one.

    python benchmarks/bench_e2e_tiny.py [--filter basic] [--work /tmp/bench-e2e] [--from-run W]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 300.0


def report(run_json: Path, total_wall: float | None = None) -> None:
    doc = json.loads(run_json.read_text())
    stages = {k: v.get("first_wall_s", v["wall_s"]) for k, v in doc["stages"].items()}
    width = max(map(len, stages))
    for name, wall in stages.items():
        print(f"  {name:<{width}}  {wall:8.1f} s")
    total = sum(v for k, v in stages.items() if k != "pool")
    print(f"  total without making the world: {total:.1f} s = {total / TARGET_S:.2f} × the 5-minute target")
    if stages.get("pool", 0) > 1:
        print(f"  first run (world made): {sum(stages.values()):.1f} s = {sum(stages.values()) / 600:.2f} × the 10-minute target")
    if total_wall is not None:
        print(f"  process wall (start-up included): {total_wall:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filter", default="basic")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--from-run", type=Path, default=None)
    args = ap.parse_args()
    if args.from_run:
        report(args.from_run / "run.json")
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-e2e-")) / "run"
    lb = work.parent / "leaderboard"
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "harness", "run", f"filter={args.filter}", f"work_dir={work}",
                    f"leaderboard_dir={lb}"], check=True)
    report(work / "run.json", time.time() - t0)
    if args.work is None:
        shutil.rmtree(work.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
