"""CPU levers for the tiny recipe's training step, each against fp32 measured in the same run.

One training step = open_clip's CLIP loss forward + backward + AdamW on a fixed random batch of
the tiny recipe's shape (no data loading: ``bench_train_tiny.py`` measures the loader). Variants:
bf16 autocast (``torch.autocast("cpu", torch.bfloat16)``), ``channels_last`` images, and torch
thread counts. Prints steps/s and samples/s (median of ``--repeats`` timed blocks after warm-up)
and each variant's ratio to fp32 at the recipe's thread count, plus what the CPU reports.

Usage: ``python benchmarks/bench_train_levers.py [--model harness-tiny-32] [--batch 128] [--steps 20]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_step(model_name: str, batch: int, channels_last: bool, bf16: bool):
    """A closure running one training step on a fixed batch, and the model (for warm-up)."""
    import open_clip
    import torch

    from harness.core.models import register_model_configs

    register_model_configs()
    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms(model_name)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    images = torch.rand(batch, 3, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    tokens = torch.randint(1, 49407, (batch, model.context_length))
    loss_fn = open_clip.ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    def step() -> None:
        with cast:
            image_features, text_features, logit_scale = model(images, tokens)[:3]
            loss = loss_fn(image_features, text_features, logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def measure(step, steps: int, repeats: int) -> float:
    """Median steps/s over ``repeats`` blocks of ``steps`` steps, after 3 warm-up steps."""
    for _ in range(3):
        step()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="harness-tiny-32")
    p.add_argument("--batch", type=int, default=128, help="the tiny recipe's global batch")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", default="1,2", help="torch thread counts to try (the recipe uses 2)")
    a = p.parse_args()
    print(f"CPU capability (torch): {torch.backends.cpu.get_cpu_capability()}; "
          f"torch {torch.__version__}; model {a.model}, batch {a.batch}")
    variants = [("fp32", False, False), ("bf16 autocast", False, True), ("fp32 channels_last", True, False)]
    rows = []
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, cl, bf16 in variants:
            rate = measure(make_step(a.model, a.batch, cl, bf16), a.steps, a.repeats)
            rows.append((threads, name, rate))
            print(f"threads {threads}  {name:<20} {rate:6.2f} steps/s  {rate * a.batch:8.0f} samples/s", flush=True)
    base = next(r for t, n, r in rows if n == "fp32" and t == max(x[0] for x in rows))
    print(f"\nratio to fp32 at {max(x[0] for x in rows)} threads:")
    for threads, name, rate in rows:
        print(f"  threads {threads}  {name:<20} {rate / base:5.2f}x")


if __name__ == "__main__":
    main()
