"""The CommonPool on-disk layout: ``metadata/*.parquet`` + row-aligned ``*.npz`` + ``shards/``.

Readers load only the columns and feature arrays asked for; writers are atomic per file.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness.core.errors import HarnessError
from harness.pool.uids import hex_to_pairs

SHARD_PATTERN = "{:08d}.tar"
STATS_PATTERN = "{:08d}_stats.json"
# NumPy's savez stamps the current time into the zip headers; a fixed one keeps pools byte-identical
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
REQUIRED_COLUMNS = ("uid", "url", "text", "original_width", "original_height")


@dataclass(frozen=True)
class Pool:
    """Paths of a pool in the CommonPool layout."""

    root: Path

    @property
    def metadata_dir(self) -> Path:
        return self.root / "metadata"

    @property
    def shards_dir(self) -> Path:
        return self.root / "shards"

    def parquet_files(self) -> list[Path]:
        """Metadata parquet files in name order (the pool's canonical row order)."""
        return sorted(self.metadata_dir.glob("*.parquet"))

    def shard_files(self) -> list[Path]:
        return sorted(self.shards_dir.glob("*.tar"))

    def features_path(self, parquet: Path) -> Path:
        return parquet.with_suffix(".npz")


def open_pool(pool_dir: str | Path, need_shards: bool = False) -> Pool:
    """Open a pool directory, with a clear error when it is not in the CommonPool layout."""
    pool = Pool(Path(pool_dir))
    if not pool.root.is_dir():
        raise HarnessError(f"pool_dir {pool.root} does not exist (make one with `harness pool make pool_dir={pool.root}`)")
    if not pool.parquet_files():
        raise HarnessError(f"pool_dir {pool.root} has no metadata/*.parquet files: not a CommonPool-layout pool")
    if need_shards and not pool.shard_files():
        raise HarnessError(f"pool_dir {pool.root} has no shards/*.tar files")
    return pool


def parquet_columns(path: Path) -> list[str]:
    return pq.read_schema(path).names


def read_columns(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read only ``columns`` of one metadata file; a missing column names the file."""
    if columns is not None:
        missing = sorted(set(columns) - set(parquet_columns(path)))
        if missing:
            raise HarnessError(f"{path}: missing column(s) {', '.join(missing)}")
    return pq.read_table(path, columns=list(columns) if columns is not None else None)


def read_uid_pairs(path: Path) -> np.ndarray:
    """The ``u8,u8`` uids of one metadata file, in row order, validated (errors give file and row)."""
    return hex_to_pairs(read_columns(path, ["uid"]).column("uid"), where=str(path))


def load_features(parquet: Path, keys: Sequence[str], n_rows: int | None = None) -> dict[str, np.ndarray]:
    """Load named arrays from the npz beside ``parquet``, checking they are row-aligned."""
    npz_path = parquet.with_suffix(".npz")
    if not keys:
        return {}
    if not npz_path.is_file():
        raise HarnessError(f"{npz_path}: feature file missing (needed: {', '.join(keys)})")
    with np.load(npz_path, allow_pickle=False) as npz:
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise HarnessError(f"{npz_path}: missing feature(s) {', '.join(missing)} (has: {', '.join(npz.files)})")
        out = {k: npz[k] for k in keys}
    if n_rows is None:
        n_rows = pq.ParquetFile(parquet).metadata.num_rows
    for k, v in out.items():
        if len(v) != n_rows:
            raise HarnessError(f"{npz_path}: feature {k!r} has {len(v)} rows but {parquet.name} has {n_rows}")
    return out


def iter_metadata(pool: Pool, columns: Sequence[str] | None = None) -> Iterator[tuple[Path, pa.Table]]:
    """Yield (file, table) per metadata parquet in canonical order."""
    for path in pool.parquet_files():
        yield path, read_columns(path, columns)


def write_metadata(path: Path, table: pa.Table, features: dict[str, np.ndarray] | None = None) -> None:
    """Write one metadata parquet (+ its row-aligned npz) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    if features:
        for k, v in features.items():
            if len(v) != table.num_rows:
                raise HarnessError(f"feature {k!r} has {len(v)} rows, table has {table.num_rows}")
        write_npz(path.with_suffix(".npz"), features)
    tmp.replace(path)


def write_stats(shards_dir: Path, index: int, successes: int, **extra: object) -> Path:
    """Write ``{:08d}_stats.json`` as img2dataset/DataComp do (``successes`` at least)."""
    path = shards_dir / STATS_PATTERN.format(index)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"count": successes, "successes": successes, **extra}, indent=2))
    tmp.replace(path)
    return path


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed .npz (what ``np.load`` reads) with fixed zip timestamps, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    tmp.replace(path)


# The tiny world's hidden labels live beside its eval suite, never in pool_dir (pool.json says where).
TRUTH_DIR = "truth"
GROUND_TRUTH = "ground_truth.parquet"
TRUTH_KEY = "truth"  # pool.json: {"path": <relative to pool_dir>, "eval_dir": <relative>, "sha256": ...}


def truth_file(pool_root: str | Path, meta: dict | None = None) -> Path | None:
    """The world's ground truth, as the harness finds it: pool.json's ``truth`` record (beside the
    eval suite), else a legacy ``<pool_dir>/ground_truth.parquet``; None for pools without one."""
    root = Path(pool_root)
    if meta is None:
        meta_path = root / "pool.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    rec = (meta or {}).get(TRUTH_KEY)
    if isinstance(rec, dict) and rec.get("path"):
        return (root / rec["path"]).resolve()
    legacy = root / GROUND_TRUTH
    return legacy.resolve() if legacy.is_file() else None
