"""``harness run``: pool → filter → reshard → train → eval → leaderboard, one stage per folder.

Everything that would be refused is refused before anything is written: a bad filter spec, the
committed reference board as ``leaderboard_dir``, a ``pool_dir`` that is not a finished pool, a
``work_dir`` holding a run of another config. Each stage has a probe that reads the stage's own
outputs (manifests, checkpoints, per-task results) and says whether it is done, half done or to
do; the run prints one line per stage from it, skips what is done and lets each stage resume
itself. The summary table is printed after eval whatever the leaderboard says, with the reason
underneath when the entry was not taken; the entry goes to the user's board, never the reference.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, NamedTuple

from harness.core.errors import HarnessError
from harness.core.manifest import sha256_json
from harness.config import RunConfig
from harness.core.paths import cache_dir, world_dir_name
from harness.core.schema import delta, plain
from harness.reshard.config import ReshardConfig
from harness.train.config import TrainConfig, TrainOptions

RUN_JSON = "run.json"
SAY = "[harness run]"
# keys that do not change what a run computes: changing them never invalidates a work_dir
NEUTRAL_KEYS = ("workers", "overwrite", "leaderboard_dir", "method_name", "engine", "ray_address", "dry_run",
                "make_world")
TO_RUN, DONE, RESUME = "to run", "done", "resume"


@dataclass
class Ctx:
    """What every stage needs: the typed config and the resolved paths."""

    cfg: RunConfig
    work: Path
    pool_dir: Path
    eval_dir: Path
    board: Path  # the leaderboard folder this run's entry goes to (the user's board by default)
    cached: bool = False  # the pool is the cached tiny world


class Probe(NamedTuple):
    """A stage's state read from its outputs: TO_RUN, DONE (``detail`` says what is there) or
    RESUME (``detail`` says from where); ``result`` stands in for the stage's return when done."""

    state: str
    detail: str = ""
    result: dict[str, Any] | None = None


def status_text(probe: Probe, dry_run: bool = False) -> str:
    if probe.state == DONE:
        return f"skipped (done: {probe.detail})"
    if probe.state == RESUME:
        return f"resuming from {probe.detail}"
    return ("to run" if dry_run else "running") + (f" ({probe.detail})" if probe.detail else "")


def say(stage: str, text: str) -> None:
    print(f"{SAY} {stage}: {text}", flush=True)


# --- before any work: everything that is refused, reading only --------------------------------------

def record_config(cfg: RunConfig) -> dict[str, Any]:
    """The config as run.json records it: world and train as what was changed from their
    defaults (so spelling a default out changes nothing), the track's name and rule always."""
    return {**plain(cfg), "track": delta(cfg.track, keep=("name", "subset_of_pool")), "world": delta(cfg.world),
            "train": delta(cfg.train)}


def run_fingerprint(cfg: dict[str, Any]) -> str:
    return sha256_json({k: v for k, v in cfg.items() if k not in NEUTRAL_KEYS})


def check_work_dir(work: Path, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The run.json of this config to continue (None: start fresh); a work_dir holding a run of
    another config is refused unless overwrite. Reads only."""
    path = work / RUN_JSON
    if not path.is_file():
        return None
    prev = json.loads(path.read_text())
    if prev.get("fingerprint") == run_fingerprint(cfg):
        return prev
    if not cfg.get("overwrite"):
        changed = sorted(k for k in set(prev.get("config", {})) | set(cfg)
                         if k not in NEUTRAL_KEYS and prev.get("config", {}).get(k) != cfg.get(k))
        raise HarnessError(f"{work} holds a run with another config (differs in: {', '.join(changed) or '?'}); "
                           f"use a new work_dir, or overwrite=true to start fresh there")
    return None


def open_work_dir(work: Path, cfg: dict[str, Any], prev: dict[str, Any] | None) -> dict[str, Any]:
    """run.json to record into: the previous one of this config, else a fresh work_dir."""
    if prev is not None:
        return prev
    if (work / RUN_JSON).is_file():  # another config, and overwrite=true (check_work_dir refused otherwise)
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    doc = {"fingerprint": run_fingerprint(cfg), "config": cfg, "stages": {}}
    _save(work, doc)
    return doc


def _save(work: Path, doc: dict[str, Any]) -> None:
    tmp = work / f".{RUN_JSON}.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(work / RUN_JSON)


def resolve_board(cfg: RunConfig) -> Path:
    """The leaderboard folder the entry goes to: ``leaderboard_dir``, else the user's board; the
    committed reference board is refused (it changes only by an explicit `leaderboard add`)."""
    from leaderboard.store import is_reference_dir, user_board_dir

    given = cfg.leaderboard_dir
    board = Path(given).expanduser().resolve() if given else user_board_dir()
    if is_reference_dir(board):
        raise HarnessError(f"the reference board {board} is read-only for harness run; leave leaderboard_dir unset "
                           f"to use your own board ({user_board_dir()}), or add a finished run to the reference "
                           f"on purpose with `harness leaderboard add run_dir=<work_dir> leaderboard_dir={board}`")
    return board


def finished_pool(pool_dir: Path) -> bool:
    """A pool the harness made (pool.json, written last) or a CommonPool laid out by other tools."""
    return (pool_dir / "pool.json").is_file() or (
        any((pool_dir / "metadata").glob("*.parquet")) and any((pool_dir / "shards").glob("*.tar")))


def resolve_world(cfg: RunConfig) -> tuple[Path, Path, bool]:
    """(pool_dir, eval_dir, cached): the given pool, or the cached tiny world for this world seed.

    A given pool_dir that is not a finished pool is refused: the tiny world is made there only
    with make_world=true and an explicit eval_dir, so nothing lands where the user did not say."""
    tiny = cfg.scale.name == "tiny"
    if cfg.pool_dir:
        pool = Path(cfg.pool_dir).expanduser().resolve()
        evals = Path(cfg.eval_dir).expanduser().resolve() if cfg.eval_dir else pool.parent / "evalsets"
        if not finished_pool(pool):
            if not tiny:
                raise HarnessError(f"pool_dir {pool} is not a finished pool (no pool.json); only the tiny world "
                                   "is made on demand (scale=tiny make_world=true)")
            if not (cfg.make_world and cfg.eval_dir):
                raise HarnessError(f"pool_dir {pool} is not a finished pool (no pool.json); pass make_world=true "
                                   "to make the tiny world there, with eval_dir=<where the eval suite goes>")
        return pool, evals, False
    if not tiny:
        raise HarnessError(f"scale={cfg.scale.name} needs pool_dir= (and eval_dir=): only the tiny world is made on demand")
    root = cache_dir() / world_dir_name(cfg.world_seed, cfg.pool_size, delta(cfg.world))
    evals = Path(cfg.eval_dir).expanduser().resolve() if cfg.eval_dir else root / "evalsets"
    return root / "pool", evals, True


def prepare(cfg: RunConfig) -> tuple[Ctx, dict[str, Any] | None]:
    """Every refusal, before anything is written; returns the context and the run.json to continue."""
    work = Path(cfg.work_dir).expanduser().resolve()
    if cfg.track.name == "filtering":
        from harness.filters.spec import build

        build(dict(cfg.filter))  # a bad filter spec fails now, not after the world and the pool
    board = resolve_board(cfg)
    pool_dir, eval_dir, cached = resolve_world(cfg)
    prev = check_work_dir(work, record_config(cfg))
    return Ctx(cfg, work, pool_dir, eval_dir, board, cached), prev


# --- the stages and their probes --------------------------------------------------------------------

def _json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def _older(path: Path, than: Path) -> bool:
    return than.is_file() and path.stat().st_mtime_ns < than.stat().st_mtime_ns


def cfg_scale(ctx: Ctx) -> str:
    return ctx.cfg.scale.name


def suite_of(ctx: Ctx) -> str:
    from tracks.recipes import get_recipe

    return get_recipe(cfg_scale(ctx)).eval_suite


def probe_pool(ctx: Ctx) -> Probe:
    meta = _json(ctx.pool_dir / "pool.json")
    where = ctx.pool_dir.parent if ctx.cached else ctx.pool_dir
    if meta is None and not finished_pool(ctx.pool_dir):
        return Probe(TO_RUN, f"making the tiny world at {where}")
    n = (meta or {}).get("n_samples")
    size = f", {n:,} samples" if isinstance(n, int) else ""
    return Probe(DONE, f"{'cached world' if ctx.cached else 'pool'} at {where}{size}")


def stage_pool(ctx: Ctx) -> dict[str, Any]:
    from harness.pool.world.make import make_world

    make_world(ctx.pool_dir, ctx.eval_dir, seed=ctx.cfg.world_seed, pool_size=ctx.cfg.pool_size, world=ctx.cfg.world)
    return {"made": str(ctx.pool_dir), "eval_dir": str(ctx.eval_dir)}


def probe_filter(ctx: Ctx) -> Probe:
    report = ctx.work / "filter" / "subset.json"
    rep = _json(report)
    if rep is None or not (ctx.work / "filter" / "subset.npy").is_file() or _older(report, ctx.pool_dir / "pool.json"):
        return Probe(TO_RUN)
    return Probe(DONE, f"{rep['n_kept']:,} of {rep['n_pool']:,} kept")


def stage_filter(ctx: Ctx) -> dict[str, Any]:
    from harness.filters import run_filter

    return run_filter(ctx.pool_dir, dict(ctx.cfg.filter), ctx.work / "filter" / "subset.npy",
                      workers=ctx.cfg.workers, engine=ctx.cfg.engine, seed=ctx.cfg.seed,
                      ray_address=ctx.cfg.ray_address)


def _shards_done(man: dict[str, Any] | None) -> str | None:
    if not man or man.get("stage") != "reshard":
        return None
    n = len(man["shards"])
    return f"{n} shard{'s' * (n != 1)}, {man['n_samples']:,} samples"


def probe_reshard(ctx: Ctx) -> Probe:
    out = ctx.work / "reshard"
    man = _json(out / "manifest.json")
    subset = _json(ctx.work / "filter" / "subset.json") or {}
    done = _shards_done(man)
    if done and man.get("subset_sha256") == subset.get("subset_sha256"):
        return Probe(DONE, done)
    partial = out / ".reshard"
    if (partial / "state.json").is_file():
        indexed, written = (len(list((partial / sub).glob("*.json"))) for sub in ("index", "done"))
        return Probe(RESUME, f"{indexed} input shards indexed, {written} output shards written")
    return Probe(TO_RUN)


def stage_reshard(ctx: Ctx) -> dict[str, Any]:
    from harness.reshard.plan import reshard

    c = ctx.cfg
    return reshard(ReshardConfig(track=c.track, pool_dir=str(ctx.pool_dir), subset=str(ctx.work / "filter" / "subset.npy"),
                                 out_dir=str(ctx.work / "reshard"), workers=c.workers, engine=c.engine,
                                 strict=c.track.subset_of_pool, ray_address=c.ray_address, progress=False))


def probe_byod(ctx: Ctx) -> Probe:
    done = _shards_done(_json(ctx.work / "reshard" / "manifest.json"))
    return Probe(DONE, done) if done else Probe(TO_RUN)


def stage_byod(ctx: Ctx) -> dict[str, Any]:
    """BYOD track: the training data is built from the track's sources instead of filter+reshard."""
    from harness.reshard.byod import build_byod

    c = ctx.cfg
    return build_byod(ReshardConfig(track=c.track, out_dir=str(ctx.work / "reshard"), workers=c.workers,
                                    engine=c.engine, ray_address=c.ray_address, progress=False))


def probe_train(ctx: Ctx) -> Probe:
    from harness.train.launch import checkpoint_dir, resolve, start_epoch
    from harness.train.record import TRAIN_JSON

    out = ctx.work / "train"
    info = _json(out / TRAIN_JSON)
    shards = _json(ctx.work / "reshard" / "manifest.json") or {}
    if info and info.get("data_manifest_hash") in (shards.get("output_hash"), shards.get("fingerprint")):
        return Probe(DONE, f"checkpoint {Path(info['checkpoint']).name}")
    recipe, run, _ = resolve(cfg_scale(ctx), ctx.cfg.train)
    epochs = start_epoch(checkpoint_dir(out, recipe))
    return Probe(RESUME, f"epoch {epochs} of {run.num_checkpoints}") if epochs else Probe(TO_RUN)


def stage_train(ctx: Ctx) -> dict[str, Any]:
    from harness.train.launch import train

    return train(train_config(ctx), live=f"{SAY} train:")


def train_config(ctx: Ctx, **changes: Any) -> TrainConfig:
    """The `harness train` config of this run's train stage (``changes``: e.g. dry_run=True)."""
    opts = {f.name: getattr(ctx.cfg.train, f.name) for f in fields(TrainOptions)}
    return TrainConfig(**{**opts, **changes}, scale=ctx.cfg.scale, data=str(ctx.work / "reshard"),
                       out_dir=str(ctx.work / "train"), seed=ctx.cfg.seed)


def probe_eval(ctx: Ctx) -> Probe:
    from evals.registry import load_suite
    from evals.run import RESULTS, SCORES, done_keys

    keys = [t.key for t in load_suite(suite_of(ctx))]
    scores, info = _json(ctx.work / "eval" / SCORES), _json(ctx.work / "train" / "train.json")
    if scores and info and scores.get("checkpoint") == str(Path(info["checkpoint"]).resolve()) \
            and set(keys) <= set(scores.get("evaluated", [])):
        return Probe(DONE, f"{len(keys)} tasks")
    done = len(done_keys(ctx.work / "eval" / RESULTS) & set(keys))
    return Probe(RESUME, f"{done} of {len(keys)} tasks done") if done else Probe(TO_RUN)


def stage_eval(ctx: Ctx) -> dict[str, Any]:
    from evals.run import check_complete, evaluate

    info = json.loads((ctx.work / "train" / "train.json").read_text())
    scores = evaluate(info["checkpoint"], info["model"], ctx.eval_dir, ctx.work / "eval", suite=suite_of(ctx))
    check_complete(scores, ctx.eval_dir, chosen=False, key="eval_dir")
    return {k: scores[k] for k in ("aggregates", "missing", "evaluated")}


def method_name(ctx: Ctx) -> str:
    return ctx.cfg.method_name or ctx.cfg.filter.get("name", "filter")


def board_file(ctx: Ctx) -> Path:
    from leaderboard.store import leaderboard_path

    return leaderboard_path(ctx.board, ctx.cfg.track.name, cfg_scale(ctx))


def probe_leaderboard(ctx: Ctx) -> Probe:
    from leaderboard.store import entry_id, read_document

    path = board_file(ctx)
    eid = entry_id(method_name(ctx), ctx.cfg.seed)
    sha = (_json(ctx.work / "eval" / "scores.json") or {}).get("checkpoint_sha256")
    try:
        doc = read_document(path)
    except HarnessError:  # a broken board: the stage says why the entry is refused
        return Probe(TO_RUN)
    if doc and sha and any(e["id"] == eid and e["checkpoint_sha256"] == sha for e in doc["entries"]):
        return Probe(DONE, f"{eid} is on {path}", {"status": "already", "id": eid, "board": str(path)})
    return Probe(TO_RUN)


def stage_leaderboard(ctx: Ctx) -> dict[str, Any]:
    """Add the run to the user's board; a refusal is a result (printed under the summary), not an error."""
    from leaderboard.store import AlreadyOnBoard, add_entry, entry_from_run, entry_id

    path = str(board_file(ctx))
    eid = entry_id(method_name(ctx), ctx.cfg.seed)
    if json.loads((ctx.work / "train" / "train.json").read_text()).get("off_recipe"):
        return {"status": "not entered", "id": eid, "board": None,
                "reason": "off-recipe training: its scores are reported here, only the fixed recipe is ranked"}
    subset = _json(ctx.work / "filter" / "subset.json") or {}
    try:
        entry = entry_from_run(ctx.work, method_name(ctx), ctx.cfg.track.name, cfg_scale(ctx),
                               reference=not subset.get("eligible", True))
        return {"status": "entered", "id": add_entry(ctx.board, entry), "board": path}
    except AlreadyOnBoard:
        return {"status": "already", "id": eid, "board": path}
    except HarnessError as exc:
        return {"status": "refused", "id": eid, "board": path, "reason": str(exc)}


class Stage(NamedTuple):
    name: str
    run: Callable[[Ctx], Any]
    probe: Callable[[Ctx], Probe]


_POOL, _TRAIN = Stage("pool", stage_pool, probe_pool), Stage("train", stage_train, probe_train)
_EVAL, _BOARD = Stage("eval", stage_eval, probe_eval), Stage("leaderboard", stage_leaderboard, probe_leaderboard)
TRACK_STAGES: dict[str, tuple[Stage, ...]] = {
    "filtering": (_POOL, Stage("filter", stage_filter, probe_filter), Stage("reshard", stage_reshard, probe_reshard),
                  _TRAIN, _EVAL, _BOARD),
    "byod": (_POOL, Stage("byod", stage_byod, probe_byod), _TRAIN, _EVAL, _BOARD),
}


def run_stages(ctx: Ctx, doc: dict[str, Any]) -> dict[str, Any]:
    """Each stage in order: its status line, then its work unless its probe says it is done."""
    for stage in TRACK_STAGES[ctx.cfg.track.name]:
        probe = stage.probe(ctx)
        say(stage.name, status_text(probe))
        prev = doc["stages"].get(stage.name) or {}
        t0 = time.time()
        skipped = probe.state == DONE
        if skipped:
            result = probe.result or prev.get("result") or {"done": probe.detail}
        else:
            result = stage.run(ctx)
        wall = round(time.time() - t0, 2)
        # a rerun that skips a finished stage keeps the wall time of the run that did the work
        first = prev.get("first_wall_s", prev.get("wall_s", wall)) if skipped else wall
        doc["stages"][stage.name] = {"status": "done", "skipped": skipped, "wall_s": wall, "first_wall_s": first,
                                     "result": result}
        _save(ctx.work, doc)
    return doc


def run(cfg: RunConfig) -> dict[str, Any]:
    """Run every stage in order, recording each one's wall time and status in run.json; returns
    run.json's content (the Python API of ``harness run``: ``harness.run(RunConfig(...))``)."""
    ctx, prev = prepare(cfg)
    return run_stages(ctx, open_work_dir(ctx.work, record_config(cfg), prev))


# --- what is printed ---------------------------------------------------------------------------------

def train_args(ctx: Ctx) -> list[str]:
    """The open_clip_train argument list this run will use (shards named once reshard made them)."""
    from harness.train.launch import build_args, resolve, train

    data, out = ctx.work / "reshard", ctx.work / "train"
    if (data / "manifest.json").is_file():
        return train(train_config(ctx, dry_run=True))["args"]
    recipe, run_opts, _ = resolve(cfg_scale(ctx), ctx.cfg.train)
    return build_args(recipe, run_opts, f"<the shards the reshard stage writes to {data}>", out, ctx.cfg.seed,
                      recipe.batch_size // run_opts.accum_freq)


def print_plan(ctx: Ctx) -> None:
    """dry_run=true: the resolved folders, each stage's state and the training arguments."""
    print(f"{SAY} dry run: nothing is run or written")
    rows = [("work_dir", ctx.work), ("pool_dir", ctx.pool_dir), ("eval_dir", ctx.eval_dir),
            ("board", board_file(ctx))]
    rows += [(s.name, status_text(s.probe(ctx), dry_run=True)) for s in TRACK_STAGES[ctx.cfg.track.name]]
    rows.append(("train args", " ".join(["open_clip_train.main", *train_args(ctx)])))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key + ':':<{width + 1}} {value}")


BOARD_STATUS = {"entered": "entered as {id}", "already": "already on the board as {id}",
                "not entered": "not entered (reason below)", "refused": "refused (reason below)"}


def standing(ctx: Ctx, lb: dict[str, Any]) -> str:
    """Where the entry stands on the reference board + the user's, in one line."""
    if lb["status"] not in ("entered", "already"):
        return "not on the board"
    from leaderboard.boards import load_boards, standing_line

    return standing_line(load_boards(ctx.cfg.track.name, cfg_scale(ctx), ctx.board), lb["id"])


def summary_rows(ctx: Ctx, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The end-of-run table: subset size, scores, what the board did, wall time per stage."""
    work = ctx.work
    scores = json.loads((work / "eval" / "scores.json").read_text())["aggregates"]
    subset = _json(work / "filter" / "subset.json")
    if subset:
        size = f"{subset['n_kept']:,} of {subset['n_pool']:,}"
    else:
        size = f"{json.loads((work / 'reshard' / 'manifest.json').read_text())['n_samples']:,} (byod)"
    lb = doc["stages"]["leaderboard"]["result"]
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    rows = [("subset size", size),
            ("ImageNet-equivalent", fmt(scores.get("ImageNet"))),
            ("Average", fmt(scores.get("Average"))),
            ("leaderboard", BOARD_STATUS[lb["status"]].format(**lb))]
    for name, st in doc["stages"].items():
        took = f" (took {st['first_wall_s']:.1f} s)" if st["first_wall_s"] > st["wall_s"] else ""
        rows.append((f"wall: {name}", f"skipped{took}" if st.get("skipped") else f"{st['wall_s']:.1f} s"))
    return rows


def summary_notes(ctx: Ctx, lb: dict[str, Any]) -> list[str]:
    """Under the table, unwrapped (paths copy whole): the board file, the standing, the reason."""
    written = lb["status"] in ("entered", "already")
    lines = [f"board: {lb['board']}" if written else f"board: {board_file(ctx)} (not written)",
             f"standing: {standing(ctx, lb)}"]
    if lb.get("reason"):
        lines.append(f"reason: {lb['reason']}")
    return lines + [f"run folder: {ctx.work}"]


def print_summary(ctx: Ctx, doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    cfg = ctx.cfg
    table = Table(title=f"harness run: {cfg.track.name} / {cfg_scale(ctx)} / {method_name(ctx)}")
    table.add_column("")
    table.add_column("value")
    for key, value in summary_rows(ctx, doc):
        table.add_row(key, value)
    Console().print(table)
    print("\n".join(summary_notes(ctx, doc["stages"]["leaderboard"]["result"])), flush=True)


def main(cfg: RunConfig) -> int:
    """CLI: exit 0 when the entry is on the board (now or before) or not for the board by rule
    (off-recipe); 1 when the board refused it, after the summary."""
    ctx, prev = prepare(cfg)
    if cfg.dry_run:
        print_plan(ctx)
        return 0
    doc = run_stages(ctx, open_work_dir(ctx.work, record_config(cfg), prev))
    print_summary(ctx, doc)
    return 1 if doc["stages"]["leaderboard"]["result"]["status"] == "refused" else 0
