"""DataComp's baseline rules checked row by row on hand-built metadata (which rows each keeps)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import langid
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.filters import run_filter
from harness.pool.uids import read_subset
from test_filter_support import expected, make_pool, pool_uids, write_shard
from harness.pool.uids import pairs_to_hex

BASIC_ROWS = [  # text, width, height, kept by DataComp's basic filter
    ("a photo of a dog", 512, 512, True),
    ("two words", 512, 512, False),                # 2 words: needs > 2
    ("a b c", 512, 512, False),                    # 5 characters: needs > 5
    ("a bb c", 512, 512, True),
    ("le chat noir est sur la table", 512, 512, False),  # French
    ("der Hund läuft im Park", 512, 512, False),   # German
    ("  a   photo   of  a cat  ", 512, 512, True),  # str.split() semantics
    ("a photo\nof a dog", 512, 512, True),
    ("red car parked outside", 199, 400, False),   # min side 199
    ("red car parked outside", 200, 600, True),    # aspect exactly 3
    ("red car parked outside", 200, 601, False),   # aspect > 3
    ("red car parked outside", 600, 200, True),
    ("red car parked outside", 0, 300, False),
    ("", 512, 512, False),
    (None, 512, 512, False),
]


def datacomp_basic(text, w, h) -> bool:
    """DataComp's rule, one row at a time (language from langid instead of fastText)."""
    if text is None:
        return False
    lo, hi = min(w, h), max(w, h)
    english = langid.classify(text.replace("\n", " "))[0] == "en"
    return english and len(text.split()) > 2 and len(text) > 5 and lo >= 200 and (hi / lo if lo else np.inf) <= 3.0


def test_basic_keeps_exactly_datacomps_rows(tmp_path):
    texts, ws, hs, keep = zip(*BASIC_ROWS)
    root = make_pool(tmp_path / "p", {"text": pa.array(texts, pa.string()), "original_width": np.array(ws),
                                      "original_height": np.array(hs)}, files=2)
    run_filter(root, "basic", tmp_path / "s.npy")
    assert [datacomp_basic(*r[:3]) for r in BASIC_ROWS] == list(keep)
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, keep))


def test_no_filter_keeps_all(tmp_path):
    root = make_pool(tmp_path / "p", {"text": ["x"] * 9}, files=3)
    assert run_filter(root, "no_filter", tmp_path / "s.npy")["n_kept"] == 9


@pytest.fixture
def clip_pool(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    cols = {name: rng.random(n).astype(np.float32) for name in
            ("clip_b32_similarity_score", "clip_l14_similarity_score", "clip_vit_tiny_similarity_score")}
    return make_pool(tmp_path / "p", cols, files=2), cols


@pytest.mark.parametrize("spec, column", [
    ({"name": "clip_score", "threshold": 0.5}, "clip_l14_similarity_score"),           # CommonPool: l14
    ({"name": "clip_score", "arch": "b32", "threshold": 0.5}, "clip_b32_similarity_score"),
    ({"name": "clip_score", "column": "clip_vit_tiny_similarity_score", "threshold": 0.5}, "clip_vit_tiny_similarity_score"),
])
def test_clip_score_column_choice(clip_pool, tmp_path, spec, column):
    root, cols = clip_pool
    doc = run_filter(root, spec, tmp_path / "s.npy")
    assert doc["filter"]["params"]["column"] == column
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, cols[column] >= np.float32(0.5)))


def test_clip_score_default_is_pool_reference_column_and_30_percent(clip_pool, tmp_path):
    root, cols = clip_pool
    (root / "pool.json").write_text('{"default_score_arch": "vit_tiny"}')
    doc = run_filter(root, "clip_score", tmp_path / "s.npy")
    assert doc["filter"]["params"]["column"] == "clip_vit_tiny_similarity_score"
    assert doc["filter"]["fraction"] == 0.3 and doc["n_kept"] == int(200 * 0.3) + 1


def test_laion2b_rule(tmp_path):
    rows = [("a photo of a dog on the grass", 0.28, True),
            ("a photo of a dog on the grass", 0.2799, False),
            ("le chat noir est sur la table", 0.5, False),
            ("a red car parked outside the house", 0.5, True),
            ("a red car parked outside the house", float("nan"), False)]
    texts, scores, keep = zip(*rows)
    root = make_pool(tmp_path / "p", {"text": list(texts), "clip_b32_similarity_score": np.array(scores, np.float32)})
    doc = run_filter(root, "laion2b", tmp_path / "s.npy")
    assert doc["filter"]["threshold"] == 0.28 and doc["filter"]["params"]["column"] == "clip_b32_similarity_score"
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, keep))


def test_text_based_vocabulary_match(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("circle\ngreat white shark  # a phrase\nbus, coach\n")
    rows = [("a red circle on the table", True), ("two circles", True), ("encircled by fences", False),
            ("a great white shark swimming", True), ("buses in town", True), ("CIRCLE in caps", True),
            ("le circle rouge est grand sur la table", False), ("a photo of a dog", False), (None, False)]
    texts, keep = zip(*rows)
    root = make_pool(tmp_path / "p", {"text": pa.array(texts, pa.string())})
    doc = run_filter(root, {"name": "text_based", "vocab": str(vocab)}, tmp_path / "s.npy")
    assert doc["filter"]["params"]["vocab_size"] == 4
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, keep))


def test_text_based_imagenet_vocabulary_without_torch(tmp_path):
    root = make_pool(tmp_path / "p", {"text": ["a photo of a goldfish swimming in a glass bowl", "a photo of my friends at a party"]}, files=1)
    code = ("import sys; from harness.filters import run_filter; "
            f"d = run_filter({str(root)!r}, {{'name': 'text_based', 'vocab': 'imagenet1k'}}, {str(tmp_path / 's.npy')!r}); "
            "assert 'torch' not in sys.modules; print(d['n_kept'], d['filter']['params']['vocab_size'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    kept, size = map(int, res.stdout.split())
    assert kept == 1 and size > 900


def test_random_is_seeded_and_split_independent(tmp_path):
    root = make_pool(tmp_path / "p", {"text": ["x"] * 500}, files=4)
    a = run_filter(root, {"name": "random", "seed": 1}, tmp_path / "a.npy", workers=2)
    b = run_filter(root, {"name": "random", "seed": 1}, tmp_path / "b.npy")
    c = run_filter(root, {"name": "random"}, tmp_path / "c.npy", seed=2)
    assert a["n_kept"] == int(500 * 0.3) + 1 == c["n_kept"]
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    assert not np.array_equal(read_subset(tmp_path / "a.npy"), read_subset(tmp_path / "c.npy"))
    one = make_pool(tmp_path / "q", {"text": ["x"] * 500}, files=1)
    run_filter(one, {"name": "random", "seed": 1}, tmp_path / "d.npy")
    assert (tmp_path / "d.npy").read_bytes() == (tmp_path / "a.npy").read_bytes()


def test_dedup_exact_and_near_keep_first(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((13, 16)).astype(np.float32)
    feats[10] = feats[3]                      # exact copy of 3
    feats[11] = feats[5] + 1e-3               # near copy of 5
    feats[12] = feats[3]                      # another exact copy of 3
    root = make_pool(tmp_path / "p", {"text": ["x"] * 13}, features={"l14_img": feats}, files=2)
    keep = np.ones(13, bool)
    keep[[10, 11, 12]] = False
    run_filter(root, {"name": "dedup", "near": 0.95}, tmp_path / "s.npy")
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, keep))
    exact_only = keep.copy()
    exact_only[11] = True
    doc = run_filter(root, "dedup", tmp_path / "e.npy")  # default: exact only (no shards: feature bytes)
    assert doc["filter"]["params"]["exact_by"] == "feature l14_img"
    assert np.array_equal(read_subset(tmp_path / "e.npy"), expected(root, exact_only))


def test_dedup_by_hash_column(tmp_path):
    hashes = [hashlib.sha256(str(i % 4).encode()).hexdigest() for i in range(10)]
    root = make_pool(tmp_path / "p", {"text": ["x"] * 10, "sha256": hashes}, files=2)
    run_filter(root, {"name": "dedup", "near": None}, tmp_path / "s.npy")
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, np.arange(10) < 4))


def test_oracle_reads_ground_truth_and_is_ineligible(tmp_path):
    root = make_pool(tmp_path / "p", {"text": ["x"] * 8}, files=2)
    u = pairs_to_hex(pool_uids(root))
    bad_a = np.array([0, 1, 0, 0, 0, 1, 0, 0], bool)
    bad_b = np.array([0, 0, 0, 1, 0, 0, 0, 0], bool)
    pq.write_table(pa.table({"uid": list(u), "defect": ["x"] * 8, "mismatched": bad_a, "too_short": bad_b}),
                   root / "ground_truth.parquet")
    doc = run_filter(root, "oracle", tmp_path / "s.npy")
    assert doc["eligible"] is False
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, ~(bad_a | bad_b)))


@pytest.fixture
def clustered(tmp_path):
    """Two well-separated feature clusters (A around e0, B around e1), 60 rows each."""
    rng = np.random.default_rng(0)
    centers = np.eye(8, dtype=np.float32)
    which = np.repeat([0, 1], 60)
    rng.shuffle(which)
    feats = centers[which] + 0.05 * rng.standard_normal((120, 8)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    texts = ["a photo of a small dog"] * 120
    texts[int(np.flatnonzero(which == 0)[0])] = "dog"                            # 1 word
    texts[int(np.flatnonzero(which == 0)[1])] = "le chat noir est sur la table"  # French
    score = rng.random(120).astype(np.float32)
    root = make_pool(tmp_path / "p", {"text": texts, "clip_l14_similarity_score": score},
                     features={"l14_img": feats.astype(np.float16)}, files=2)
    target = tmp_path / "target.npy"
    np.save(target, (centers[[0, 0, 0]] + 0.01).astype(np.float32))
    caption_ok = np.array([t == "a photo of a small dog" for t in texts])
    return root, target, (which == 0) & caption_ok, score


def test_image_based_keeps_target_clusters(clustered, tmp_path):
    root, target, keep, _ = clustered
    doc = run_filter(root, {"name": "image_based", "target": str(target), "num_clusters": 2}, tmp_path / "s.npy")
    assert doc["filter"]["params"]["feature"] == "l14_img"
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, keep))


def test_image_based_intersect_clip_score_preset(clustered, tmp_path):
    root, target, keep, score = clustered
    res = subprocess.run([sys.executable, "-m", "harness", "filter", f"pool_dir={root}",
                          "filter=image_based_intersect_clip_score", f"filter.filters.1.target={target}",
                          f"out={tmp_path / 's.npy'}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    top30 = score >= -np.sort(-score)[int(len(score) * 0.3)]
    assert np.array_equal(read_subset(tmp_path / "s.npy"), expected(root, keep & top30))


def test_report_html_with_grid_and_defect_metrics(tmp_path):
    texts = ["a photo of a dog"] * 6 + ["junk"] * 4
    root = make_pool(tmp_path / "p", {"text": texts, "clip_l14_similarity_score": np.linspace(0, 1, 10).astype(np.float32)},
                     files=1)
    u = list(pairs_to_hex(pool_uids(root)))
    write_shard(root, u, texts)
    pq.write_table(pa.table({"uid": u, "defect": ["clean"] * 6 + ["too_short"] * 4,
                             "too_short": np.arange(10) >= 6, "mismatched": np.zeros(10, bool)}),
                   root / "ground_truth.parquet")
    doc = run_filter(root, {"name": "clip_score", "threshold": 0.5}, tmp_path / "s.npy", report=True)
    html = (tmp_path / "s.html").read_text()
    assert "Kept (5 shown)" in html and "Dropped (5 shown)" in html and html.count("<img") == 11
    d = doc["defects"]
    assert d["per_type"]["too_short"] == {"n": 4, "kept": 4, "recall": 0.0, "precision": 0.0}
    assert d["precision"] == pytest.approx(1 / 5)


def test_vocabulary_pattern_does_not_depend_on_set_order():
    """text_based's pattern enters the filter spec and the leaderboard: the same vocabulary must
    give the same string in every process (set order follows PYTHONHASHSEED)."""
    import os
    import subprocess
    import sys

    from harness.filters.text import vocabulary_pattern

    words = ["star", "ring", "circle", "square", "cross", "heart", "diamond", "hexagon", "triangle", "crescent"]
    code = f"from harness.filters.text import vocabulary_pattern; print(vocabulary_pattern({words!r}))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout.strip()
            for h in (0, 1, 2, 3)}
    assert outs == {vocabulary_pattern(reversed(words))}
    assert "crescent|triangle|diamond|hexagon" in outs.pop()
