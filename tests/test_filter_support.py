"""Hand-built pools for the filter tests (imported by tests/test_filter_*.py), and a check that they
are read back row-for-row as written."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness.pool.format import write_metadata
from harness.pool.uids import hex_to_pairs, pairs_to_hex, sort_pairs


def uids(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    pairs = np.empty(n, np.dtype("u8,u8"))
    pairs["f0"] = rng.integers(0, 2**63, n, dtype=np.uint64)
    pairs["f1"] = rng.integers(0, 2**63, n, dtype=np.uint64)
    return list(pairs_to_hex(pairs))


def make_pool(root: Path, columns: dict, features: dict | None = None, files: int = 2,
              meta: dict | None = None, seed: int = 0) -> Path:
    """Write ``columns`` (lists/arrays of equal length) split over ``files`` parquet files.

    ``uid``/``url``/sizes are filled in when not given; features are split row-aligned.
    """
    n = len(next(iter(columns.values())))
    cols = {"uid": uids(n, seed), **columns}
    cols.setdefault("url", [f"http://img.test/{i}.jpg" for i in range(n)])
    cols.setdefault("text", [f"a photo of thing number {i}" for i in range(n)])
    cols.setdefault("original_width", np.full(n, 512))
    cols.setdefault("original_height", np.full(n, 512))
    table = pa.table({k: (v if isinstance(v, pa.Array) else pa.array(list(v) if not isinstance(v, np.ndarray) else v))
                      for k, v in cols.items()})
    bounds = np.linspace(0, n, files + 1).astype(int)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        feats = {k: v[a:b] for k, v in (features or {}).items()}
        write_metadata(root / "metadata" / f"{i:08d}.parquet", table.slice(a, b - a), feats or None)
    if meta is not None:
        (root / "pool.json").write_text(json.dumps(meta))
    return root


def pool_uids(root: Path) -> np.ndarray:
    """All uids in canonical row order as ``u8,u8``."""
    files = sorted((root / "metadata").glob("*.parquet"))
    return np.concatenate([hex_to_pairs(pq.read_table(f, columns=["uid"]).column("uid")) for f in files])


def expected(root: Path, mask: np.ndarray) -> np.ndarray:
    """The subset file a row mask over the pool must produce."""
    return sort_pairs(pool_uids(root)[np.asarray(mask, bool)])


def write_shard(root: Path, uid_list: list[str], captions: list[str], size: int = 16) -> Path:
    """One WebDataset shard of small PNGs (``.png``, ``.txt``, ``.json`` with ``uid``)."""
    from PIL import Image

    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    path = shards / "00000000.tar"
    with tarfile.open(path, "w") as tar:
        for i, (uid, cap) in enumerate(zip(uid_list, captions)):
            buf = io.BytesIO()
            Image.new("RGB", (size, size), (i * 37 % 256, 80, 160)).save(buf, format="PNG")
            for ext, data in ((".png", buf.getvalue()), (".txt", cap.encode()), (".json", json.dumps({"uid": uid}).encode())):
                info = tarfile.TarInfo(f"{i:09d}{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_make_pool_round_trips_rows(tmp_path):
    root = make_pool(tmp_path / "p", {"text": ["a", "b", "c", "d", "e"]}, files=2)
    assert len(sorted((root / "metadata").glob("*.parquet"))) == 2
    got = pa.concat_tables([pq.read_table(f) for f in sorted((root / "metadata").glob("*.parquet"))])
    assert got.column("text").to_pylist() == ["a", "b", "c", "d", "e"]
    assert list(pairs_to_hex(pool_uids(root))) == got.column("uid").to_pylist()
