"""Seed ``leaderboard/filtering_tiny.json`` with DataComp's baselines, run by the harness itself.

Each (filter, seed) is one ``harness run`` onto a scratch board in the work folder (``harness run``
never writes the reference board); each finished run is then added to the reference board on
purpose with ``harness leaderboard add`` (the oracle, an ineligible filter, as an unranked
reference entry). Finished runs and entries already on the board are skipped, so the script can
be stopped and restarted. Afterwards it renders the page and prints ranking stability (Kendall τ
between seeds) and the oracle − no_filter gap.

    python scripts/seed_tiny_leaderboard.py --seeds 0 1 2 --work ~/.cache/datacomp-harness/seed-runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# (method name, harness run overrides): the baselines named in the issue, oracle as a reference
BASELINES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("no_filter", ("filter=no_filter",)),
    ("oracle", ("filter=oracle",)),
    ("clip_score_0.3", ("filter=clip_score", "filter.fraction=0.3")),
    ("basic", ("filter=basic",)),
    ("text_based", ("filter=text_based",)),
    ("dedup", ("filter=dedup",)),
    ("image_based", ("filter=image_based",)),
    ("image_based_intersect_clip_score", ("filter=image_based_intersect_clip_score",)),
)


def run_dir(work: Path, name: str, seed: int) -> Path:
    return work / f"{name}-seed{seed}"


def run_command(name: str, overrides: tuple[str, ...], seed: int, work: Path) -> list[str]:
    """`harness run` of one baseline and seed, its entry on the scratch board ``<work>/board``."""
    return [sys.executable, "-m", "harness", "run", "track=filtering", "scale=tiny", *overrides, f"seed={seed}",
            f"method_name={name}", f"work_dir={run_dir(work, name, seed)}", f"leaderboard_dir={work / 'board'}"]


def add_command(name: str, seed: int, work: Path, leaderboard_dir: Path, reference: bool) -> list[str]:
    """`harness leaderboard add` of a finished run to the reference board."""
    return [sys.executable, "-m", "harness", "leaderboard", "add", "track=filtering", "scale=tiny",
            f"run_dir={run_dir(work, name, seed)}", f"leaderboard_dir={leaderboard_dir}", f"method_name={name}",
            *(["reference=true"] if reference else [])]


def is_reference(run: Path) -> bool:
    """An ineligible filter (the oracle reads the ground truth) enters only as a reference entry."""
    return not json.loads((run / "filter" / "subset.json").read_text()).get("eligible", True)


def seed_one(name: str, overrides: tuple[str, ...], seed: int, work: Path, lb: Path) -> float:
    t0 = time.time()
    cmd = run_command(name, overrides, seed, work)
    print("+", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)
    add = add_command(name, seed, work, lb, is_reference(run_dir(work, name, seed)))
    print("+", " ".join(add[2:]), flush=True)
    subprocess.run(add, check=True)  # an entry already on the board (a restart) is not an error
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="*", help="method names to run (default: all)")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "datacomp-harness" / "seed-runs")
    ap.add_argument("--leaderboard-dir", type=Path, default=REPO / "leaderboard")
    args = ap.parse_args()
    walls = {}
    for seed in args.seeds:
        for name, overrides in BASELINES:
            if not args.only or name in args.only:
                walls[f"{name}-seed{seed}"] = seed_one(name, overrides, seed, args.work, args.leaderboard_dir)
    from leaderboard.store import localize_per_example

    localize_per_example(args.leaderboard_dir, "filtering", "tiny")
    subprocess.run([sys.executable, "-m", "harness", "leaderboard", "render", "track=filtering", "scale=tiny",
                    f"leaderboard_dir={args.leaderboard_dir}", f"out={args.leaderboard_dir / 'filtering_tiny'}"],
                   check=True)
    from leaderboard.compare import seed_stability
    from leaderboard.store import load_leaderboard

    doc = load_leaderboard(args.leaderboard_dir, "filtering", "tiny")
    print(json.dumps({"wall_s": walls, "seed_stability": seed_stability(doc)}, indent=2, default=str))


if __name__ == "__main__":
    main()
