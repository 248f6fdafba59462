"""The tiny suite on the tiny world's eval sets, through the same code path as DataComp's tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.registry import load_suite
from evals.run import evaluate


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
    from harness.train import train

    info = train("tiny", tiny_world["pool_dir"] / "reference" / "shards", tmp_path / "train",
                 allow_off_recipe=True, train_num_samples=16384)
    scores = evaluate(info["checkpoint"], info["model"], tiny_world["eval_dir"], tmp_path / "eval", progress=False)
    rows = {r["key"]: r["metrics"] for r in map(json.loads, (tmp_path / "eval" / "eval_results.jsonl").read_text().splitlines())}
    for task in load_suite("tiny"):
        chance = task.random_score if task.random_score is not None else 1 / rows[task.key]["n_examples"]
        assert rows[task.key]["main_metric"] > chance, (task.key, rows[task.key]["main_metric"], chance)
    assert scores["aggregates"]["Average"] is not None
