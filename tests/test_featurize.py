"""harness pool featurize: matches a direct model call, aligns by uid, handles missing images, resumes."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from harness.pool.featurize import featurize
from harness.pool.format import write_npz
from test_world import pool_samples

MODEL = "harness-tiny-32"


def _direct(checkpoint: Path, jpgs: list[bytes], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Features straight from open_clip: preprocess → encode_image / tokenizer → encode_text."""
    import torch
    from PIL import Image

    from harness.core.models import load_checkpoint

    model, preprocess, tokenizer = load_checkpoint(checkpoint, MODEL)
    with torch.inference_mode():
        img = model.encode_image(torch.stack([preprocess(Image.open(io.BytesIO(b))) for b in jpgs]), normalize=True)
        txt = model.encode_text(tokenizer(texts), normalize=True)
    return img.numpy(), txt.numpy()


def test_pool_features_match_a_direct_model_call(tiny_world):
    pool = tiny_world["pool_dir"]
    info = json.loads((pool / "pool.json").read_text())
    tag = info["default_score_arch"]
    parquet = sorted((pool / "metadata").glob("*.parquet"))[1]
    table = pq.read_table(parquet).slice(0, 8)
    samples = pool_samples(pool)
    jpgs = [samples[u]["jpg"] for u in table.column("uid").to_pylist()]
    img, txt = _direct(pool / info["reference_model"]["checkpoint"], jpgs, table.column("text").to_pylist())
    with np.load(parquet.with_suffix(".npz")) as z:
        np.testing.assert_allclose(z[f"{tag}_img"][:8].astype(np.float32), img, atol=2e-3)
        np.testing.assert_allclose(z[f"{tag}_txt"][:8].astype(np.float32), txt, atol=2e-3)
    score = table.column(f"clip_{tag}_similarity_score").to_numpy()
    np.testing.assert_allclose(score, (img * txt).sum(1), atol=1e-5)


@pytest.fixture
def random_checkpoint(tmp_path) -> Path:
    """A harness-tiny-32 checkpoint made with open_clip directly (not through the world)."""
    import open_clip
    import torch

    from harness.core.models import register_model_configs

    register_model_configs()
    torch.manual_seed(1)
    model = open_clip.create_model(MODEL)
    path = tmp_path / "random.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def _mixed_pool(tiny_world, root: Path) -> tuple[list[str], list[str]]:
    """Shard 0 of the world, with metadata split in two files, rows reversed, 5 uids without image."""
    src = tiny_world["pool_dir"]
    (root / "shards").mkdir(parents=True)
    for f in ("00000000.tar", "00000000_stats.json"):
        shutil.copy(src / "shards" / f, root / "shards" / f)
    meta = pq.read_table(src / "metadata" / "00000000.parquet", columns=["uid", "url", "text", "original_width",
                                                                        "original_height"])
    ghosts = pa.table({"uid": [f"{i:032x}" for i in range(5)], "url": ["http://x.invalid/"] * 5,
                       "text": ["a red circle on the grass"] * 5, "original_width": [256] * 5,
                       "original_height": [256] * 5}).cast(meta.schema)
    first = pa.concat_tables([meta.slice(0, 100).take(np.arange(99, -1, -1)), ghosts])
    (root / "metadata").mkdir()
    pq.write_table(first, root / "metadata" / "a.parquet")
    pq.write_table(meta.slice(100, 100), root / "metadata" / "b.parquet")
    write_npz(root / "metadata" / "a.npz", {"other_img": np.ones((105, 4), np.float16)})
    return first.column("uid").to_pylist(), meta.slice(100, 100).column("uid").to_pylist()


def test_any_pool_aligns_by_uid_counts_missing_and_resumes(tiny_world, tmp_path, random_checkpoint):
    root = tmp_path / "pool"
    uids_a, _ = _mixed_pool(tiny_world, root)
    res = featurize(root, random_checkpoint, MODEL, tag="rnd", batch_size=64)
    assert (res["rows"], res["missing_images"], res["files_done_now"]) == (105 + 100, 5, 2)
    a = pq.read_table(root / "metadata" / "a.parquet")
    score = a.column("clip_rnd_similarity_score").to_numpy(zero_copy_only=False)
    assert np.isnan(score[-5:]).all() and not np.isnan(score[:-5]).any()
    with np.load(root / "metadata" / "a.npz") as z:
        assert set(z.files) == {"other_img", "rnd_img", "rnd_txt"}
        assert not z["rnd_img"][-5:].any() and z["rnd_txt"][-5:].any()
        row_img = z["rnd_img"][10].astype(np.float32)
    samples = pool_samples(tiny_world["pool_dir"])
    img, _ = _direct(random_checkpoint, [samples[uids_a[10]]["jpg"]], ["x"])
    np.testing.assert_allclose(row_img, img[0], atol=2e-3)

    (root / "metadata" / "b.npz").unlink()
    before = (root / "metadata" / "a.parquet").stat().st_mtime_ns
    again = featurize(root, random_checkpoint, MODEL, tag="rnd", batch_size=64)
    assert (again["files_done_now"], again["files_skipped"], again["rows"]) == (1, 1, 100)
    assert (root / "metadata" / "a.parquet").stat().st_mtime_ns == before
    assert featurize(root, random_checkpoint, MODEL, tag="rnd")["files_done_now"] == 0


@pytest.mark.slow  # long end-to-end check; `pytest -m slow` runs it
def test_cli_featurize_recomputes_the_reference_column(tiny_world, tmp_path):
    src, pool = tiny_world["pool_dir"], tmp_path / "pool"
    for sub, names in (("shards", ("00000000.tar", "00000000_stats.json")),
                       ("metadata", ("00000000.parquet", "00000000.npz"))):
        (pool / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(src / sub / name, pool / sub / name)
    ckpt = src / "reference" / "tinyref.pt"
    res = run_cli("pool", "featurize", f"pool_dir={pool}", f"checkpoint={ckpt}", f"model={MODEL}", "tag=again")
    assert res.returncode == 0, res.stderr
    assert "featurized 1 file(s)" in res.stdout and "clip_again_similarity_score" in res.stdout
    t = pq.read_table(pool / "metadata" / "00000000.parquet")
    np.testing.assert_array_equal(t.column("clip_again_similarity_score").to_numpy(),
                                  t.column("clip_tinyref_similarity_score").to_numpy())
    bad = run_cli("pool", "featurize", f"pool_dir={pool}", f"checkpoint={ckpt}")
    assert bad.returncode == 2 and "model= is required" in bad.stderr
    bad_tag = run_cli("pool", "featurize", f"pool_dir={pool}", f"checkpoint={ckpt}", f"model={MODEL}", "tag=Bad-Tag")
    assert bad_tag.returncode == 2 and "tag 'Bad-Tag' must be lower-case" in bad_tag.stderr
