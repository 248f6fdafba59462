"""The tiny suite on the tiny world's eval sets, through the same code path as DataComp's tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.registry import load_suite
from evals.run import evaluate
from harness.train.config import RecipeFields, TrainConfig
from tracks.config import ScaleConfig


def reference_model(pool_dir: Path) -> tuple[Path, str]:
    ref = json.loads((pool_dir / "pool.json").read_text())["reference_model"]
    return pool_dir / ref["checkpoint"], ref["name"]


def test_tiny_suite_reads_the_tiny_world(tiny_world, tmp_path):
    ckpt, model = reference_model(tiny_world["pool_dir"])
    scores = evaluate(ckpt, model, tiny_world["eval_dir"], tmp_path, workers=0, progress=False)
    assert scores["suite"] == "tiny"          # inferred from the tiny model's recipes
    assert scores["evaluated"] == [t.key for t in load_suite("tiny")] and scores["missing"] == {}
    assert all(isinstance(v, float) for v in scores["aggregates"].values())
    rows = {r["key"]: r["metrics"] for r in map(json.loads, (tmp_path / "eval_results.jsonl").read_text().splitlines())}
    assert all(m["n_undecodable"] == 0 for m in rows.values())
    assert rows["tiny_worst_group"]["background_names"] and rows["tiny_retrieval"]["n_captions"] >= rows["tiny_retrieval"]["n_examples"]


@pytest.mark.slow
def test_trained_tiny_checkpoint_beats_chance(tiny_world, tmp_path):
    """Train the tiny model on the world's clean reference set (harness train, off-recipe budget)
    and check every tiny task's main metric is above chance."""
    from harness.train.launch import train

    info = train(TrainConfig(scale=ScaleConfig("tiny"), data=tiny_world["pool_dir"] / "reference" / "shards", out_dir=tmp_path / "train", allow_off_recipe=True, recipe=RecipeFields(train_num_samples=16384)))
    scores = evaluate(info["checkpoint"], info["model"], tiny_world["eval_dir"], tmp_path / "eval", progress=False)
    rows = {r["key"]: r["metrics"] for r in map(json.loads, (tmp_path / "eval" / "eval_results.jsonl").read_text().splitlines())}
    for task in load_suite("tiny"):
        chance = task.random_score if task.random_score is not None else 1 / rows[task.key]["n_examples"]
        assert rows[task.key]["main_metric"] > chance, (task.key, rows[task.key]["main_metric"], chance)
    assert scores["aggregates"]["Average"] is not None


def _eval(cli, tiny_world, data_dir, out, *extra):
    ckpt, _ = reference_model(tiny_world["pool_dir"])
    return cli("eval", f"checkpoint={ckpt}", "scale=tiny", f"data_dir={data_dir}", f"out_dir={out}",
               "progress=false", "workers=0", *extra)


def test_eval_with_no_data_exits_nonzero_with_the_tiny_hint(cli, tiny_world, tmp_path):
    from evals.run import default_data_dir

    wrong = tmp_path / "nowhere"
    res = _eval(cli, tiny_world, wrong, tmp_path / "e")
    made = "" if Path(default_data_dir("tiny")).is_dir() else " (made by the first `harness run`)"
    assert res.returncode == 2
    assert res.stderr == (
        f"error: no task ran: no data under {wrong} for any of the 8 tasks of suite 'tiny' (tiny_objects, "
        "tiny_colors, tiny_counts, tiny_textures, tiny_digits, tiny_objects_sketch ...); the tiny suite's data "
        "is made with the tiny world by `harness pool make` or `harness run`: point data_dir at <world>/evalsets, "
        f"e.g. data_dir={default_data_dir('tiny')}{made}\n")
    assert f"warning: task tiny_objects skipped: data not found: {wrong / 'tiny_objects'}\n" in res.stdout
    assert json.loads((tmp_path / "e" / "scores.json").read_text())["evaluated"] == []


@pytest.mark.slow  # long end-to-end check; `pytest -m slow` runs it
def test_eval_with_part_of_the_suite_names_the_missing_tasks(cli, tiny_world, tmp_path):
    import shutil

    part = tmp_path / "part"
    for key in ("tiny_objects", "tiny_colors"):
        shutil.copytree(tiny_world["eval_dir"] / key, part / key)
    res = _eval(cli, tiny_world, part, tmp_path / "e")
    assert res.returncode == 2
    assert res.stderr.startswith(
        "error: incomplete evaluation: no result for 6 of the 8 tasks of suite 'tiny' (tiny_counts, tiny_textures, "
        f"tiny_digits, tiny_objects_sketch, tiny_retrieval, tiny_worst_group; data not found under {part}), so its "
        "aggregates are not reported; the tiny suite's data is made with the tiny world")
    assert "Average: n/a, missing 6" in res.stdout
    chosen = _eval(cli, tiny_world, part, tmp_path / "e", "tasks=[tiny_objects,tiny_colors]")
    assert chosen.returncode == 0, chosen.stderr  # a chosen subset is complete when its tasks ran
    more = _eval(cli, tiny_world, part, tmp_path / "e", "tasks=[tiny_objects,tiny_digits]")
    assert more.returncode == 2 and more.stderr.startswith(
        f"error: incomplete evaluation: no result for 1 of the 2 chosen tasks (tiny_digits; data not found under {part});")


def test_eval_of_datacomp_tasks_without_data_hints_at_download(cli, tiny_world, tmp_path):
    res = _eval(cli, tiny_world, tmp_path / "empty", tmp_path / "e", "suite=datacomp", "tasks=[cifar10]")
    assert res.returncode == 2
    assert res.stderr == (
        f"error: no task ran: no data under {tmp_path / 'empty'} for any of the 1 chosen tasks (cifar10); download "
        "it with `harness eval download data_dir=<folder>` (or stream=true to read it from the Hugging Face Hub) "
        "and point data_dir at that folder\n")


def test_loading_a_checkpoint_does_not_warn_about_random_weights(tiny_world, caplog):
    import logging

    import open_clip

    from harness.core.models import load_checkpoint, register_model_configs

    ckpt, model = reference_model(tiny_world["pool_dir"])
    register_model_configs()
    with caplog.at_level(logging.INFO):
        open_clip.create_model_and_transforms(model)  # open_clip's own call warns: the control
        assert any(r.getMessage().startswith("No pretrained weights loaded") for r in caplog.records)
        caplog.clear()
        load_checkpoint(ckpt, model)
        logging.getLogger().warning("No pretrained weights loaded, said by someone else")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "No pretrained weights loaded, said by someone else"]
    assert any("Instantiating model architecture" in r.getMessage() for r in caplog.records)
