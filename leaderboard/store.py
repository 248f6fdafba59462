"""Leaderboard files: read and validate, build an entry from a run directory, add it safely.

A leaderboard is ``<leaderboard_dir>/<track>_<scale>.json``, validated by ``schema.json``.
Writers take a file lock, re-read the file under it, check the entry against the scale's recipe
and eval suite, and replace the file atomically (temp file + rename), so concurrent ``add``s all
land and a crash never leaves half a file. Nothing already in the file is ever overwritten.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from harness.core.errors import HarnessError
from harness.core.paths import harness_home

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("schema.json")
LOCK_TIMEOUT_S = 120
# The reference boards committed with the project: read by show/compare/render, never written by a run.
REFERENCE_DIR = Path(__file__).resolve().parent


class AlreadyOnBoard(HarnessError):
    """The same run (same id, same checkpoint) is already on the board: there is nothing to add."""


def user_board_dir() -> Path:
    """Where a user's own entries go (``harness run``, ``leaderboard add``), beside the reference."""
    return harness_home() / "leaderboard"


def is_reference_dir(leaderboard_dir: str | Path) -> bool:
    return Path(leaderboard_dir).expanduser().resolve() == REFERENCE_DIR


def leaderboard_path(leaderboard_dir: str | Path, track: str, scale: str) -> Path:
    return Path(leaderboard_dir) / f"{track}_{scale}.json"


@lru_cache(maxsize=2)
def _validator(part: str = "document"):
    """The document validator, or (``part="entry"``) one for a single entry via ``$defs/entry``."""
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text())
    if part == "entry":
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/entry"}
    return Draft202012Validator(schema)


def _first_error(validator, obj: Any):
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    return errors[0] if errors else None


def entry_error(entry: Any, label: str = "") -> str | None:
    """First schema violation of one entry, as "entry '<id>' field '<f>': <why>"."""
    err = _first_error(_validator("entry"), entry)
    if err is None:
        return None
    name = entry.get("id", "?") if isinstance(entry, dict) else "?"
    field = ".".join(map(str, err.absolute_path))
    return f"entry {name!r}{label}" + (f" field {field!r}" if field else "") + f": {err.message}"


def _schema_error(doc: Any, path: Path) -> str | None:
    """First schema violation of a document, naming the entry and field when it is in an entry."""
    err = _first_error(_validator(), doc)
    if err is None:
        return None
    where = list(err.absolute_path)
    if len(where) >= 2 and where[0] == "entries":
        return f"{path}: {entry_error(doc['entries'][where[1]], f' (entries[{where[1]}])')}"
    field = ".".join(map(str, where)) or "(top level)"
    return f"{path}: field {field!r}: {err.message}"


def read_document(path: str | Path) -> dict | None:
    """The validated document at ``path``, or None if there is no file yet.

    Corrupt JSON and schema violations are refused with the line/column or the entry and field,
    so a hand edit gone wrong is found, not overwritten.
    """
    path = Path(path)
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}:{exc.lineno}:{exc.colno}: corrupt leaderboard JSON ({exc.msg}); "
                           "fix that line or restore the file (git checkout) — nothing was written") from None
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version != SCHEMA_VERSION:
        raise HarnessError(f"{path}: schema_version {version!r}, but this harness reads version {SCHEMA_VERSION}; "
                           "nothing was written")
    problem = _schema_error(doc, path)
    if problem:
        raise HarnessError(f"{problem} — fix the file by hand or restore it; nothing was written")
    return doc


def load_leaderboard(leaderboard_dir: str | Path, track: str, scale: str) -> dict:
    path = leaderboard_path(leaderboard_dir, track, scale)
    doc = read_document(path)
    if doc is None:
        raise HarnessError(f"no leaderboard at {path}: add a run with `harness leaderboard add run_dir=...`")
    return doc


def scale_facts(scale: str) -> dict[str, Any]:
    """The scale's recipe hash and its eval suite's tasks (key → main metric)."""
    from evals.registry import load_suite
    from tracks.recipes import get_recipe, recipe_hash

    recipe = get_recipe(scale)
    tasks = {t.key: t.main_metric for t in load_suite(recipe.eval_suite) if t.main_metric}
    return {"recipe_hash": recipe_hash(recipe), "suite": recipe.eval_suite, "tasks": tasks}


def new_document(track: str, scale: str) -> dict:
    facts = scale_facts(scale)
    return {"schema_version": SCHEMA_VERSION, "track": track, "scale": scale,
            "recipe_hash": facts["recipe_hash"], "suite": facts["suite"], "entries": []}


def _refuse_recipe(doc: dict, entry: dict, facts: dict) -> str | None:
    scale = doc["scale"]
    if doc["recipe_hash"] != facts["recipe_hash"]:
        return (f"this leaderboard was made for recipe hash {doc['recipe_hash'][:12]} but the {scale} recipe is now "
                f"{facts['recipe_hash'][:12]}; move the file aside to start a new leaderboard")
    if entry["off_recipe"]:
        return f"the run was trained off-recipe (train.json off_recipe=true); only the fixed {scale} recipe is ranked"
    if entry["recipe_hash"] != facts["recipe_hash"]:
        return (f"recipe hash {entry['recipe_hash'][:12]} is not the {scale} scale's ({facts['recipe_hash'][:12]}); "
                f"train with scale={scale} and no recipe overrides")
    return None


def _refuse_tasks(doc: dict, entry: dict, facts: dict) -> str | None:
    want, have = facts["tasks"], entry["tasks"]
    missing = [k for k in want if k not in have]
    if missing:
        return f"task set incomplete: missing {', '.join(missing)} (suite {facts['suite']!r} has {len(want)} tasks)"
    extra = [k for k in have if k not in want]
    if extra:
        return f"tasks not in suite {facts['suite']!r}: {', '.join(extra)}"
    wrong = [f"{k} ({have[k]['metric']} ≠ {m})" for k, m in want.items() if have[k]["metric"] != m]
    if wrong:
        return f"main metric differs from the suite's: {', '.join(wrong)}"
    if entry["aggregates"].get("Average") is None:
        return "the Average aggregate is missing (null) although every task is present; re-run the eval stage"
    return None


def _refuse_eligibility(doc: dict, entry: dict, facts: dict) -> str | None:
    name = (entry["filter"] or {}).get("name", "?")
    if not entry["eligible"] and not entry["reference"]:
        return (f"filter {name!r} is not eligible for ranking (it reads the hidden ground truth); "
                "it may enter only as an unranked reference entry (reference=true)")
    if entry["ranked"] != (entry["eligible"] and not entry["reference"]):
        return f"ranked={entry['ranked']} contradicts eligible={entry['eligible']}, reference={entry['reference']}"
    return None


def _refuse_track(doc: dict, entry: dict, facts: dict) -> str | None:
    if (entry["track"], entry["scale"]) != (doc["track"], doc["scale"]):
        return f"entry is for {entry['track']}/{entry['scale']}, this leaderboard is {doc['track']}/{doc['scale']}"
    if doc["track"] == "filtering" and (entry["filter"] is None or entry["subset"] is None):
        return "the filtering track needs the run's filter spec and subset (filter/subset.json)"
    return None


def _refuse_duplicate(doc: dict, entry: dict, facts: dict) -> str | None:
    for old in doc["entries"]:
        if old["id"] == entry["id"] and entry["checkpoint_sha256"] and old["checkpoint_sha256"] == entry["checkpoint_sha256"]:
            raise AlreadyOnBoard(f"entry {entry['id']!r} is already on the board (same checkpoint, added {old['timestamp']})")
        if old["id"] == entry["id"]:
            return (f"entry {entry['id']!r} already exists (added {old['timestamp']}); nothing is overwritten — "
                    "use another method_name or seed")
        if entry["checkpoint_sha256"] and old["checkpoint_sha256"] == entry["checkpoint_sha256"]:
            return f"duplicate entry: the same checkpoint is already entry {old['id']!r}"
    return None


REFUSALS: tuple[Callable[[dict, dict, dict], str | None], ...] = (
    _refuse_track, _refuse_recipe, _refuse_tasks, _refuse_eligibility, _refuse_duplicate)


def check_entry(doc: dict, entry: dict, facts: dict) -> None:
    """Raise HarnessError with the first reason ``entry`` may not enter ``doc``."""
    problem = entry_error(entry)
    if problem:
        raise HarnessError(f"refused {problem}")
    for refuse in REFUSALS:
        reason = refuse(doc, entry, facts)
        if reason:
            raise HarnessError(f"refused entry {entry['id']!r}: {reason}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path`` (keeping its mode)."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def add_entry(leaderboard_dir: str | Path, entry: dict) -> str:
    """Validate ``entry`` against its scale and the current file, append it, return its id."""
    from filelock import FileLock, Timeout

    problem = entry_error(entry)
    if problem:
        raise HarnessError(f"refused {problem}")
    path = leaderboard_path(leaderboard_dir, entry["track"], entry["scale"])
    path.parent.mkdir(parents=True, exist_ok=True)
    facts = scale_facts(entry["scale"])
    try:
        with FileLock(lock_path(path), timeout=LOCK_TIMEOUT_S):
            doc = read_document(path) or new_document(entry["track"], entry["scale"])
            check_entry(doc, entry, facts)
            entry = keep_per_example(path.parent, entry)
            entry.pop("run_dir", None)  # entries built elsewhere: still no machine path on the board
            doc["entries"].append(entry)
            write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    except Timeout:
        raise HarnessError(f"{lock_path(path)} held for over {LOCK_TIMEOUT_S}s by another writer; retry") from None
    return entry["id"]


PER_EXAMPLE_DIR = "per_example"


def keep_per_example(leaderboard_dir: Path, entry: dict) -> dict:
    """Copy the run's per-example eval arrays next to the leaderboard file and point the entry at
    the copy (a path relative to ``leaderboard_dir``), so `compare` works on a fresh clone too.

    Called under the file lock with a new id: a folder left by an add that died before its JSON
    write belongs to no entry and is replaced.
    """
    import shutil

    src = entry.get("per_example_dir")
    if not src or not Path(src).is_absolute() or not Path(src).is_dir():
        return entry
    rel = Path(PER_EXAMPLE_DIR) / f"{entry['track']}_{entry['scale']}" / entry["id"]
    dest = leaderboard_dir / rel
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for key in entry["tasks"]:  # DataComp keys such as wilds/iwildcam sit in subfolders
        if (Path(src) / f"{key}.npz").is_file():
            (tmp / f"{key}.npz").parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(src) / f"{key}.npz", tmp / f"{key}.npz")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return {**entry, "per_example_dir": rel.as_posix()}


def localize_per_example(leaderboard_dir: str | Path, track: str, scale: str) -> int:
    """Give entries added before `keep_per_example` existed (absolute per_example_dir) their copy
    beside the JSON; returns how many moved. Entries whose arrays are gone are left as they are."""
    from filelock import FileLock

    path = leaderboard_path(leaderboard_dir, track, scale)
    with FileLock(lock_path(path), timeout=LOCK_TIMEOUT_S):
        doc = read_document(path)
        if doc is None:
            return 0
        entries = [keep_per_example(path.parent, e) for e in doc["entries"]]
        moved = sum(a != b for a, b in zip(entries, doc["entries"]))
        if moved:
            write_text_atomic(path, json.dumps({**doc, "entries": entries}, indent=2) + "\n")
    return moved


def entry_key(entry: dict) -> str:
    """How an entry is addressed: its id, or ``ref:<id>``/``yours:<id>`` when both boards hold that id
    (``leaderboard.boards.load_boards`` sets ``key``; a single board's entries have none)."""
    return entry.get("key", entry["id"])


def ranks(doc: dict) -> dict[str, int]:
    """Competition rank ('1224') of each ranked entry by Average, by entry key; references get no rank."""
    ranked = sorted((e for e in doc["entries"] if e["ranked"]), key=lambda e: -e["aggregates"]["Average"])
    out: dict[str, int] = {}
    for i, e in enumerate(ranked):
        prev = ranked[i - 1] if i else None
        same = prev is not None and prev["aggregates"]["Average"] == e["aggregates"]["Average"]
        out[entry_key(e)] = out[entry_key(prev)] if same else i + 1
    return out


def rank_of(leaderboard_dir: str | Path, entry: dict) -> int | None:
    """Rank of ``entry`` (as added) on its leaderboard, or None for an unranked (reference) entry."""
    return ranks(load_leaderboard(leaderboard_dir, entry["track"], entry["scale"])).get(entry["id"])


def entry_id(method_name: str, seed: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.+-]+", "-", method_name).strip("-") or "run"
    return f"{slug}-seed{seed}"


def _read_json(path: Path, stage: str) -> dict:
    if not path.is_file():
        raise HarnessError(f"{path} not found: the run's {stage} stage has not finished")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}:{exc.lineno}:{exc.colno}: corrupt JSON ({exc.msg})") from None


def _read_task_metrics(path: Path, suite_tasks: dict[str, str]) -> dict[str, dict]:
    """Main metric per scored task of the suite from eval_results.jsonl (DataComp's shape: key, dataset,
    metrics); unscored or foreign tasks are left out, the suite decides what a result holds."""
    if not path.is_file():
        raise HarnessError(f"{path} not found: the run's eval stage has not finished")
    out: dict[str, dict] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key, metrics = row["key"], row["metrics"]
            value = metrics.get("main_metric", metrics.get(suite_tasks.get(key, ""), None))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise HarnessError(f"{path}:{lineno}: not an eval result line ({exc})") from None
        if key not in suite_tasks:
            continue
        if value is None:
            raise HarnessError(f"{path}:{lineno}: task {key!r} has no main_metric")
        out[key] = {"metric": suite_tasks[key], "value": float(value)}
    return out


def filter_of(spec: dict) -> dict:
    """The entry's filter from S.json's described spec: a leaf's selection (threshold, fraction,
    top_k) joins its params; an intersect/union keeps its whole tree under ``spec``."""
    tree = {k: v for k, v in spec.items() if k != "source_hash"}
    if "filters" in tree:
        return {"name": tree["name"], "params": {}, "source_hash": spec.get("source_hash"), "spec": tree}
    extra = {k: v for k, v in tree.items() if k not in ("name", "params")}
    return {"name": tree["name"], "params": {**(tree.get("params") or {}), **extra},
            "source_hash": spec.get("source_hash")}


def spec_eligible(spec: dict | None) -> bool:
    from harness.filters.registry import spec_eligible as eligible

    return eligible(spec)


def _filter_part(run: Path, track: str) -> tuple[dict | None, dict | None, bool]:
    """(filter spec, subset, eligible) from filter/subset.json, cross-checked with the shards."""
    subset_json = run / "filter" / "subset.json"
    shards = _read_json(run / "reshard" / "manifest.json", "reshard")
    if not subset_json.is_file() and track != "filtering":
        return None, {"sha256": shards.get("subset_sha256"), "size": int(shards["n_samples"]), "n_pool": None}, True
    rep = _read_json(subset_json, "filter")
    if shards.get("subset_sha256") not in (None, rep["subset_sha256"]):
        raise HarnessError(f"{run / 'reshard'} was made from subset {str(shards['subset_sha256'])[:12]}, "
                           f"not this run's filter output {rep['subset_sha256'][:12]}: rerun the reshard stage")
    filt = filter_of(rep["filter"])
    subset = {"sha256": rep["subset_sha256"], "size": int(rep["n_kept"]), "n_pool": rep.get("n_pool")}
    # the harness's list decides (registry.INELIGIBLE), whatever a (hand-edited) S.json says
    return filt, subset, bool(rep.get("eligible", True)) and spec_eligible(rep["filter"])


def _require(doc: dict, keys: tuple[str, ...], path: Path) -> None:
    missing = [k for k in keys if k not in doc]
    if missing:
        raise HarnessError(f"{path}: missing key(s) {', '.join(missing)}")


def _seed_of(run: Path, train: dict) -> int:
    """The training seed: train.json's ``seed``, else run.json's config ``seed``."""
    if train.get("seed") is not None:
        return int(train["seed"])
    run_json = run / "run.json"
    config = _read_json(run_json, "run").get("config", {}) if run_json.is_file() else {}
    if config.get("seed") is None:
        raise HarnessError(f"{run}: no seed in train/train.json or run.json; pass seed=")
    return int(config["seed"])


def entry_from_run(run_dir: str | Path, method_name: str, track: str, scale: str, reference: bool = False,
                   seed: int | None = None) -> dict:
    """Build a leaderboard entry from a finished run directory (layout in docs/contracts.md).

    The entry is not checked against the leaderboard here; ``add_entry`` does that.
    """
    from harness.core.manifest import versions

    run = Path(run_dir).resolve()
    facts = scale_facts(scale)
    filt, subset, eligible = _filter_part(run, track)
    train = _read_json(run / "train" / "train.json", "train")
    scores = _read_json(run / "eval" / "scores.json", "eval")
    tasks = _read_task_metrics(run / "eval" / "eval_results.jsonl", facts["tasks"])
    _require(train, ("recipe_hash",), run / "train" / "train.json")
    _require(scores, ("aggregates",), run / "eval" / "scores.json")
    evaluated, trained = scores.get("checkpoint"), train.get("checkpoint")
    if evaluated and trained and Path(evaluated).resolve() != Path(trained).resolve():
        raise HarnessError(f"{run / 'eval'} evaluated {evaluated}, not the checkpoint train/ produced ({trained}); "
                           "rerun the eval stage")
    recipe = train.get("recipe")
    seed = _seed_of(run, train) if seed is None else int(seed)
    per_example = run / "eval" / "per_example"
    return {
        "id": entry_id(method_name, seed), "track": track, "scale": scale, "method_name": method_name,
        "filter": filt, "eligible": eligible, "ranked": eligible and not reference, "reference": bool(reference),
        "subset": subset,
        "recipe": recipe.get("name", scale) if isinstance(recipe, dict) else str(recipe or scale),
        "recipe_hash": train["recipe_hash"], "off_recipe": bool(train.get("off_recipe", False)), "seed": seed,
        "checkpoint_sha256": scores.get("checkpoint_sha256"),
        "data_manifest_hash": train.get("data_manifest_hash"), "samples_seen": train.get("samples_seen"),
        "tasks": tasks,
        "aggregates": {k: (None if v is None else float(v)) for k, v in scores["aggregates"].items()},
        "versions": {k: str(v) for k, v in {**versions(), **(train.get("versions") or {})}.items()},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "per_example_dir": str(per_example) if per_example.is_dir() else None,
    }  # no run_dir: a board holds no path of the machine that made it (per_example_dir becomes relative)


def drop_machine_paths(doc: dict) -> dict:
    """The migration of boards written before entries lost ``run_dir`` (an absolute path of the
    machine that made them): the same document without it; scores and every other field untouched."""
    return {**doc, "entries": [{k: v for k, v in e.items() if k != "run_dir"} for e in doc["entries"]]}
