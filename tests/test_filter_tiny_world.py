"""Every built-in on the tiny world (the session's ``tiny_world`` fixture), the precision ordering
oracle > clip_score > no_filter against the planted defects, and langid's accuracy on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.filters import run_filter
from harness.filters.report import defect_metrics
from harness.filters.text import languages
from harness.uids import read_subset

BUILTINS = ["no_filter", "random", "basic", "clip_score", "laion2b", "text_based", "image_based",
            "image_based_intersect_clip_score", "dedup", "oracle"]


@pytest.fixture(scope="module")
def pool(request) -> Path:
    try:
        world = request.getfixturevalue("tiny_world")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py has no tiny_world fixture yet")
    return Path(world["pool_dir"] if isinstance(world, dict) else world.pool_dir)


@pytest.fixture(scope="module")
def results(pool, tmp_path_factory) -> dict:
    """Each built-in once on the tiny world: name → (S.json doc, defect metrics)."""
    out = tmp_path_factory.mktemp("tiny_filters")
    docs = {}
    for name in BUILTINS:
        doc = run_filter(pool, name, out / f"{name}.npy", workers=2)
        docs[name] = (doc, defect_metrics(pool, read_subset(out / f"{name}.npy")))
    return docs


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_runs_on_tiny_world(results, name):
    doc, metrics = results[name]
    assert 0 < doc["n_kept"] <= doc["n_pool"]
    assert metrics is not None and set(metrics["per_type"]) >= {"non_english", "exact_duplicate", "mismatched"}
    per = metrics["per_type"]
    removes = {"basic": ["non_english", "too_short", "tiny_image", "extreme_aspect"], "dedup": ["exact_duplicate"],
               "oracle": list(per), "laion2b": ["non_english"], "text_based": ["non_english"]}
    for defect in removes.get(name, []):
        if per[defect]["n"]:
            assert per[defect]["recall"] >= 0.9, (name, defect, per[defect])


def test_precision_oracle_beats_clip_score_beats_no_filter(results):
    precision = {n: results[n][1]["precision"] for n in ("oracle", "clip_score", "no_filter", "random")}
    assert precision["oracle"] == 1.0
    assert precision["oracle"] > precision["clip_score"] > precision["no_filter"], precision
    assert results["oracle"][0]["eligible"] is False and results["clip_score"][0]["eligible"] is True


def test_clip_score_as_typed_uses_reference_column(pool, tmp_path):
    res = subprocess.run([sys.executable, "-m", "harness", "filter", f"pool_dir={pool}", "filter=clip_score",
                          "filter.fraction=0.3", f"out={tmp_path / 's.npy'}", "report=true"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    n = pq.ParquetFile(next((pool / "metadata").glob("*.parquet"))).metadata.num_rows  # at least one file
    assert n > 0 and (tmp_path / "s.html").is_file()
    html = (tmp_path / "s.html").read_text()
    assert "Planted defects" in html and "Kept (" in html


def test_langid_accuracy_on_planted_captions(pool):
    """langid (offline) must flag the planted non-English captions and keep English ones."""
    gt = pq.read_table(pool / "ground_truth.parquet", columns=["uid", "defect", "language"])
    meta = pa.concat_tables([pq.read_table(f, columns=["uid", "text"]) for f in sorted((pool / "metadata").glob("*.parquet"))])
    text = dict(zip(meta.column("uid").to_pylist(), meta.column("text").to_pylist()))
    rows = gt.to_pylist()
    foreign = [r for r in rows if r["defect"] == "non_english"]
    clean = [r for r in rows if r["defect"] == "clean"]
    pred_f = languages(pa.array([text[r["uid"]] for r in foreign]))
    pred_c = languages(pa.array([text[r["uid"]] for r in clean]))
    flagged = float(np.mean(pred_f != "en"))
    exact = float(np.mean(pred_f == np.array([r["language"] for r in foreign])))
    english = float(np.mean(pred_c == "en"))
    print(f"langid on the tiny world: non-English flagged {flagged:.3f} ({len(foreign)}), language exact {exact:.3f}, "
          f"clean English kept as en {english:.3f} ({len(clean)})")
    assert flagged >= 0.97 and english >= 0.9
