"""SIGKILL each stage's real CLI at fixed points (tests/faults/hooks), rerun the same command and
get what an uninterrupted run writes. Kill points are listed in docs/reliability.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY_WORLD_ARGS, TINY_WORLD_KNOBS
from faults.conftest import harness, killed_at, leftovers, tree_hashes


def _ok(res) -> None:
    assert res.returncode == 0, res.stderr[-3000:]


def _json_without(path: Path, *keys: str) -> dict:
    doc = json.loads(path.read_text())
    return {k: v for k, v in doc.items() if k not in keys}


# ---- filter -------------------------------------------------------------------------------------

def _filter(pool: Path, out: Path) -> tuple[str, ...]:
    return ("filter", f"pool_dir={pool}", "filter=clip_score", f"out={out}")


@pytest.fixture(scope="module")
def filtered(tiny_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("filter_ref") / "S.npy"
    _ok(harness(*_filter(tiny_world["pool_dir"], out)))
    return out


@pytest.mark.parametrize("point", [
    "rename:S.npy:1",          # the subset is written (temp name) but not renamed into place
    "open:S.json.tmp:1",       # the subset is staged, its report not yet written
    "rename:S.npy:2",          # the report is in place, the subset not yet renamed to its name
])
def test_filter_killed_then_rerun_is_identical(tiny_world, filtered, tmp_path, point):
    before = tree_hashes(tiny_world["pool_dir"])
    out = tmp_path / "S.npy"
    killed_at(point, *_filter(tiny_world["pool_dir"], out))
    assert not out.exists()  # the subset lands last: S.npy present = finished
    _ok(harness(*_filter(tiny_world["pool_dir"], out)))
    assert out.read_bytes() == filtered.read_bytes()
    volatile = ("wall_s", "subset")
    assert _json_without(out.with_suffix(".json"), *volatile) == _json_without(filtered.with_suffix(".json"), *volatile)
    assert tree_hashes(tiny_world["pool_dir"]) == before


# ---- reshard (more kill points: tests/test_reshard_resume.py) -------------------------------------

def test_reshard_killed_before_manifest_then_rerun_is_identical(tiny_world, filtered, tmp_path):
    def cmd(out: Path) -> tuple[str, ...]:
        return ("reshard", f"pool_dir={tiny_world['pool_dir']}", f"subset={filtered}", f"out_dir={out}",
                "shard_size=300", "workers=2", "progress=false")

    _ok(harness(*cmd(tmp_path / "ref")))
    killed_at("rename:manifest.json:1", *cmd(tmp_path / "out"))
    assert not (tmp_path / "out" / "manifest.json").exists()
    _ok(harness(*cmd(tmp_path / "out")))
    ref = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    assert tree_hashes(tmp_path / "out", skip=("manifest.json",)) == tree_hashes(tmp_path / "ref", skip=("manifest.json",))
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"] == ref["shards"]
    assert [p for p in leftovers(tmp_path / "out") if not p.startswith(".reshard")] == []


# ---- eval ---------------------------------------------------------------------------------------

def _eval(tiny_world, out: Path) -> tuple[str, ...]:
    ref = json.loads((tiny_world["pool_dir"] / "reference" / "reference.json").read_text())
    ckpt = tiny_world["pool_dir"] / "reference" / ref["checkpoint"]
    return ("eval", f"checkpoint={ckpt}", f"model={ref['model']}", "suite=tiny", f"data_dir={tiny_world['eval_dir']}",
            f"out_dir={out}", "tasks=[tiny_objects,tiny_colors,tiny_counts]", "workers=0", "progress=false")


def _eval_outputs(out: Path) -> tuple[dict, str, dict]:
    return (tree_hashes(out / "per_example"), (out / "eval_results.jsonl").read_text(),
            _json_without(out / "scores.json", "timing"))


@pytest.fixture(scope="module")
def evaluated(tiny_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval_ref")
    _ok(harness(*_eval(tiny_world, out)))
    return out


@pytest.mark.parametrize("point", [
    "open:eval_results.jsonl:2",      # second task's arrays in place, its result line not appended
    pytest.param("rename:per_example:3", marks=pytest.mark.slow),  # third task's arrays not in place
    pytest.param("rename:scores.json:1", marks=pytest.mark.slow),  # every task done, no scores.json
])
def test_eval_killed_then_rerun_is_identical(tiny_world, evaluated, tmp_path, point):
    before = tree_hashes(tiny_world["eval_dir"])
    killed_at(point, *_eval(tiny_world, tmp_path))
    assert not (tmp_path / "scores.json").exists()
    _ok(harness(*_eval(tiny_world, tmp_path)))
    assert _eval_outputs(tmp_path) == _eval_outputs(evaluated)
    assert leftovers(tmp_path) == [] or all(p.endswith(".tmp.npz") for p in leftovers(tmp_path))
    assert tree_hashes(tiny_world["eval_dir"]) == before


# ---- leaderboard add ----------------------------------------------------------------------------

def test_leaderboard_add_killed_before_replace_keeps_the_old_file(tmp_path):
    from test_leaderboard_runs import make_run

    first = make_run(tmp_path / "runs", "basic", seed=0, quality=0.5)
    second = make_run(tmp_path / "runs", "clip_score", seed=1, quality=0.6)
    lb, ref = tmp_path / "lb", tmp_path / "lb_ref"
    for d in (lb, ref):
        _ok(harness("leaderboard", "add", f"run_dir={first}", f"leaderboard_dir={d}"))
    _ok(harness("leaderboard", "add", f"run_dir={second}", f"leaderboard_dir={ref}"))
    board = lb / "filtering_tiny.json"
    old = board.read_bytes()
    killed_at("rename:filtering_tiny.json:1", "leaderboard", "add", f"run_dir={second}", f"leaderboard_dir={lb}")
    assert board.read_bytes() == old  # a reader sees the old document, whole
    _ok(harness("leaderboard", "add", f"run_dir={second}", f"leaderboard_dir={lb}"))

    def stable(path: Path) -> dict:
        doc = json.loads(path.read_text())
        return {**doc, "entries": [{k: v for k, v in e.items() if k != "timestamp"} for e in doc["entries"]]}
    assert stable(board) == stable(ref / "filtering_tiny.json")
    again = harness("leaderboard", "add", f"run_dir={second}", f"leaderboard_dir={lb}")
    # the killed add did not land twice: adding the same run again is a no-op that says so
    assert again.returncode == 0 and "entry 'clip_score-seed1' is already on the board" in again.stdout
    assert stable(board) == stable(ref / "filtering_tiny.json")


# ---- pool make ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("point", [
    "rename:/shards/00000001.tar$:1",   # one pool shard written, the rest not
    "rename:/evalsets$:1",              # everything built, nothing renamed into place
    "rename:/pool$:1",                  # the eval suite in place, the pool dir not yet renamed
])
def test_pool_make_killed_then_rerun_is_identical(tiny_world, tmp_path, point):
    a = TINY_WORLD_ARGS
    cmd = ("pool", "make", "scale=tiny", f"pool_dir={tmp_path / 'pool'}", f"seed={a['seed']}",
           f"pool_size={a['pool_size']}", *(f"world.{k}={v}" for k, v in TINY_WORLD_KNOBS.items()))
    killed_at(point, *cmd, timeout=600)
    assert not (tmp_path / "pool").exists()  # only .pool.tmp-<pid> remains: never read as a pool
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] in ([], ["evalsets"])
    _ok(harness(*cmd, timeout=600))
    assert tree_hashes(tmp_path / "pool") == tree_hashes(tiny_world["pool_dir"])
    assert tree_hashes(tmp_path / "evalsets") == tree_hashes(tiny_world["eval_dir"])


# ---- train and `harness run` (more train kill points: tests/test_train.py) ----------------------

@pytest.mark.slow
def test_run_killed_after_training_before_train_json_then_rerun_finishes(tiny_world, tmp_path):
    """`harness run` dies as train.json is renamed into place (the final checkpoint is written):
    the rerun keeps filter/reshard, resumes training at its last epoch (nothing retrained), evaluates."""
    from faults.test_trust_network import TINY_TRAIN

    work = tmp_path / "run"
    cmd = ("run", f"pool_dir={tiny_world['pool_dir']}", f"eval_dir={tiny_world['eval_dir']}", f"work_dir={work}",
           f"leaderboard_dir={tmp_path / 'lb'}", "filter=clip_score", *TINY_TRAIN)
    killed_at("rename:train.json:1", *cmd, timeout=600)
    assert not (work / "train" / "train.json").exists() and not (work / "eval").exists()
    kept = {d: tree_hashes(work / d) for d in ("filter", "reshard")}
    ckpts = sorted((work / "train").rglob("epoch_*.pt"))
    final = {p: p.read_bytes() for p in ckpts}
    _ok(harness(*cmd, timeout=600))
    assert {d: tree_hashes(work / d) for d in ("filter", "reshard")} == kept
    doc = json.loads((work / "train" / "train.json").read_text())
    assert doc["resumed_from_epoch"] == 1 and Path(doc["checkpoint"]).read_bytes() == final[Path(doc["checkpoint"])]
    assert (work / "eval" / "scores.json").is_file()
    assert not [p for p in leftovers(work) if "train" not in p]


def test_pool_make_never_replaces_a_foreign_eval_dir(tmp_path):
    """The rerun after a kill between the two renames may rebuild an eval dir without its pool, but
    only when the rebuild is byte-identical: anything else there is refused and kept."""
    from harness.core.errors import HarnessError
    from harness.pool.world.make import make_world

    (tmp_path / "evalsets").mkdir()
    (tmp_path / "evalsets" / "mine.txt").write_text("keep")
    with pytest.raises(HarnessError, match="evalsets exists and is not empty; choose another directory"):
        make_world(tmp_path / "pool", pool_size=200)
    assert (tmp_path / "evalsets" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evalsets"]
