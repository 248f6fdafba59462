"""``harness eval``: zero-shot evaluation of a checkpoint on a suite, resumable task by task.

Outputs (docs/contracts.md): ``eval_results.jsonl`` (DataComp's shape, one line per finished
task, plus the checkpoint hash), ``per_example/<key>.npz`` and ``scores.json`` with DataComp's
aggregates, each reported only when all of its tasks are present. A task whose data is missing
is named with its path and skipped; a rerun evaluates only the tasks not yet in the jsonl.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from evals.config import EvalConfig, EvalListConfig

RESULTS = "eval_results.jsonl"
SCORES = "scores.json"


def default_suite(model: str) -> str:
    """The eval suite of the recipes that train ``model`` (tiny model -> tiny), else DataComp's."""
    from tracks.recipes import RECIPES

    suites = {r.eval_suite for r in RECIPES.values() if r.model == model}
    return suites.pop() if len(suites) == 1 else "datacomp"


def default_data_dir(suite: str, world_seed: int = 0) -> str | None:
    """The cached tiny world's eval sets (where `harness run` makes them) for the tiny suite."""
    if suite != "tiny":
        return None
    from harness.core.paths import cache_dir, world_dir_name

    return str(cache_dir() / world_dir_name(world_seed) / "evalsets")


def _read_results(path: Path, sha: str, overwrite: bool) -> dict[str, dict]:
    """Finished tasks of this checkpoint; a trailing partial line (crash mid-write) is dropped."""
    if not path.is_file():
        return {}
    raw = path.read_text()
    lines = raw.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        path.write_text("".join(lines[:-1]))
        lines = lines[:-1]
    done = {}
    for i, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise HarnessError(f"{path}:{i} is not JSON; remove the line or the file") from None
        if row.get("checkpoint_sha256") != sha:
            if overwrite:
                path.unlink()
                return {}
            raise HarnessError(f"{path} holds results of another checkpoint ({str(row.get('checkpoint_sha256'))[:12]}); "
                               "use another out_dir or overwrite=true")
        done[row["key"]] = row
    return done


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _save_arrays(out_dir: Path, key: str, arrays: dict) -> None:
    import numpy as np

    path = out_dir / "per_example" / f"{key}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def scores_of(tasks, done: dict[str, dict]) -> dict[str, Any]:
    """Aggregates over the tasks' main metrics; an aggregate with an absent task is null and
    lists the absent tasks under ``missing``."""
    from evals.registry import aggregate_members

    main = {k: r["metrics"].get("main_metric") for k, r in done.items()}
    aggregates, missing = {}, {}
    for name, keys in aggregate_members(tasks).items():
        absent = [k for k in keys if main.get(k) is None]
        aggregates[name] = None if absent or not keys else sum(main[k] for k in keys) / len(keys)
        if absent:
            missing[name] = absent
    return {"aggregates": aggregates, "missing": missing,
            "tasks": {t.key: main.get(t.key) for t in tasks if t.scored}}


def _task_data(task, data_dir: str | None, stream: bool):
    """(TaskData, None) or (None, reason) when the task's data is absent."""
    from evals.data import open_task

    local = Path(data_dir) / task.dir if data_dir else None
    if local is not None and local.is_dir():
        return open_task(str(local), task.kind), None
    if stream and task.hub:
        return open_task(task.hub, task.kind, remote=True), None
    return None, f"data not found: {local}" if local else "data not found: no data_dir given"


def _context(checkpoint: str, model: str, device: str, sha: str, **kw):
    from evals.tasks_eval import Context
    from harness.core.models import load_checkpoint

    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    net, preprocess, tokenizer = load_checkpoint(checkpoint, model, device=device)
    return Context(model=net, preprocess=preprocess, tokenizer=tokenizer, device=device, model_id=sha, **kw)


def evaluate(checkpoint: str | Path, model: str, data_dir: str | Path | None, out_dir: str | Path,
             tasks: list[str] | None = None, suite: str | None = None, batch_size: int = 256, workers: int = 2,
             device: str = "auto", stream: bool = False, progress: bool = True, text_cache: bool = True,
             overwrite: bool = False) -> dict:
    """Evaluate ``checkpoint`` (an open_clip ``model``) on ``suite`` (None: :func:`default_suite`)
    or its ``tasks``; returns what it writes to scores.json."""
    from evals.registry import load_suite, select
    from evals.tasks_eval import EVALUATORS
    from harness.core.manifest import sha256_file

    suite_tasks = load_suite(suite or default_suite(model))
    todo = select(suite_tasks, list(tasks) if tasks else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not Path(checkpoint).is_file():
        raise HarnessError(f"checkpoint not found: {checkpoint}")
    sha = sha256_file(checkpoint)
    done = _read_results(out / RESULTS, sha, overwrite)
    ctx = _context(str(checkpoint), model, device, sha, batch_size=batch_size, workers=workers,
                   text_cache=text_cache, progress=progress)
    unavailable, timing = {}, {}
    for task in todo:
        if task.key in done:
            print(f"{task.key}: done before ({done[task.key]['metrics'].get('main_metric')})")
            continue
        data, reason = _task_data(task, None if data_dir is None else str(data_dir), stream)
        if data is None:
            print(f"warning: task {task.key} skipped: {reason}")
            unavailable[task.key] = reason
            continue
        t0 = time.perf_counter()
        metrics, arrays = EVALUATORS[task.kind](task, data, ctx)
        wall = time.perf_counter() - t0
        metrics["main_metric"] = metrics.get(task.main_metric) if task.main_metric else None
        timing[task.key] = {"wall_s": round(wall, 3), "images_per_s": round(metrics["n_examples"] / wall, 1)}
        _save_arrays(out, task.key, arrays)
        row = {"key": task.key, "dataset": task.name, "metrics": metrics, "checkpoint_sha256": sha}
        _append(out / RESULTS, row)
        done[task.key] = row
        print(f"{task.key}: {task.main_metric or 'no main metric'} = {metrics['main_metric']}")
    scores = scores_of(suite_tasks, done) | {
        "suite": suite or default_suite(model), "checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": sha, "model": model,
        "selected": [t.key for t in todo], "evaluated": [t.key for t in todo if t.key in done],
        "unavailable": unavailable, "timing": timing}
    tmp = out / (SCORES + ".tmp")
    tmp.write_text(json.dumps(scores, indent=2))
    tmp.replace(out / SCORES)
    return scores


def done_keys(path: Path) -> set[str]:
    """Keys of the tasks with a result line in ``eval_results.jsonl`` (a torn last line is not one)."""
    keys = set()
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            keys.add(json.loads(line)["key"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return keys


# Where a suite's data comes from, for the error that names missing tasks ({key}: the config key
# that points at it, {default}: the cached tiny world's eval sets).
DATA_HINTS = {
    "tiny": "the tiny suite's data is made with the tiny world by `harness pool make` or `harness run`: "
            "point {key} at <world>/evalsets, e.g. {key}={default}{made}",
    "datacomp": "download it with `harness eval download data_dir=<folder>` (or stream=true to read it from "
                "the Hugging Face Hub) and point {key} at that folder",
}
OTHER_SUITE_HINT = "point {key} at the folder that holds the suite's task folders"


def data_hint(suite: str, key: str = "data_dir") -> str:
    default = default_data_dir("tiny")
    made = "" if Path(default).is_dir() else " (made by the first `harness run`)"
    return DATA_HINTS.get(suite, OTHER_SUITE_HINT).format(key=key, default=default, made=made)


def check_complete(scores: dict, data_dir: str | Path | None, chosen: bool, key: str = "data_dir") -> None:
    """Refuse an evaluation where no task ran, or (the whole suite) an aggregate lacks a task, or
    (``chosen``: a user's task list) a chosen task has no result; scores.json is written first."""
    evaluated, selected = scores["evaluated"], scores["selected"]
    if chosen:
        missing = [k for k in selected if k not in evaluated]
    else:
        absent = {k for keys in scores["missing"].values() for k in keys}
        missing = [k for k in selected if k in absent]
    if evaluated and not missing:
        return
    where = f"under {data_dir}" if data_dir else "(no data_dir given)"
    listed = f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}"
    what = "chosen tasks" if chosen else f"tasks of suite {scores['suite']!r}"
    head = (f"no task ran: no data {where} for any of the {len(selected)} {what} ({listed})" if not evaluated else
            f"incomplete evaluation: no result for {len(missing)} of the {len(selected)} {what} ({listed}; data "
            f"not found {where})" + ("" if chosen else ", so its aggregates are not reported"))
    raise HarnessError(f"{head}; {data_hint(scores['suite'], key)}")


def resolve_checkpoint(checkpoint: str, model: str | None, scale: str | None) -> tuple[str, str, str]:
    """(checkpoint .pt, model name, suite) from a `harness train` run dir or a .pt (+ model), checked
    against the scale's recipe: a checkpoint of another architecture is refused, unless its run dir
    says it was trained off-recipe at that scale (what `allow_off_recipe=true` is for)."""
    from tracks.recipes import get_recipe

    recipe = get_recipe(scale) if scale else None
    suite = recipe.eval_suite if recipe else "datacomp"
    path = Path(checkpoint)
    if path.is_dir():
        info_path = path / "train.json"
        if not info_path.is_file():
            raise HarnessError(f"{path} is a directory without train.json: pass a `harness train` run dir or a .pt file")
        info = json.loads(info_path.read_text())
        ckpt, arch = info["checkpoint"], info["model"]
        if model and model != arch:
            raise HarnessError(f"model={model} but {info_path} records model {arch}")
        off_recipe_here = bool(info.get("off_recipe")) and recipe is not None and info.get("scale") == scale
        if off_recipe_here:
            print(f"note: {path} is an off-recipe {scale} run ({arch}); its scores are not the scale's")
    else:
        off_recipe_here = False
        ckpt, arch = str(path), model or (recipe.model if recipe else None)
        if arch is None:
            raise HarnessError("a .pt checkpoint needs model=<open_clip name> or scale=<scale>")
    if recipe and arch != recipe.model and not off_recipe_here:
        raise HarnessError(f"checkpoint {ckpt} is a {arch} model but scale {scale} uses {recipe.model}; "
                           "pass the matching scale=")
    return ckpt, arch, suite


def main(cfg: EvalConfig) -> int:
    """``harness eval checkpoint=C scale=S data_dir=D out_dir=E [tasks=[...]]``."""
    scale = cfg.scale.name
    ckpt, arch, default_suite = resolve_checkpoint(str(cfg.checkpoint), cfg.model, scale)
    tasks = cfg.tasks
    if isinstance(tasks, str):
        tasks = [t for t in tasks.split(",") if t]
    suite = cfg.suite or default_suite
    data_dir = cfg.data_dir or default_data_dir(suite, int(cfg.world_seed))
    scores = evaluate(ckpt, arch, data_dir, cfg.out_dir, tasks=list(tasks) if tasks else None, suite=suite, batch_size=int(cfg.batch_size), workers=int(cfg.workers),
                      device=str(cfg.device), stream=bool(cfg.stream), progress=bool(cfg.progress),
                      text_cache=bool(cfg.text_cache), overwrite=bool(cfg.overwrite))
    print_scores(scores)
    check_complete(scores, data_dir, chosen=bool(tasks))
    return 0


def print_scores(scores: dict) -> None:
    for name, value in scores["aggregates"].items():
        absent = scores["missing"].get(name)
        if value is not None:
            shown = f"{value:.4f}"
        elif absent:
            shown = f"n/a, missing {len(absent)}: {', '.join(absent[:4])}{' ...' if len(absent) > 4 else ''}"
        else:
            shown = "n/a, no task of this suite"
        print(f"{name:>22}: {shown}")


def list_main(cfg: EvalListConfig) -> int:
    """``harness eval list suite=datacomp|tiny [format=json]``: the registry as a table or JSON."""
    from dataclasses import asdict

    from evals.registry import load_suite

    tasks = load_suite(str(cfg.suite))
    rows = [{"key": t.key, "name": t.name, "main_metric": t.main_metric, "num_classes": t.num_classes,
             "random_score": t.random_score, "groups": ",".join(t.groups)} for t in tasks]
    if cfg.format == "json":
        print(json.dumps([asdict(t) | {"group": t.group_spec(), "groups": list(t.groups)} for t in tasks], indent=1))
        return 0
    if cfg.format != "table":
        raise HarnessError(f"format={cfg.format!r}: choose table or json")
    cols = list(rows[0])
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c] if r[c] is not None else "-").ljust(width[c]) for c in cols))
    print(f"{len(tasks)} tasks, {sum(t.scored for t in tasks)} scored")
    return 0
