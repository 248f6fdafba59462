"""``harness run``: pool → filter → reshard → train → eval → leaderboard, one stage per folder.

Each stage owns its skip/resume logic (manifests, checkpoints, per-task results); this module only
orders the stages, guards the work_dir against a different config, records wall times in
``run.json`` and prints the summary table.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError
from harness.manifest import sha256_json

RUN_JSON = "run.json"
# keys that do not change what a run computes: changing them never invalidates a work_dir
NEUTRAL_KEYS = ("workers", "overwrite", "leaderboard_dir", "method_name", "engine", "ray_address")


def cache_dir() -> Path:
    """Where the tiny world is made once and reused: $HARNESS_CACHE, else the user's cache dir."""
    env = os.environ.get("HARNESS_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "datacomp-harness"
    return base


@dataclass
class Ctx:
    """What every stage needs: the composed config (as a plain dict) and the resolved paths."""

    cfg: dict[str, Any]
    work: Path
    pool_dir: Path
    eval_dir: Path


def run_fingerprint(cfg: dict[str, Any]) -> str:
    return sha256_json({k: v for k, v in cfg.items() if k not in NEUTRAL_KEYS})


def guard_work_dir(work: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Refuse a work_dir that holds a run of another config (unless overwrite); return run.json."""
    path = work / RUN_JSON
    fp = run_fingerprint(cfg)
    if path.is_file():
        prev = json.loads(path.read_text())
        if prev.get("fingerprint") != fp and not cfg.get("overwrite"):
            changed = sorted(k for k in set(prev.get("config", {})) | set(cfg)
                             if k not in NEUTRAL_KEYS and prev.get("config", {}).get(k) != cfg.get(k))
            raise HarnessError(f"{work} holds a run with another config (differs in: {', '.join(changed) or '?'}); "
                               f"use a new work_dir, or overwrite=true to start fresh there")
        if prev.get("fingerprint") == fp:
            return prev
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    doc = {"fingerprint": fp, "config": cfg, "stages": {}}
    _save(work, doc)
    return doc


def _save(work: Path, doc: dict[str, Any]) -> None:
    tmp = work / f".{RUN_JSON}.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(work / RUN_JSON)


def resolve_world(cfg: dict[str, Any]) -> tuple[Path, Path]:
    """The pool and eval dirs: given, or the cached tiny world for this world seed."""
    if cfg.get("pool_dir"):
        pool = Path(cfg["pool_dir"]).expanduser().resolve()
        evals = Path(cfg["eval_dir"]).expanduser().resolve() if cfg.get("eval_dir") else pool.parent / "evalsets"
        return pool, evals
    if cfg["scale"]["name"] != "tiny":
        raise HarnessError(f"scale={cfg['scale']['name']} needs pool_dir= (and eval_dir=): only the tiny world is made on demand")
    root = cache_dir() / world_dir_name(cfg["world_seed"], cfg.get("pool_size"), cfg.get("world") or {})
    return root / "pool", Path(cfg["eval_dir"]).resolve() if cfg.get("eval_dir") else root / "evalsets"


def world_dir_name(seed: int, pool_size: int | None, knobs: dict[str, Any]) -> str:
    """The cached world's folder: the default world is ``tiny-world-seed<S>``; a world made with
    other knobs (or pool_size) gets a suffix hashed from them, so it is never mistaken for it."""
    changed = {k: v for k, v in knobs.items() if v is not None} | ({"pool_size": pool_size} if pool_size else {})
    return f"tiny-world-seed{seed}" + (f"-{sha256_json(changed)[:10]}" if changed else "")


def stage_pool(ctx: Ctx) -> str:
    if (ctx.pool_dir / "pool.json").is_file():
        return "cached"
    if cfg_scale(ctx) != "tiny":
        raise HarnessError(f"pool_dir {ctx.pool_dir} is not a finished pool (no pool.json)")
    from harness.world.make import make_world

    knobs = {k: v for k, v in (ctx.cfg.get("world") or {}).items() if v is not None}
    make_world(ctx.pool_dir, ctx.eval_dir, seed=ctx.cfg["world_seed"], pool_size=ctx.cfg.get("pool_size"), **knobs)
    return "made"


def cfg_scale(ctx: Ctx) -> str:
    return ctx.cfg["scale"]["name"]


def stage_filter(ctx: Ctx) -> dict[str, Any]:
    from harness.filters import run_filter

    spec = dict(ctx.cfg["filter"])
    return run_filter(ctx.pool_dir, spec, ctx.work / "filter" / "subset.npy", workers=ctx.cfg["workers"],
                      engine=ctx.cfg.get("engine", "local"), seed=ctx.cfg["seed"])


def stage_reshard(ctx: Ctx) -> dict[str, Any]:
    from harness.reshard import reshard

    return reshard(ctx.pool_dir, ctx.work / "filter" / "subset.npy", ctx.work / "reshard",
                   workers=ctx.cfg["workers"], engine=ctx.cfg.get("engine", "local"),
                   strict=ctx.cfg["track"].get("subset_of_pool", True))


def stage_byod(ctx: Ctx) -> dict[str, Any]:
    """BYOD track: the training data is built from the track's sources instead of filter+reshard."""
    from harness.byod import build_byod

    track = ctx.cfg["track"]
    return build_byod(track.get("sources") or [], ctx.work / "reshard", work_dir=track.get("work_dir"),
                      workers=ctx.cfg["workers"], engine=ctx.cfg.get("engine", "local"),
                      download=track.get("download"))


def stage_train(ctx: Ctx) -> dict[str, Any]:
    from harness.train import train

    opts = {k: v for k, v in (ctx.cfg.get("train") or {}).items() if v is not None}
    return train(cfg_scale(ctx), ctx.work / "reshard", ctx.work / "train", seed=ctx.cfg["seed"], **opts)


def stage_eval(ctx: Ctx) -> dict[str, Any]:
    from evals.run import evaluate
    from tracks.recipes import get_recipe

    info = json.loads((ctx.work / "train" / "train.json").read_text())
    return evaluate(info["checkpoint"], info["model"], ctx.eval_dir, ctx.work / "eval",
                    suite=get_recipe(cfg_scale(ctx)).eval_suite)


def stage_leaderboard(ctx: Ctx) -> dict[str, Any]:
    from leaderboard.store import add_entry, entry_from_run, rank_of

    info = json.loads((ctx.work / "train" / "train.json").read_text())
    if info.get("off_recipe"):
        print("[harness run] off-recipe training: scores are reported but not entered on the leaderboard")
        return {"entered": False, "reason": "off-recipe run"}
    name = ctx.cfg.get("method_name") or ctx.cfg["filter"].get("name", "filter")
    subset_json = ctx.work / "filter" / "subset.json"
    reference = subset_json.is_file() and not json.loads(subset_json.read_text()).get("eligible", True)
    entry = entry_from_run(ctx.work, name, ctx.cfg["track"]["name"], cfg_scale(ctx), reference=reference)
    entry_id = add_entry(Path(ctx.cfg["leaderboard_dir"]), entry)
    return {"entered": True, "id": entry_id, "rank": rank_of(Path(ctx.cfg["leaderboard_dir"]), entry)}


Stage = tuple[str, Callable[[Ctx], Any]]
TRACK_STAGES: dict[str, tuple[Stage, ...]] = {
    "filtering": (("pool", stage_pool), ("filter", stage_filter), ("reshard", stage_reshard),
                  ("train", stage_train), ("eval", stage_eval), ("leaderboard", stage_leaderboard)),
    "byod": (("pool", stage_pool), ("byod", stage_byod),
             ("train", stage_train), ("eval", stage_eval), ("leaderboard", stage_leaderboard)),
}


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run every stage in order, recording each one's wall time and status in run.json."""
    work = Path(cfg["work_dir"]).expanduser().resolve()
    if cfg["track"]["name"] == "filtering":
        from harness.filters.spec import build

        build(dict(cfg["filter"]))  # a bad filter spec fails now, not after the world and the pool
    doc = guard_work_dir(work, cfg)
    pool_dir, eval_dir = resolve_world(cfg)
    ctx = Ctx(cfg, work, pool_dir, eval_dir)
    for name, fn in TRACK_STAGES[cfg["track"]["name"]]:
        if name == "leaderboard" and doc["stages"].get(name, {}).get("status") == "done":
            continue
        t0 = time.time()
        print(f"[harness run] stage {name} ...", flush=True)
        result = fn(ctx)
        wall = round(time.time() - t0, 2)
        prev = doc["stages"].get(name) or {}
        # a rerun that skips a finished stage keeps the wall time of the run that did the work
        doc["stages"][name] = {"status": "done", "wall_s": wall, "first_wall_s": prev.get("first_wall_s", prev.get("wall_s", wall)),
                               "result": result}
        _save(work, doc)
    return doc


def summary_rows(doc: dict[str, Any], work: Path) -> list[tuple[str, str]]:
    """The end-of-run table: subset size, scores, rank, wall time per stage."""
    scores = json.loads((work / "eval" / "scores.json").read_text())["aggregates"]
    subset_json = work / "filter" / "subset.json"
    if subset_json.is_file():
        subset = json.loads(subset_json.read_text())
        size = f"{subset['n_kept']:,} of {subset['n_pool']:,}"
    else:
        size = f"{json.loads((work / 'reshard' / 'manifest.json').read_text())['n_samples']:,} (byod)"
    lb = doc["stages"].get("leaderboard", {}).get("result", {})
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    rows = [("subset size", size),
            ("ImageNet-equivalent", fmt(scores.get("ImageNet"))),
            ("Average", fmt(scores.get("Average"))),
            ("leaderboard rank", str(lb.get("rank", "—")))]
    rows += [(f"wall: {k}", f"{v['wall_s']:.1f} s") for k, v in doc["stages"].items()]
    return rows


def main(cfg) -> int:
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.table import Table

    plain = OmegaConf.to_container(cfg, resolve=True)
    doc = run(plain)
    table = Table(title=f"harness run: {plain['track']['name']} / {plain['scale']['name']} / "
                        f"{plain.get('method_name') or plain['filter'].get('name')}")
    table.add_column("")
    table.add_column("value", justify="right")
    for k, v in summary_rows(doc, Path(plain["work_dir"]).expanduser().resolve()):
        table.add_row(k, v)
    Console().print(table)
    return 0
