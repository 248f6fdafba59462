"""Tiny world speed: rendering samples/s (vectorised banks vs naive per-sample PIL drawing, same
run) and the wall time of the whole default ``pool make`` (render, shards, reference CLIP, featurize).

    python benchmarks/bench_pool_make.py [--n 20000] [--baseline-n 1000] [--no-full] [--pool-size N]

Timings on a shared 2-core machine are noisy: compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.pool.world import render, scenes, tario, vocab
from harness.pool.world.make import build_pool, make_world, print_summary, world_config


def naive_render(sc: dict[str, np.ndarray], i: int, size: int, bg_colours: np.ndarray) -> np.ndarray:
    """Baseline: one scene at a time with PIL (draw each object at 4x, paste, downsample)."""
    from PIL import Image

    big = size * render.SUPERSAMPLE
    img = Image.new("RGB", (big, big), tuple(int(v) for v in bg_colours[sc["bg"][i]]))
    colour = tuple(int(v * sc["light"][i]) for v in sc["rgb"][i])
    for k in range(int(sc["count"][i])):
        d = render.SPRITE_SIZES_32[sc["size"][i]] * size / 32 * render.SUPERSAMPLE
        mask = render._draw_shape(vocab.SHAPES[sc["shape"][i]], d, render.ROTATIONS[sc["rot"][i, k]], big)
        shifted = Image.new("L", (big, big), 0)
        shifted.paste(mask, (int(sc["dx"][i, k]) * render.SUPERSAMPLE, int(sc["dy"][i, k]) * render.SUPERSAMPLE))
        img.paste(colour, (0, 0, big, big), shifted)
    return np.asarray(img.resize((size, size), Image.Resampling.BOX))


def bench_render(n: int, baseline_n: int, size: int) -> None:
    banks = render.build_banks(size, 0)
    sc = scenes.sample_scenes(np.random.default_rng(0), n, size)
    render.render_scenes(banks, {k: v[:256] for k, v in sc.items()})  # warm the page cache
    t = time.perf_counter()
    imgs = render.render_scenes(banks, sc)
    vec = n / (time.perf_counter() - t)
    t = time.perf_counter()
    bg_colours = banks.backgrounds[:, 0].mean((1, 2))
    for i in range(baseline_n):
        naive_render(sc, i, size, bg_colours)
    naive = baseline_n / (time.perf_counter() - t)
    t = time.perf_counter()
    for img in imgs:
        tario.encode_image(img, "jpg")
    enc = n / (time.perf_counter() - t)
    print(f"render  vectorised: {vec:10.0f} samples/s   naive PIL per sample: {naive:8.0f} samples/s   "
          f"ratio {vec / naive:5.1f}x")
    print(f"jpeg encode: {enc:.0f} samples/s; render+encode: {1 / (1 / vec + 1 / enc):.0f} samples/s")
    conf = world_config(shares={"eval_copy": 0.0})
    t = time.perf_counter()
    build_pool(0, n, banks, conf, {})
    print(f"whole in-memory pool (scenes, captions, digits, defects; no eval copies): "
          f"{n / (time.perf_counter() - t):.0f} samples/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--baseline-n", type=int, default=1000)
    ap.add_argument("--no-full", action="store_true", help="skip the full default pool make")
    ap.add_argument("--pool-size", type=int, default=None, help="full run's pool size (default: the tiny world's)")
    args = ap.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    conf = world_config()
    bench_render(args.n, args.baseline_n, int(conf["image_size"]))
    if args.no_full:
        return
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = make_world(Path(tmp) / "pool", seed=0, pool_size=args.pool_size)
        wall = time.perf_counter() - t
        print_summary(res)
        print(f"default pool make: {wall:.1f} s wall (target ≤ 180 s); load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
