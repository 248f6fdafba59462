"""Run directories in the contract layout (docs/contracts.md), and entry_from_run over them.

``make_run`` is shared by the other leaderboard tests: it writes what the filter, reshard, train
and eval stages write, with per-example arrays whose main metrics are computed by the real
``evals.metrics`` code, so compare's bootstrap runs on consistent data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import HarnessError

N_CLASSIFY, N_IMAGES, CAPTIONS_PER_IMAGE = 200, 100, 2


def _classification(rng: np.random.Generator, quality: float, num_classes: int) -> dict[str, np.ndarray]:
    target = rng.integers(0, num_classes, N_CLASSIFY)
    right = rng.random(N_CLASSIFY) < quality
    pred = np.where(right, target, (target + rng.integers(1, num_classes, N_CLASSIFY)) % num_classes)
    return {"target": target, "pred": pred, "group": rng.integers(0, 3, N_CLASSIFY)}


def _retrieval(rng: np.random.Generator, quality: float, num_classes: int) -> dict[str, np.ndarray]:
    return {"image_hit1": rng.random(N_IMAGES) < quality,
            "text_hit1": rng.random(N_IMAGES * CAPTIONS_PER_IMAGE) < quality,
            "text_image": np.repeat(np.arange(N_IMAGES), CAPTIONS_PER_IMAGE)}


ARRAYS_BY_KIND = {"classification": _classification, "retrieval": _retrieval}


def tiny_recipe_hash() -> str:
    from tracks.recipes import get_recipe, recipe_hash

    return recipe_hash(get_recipe("tiny"))


def make_run(root: Path, method: str = "basic", seed: int = 0, quality: float = 0.5, n_kept: int = 6000,
             eligible: bool = True, spec: dict | None = None, **train_fields) -> Path:
    """A finished run directory for the tiny scale with per-example eval arrays."""
    from evals.metrics import n_units, recompute
    from evals.registry import aggregate_members, load_suite

    run = root / f"{method}-s{seed}"
    rng = np.random.default_rng(int(hashlib.sha256(f"{method}/{seed}/{quality}".encode()).hexdigest()[:8], 16))
    subset_sha = hashlib.sha256(f"{method}".encode()).hexdigest()
    (run / "filter").mkdir(parents=True)
    (run / "filter" / "subset.json").write_text(json.dumps({
        "filter": {**(spec or {"name": method, "params": {}, "threshold": 0.3}), "source_hash": "ab" * 32},
        "eligible": eligible, "n_pool": 20000, "n_kept": n_kept, "subset_sha256": subset_sha}))
    (run / "reshard").mkdir()
    (run / "reshard" / "manifest.json").write_text(json.dumps({"n_samples": n_kept, "shards": [],
                                                               "subset_sha256": subset_sha}))
    (run / "train").mkdir()
    (run / "train" / "train.json").write_text(json.dumps({
        "recipe": "tiny", "recipe_hash": tiny_recipe_hash(), "model": "harness-tiny-32", "seed": seed,
        "checkpoint": str(run / "train" / "epoch_4.pt"), "data_manifest_hash": "cd" * 32, "world_size": 1,
        "samples_seen": 65536, "off_recipe": False, "versions": {"torch": "2.14.1"}, **train_fields}))
    per_example = run / "eval" / "per_example"
    per_example.mkdir(parents=True)
    tasks = load_suite("tiny")
    values, lines = {}, []
    for t in tasks:
        arrays = ARRAYS_BY_KIND[t.kind](rng, quality, t.num_classes or 2)
        np.savez(per_example / f"{t.key}.npz", **arrays)
        values[t.key] = recompute(t.main_metric, arrays, np.arange(n_units(arrays)))
        lines.append(json.dumps({"key": t.key, "dataset": t.name,
                                 "metrics": {t.main_metric: values[t.key], "main_metric": values[t.key]}}))
    (run / "eval" / "eval_results.jsonl").write_text("\n".join(lines) + "\n")
    members = aggregate_members(tasks)
    aggregates = {a: (float(np.mean([values[k] for k in keys])) if keys else None) for a, keys in members.items()}
    ckpt_sha = hashlib.sha256(f"{method}/{seed}/{quality}".encode()).hexdigest()
    (run / "eval" / "scores.json").write_text(json.dumps({
        "aggregates": aggregates, "missing": {}, "suite": "tiny", "checkpoint_sha256": ckpt_sha,
        "checkpoint": str(run / "train" / "epoch_4.pt"), "model": "harness-tiny-32"}))
    return run


def test_entry_from_run_reads_the_contract_layout(tmp_path):
    from evals.registry import load_suite
    from leaderboard.store import entry_from_run

    run = make_run(tmp_path, "clip_score", seed=2, quality=0.6, n_kept=4321)
    entry = entry_from_run(run, "clip score 0.3", "filtering", "tiny")
    assert entry["id"] == "clip-score-0.3-seed2"
    assert entry["seed"] == 2 and entry["recipe"] == "tiny" and entry["recipe_hash"] == tiny_recipe_hash()
    assert entry["filter"] == {"name": "clip_score", "params": {"threshold": 0.3}, "source_hash": "ab" * 32}
    assert entry["subset"]["size"] == 4321 and entry["subset"]["n_pool"] == 20000
    assert entry["eligible"] and entry["ranked"] and not entry["reference"]
    assert set(entry["tasks"]) == {t.key for t in load_suite("tiny")}
    assert entry["tasks"]["tiny_retrieval"]["metric"] == "mean_recall@1"
    scores = json.loads((run / "eval" / "scores.json").read_text())
    assert entry["aggregates"]["Average"] == pytest.approx(scores["aggregates"]["Average"])
    assert entry["per_example_dir"] == str((run / "eval" / "per_example").resolve())
    assert entry["versions"]["torch"] == "2.14.1" and "python" in entry["versions"]


def test_entry_from_run_names_the_missing_stage(tmp_path):
    from leaderboard.store import entry_from_run

    run = make_run(tmp_path)
    (run / "eval" / "scores.json").unlink()
    with pytest.raises(HarnessError, match=r"eval/scores.json not found: the run's eval stage"):
        entry_from_run(run, "basic", "filtering", "tiny")


def test_entry_from_run_refuses_shards_of_another_subset(tmp_path):
    from leaderboard.store import entry_from_run

    run = make_run(tmp_path)
    man = run / "reshard" / "manifest.json"
    man.write_text(json.dumps({**json.loads(man.read_text()), "subset_sha256": "ee" * 32}))
    with pytest.raises(HarnessError, match="was made from subset eeeeeeeeeeee"):
        entry_from_run(run, "basic", "filtering", "tiny")


def test_entry_from_run_points_at_a_bad_results_line(tmp_path):
    from leaderboard.store import entry_from_run

    run = make_run(tmp_path)
    res = run / "eval" / "eval_results.jsonl"
    res.write_text(res.read_text() + "{not json\n")
    with pytest.raises(HarnessError, match=r"eval_results.jsonl:9: not an eval result line"):
        entry_from_run(run, "basic", "filtering", "tiny")


def test_entry_from_run_refuses_an_eval_of_another_checkpoint(tmp_path):
    from leaderboard.store import entry_from_run

    run = make_run(tmp_path)
    scores = run / "eval" / "scores.json"
    scores.write_text(json.dumps({**json.loads(scores.read_text()), "checkpoint": "/elsewhere/epoch_1.pt"}))
    with pytest.raises(HarnessError, match="evaluated /elsewhere/epoch_1.pt, not the checkpoint train/ produced"):
        entry_from_run(run, "basic", "filtering", "tiny")


def test_a_composed_filter_keeps_its_tree(tmp_path):
    from leaderboard.store import entry_from_run
    from leaderboard.table import filter_label

    spec = {"name": "intersect", "filters": [{"name": "image_based", "params": {"k": 100}},
                                             {"name": "clip_score", "params": {"arch": "tiny"}, "fraction": 0.3}]}
    entry = entry_from_run(make_run(tmp_path, "img-and-clip", spec=spec), "image ∩ clip", "filtering", "tiny")
    assert entry["filter"] == {"name": "intersect", "params": {}, "source_hash": "ab" * 32, "spec": spec}
    assert filter_label(entry) == "intersect(image_based(k=100), clip_score(arch=tiny, fraction=0.3))"
