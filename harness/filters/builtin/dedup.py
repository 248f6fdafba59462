"""Deduplication (ours; DataComp deduplicates only against eval sets): the first sample of each
group in pool order is kept. Exact: equal ``hash_column`` values (CommonPool's ``sha256`` when
present), else equal image bytes read from the pool's shards, else byte-identical feature rows.
Near (opt-in, ``near=<cosine>``): an earlier sample among the ``neighbors`` nearest image
features (faiss) has cosine ≥ ``near``; the right value depends on the model that made them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from harness.core.errors import HarnessError
from harness.filters.api import PoolInfo, pool_filter
from harness.pool.uids import hex_to_pairs, isin, sort_pairs


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


def image_hashes(info: PoolInfo, uids: list[str]) -> np.ndarray | None:
    """sha256 of each sample's image bytes from the shards (None when the pool has no shards)."""
    from harness.pool.featurize import index_shards
    from harness.pool.format import open_pool

    pool = open_pool(info.root)
    if not pool.shard_files():
        return None
    index = index_shards(pool)
    missing = [u for u in uids if u not in index]
    if missing:
        raise HarnessError(f"dedup: {len(missing)} uid(s) have no image in {pool.shards_dir}, e.g. {missing[0]}; "
                           "give filter.hash_column=<column> instead")
    out, handles = [], {}
    try:
        for u in uids:
            tar, offset, size = index[u]
            fh = handles.get(tar) or handles.setdefault(tar, open(tar, "rb"))
            fh.seek(offset)
            out.append(hashlib.sha256(fh.read(size)).hexdigest())
    finally:
        for fh in handles.values():
            fh.close()
    return np.array(out)


def _exact_keys(info: PoolInfo, params: dict, uid_strings: np.ndarray, feature_key: str) -> tuple[np.ndarray, str]:
    hash_col = params.get("hash_column") or ("sha256" if "sha256" in info.schema_names() else None)
    if hash_col:
        return info.column(hash_col).astype(str), f"column {hash_col}"
    keys = image_hashes(info, list(uid_strings))
    if keys is not None:
        return keys, "image bytes"
    rows = np.ascontiguousarray(info.features(feature_key))
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel(), f"feature {feature_key}"


def _prepare(info: PoolInfo, params: dict) -> dict:
    arch = params.get("arch") or info.meta.get("default_score_arch") or "l14"
    key = params.get("feature") or f"{arch}_img"
    uid_strings = info.column("uid")
    keys, exact_by = _exact_keys(info, params, uid_strings, key)
    drop = ~_first_of_groups(keys)
    if params.get("near") is not None:
        drop |= near_duplicates(info.features(key), float(params["near"]), int(params.get("neighbors", 16)))
    uids = hex_to_pairs(pa.array(uid_strings, pa.string()))
    return {**params, "feature": key, "exact_by": exact_by, "drop_uids": sort_pairs(uids[drop])}


@pool_filter(columns=("uid",), output="mask", prepare=_prepare)
def dedup(batch: pa.RecordBatch, features: dict, near: float | None = None, neighbors: int = 16,
          hash_column: str | None = None, arch: str | None = None, feature: str | None = None,
          exact_by: str = "", drop_uids: np.ndarray | None = None) -> np.ndarray:
    return ~isin(hex_to_pairs(batch.column("uid")), drop_uids)
