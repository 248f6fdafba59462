"""Training throughput of a scale's recipe through ``harness train``, against open_clip's synthetic data.

Builds a synthetic shards directory (smooth coloured scenes as JPEG, a caption, a json uid),
then in the same run:
  (a) ``harness.train.launch.train(scale, shards)``: the real WebDataset loader, the recipe as is
      (or, with ``--steps``, a shorter off-recipe budget of the same batch);
  (b) baseline: the same open_clip_train arguments with ``--dataset-type synthetic`` (one
      constant image: the model's speed with no data loading), same number of steps.
Prints samples/s of both (steady-state: the median of open_clip's logged per-step rate, and the
whole-process rate including start-up), the wall time, and real/synthetic.

Usage: ``python benchmarks/bench_train_tiny.py`` (the tiny recipe, 64k samples on CPU);
``--steps 40`` for a quick look; ``--scale debug --image-size 224 --pool-samples 50000
--steps 200 --workers 8`` is the GPU smoke (benchmarks/gpu_smoke.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
RGB = ((220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 20), (140, 30, 160), (240, 140, 20),
       (240, 240, 240), (15, 15, 15))


def _shard(args: tuple[Path, int, int, int, int]) -> dict:
    """One shard of smooth scenes: gradient background, one coloured rectangle, JPEG-encoded."""
    from harness.core.manifest import sha256_file
    from harness.pool.world.tario import encode_image, write_tar

    root, index, n, size, seed = args
    rng = np.random.default_rng([seed, index])
    name = f"{index:08d}.tar"
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    samples = []
    for i in range(n):
        c = int(rng.integers(len(COLOURS)))
        bg = rng.integers(0, 255, 3).astype(np.float32)
        img = bg * (0.5 + 0.5 * ramp[:, None, None]) * np.ones((size, size, 1), np.float32)
        x, y = rng.integers(0, size // 2, 2)
        w, h = rng.integers(size // 6, size // 2, 2)
        img[y:y + h, x:x + w] = RGB[c]
        key = f"{index:06d}{i:06d}"
        samples.append((key, {"jpg": encode_image(img.clip(0, 255).astype(np.uint8), "jpg"),
                              "txt": f"a {COLOURS[c]} box".encode(),
                              "json": json.dumps({"uid": f"{key:0>32}"}).encode()}))
    write_tar(root / name, samples)
    return {"name": name, "n_samples": n, "sha256": sha256_file(root / name)}


def build_shards(root: Path, n_samples: int, size: int, n_shards: int, procs: int) -> Path:
    from harness.core.manifest import write_manifest

    root.mkdir(parents=True, exist_ok=True)
    per = -(-n_samples // n_shards)
    jobs = [(root, s, min(per, n_samples - s * per), size, 0) for s in range(n_shards) if n_samples > s * per]
    with ProcessPoolExecutor(procs) as pool:
        shards = list(pool.map(_shard, jobs))
    write_manifest(root, "reshard", f"bench-{n_samples}-{size}", {}, {}, n_samples=n_samples, shards=shards,
                   subset_sha256=None)
    return root


def logged_rates(log: Path) -> list[float]:
    """open_clip's per-step samples/s from out.log, without each epoch's first (loader start-up) line."""
    rates, seen = [], set()
    for line in log.read_text().splitlines():
        m = re.search(r"Train Epoch: (\d+) \[.*?, ([\d.]+)/s, ", line)
        if m and m.group(1) in seen:
            rates.append(float(m.group(2)))
        elif m:
            seen.add(m.group(1))
    return rates


def synthetic_baseline(args: list[str], out: Path, threads: int | None) -> tuple[float, float]:
    """The same arguments on open_clip's SyntheticDataset; returns (median logged samples/s, wall)."""
    from harness.train.entry import THREADS_ENV

    a = list(args)
    a[a.index("--dataset-type") + 1] = "synthetic"
    i = a.index("--train-data")
    del a[i:i + 2]
    a.remove("--dataset-resampled")
    a[a.index("--logs") + 1] = str(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({"args": a}))
    env = {**os.environ, "WANDB_MODE": "offline"}
    if threads:
        env.update({THREADS_ENV: str(threads), "OMP_NUM_THREADS": str(threads)})
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as harness.train.launch does for CPU runs
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "harness.train.entry", str(out / "run.json")], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.time() - t0
    log = next(out.glob("*/out.log"))
    return statistics.median(logged_rates(log)), wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="tiny")
    p.add_argument("--steps", type=int, default=None, help="train this many steps (off-recipe) instead of the budget")
    p.add_argument("--pool-samples", type=int, default=20_000)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--precision", default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the recipe's)")
    p.add_argument("--keep", default=None, help="work directory to keep (default: a temporary one)")
    a = p.parse_args()

    from harness.train.config import TrainConfig
    from harness.train.launch import train
    from tracks.config import ScaleConfig
    from tracks.recipes import get_recipe, recipe_hash

    recipe = get_recipe(a.scale)
    work = Path(a.keep or tempfile.mkdtemp(prefix="bench_train_"))
    t0 = time.time()
    shards = build_shards(work / "shards", a.pool_samples, a.image_size, a.shards, min(16, os.cpu_count() or 1))
    print(f"pool: {a.pool_samples} samples at {a.image_size}px in {a.shards} shards, built in {time.time() - t0:.1f}s")
    opts = {k: v for k, v in (("workers", a.workers), ("device", a.device), ("precision", a.precision),
                                           ("threads", a.threads)) if v}
    if a.steps:
        epochs = min(recipe.num_checkpoints, a.steps)
        opts.update(train_num_samples=a.steps * recipe.batch_size, allow_off_recipe=True, num_checkpoints=epochs)
    opts["log_every_n_steps"] = max(1, min(20, (a.steps or 100) // 10))
    doc = train(TrainConfig(scale=ScaleConfig(a.scale), data=shards, out_dir=work / "real", **opts))
    real_rates = logged_rates(next((work / "real").glob("*/out.log")))
    real_med = statistics.median(real_rates)
    synth_med, synth_wall = synthetic_baseline(doc["args"], work / "synthetic", doc.get("threads"))
    print(f"recipe {a.scale} ({recipe_hash(recipe)}{', off-recipe budget' if doc['off_recipe'] else ''}): "
          f"{doc['samples_seen']} samples, batch {recipe.batch_size}, model {recipe.model}, device {doc['device']}")
    print(f"real loader : {real_med:10.1f} samples/s steady (median of {len(real_rates)} logged steps), "
          f"{doc['samples_per_s']:.1f} samples/s incl. start-up, wall {doc['wall_s']:.1f}s")
    print(f"synthetic   : {synth_med:10.1f} samples/s steady, wall {synth_wall:.1f}s")
    print(f"ratio real/synthetic (steady): {real_med / synth_med:.3f}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
