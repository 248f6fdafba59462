"""Deduplication (ours; DataComp deduplicates only against eval sets): the first sample of each
group in pool order is kept. Exact: equal ``hash_column`` values (e.g. CommonPool's ``sha256``) or,
without one, byte-identical image feature rows. Near: image-feature cosine ≥ ``near`` (faiss).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from harness.filters.api import PoolInfo, pool_filter
from harness.uids import hex_to_pairs, isin, sort_pairs


def _first_of_groups(keys: np.ndarray) -> np.ndarray:
    _, first = np.unique(keys, return_index=True)
    keep = np.zeros(len(keys), bool)
    keep[first] = True
    return keep


def near_duplicates(x: np.ndarray, near: float, neighbors: int) -> np.ndarray:
    """True for rows with an earlier row at cosine ≥ ``near`` among their ``neighbors`` nearest."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, ids = index.search(x, min(neighbors + 1, len(x)))
    rows = np.arange(len(x))[:, None]
    return ((sims >= near) & (ids >= 0) & (ids < rows)).any(axis=1)


def _prepare(info: PoolInfo, params: dict) -> dict:
    arch = params.get("arch") or info.meta.get("default_score_arch") or "l14"
    key = params.get("feature") or f"{arch}_img"
    uids = hex_to_pairs(pa.array(info.column("uid")))
    hash_col = params.get("hash_column")
    if hash_col is None and "sha256" in info.schema_names():
        hash_col = "sha256"
    feats = info.features(key) if (hash_col is None or params.get("near")) else None
    if hash_col:
        keys = info.column(hash_col).astype(str)
    else:
        rows = np.ascontiguousarray(feats)
        keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    drop = ~_first_of_groups(keys)
    if params.get("near"):
        drop |= near_duplicates(feats, float(params["near"]), int(params.get("neighbors", 16)))
    return {**params, "feature": key, "hash_column": hash_col, "drop_uids": sort_pairs(uids[drop])}


@pool_filter(columns=("uid",), output="mask", prepare=_prepare)
def dedup(batch: pa.RecordBatch, features: dict, near: float | None = 0.95, neighbors: int = 16,
          hash_column: str | None = None, arch: str | None = None, feature: str | None = None,
          drop_uids: np.ndarray | None = None) -> np.ndarray:
    return ~isin(hex_to_pairs(batch.column("uid")), drop_uids)
