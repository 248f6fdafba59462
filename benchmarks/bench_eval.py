"""Zero-shot evaluation speed on the tiny suite: images/s and wall time, against a baseline run
in the same process (single-process decode, no text-head cache).

    python benchmarks/bench_eval.py [--eval-dir DIR] [--checkpoint CKPT] [--workers N] [--repeat R]

``--eval-dir`` defaults to the cached tiny world's eval sets; when absent, a stand-in suite with the
tiny suite's folders, class counts and sizes (flat-colour PNGs, ``--per-class`` images per class) is
written to a temporary directory. Speed does not depend on the weights, so without
``--checkpoint`` a freshly initialised harness-tiny-32 is saved in open_clip's format and used.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

MODEL = "harness-tiny-32"


def stand_in_suite(root: Path, per_class: int) -> Path:
    """Folders named and sized like the tiny suite, images as flat-colour 32 px PNGs."""
    import json

    import numpy as np
    from PIL import Image

    from evals.export import write_wds_task
    from evals.registry import load_suite

    rng = np.random.default_rng(0)

    def png() -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    for task in load_suite("tiny"):
        if task.kind == "retrieval":
            samples = [{"png": png(), "txt": f"a scene number {i}"} for i in range(per_class * 10)]
            write_wds_task(root / task.dir, samples, dataset_type="retrieval", shard_size=4000)
            continue
        n = task.num_classes
        samples = [{"png": png(), "cls": i % n} | ({"json": json.dumps({"group": str(i % 5)})} if task.group else {})
                   for i in range(per_class * n)]
        shared = task.key in ("tiny_objects", "tiny_objects_sketch", "tiny_worst_group")
        classes = [f"shape {c}" for c in range(n)] if shared else [f"{task.key} {c}" for c in range(n)]
        write_wds_task(root / task.dir, samples, classes, ["a photo of a {c}.", "a picture of a {c}.", "a {c}."],
                       shard_size=4000)
    return root


def run(ckpt: Path, eval_dir: Path, out: Path, workers: int, cache: bool, device: str = "auto",
        min_bytes: int | None = None) -> tuple[float, int]:
    from evals import tasks_eval, zeroshot
    from evals.run import evaluate

    default = tasks_eval.MIN_BYTES_FOR_WORKERS
    tasks_eval.MIN_BYTES_FOR_WORKERS = default if min_bytes is None else min_bytes
    zeroshot.clear_cache()
    t0 = time.perf_counter()
    scores = evaluate(ckpt, MODEL, eval_dir, out, suite="tiny", workers=workers, text_cache=cache, progress=False,
                      batch_size=256, device=device)
    wall = time.perf_counter() - t0
    tasks_eval.MIN_BYTES_FOR_WORKERS = default
    import json

    rows = [json.loads(x) for x in (out / "eval_results.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and not scores["missing"], scores["missing"]
    return wall, sum(r["metrics"]["n_examples"] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-dir", type=Path, default=None)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--check-precision", action="store_true",
                    help="also evaluate in fp32 on the CPU and compare top-1 predictions and main metrics")
    args = ap.parse_args()
    import torch

    from evals.run import default_data_dir

    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    eval_dir = args.eval_dir or Path(default_data_dir("tiny"))
    if not (eval_dir / "tiny_objects").is_dir():
        print(f"no tiny world eval sets in {eval_dir}: writing a stand-in suite ({args.per_class}/class)")
        eval_dir = stand_in_suite(tmp / "suite", args.per_class)
    ckpt = args.checkpoint
    if ckpt is None:
        import open_clip

        from harness.core.models import register_model_configs

        register_model_configs()
        model, _, _ = open_clip.create_model_and_transforms(MODEL)
        ckpt = tmp / "init.pt"
        torch.save({"state_dict": model.state_dict()}, ckpt)
    print(f"eval_dir {eval_dir}; torch threads {torch.get_num_threads()}; cpus {os.cpu_count()}")
    configs = {"baseline (workers=0, no text cache)": (0, False, None),
               f"harness default (workers={args.workers} on tasks >= 16 MB, text cache)": (args.workers, True, None),
               f"forced workers={args.workers} on every task, text cache": (args.workers, True, 0)}
    best: dict[str, tuple[float, int]] = {}
    for r in range(args.repeat):          # interleaved, best of R: the machine is shared and noisy
        for i, (name, (w, cache, min_bytes)) in enumerate(configs.items()):
            wall, n = run(ckpt, eval_dir, tmp / f"out{r}_{i}", w, cache, args.device, min_bytes)
            print(f"  run {r} {name}: {wall:.2f} s, {n / wall:.0f} images/s")
            if name not in best or wall < best[name][0]:
                best[name] = (wall, n)
    base = next(iter(best.values()))[0]
    for name, (wall, n) in best.items():
        print(f"{name:>62}: wall {wall:6.2f} s  {n / wall:7.0f} images/s  speed-up x{base / wall:.2f}")
    if args.check_precision:
        compare_precision(ckpt, eval_dir, tmp, tmp / "out0_1", args.workers)


def compare_precision(ckpt: Path, eval_dir: Path, tmp: Path, fast_out: Path, workers: int) -> None:
    """Top-1 agreement and main-metric differences between the run above and fp32 on the CPU."""
    import json

    import numpy as np

    run(ckpt, eval_dir, tmp / "cpu_fp32", workers, True, "cpu")
    main = {}
    for out in (fast_out, tmp / "cpu_fp32"):
        for row in map(json.loads, (out / "eval_results.jsonl").read_text().splitlines()):
            main.setdefault(row["key"], []).append(row["metrics"]["main_metric"])
    for key, (fast, ref) in main.items():
        a, b = (np.load(o / "per_example" / f"{key}.npz") for o in (fast_out, tmp / "cpu_fp32"))
        field = "pred" if "pred" in a else "text_hit1"
        agree = float(np.mean(a[field] == b[field]))
        print(f"  {key:>20}: main {fast:.4f} vs fp32 cpu {ref:.4f}  ({field} agreement {agree:.4f})")


if __name__ == "__main__":
    main()
