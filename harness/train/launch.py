"""``harness train``: a scale's fixed recipe → open_clip_train's argument list → a trained checkpoint.

The training loop is open_clip's (``open_clip_train.main``), run in a child process (torchrun
for ``nproc>1``) through :mod:`harness.train.entry`. A subprocess, not an in-process call,
so that a SIGKILL, a resume and torchrun all behave the same way. This module only decides the
arguments, refuses what would hang or silently change the recipe, and records the run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.train.config import RecipeFields, TrainConfig, TrainOptions
from harness.train.record import TRAIN_JSON, record
from tracks.recipes import Recipe, get_recipe, recipe_hash

STARTED_JSON = "train_started.json"
LOGGERS = {"none": [], "wandb": ["--report-to", "wandb"], "tensorboard": ["--report-to", "tensorboard"]}
RECIPE_KEYS = tuple(f.name for f in dataclasses.fields(RecipeFields))
CONSOLE_LOG = "train_output.log"  # the trainer's stdout/stderr (open_clip's own log: <name>_scale/out.log)
LINES_PER_EPOCH = 25  # default open_clip log lines per epoch, so the live progress line moves


def resolve(scale: str, opts: TrainOptions | None = None) -> tuple[Recipe, TrainOptions, bool]:
    """Recipe (with any off-recipe overrides applied), run options with the recipe's defaults
    filled in, off_recipe flag."""
    recipe = get_recipe(scale)
    run = dataclasses.replace(opts or TrainOptions())
    asked = {k: getattr(run.recipe, k) for k in RECIPE_KEYS}
    changed = {k: v for k, v in asked.items() if v is not None and v != getattr(recipe, k)}
    if changed and not run.allow_off_recipe:
        k = next(iter(changed))
        raise HarnessError(f"{k} is fixed by the {scale} recipe ({k}={getattr(recipe, k)!r}, asked {changed[k]!r}); "
                           "pass allow_off_recipe=true to train off-recipe (the result cannot enter the leaderboard)")
    if changed:
        recipe = dataclasses.replace(recipe, **changed)
    for key in ("workers", "device", "num_checkpoints", "threads"):
        if getattr(run, key) is None:
            setattr(run, key, getattr(recipe, key))
    if run.log_every_n_steps is None:
        run.log_every_n_steps = default_log_every(recipe, run)
    run.precision = run.precision or recipe.precisions[0]
    if run.precision not in recipe.precisions:
        raise HarnessError(f"precision {run.precision!r} is not allowed at scale {scale} "
                           f"(choose from: {', '.join(recipe.precisions)})")
    if run.logger not in LOGGERS:
        raise HarnessError(f"unknown logger {run.logger!r} (choose from: {', '.join(LOGGERS)})")
    return recipe, run, bool(changed)


def default_log_every(recipe: Recipe, run: TrainOptions) -> int:
    """open_clip's --log-every-n-steps when not given: ~25 lines an epoch, at most every 100 steps.
    A run option (the recipe and its hash are unchanged); the live progress line reads these lines."""
    steps = math.ceil(recipe.train_num_samples // run.num_checkpoints / recipe.batch_size)
    return max(1, min(100, steps // LINES_PER_EPOCH))


def read_data(data: str | Path) -> dict[str, Any]:
    """The shards directory's manifest, checked: every listed shard exists."""
    data = Path(data)
    man_path = data / "manifest.json"
    if not data.is_dir():
        raise HarnessError(f"training data {data} is not a directory")
    if not man_path.is_file():
        raise HarnessError(f"{data} has no manifest.json: not a shards directory (make one with `harness reshard`)")
    try:
        man = json.loads(man_path.read_text())
        shards, n_samples = man["shards"], int(man["n_samples"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise HarnessError(f"{man_path}: not a shards manifest ({type(exc).__name__}: {exc})") from None
    names = [s["name"] for s in shards]
    if not names:
        raise HarnessError(f"{data} holds no shards (manifest.json lists none)")
    missing = [n for n in names if not (data / n).is_file()]
    if missing:
        raise HarnessError(f"{data}: shard {missing[0]} listed in manifest.json is missing ({len(missing)} missing)")
    return {"dir": data.resolve(), "names": names, "n_samples": n_samples, "manifest": man}


def shard_pattern(data_dir: Path, names: list[str]) -> str:
    """open_clip's ``--train-data``: one brace range when shards are 0..N-1, else a ``::`` list."""
    m = [re.fullmatch(r"(\d+)\.tar", n) for n in names]
    if all(m):
        nums = sorted(int(x.group(1)) for x in m)
        width = len(m[0].group(1))
        if nums == list(range(len(nums))) and all(len(x.group(1)) == width for x in m):
            return str(data_dir / f"{{{0:0{width}d}..{nums[-1]:0{width}d}}}.tar") if len(nums) > 1 \
                else str(data_dir / names[0])
    return "::".join(str(data_dir / n) for n in sorted(names))


def check_layout(recipe: Recipe, run: TrainOptions, world: int, n_shards: int, n_samples: int) -> tuple[int, list[str]]:
    """Per-process batch, and what would not divide or would hang (open_clip's classic traps)."""
    problems = []
    per = recipe.batch_size // (world * run.accum_freq)
    if per * world * run.accum_freq != recipe.batch_size:
        problems.append(f"global batch {recipe.batch_size} does not divide over {world} process(es) × accum_freq "
                        f"{run.accum_freq}; choose nproc/nnodes/accum_freq that divide it")
    readers = max(1, run.workers) * world
    if n_shards < readers:
        problems.append(f"{n_shards} shard(s) for {run.workers} worker(s) × {world} process(es) = {readers} "
                        "readers: open_clip would hang; lower workers= or reshard into more shards")
    if n_samples < recipe.batch_size:
        problems.append(f"the data holds {n_samples} samples, fewer than one global batch ({recipe.batch_size})")
    return per, problems


def samples_seen(recipe: Recipe, run: TrainOptions) -> int:
    """What open_clip will really train on: it rounds each epoch up to whole batches per worker."""
    per_epoch = recipe.train_num_samples // run.num_checkpoints
    micro = recipe.batch_size // run.accum_freq  # open_clip counts batches of world × per-process batch
    worker_batches = math.ceil(math.ceil(per_epoch / micro) / max(1, run.workers))
    return worker_batches * max(1, run.workers) * micro * run.num_checkpoints


# Flags that change memory, not math, dropped where they only cost time: activation
# checkpointing recomputes each forward on CPU for no memory need (tiny: ~12% of a step; the
# weights are bit-identical, tests/test_train.py). The recipe and its hash are unchanged.
SKIPPED_FLAGS = {("cpu", "--grad-checkpointing")}


def build_args(recipe: Recipe, run: TrainOptions, train_data: str, out_dir: Path, seed: int, per_batch: int) -> list[str]:
    """The exact open_clip_train argument list (DataComp's train.py order and flags)."""
    args = ["--save-frequency", "0", "--train-data", train_data,
            "--train-num-samples", str(recipe.train_num_samples // run.num_checkpoints),
            "--warmup", str(recipe.warmup), "--precision", run.precision, "--workers", str(run.workers),
            "--model", recipe.model, "--batch-size", str(per_batch), "--epochs", str(run.num_checkpoints),
            "--lr", str(recipe.lr), "--logs", str(out_dir), "--name", f"{recipe.name}_scale", "--seed", str(seed),
            "--accum-freq", str(run.accum_freq), "--log-every-n-steps", str(run.log_every_n_steps),
            "--device", run.device, *(f for f in recipe.flags if (run.device, f) not in SKIPPED_FLAGS)]
    if recipe.beta2 is not None:
        args += ["--beta2", str(recipe.beta2)]
    if recipe.eps is not None:
        args += ["--eps", str(recipe.eps)]
    if run.device == "cpu":
        args += ["--dist-backend", "gloo"]
    args += LOGGERS[run.logger]
    if run.logger == "wandb":
        args += ["--wandb-project-name", run.wandb_project]
    return args


def run_identity(recipe: Recipe, data: dict, seed: int, world: int, off_recipe: bool) -> dict[str, Any]:
    from harness.core.manifest import input_identity

    return {"recipe": recipe.name, "recipe_hash": recipe_hash(recipe), "model": recipe.model,
            "data_manifest_hash": input_identity(data["dir"]), "seed": seed, "world_size": world,
            "off_recipe": off_recipe}


def check_run_dir(out_dir: Path, ident: dict[str, Any]) -> dict[str, Any] | None:
    """The finished train.json to reuse, None to (re)start; a different run in ``out_dir`` is refused."""
    for name in (TRAIN_JSON, STARTED_JSON):
        path = out_dir / name
        if not path.is_file():
            continue
        prev = json.loads(path.read_text())
        if prev.get("recipe_hash") != ident["recipe_hash"]:
            raise HarnessError(f"{out_dir} holds a run of recipe {prev.get('recipe')} "
                               f"(hash {prev.get('recipe_hash')}), not {ident['recipe']} "
                               f"(hash {ident['recipe_hash']}); use another out_dir")
        for key in ("data_manifest_hash", "seed", "world_size"):
            if prev.get(key) != ident[key]:
                raise HarnessError(f"{out_dir} holds a run with another {key} ({prev.get(key)} ≠ {ident[key]}); "
                                   "use another out_dir")
        if name == TRAIN_JSON:
            return prev
    return None


def _child_env(run: TrainOptions, out_dir: Path, nproc: int) -> dict[str, str]:
    from harness.train.entry import PARENT_ENV, THREADS_ENV

    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("WANDB_DIR", str(out_dir))
    env[PARENT_ENV] = str(os.getpid())
    if run.threads:
        per = str(max(1, run.threads // nproc))
        env.update({THREADS_ENV: per, "OMP_NUM_THREADS": per, "MKL_NUM_THREADS": per})
        # spinning OpenMP threads collapse on a shared CPU (measured ~40 s/step vs ~5 s/step
        # passive, tiny recipe, 2 cores at load 12); the user's own setting wins
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def launch_command(run_file: Path, nproc: int) -> list[str]:
    """The child command: the entry module reading ``args`` from ``run_file``, under torchrun when
    several processes share a node."""
    if nproc == 1:
        return [sys.executable, "-m", "harness.train.entry", str(run_file)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "harness.train.entry", str(run_file)]


def checkpoint_dir(out_dir: Path, recipe: Recipe) -> Path:
    """Where open_clip keeps a run's checkpoints (``--logs out_dir --name <scale>_scale``)."""
    return Path(out_dir) / f"{recipe.name}_scale" / "checkpoints"


def start_epoch(ckpt_dir: Path) -> int:
    """The epoch a resume starts from (0 for a fresh run), read from open_clip's latest checkpoint."""
    latest = ckpt_dir / "epoch_latest.pt"
    if not latest.is_file():
        return 0
    import torch

    return int(torch.load(latest, map_location="cpu", weights_only=True, mmap=True)["epoch"])


# open_clip_train 3.3.0's progress line (train.py, train_one_epoch), e.g.
# "Train Epoch: 0 [ 64/512 (12%)] Data (t): 0.955 Batch (t): 3.994, 16.0254/s, 16.0254/s/gpu LR: 0.000250
#  Logit Scale: 14.286 Contrastive_loss: 4.4289 (4.4289) Loss: 4.4289 (4.4289)"
LOG_LINE = re.compile(r"Train Epoch: (?P<epoch>\d+) \[\s*(?P<seen>\d+)/(?P<per_epoch>\d+) \(\d+%\)\]"
                      r".*? Batch \(t\): \S+, (?P<rate>[^/\s]+)/s,.*? Loss: (?P<loss>\S+) \(")


def parse_log_line(line: str) -> dict[str, Any] | None:
    """epoch (0-based), samples seen in the epoch, samples per epoch, samples/s and loss of one
    open_clip progress line; None for any other line."""
    m = LOG_LINE.search(line)
    if m is None:
        return None
    return {"epoch": int(m["epoch"]), "seen": int(m["seen"]), "per_epoch": int(m["per_epoch"]),
            "samples_per_s": float(m["rate"]), "loss": float(m["loss"])}


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def live_text(rec: dict[str, Any], epochs: int, batch: int, rate: float) -> str:
    """One progress line: epoch and step, samples/s, loss and the time left at ``rate`` samples/s."""
    steps = math.ceil(rec["per_epoch"] / batch)
    left = (epochs - rec["epoch"] - 1) * rec["per_epoch"] + rec["per_epoch"] - rec["seen"]
    eta = _duration(left / rate) if rate > 0 else "?"
    return (f"epoch {rec['epoch'] + 1}/{epochs} step {math.ceil(rec['seen'] / batch)}/{steps}, "
            f"{rec['samples_per_s']:,.0f} samples/s, loss {rec['loss']:.4f}, ETA {eta}")


def _new_lines(log: Path, state: dict[str, Any]) -> list[str]:
    """Complete lines appended to ``log`` since the last call (``state`` holds offset and partial line)."""
    if not log.is_file():
        return []
    with open(log, "rb") as fh:
        fh.seek(state["offset"])
        chunk = fh.read()
    state["offset"] += len(chunk)
    *lines, state["partial"] = (state["partial"] + chunk.decode("utf-8", "replace")).split("\n")
    return lines


def follow(proc: subprocess.Popen, log: Path, prefix: str, epochs: int, batch: int, stream: Any = None,
           every_s: float = 15.0, poll_s: float = 0.5) -> None:
    """Show open_clip's progress while ``proc`` runs, read from its ``log``: one line redrawn in
    place on a terminal, else a line when the first progress appears, then every ``every_s`` and
    at the end. The ETA uses the rate measured over this run (open_clip's is one batch's)."""
    stream = stream or sys.stdout
    tty = stream.isatty()
    state = {"offset": log.stat().st_size if log.is_file() else 0, "partial": ""}  # a resume appends
    last = shown = first = None
    shown_at, width = 0.0, 0
    while True:
        running = proc.poll() is None
        for line in _new_lines(log, state):
            rec = parse_log_line(line)
            if rec is not None:
                last, now = rec, time.time()
                done = rec["epoch"] * rec["per_epoch"] + rec["seen"]
                first = first or (now, done)
                rate = (done - first[1]) / (now - first[0]) if now > first[0] and done > first[1] \
                    else rec["samples_per_s"]
        due = tty or not running or shown is None or time.time() - shown_at >= every_s
        if last is not None and last is not shown and due:
            text = f"{prefix} {live_text(last, epochs, batch, rate)}"
            stream.write(f"\r{text:<{width}}" if tty else f"{text}\n")
            stream.flush()
            shown, shown_at, width = last, time.time(), len(text)
        if not running:
            break
        time.sleep(poll_s)
    if tty and width:
        stream.write("\n")
        stream.flush()


def train(cfg: TrainConfig, live: str | None = "[harness train]") -> dict:
    """Train ``cfg.scale``'s recipe on the shards in ``cfg.data``; writes and returns
    ``cfg.out_dir/train.json``. ``dry_run=True`` returns the plan (recipe, hash, argument list)
    without training. ``live``: the prefix of the live progress line (:func:`follow`); None shows none.
    """
    scale, data, seed, nproc = cfg.scale.name, cfg.data, int(cfg.seed), int(cfg.nproc)
    recipe, run, off_recipe = resolve(scale, cfg)
    if nproc < 1 or run.nnodes < 1:
        raise HarnessError(f"nproc ({nproc}) and nnodes ({run.nnodes}) must be >= 1")
    d = read_data(data)
    world = nproc * run.nnodes
    per_batch, problems = check_layout(recipe, run, world, len(d["names"]), d["n_samples"])
    out_dir = Path(cfg.out_dir).resolve()
    args = build_args(recipe, run, shard_pattern(d["dir"], d["names"]), out_dir, seed, per_batch)
    plan = {"recipe": recipe.name, "recipe_hash": recipe_hash(recipe), "off_recipe": off_recipe,
            "world_size": world, "per_process_batch": per_batch, "samples_seen": samples_seen(recipe, run),
            "problems": problems, "args": args}
    if run.launcher not in ("local", "slurm"):
        raise HarnessError(f"unknown launcher {run.launcher!r} (choose from: local, slurm)")
    if run.dry_run:
        return plan
    if problems:
        raise HarnessError(problems[0])
    if run.logger == "tensorboard":
        _require("torch.utils.tensorboard", "tensorboard", "logger=tensorboard")
    ident = run_identity(recipe, d, seed, world, off_recipe)
    done = check_run_dir(out_dir, ident)
    if done is not None:
        return done
    if run.launcher == "slurm":
        from harness.train.slurm import submit

        return submit(plan, run, out_dir, ident, nproc)
    return _run(recipe, run, args, out_dir, ident, plan, nproc, live)


def _require(module: str, package: str, why: str) -> None:
    import importlib.util

    try:
        ok = importlib.util.find_spec(module) is not None and importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:
        ok = False
    if not ok:
        raise HarnessError(f"{why} needs the {package} package: pip install {package}")


def _run(recipe: Recipe, run: TrainOptions, args: list[str], out_dir: Path, ident: dict, plan: dict, nproc: int,
         live: str | None) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STARTED_JSON).write_text(json.dumps({**ident, "args": args}, indent=2))
    first_epoch = start_epoch(checkpoint_dir(out_dir, recipe))
    log, console = out_dir / f"{recipe.name}_scale" / "out.log", out_dir / CONSOLE_LOG
    t0 = time.time()
    with open(console, "w") as sink:
        proc = subprocess.Popen(launch_command(out_dir / STARTED_JSON, nproc), env=_child_env(run, out_dir, nproc),
                                stdout=sink, stderr=subprocess.STDOUT)
        try:
            if live:
                print(f"{live} open_clip_train is running; full log: {log} (console: {console})", flush=True)
                follow(proc, log, live, run.num_checkpoints, recipe.batch_size)
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    output = console.read_text(encoding="utf-8", errors="replace")
    return record(out_dir, ident, plan, run, first_epoch, time.time() - t0, returncode, output)


def main(cfg: TrainConfig) -> int:
    """CLI: ``harness train scale=S data=D out_dir=R [seed=0] [nproc=N] [dry_run=true] ...``."""
    result = train(cfg)
    if cfg.dry_run:
        print(f"recipe {result['recipe']} hash {result['recipe_hash']}"
              f"{' (OFF-RECIPE)' if result['off_recipe'] else ''}; world size {result['world_size']}, "
              f"per-process batch {result['per_process_batch']}, samples seen {result['samples_seen']}")
        for problem in result["problems"]:
            print(f"warning: {problem}")
        print(" ".join(["open_clip_train.main", *result["args"]]))
    else:
        print(json.dumps(result, indent=2))
    return 0
