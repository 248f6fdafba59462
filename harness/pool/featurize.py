"""``harness pool featurize``: image/text embeddings and CLIP scores for any CommonPool-layout pool.

Images come from the shards, matched to metadata rows by ``uid`` (a pool's parquet files need
not line up with its shards); captions from the metadata ``text`` column. Per parquet file it
writes ``<tag>_img`` / ``<tag>_txt`` (float16, L2-normalised) into the row-aligned npz (other
keys kept) and the column ``clip_<tag>_similarity_score`` (cosine, float32; NaN where the row
has no image, whose image features are zero). A parquet that already has both is skipped, so an
interrupted run resumes file by file; npz first, parquet last, so a crash between is redone.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.pool.config import PoolFeaturizeConfig
from harness.pool.format import Pool, open_pool

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def score_column(tag: str) -> str:
    return f"clip_{tag}_similarity_score"


def default_tag(model_name: str) -> str:
    """A column-safe tag from an architecture name (``ViT-B-32`` → ``vit_b_32``)."""
    return re.sub(r"[^a-z0-9]+", "_", model_name.lower()).strip("_")


def index_shards(pool: Pool) -> dict[str, tuple[Path, int, int]]:
    """uid → (tar, offset, size) of its image member, reading only headers and the json members."""
    index: dict[str, tuple[Path, int, int]] = {}
    for tar_path in pool.shard_files():
        images: dict[str, tuple[int, int]] = {}
        uids: dict[str, str] = {}
        with tarfile.open(tar_path, "r") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, _, ext = m.name.rpartition(".")
                if ext.lower() in IMAGE_EXTS:
                    images[key] = (m.offset_data, m.size)
                elif ext == "json":
                    try:
                        uids[key] = json.loads(tar.extractfile(m).read())["uid"]
                    except (KeyError, ValueError) as exc:
                        raise HarnessError(f"{tar_path}: member {m.name} has no uid ({exc})") from None
        for key, uid in uids.items():
            if key in images:
                index[uid] = (tar_path, *images[key])
    return index


def _read_images(rows: list[tuple[Path, int, int] | None]) -> list[bytes | None]:
    out: list[bytes | None] = []
    handles: dict[Path, Any] = {}
    try:
        for r in rows:
            if r is None:
                out.append(None)
                continue
            fh = handles.get(r[0]) or handles.setdefault(r[0], open(r[0], "rb"))
            fh.seek(r[1])
            out.append(fh.read(r[2]))
    finally:
        for fh in handles.values():
            fh.close()
    return out


def embed(model, preprocess, tokenizer, images: list[bytes | None], texts: list[str], batch_size: int,
          bar=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image features, text features, cosine) in float32; rows without image get zeros / NaN.

    Each distinct caption is encoded once (templated and duplicated captions repeat).
    """
    import torch
    from PIL import Image

    n = len(texts)
    has = np.array([b is not None for b in images], bool)
    uniq, inverse = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    with torch.inference_mode():
        txt_u = [model.encode_text(tokenizer(list(uniq[lo:lo + batch_size])), normalize=True).float().numpy()
                 for lo in range(0, len(uniq), batch_size)]
        txt_f = np.concatenate(txt_u)[inverse] if n else np.zeros((0, 0), np.float32)
        img_f = np.zeros_like(txt_f)
        rows = np.flatnonzero(has)
        for lo in range(0, len(rows), batch_size):
            sel = rows[lo:lo + batch_size]
            batch = torch.stack([preprocess(Image.open(io.BytesIO(images[i]))) for i in sel])
            img_f[sel] = model.encode_image(batch, normalize=True).float().numpy()
            if bar is not None:
                bar.update(len(sel))
    if bar is not None:
        bar.update(n - len(rows))
    score = np.where(has, (img_f * txt_f).sum(1), np.nan).astype(np.float32)
    return img_f, txt_f, score


def _done(parquet: Path, tag: str) -> bool:
    import pyarrow.parquet as pq

    npz = parquet.with_suffix(".npz")
    if score_column(tag) not in pq.read_schema(parquet).names or not npz.is_file():
        return False
    with np.load(npz) as z:
        return f"{tag}_img" in z.files and f"{tag}_txt" in z.files


def featurize_file(parquet: Path, index: dict, model, preprocess, tokenizer, tag: str, batch_size: int,
                   bar=None) -> dict[str, int]:
    """Features + score for one metadata file; returns counts (rows, missing images)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.pool.format import write_npz

    table = pq.read_table(parquet)
    for col in ("uid", "text"):
        if col not in table.column_names:
            raise HarnessError(f"{parquet}: missing column {col!r}")
    uids = table.column("uid").to_pylist()
    texts = [t or "" for t in table.column("text").to_pylist()]
    images = _read_images([index.get(u) for u in uids])
    img, txt, score = embed(model, preprocess, tokenizer, images, texts, batch_size, bar)
    npz = parquet.with_suffix(".npz")
    arrays: dict[str, np.ndarray] = {}
    if npz.is_file():
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if len(z[k]) == len(uids)}
    arrays[f"{tag}_img"], arrays[f"{tag}_txt"] = img.astype(np.float16), txt.astype(np.float16)
    write_npz(npz, arrays)
    col = score_column(tag)
    if col in table.column_names:
        table = table.drop_columns([col])
    table = table.append_column(col, pa.array(score, pa.float32()))
    tmp = parquet.with_name(f".{parquet.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(parquet)
    return {"rows": len(uids), "missing_images": int(sum(b is None for b in images))}


def featurize(pool_dir: str | Path, checkpoint: str | Path, model_name: str, tag: str | None = None,
              batch_size: int = 256, overwrite: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Featurize every metadata file of ``pool_dir`` with ``model_name`` loaded from ``checkpoint``."""
    t0 = time.time()
    tag = tag or default_tag(model_name)
    if not re.fullmatch(r"[a-z0-9_]+", tag):
        raise HarnessError(f"tag {tag!r} must be lower-case letters, digits and _ (it names columns)")
    pool = open_pool(pool_dir, need_shards=True)

    import pyarrow.parquet as pq
    import torch
    from tqdm import tqdm

    from harness.core.manifest import sha256_file
    from harness.core.models import load_checkpoint

    if threads:
        torch.set_num_threads(int(threads))
    files = pool.parquet_files()
    todo = [p for p in files if overwrite or not _done(p, tag)]
    totals = {"rows": 0, "missing_images": 0}
    if todo:
        model, preprocess, tokenizer = load_checkpoint(checkpoint, model_name)
        index = index_shards(pool)
        n_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in todo)
        with tqdm(total=n_rows, desc=f"featurize {tag}", unit="row") as bar:
            for p in todo:
                counts = featurize_file(p, index, model, preprocess, tokenizer, tag, batch_size, bar)
                totals = {k: totals[k] + counts[k] for k in totals}
    return {"tag": tag, "model": model_name, "checkpoint_sha256": sha256_file(checkpoint),
            "files": len(files), "files_done_now": len(todo), "files_skipped": len(files) - len(todo),
            **totals, "score_column": score_column(tag), "wall_s": round(time.time() - t0, 2)}


def main(cfg: PoolFeaturizeConfig) -> int:
    """CLI: ``harness pool featurize pool_dir=P checkpoint=C [model=M] [tag=T] [batch_size=B]``."""
    from harness.core.models import model_name_of

    ckpt = Path(str(cfg.checkpoint))
    model = cfg.model
    if ckpt.is_dir():
        model = model or model_name_of(ckpt)
        ckpt = Path(json.loads((ckpt / "train.json").read_text())["checkpoint"])
    if not model:
        raise HarnessError("model= is required (the open_clip architecture of the checkpoint), "
                           "unless checkpoint= is a `harness train` out_dir")
    res = featurize(cfg.pool_dir, ckpt, str(model), cfg.tag, int(cfg.batch_size), bool(cfg.overwrite),
                    cfg.threads)
    print(f"featurized {res['files_done_now']} file(s) ({res['files_skipped']} already done), {res['rows']} rows, "
          f"{res['missing_images']} without image → {res['score_column']}, {res['tag']}_img/_txt "
          f"in {res['wall_s']:.1f}s")
    return 0
