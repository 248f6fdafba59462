"""The tiny world: layout, determinism, planted defects, eval suite, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import TINY_WORLD_ARGS, TINY_WORLD_KNOBS, run_cli
from harness.core.errors import HarnessError
from harness.pool.world import defects, render
from harness.pool.world.evalsuite import TASKS
from harness.pool.format import truth_file as truth_path
from harness.pool.world.make import build_pool, make_world, world_config


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_tar(path: Path) -> dict[str, dict[str, bytes]]:
    """key → {ext: bytes}, in tar order."""
    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for m in tar:
            key, _, ext = m.name.rpartition(".")
            out.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return out


def pool_samples(pool_dir: Path) -> dict[str, dict[str, bytes]]:
    """uid → members, over every shard."""
    out = {}
    for tar in sorted((pool_dir / "shards").glob("*.tar")):
        for members in read_tar(tar).values():
            out[json.loads(members["json"])["uid"]] = members
    return out


def test_pool_layout_and_features(tiny_world):
    from harness.pool.format import load_features, open_pool

    pool = open_pool(tiny_world["pool_dir"], need_shards=True)
    info = json.loads((pool.root / "pool.json").read_text())
    tag = info["default_score_arch"]
    assert info["n_samples"] == TINY_WORLD_ARGS["pool_size"] and info["reference_model"]["tag"] == tag
    files, tars = pool.parquet_files(), pool.shard_files()
    assert len(files) == len(tars) == 3
    total = 0
    for parquet, tar in zip(files, tars):
        table = pq.read_table(parquet)
        assert {"uid", "url", "text", "original_width", "original_height", f"clip_{tag}_similarity_score"} <= set(
            table.column_names)
        feats = load_features(parquet, [f"{tag}_img", f"{tag}_txt"])
        for arr in feats.values():
            assert arr.dtype == np.float16
            np.testing.assert_allclose(np.linalg.norm(arr.astype(np.float32), axis=1), 1.0, atol=2e-3)
        samples = read_tar(tar)
        assert all(set(m) == {"jpg", "txt", "json"} for m in samples.values())
        uids = [json.loads(m["json"])["uid"] for m in samples.values()]
        assert uids == table.column("uid").to_pylist()  # shard order = metadata row order
        assert [m["txt"].decode() for m in samples.values()] == table.column("text").to_pylist()
        stats = json.loads(tar.with_name(tar.stem + "_stats.json").read_text())
        assert stats["successes"] == len(uids) == table.num_rows
        total += table.num_rows
    all_uids = pq.read_table(truth_path(pool.root)).column("uid").to_pylist()
    assert total == len(all_uids) == len(set(all_uids))
    assert all(len(u) == 32 and int(u, 16) >= 0 and u == u.lower() for u in all_uids)


def test_webdataset_reads_the_shards(tiny_world):
    import webdataset as wds

    tar = sorted((tiny_world["pool_dir"] / "shards").glob("*.tar"))[0]
    first = next(iter(wds.WebDataset(str(tar), shardshuffle=False).decode("pil")))
    assert first["jpg"].size == (32, 32) and len(first["json"]["uid"]) == 32


def test_defect_shares_and_ground_truth(tiny_world):
    gt = pq.read_table(truth_path(tiny_world["pool_dir"])).to_pandas()
    n = len(gt)
    shares = world_config()["shares"]
    for name, share in shares.items():
        assert (gt.defect == name).sum() == round(share * n), name
        assert gt[name].sum() == round(share * n)
    assert (gt.defect == "clean").sum() == n - sum(round(s * n) for s in shares.values())


def _table(pool_dir: Path):
    import pandas as pd

    meta = pd.concat([pq.read_table(p).to_pandas() for p in sorted((pool_dir / "metadata").glob("*.parquet"))])
    gt = pq.read_table(truth_path(pool_dir)).to_pandas()
    return meta.merge(gt, on="uid")


def test_caption_defects_are_what_they_claim(tiny_world):
    import langid

    t = _table(tiny_world["pool_dir"])
    foreign, clean = t[t.defect == "non_english"], t[t.defect == "clean"].head(200)
    assert np.mean([langid.classify(x)[0] == lang for x, lang in zip(foreign.text, foreign.language)]) > 0.9
    assert len(set(foreign.language)) >= 5
    assert np.mean([langid.classify(x)[0] == "en" for x in clean.text]) > 0.9
    words = t.text.str.split().str.len()
    assert (words[t.defect == "too_short"] <= 2).all() and (words[t.defect == "clean"] > 2).all()
    mism = t[t.defect == "mismatched"]
    assert not any(f" {shape}" in text for shape, text in zip(mism["shape"], mism.text))


def test_image_size_defects(tiny_world):
    t = _table(tiny_world["pool_dir"])
    short = np.minimum(t.original_width, t.original_height)
    aspect = np.maximum(t.original_width, t.original_height) / short
    assert (short[t.defect == "tiny_image"] < 200).all() and (aspect[t.defect == "extreme_aspect"] > 3).all()
    ok = ~t.defect.isin(["tiny_image", "extreme_aspect"])
    assert (short[ok] >= 200).all() and (aspect[ok] < 3).all()


def test_duplicates_and_eval_copies(tiny_world):
    from PIL import Image

    t = _table(tiny_world["pool_dir"]).set_index("uid")
    samples = pool_samples(tiny_world["pool_dir"])
    pixels = lambda b: np.asarray(Image.open(io.BytesIO(b)), np.float32)
    for uid, row in t[t.defect == "exact_duplicate"].iterrows():
        assert samples[uid]["jpg"] == samples[row.source]["jpg"] and row.text == t.loc[row.source, "text"]
    for uid, row in t[t.defect == "near_duplicate"].iterrows():
        a, b = pixels(samples[uid]["jpg"]), pixels(samples[row.source]["jpg"])
        assert samples[uid]["jpg"] != samples[row.source]["jpg"]
        assert np.abs(a - b).mean() < np.abs(a - pixels(next(iter(samples.values()))["jpg"])).mean() + 40
    copies = t[t.defect == "eval_copy"]
    assert len(copies) and all(s.split("/")[0] in TASKS for s in copies.source)
    task, key = copies.source.iloc[0].split("/")
    ev = read_tar(tiny_world["eval_dir"] / task / "test" / "0.tar")[key]
    diff = np.abs(pixels(samples[copies.index[0]]["jpg"]) - np.asarray(Image.open(io.BytesIO(ev["png"])), np.float32))
    assert diff.mean() < 40


def test_eval_suite_layout(tiny_world):
    from PIL import Image

    ev = tiny_world["eval_dir"]
    assert ev.parent == tiny_world["pool_dir"].parent
    assert sorted(p.name for p in ev.iterdir()) == sorted([*TASKS, "truth"])  # truth: the hidden labels
    for key, (_, classes, templates, _) in TASKS.items():
        assert (ev / key / "test" / "nshards.txt").read_text().strip() == "1"
        kind = (ev / key / "dataset_type.txt").read_text().strip()
        assert kind == ("retrieval" if key == "tiny_retrieval" else "classification")
        samples = read_tar(ev / key / "test" / "0.tar")
        assert all(k.startswith("s") and len(k) == 8 for k in samples)
        first = next(iter(samples.values()))
        assert Image.open(io.BytesIO(first["png"])).size == (32, 32)
        if key == "tiny_retrieval":
            caps = [m["txt"].decode() for m in samples.values()]
            assert len(set(caps)) == len(caps)
            continue
        assert (ev / key / "classnames.txt").read_text().splitlines() == list(classes)
        assert all("{c}" in line for line in (ev / key / "zeroshot_classification_templates.txt").read_text().splitlines())
        labels = [int(m["cls"]) for m in samples.values()]
        assert set(labels) == set(range(len(classes)))
        if key == "tiny_worst_group":
            groups = {json.loads(m["json"])["group"] for m in samples.values()}
            assert len(groups) == 5


@pytest.mark.slow  # long end-to-end check; `pytest -m slow` runs it
def test_cli_same_seed_identical_bytes_and_overwrite(tiny_world, tmp_path):
    """`harness pool make` with the fixture's seed and sizes rebuilds it byte for byte (reference
    model and features included); overwrite=true really deletes what was there."""
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "stray.txt").write_text("old")
    a = TINY_WORLD_ARGS
    res = run_cli("pool", "make", "scale=tiny", f"pool_dir={pool}", f"seed={a['seed']}", f"pool_size={a['pool_size']}",
                  "overwrite=true", *(f"world.{k}={v}" for k, v in TINY_WORLD_KNOBS.items()))
    assert res.returncode == 0, res.stderr
    assert "tiny world (seed 0): 2000 samples in 3 shards" in res.stdout and "mismatched" in res.stdout
    assert not (pool / "stray.txt").exists()
    assert tree_hashes(pool) == tree_hashes(tiny_world["pool_dir"])
    assert tree_hashes(tmp_path / "evalsets") == tree_hashes(tiny_world["eval_dir"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_other_seed_differs(tmp_path):
    conf = world_config(shares={"eval_copy": 0.0})
    banks = [render.build_banks(32, s) for s in (0, 1)]
    worlds = [build_pool(s, 300, b, conf, {})[0] for s, b in zip((0, 1), banks)]
    assert not np.array_equal(worlds[0]["images"], worlds[1]["images"])
    assert not set(worlds[0]["uids"]) & set(worlds[1]["uids"])
    again = build_pool(0, 300, render.build_banks(32, 0), conf, {})[0]
    assert np.array_equal(again["images"], worlds[0]["images"]) and list(again["uids"]) == list(worlds[0]["uids"])


def test_defect_assignment_keeps_shares_at_any_size():
    shares = world_config()["shares"]
    for n in (100, 1000, 12345):
        labels, digits = defects.assign(np.random.default_rng(0), n, shares, 0.03)
        for name, share in shares.items():
            assert (labels == name).sum() == round(share * n)
        assert (labels[digits] == defects.CLEAN).all()


@pytest.mark.parametrize("args, message", [
    (["scale=small"], "pool make only makes the tiny world"),
    (["scale=huge"], "unknown scale 'huge'"),
    (["seed=abc"], "seed=abc: Value 'abc' of type 'str' could not be converted to Integer (key seed)"),
    (["pool_size=5"], "pool_size must be an integer >= 100"),
    (["+world.shares.bogus=0.1"], "unknown defect(s) in shares: bogus"),
])
def test_cli_bad_input(tmp_path, args, message):
    res = run_cli("pool", "make", f"pool_dir={tmp_path / 'pool'}", *args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and res.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_refuses_non_empty_pool_dir_and_bad_dirs(tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "keep.txt").write_text("mine")
    with pytest.raises(HarnessError, match="exists and is not empty.*overwrite=true"):
        make_world(pool, pool_size=200)
    assert (pool / "keep.txt").read_text() == "mine"
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HarnessError, match="cannot write"):
        make_world(blocker / "pool", pool_size=200)
    with pytest.raises(HarnessError, match="must not be inside pool_dir"):
        make_world(tmp_path / "p2", eval_dir=tmp_path / "p2" / "evalsets", pool_size=200)
    with pytest.raises(HarnessError, match="unknown tiny-world knob"):
        world_config(pool_sise=200)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "pool"]


def test_color_mention_knob_only_drops_colour_words():
    """`world.color_mention` lowers how often a caption that names the texture also names the
    colour; the same draws otherwise, so the default keeps the world's bytes."""
    import numpy as np

    from harness.pool.world import scenes, vocab

    sc = scenes.sample_scenes(np.random.default_rng(0), 400, 32)
    default = scenes.english_captions(np.random.default_rng(1), sc)
    assert default == scenes.english_captions(np.random.default_rng(1), sc, 0.95)
    none = scenes.english_captions(np.random.default_rng(1), sc, 0.0)
    textured = [i for i, c in enumerate(none) if any(vocab.TEXTURE_ADJ[t] in c.split() for t in vocab.TEXTURES)]
    assert len(textured) > 100
    assert not any(vocab.COLOR_NAMES[sc["color"][i]] in none[i].split() for i in textured)
    assert all(none[i] == default[i] for i in range(400) if i not in textured)
