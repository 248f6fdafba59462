"""DataComp's image-based filter: k-means over the pool's image features (faiss, as DataComp), keep
the samples whose nearest centroid is nearest to some target image (DataComp: ImageNet-1k train),
after DataComp's caption pre-filter (English, > 1 word, > 5 characters). No torch needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from harness.core.errors import HarnessError
from harness.filters.api import PoolInfo, pool_filter
from harness.filters.text import char_counts, is_language, word_counts

POINTS_PER_CLUSTER = 128  # DataComp small: 100k centroids for 12.8M samples
KMEANS_ITERS = 20  # DataComp's faiss.Clustering niter
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")


def caption_prefilter(text: pa.Array, language: str = "en") -> np.ndarray:
    keep = (word_counts(text) > 1) & (char_counts(text) > 5)
    if keep.any():
        keep[keep] = is_language(text.filter(pa.array(keep)), language)
    return keep


def _feature_key(info: PoolInfo, params: dict) -> str:
    arch = params.get("arch") or info.meta.get("default_score_arch") or "l14"
    return params.get("feature") or f"{arch}_img"


def shard_images(shards_dir: Path) -> list[bytes]:
    """Image bytes of every sample in a WebDataset shards directory, in shard order."""
    import tarfile

    images = []
    for tar_path in sorted(shards_dir.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            images += [tar.extractfile(m).read() for m in tar if m.isfile() and m.name.lower().endswith(IMAGE_EXT)]
    return images


def embed_shards(info: PoolInfo, shards_dir: Path, batch_size: int = 256) -> np.ndarray:
    """Embed a shards directory's images with the pool's reference model (torch only here)."""
    from harness.pool.featurize import embed
    from harness.core.models import load_checkpoint

    ref = info.meta.get("reference_model") or {}
    if not ref.get("checkpoint") or not ref.get("name"):
        raise HarnessError(f"image_based: pool.json of {info.root} names no reference_model checkpoint "
                           "to embed the target images; give filter.target=<.npy of target features>")
    images = shard_images(shards_dir)
    if not images:
        raise HarnessError(f"image_based: no images in {shards_dir}/*.tar")
    model, preprocess, tokenizer = load_checkpoint(info.root / ref["checkpoint"], ref["name"])
    return embed(model, preprocess, tokenizer, images, [""] * len(images), batch_size)[0]


def load_target(info: PoolInfo, target: object, dim: int) -> np.ndarray:
    """Target image features: a .npy (n, d), an .npz's first array, or a shards directory embedded
    with the pool's reference model; ``auto``: the tiny world's clean reference set."""
    if target in (None, "auto"):
        target = info.root / "reference" / "shards"
        if not target.is_dir():
            raise HarnessError("image_based needs filter.target=<.npy of target image features, n×d, or a shards dir> "
                               "(DataComp uses ImageNet-1k train images embedded by the pool's model)")
    path = Path(str(target))
    if path.is_dir():
        arr = embed_shards(info, path)
    elif path.is_file():
        data = np.load(path, allow_pickle=False)
        arr = data[data.files[0]] if hasattr(data, "files") else data
    else:
        raise HarnessError(f"image_based: target {path} is neither a features file nor a shards directory")
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise HarnessError(f"image_based: target {path} has shape {arr.shape}, expected (n, {dim}) like the pool features")
    return np.ascontiguousarray(arr, dtype=np.float32)


def kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=KMEANS_ITERS, seed=seed, max_points_per_centroid=10_000_000,
                      verbose=False)
    km.train(np.ascontiguousarray(x, dtype=np.float32))
    return km.centroids


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid by inner product, as DataComp assigns (features are unit-norm)."""
    return np.argmax(x.astype(np.float32) @ centroids.T, axis=1)


def _prepare(info: PoolInfo, params: dict) -> dict:
    key = _feature_key(info, params)
    feats = info.features(key)
    mask = caption_prefilter(pa.array(info.column("text")), params.get("language", "en"))
    pool = feats[mask]
    k = params.get("num_clusters") or max(2, round(len(pool) / POINTS_PER_CLUSTER))
    if len(pool) < k:
        raise HarnessError(f"image_based: {len(pool)} samples pass the caption pre-filter, fewer than num_clusters={k}")
    centroids = kmeans(pool, int(k), int(params.get("seed", 0)))
    target = load_target(info, params.get("target"), feats.shape[1])
    return {**params, "feature": key, "num_clusters": int(k), "centroids": centroids,
            "target_clusters": np.unique(nearest(target, centroids))}


@pool_filter(columns=("text",), features=lambda p: (p["feature"],), output="mask", prepare=_prepare)
def image_based(batch: pa.RecordBatch, features: dict, target: str | None = None, arch: str | None = None,
                feature: str | None = None, num_clusters: int | None = None, seed: int = 0, language: str = "en",
                centroids: np.ndarray | None = None, target_clusters: np.ndarray | None = None) -> np.ndarray:
    keep = caption_prefilter(batch.column("text"), language)
    if keep.any():
        keep[keep] = np.isin(nearest(features[feature][keep], centroids), target_clusters)
    return keep
