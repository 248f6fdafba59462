"""The filter plugin contract: a function over Arrow record batches that returns one value per row.

A participant writes::

    @pool_filter(columns=["text"])
    def long_caption(batch, features, min_chars=10):
        return pc.utf8_length(batch["text"]).to_numpy(zero_copy_only=False) >= min_chars

``output="mask"`` filters return a bool keep mask; ``output="score"`` filters return numbers and
the harness selects globally over the whole pool (``threshold`` / ``fraction`` / ``top_k``), so
fraction semantics are DataComp's whatever the number of files or workers. Only the declared
columns (and npz feature arrays) are read. ``prepare(pool, params) -> params`` runs once in the
main process before any file is read: it fills pool-dependent defaults or fits global state
(k-means centroids, duplicate sets) so the per-file call stays pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow.parquet as pq

from harness.core.errors import HarnessError

OUTPUTS = ("mask", "score")
ATTR = "__harness_filter__"

Names = Sequence[str] | Callable[[dict], Sequence[str]]


@dataclass(frozen=True)
class FilterDecl:
    """What the harness needs to know about a filter function besides the function itself."""

    fn: Callable[..., Any]
    columns: Names = ()
    features: Names = ()
    output: str = "mask"
    prepare: Callable[["PoolInfo", dict], dict] | None = None

    def columns_for(self, params: dict) -> list[str]:
        return list(self.columns(params) if callable(self.columns) else self.columns)

    def features_for(self, params: dict) -> list[str]:
        return list(self.features(params) if callable(self.features) else self.features)


def pool_filter(columns: Names = (), features: Names = (), output: str = "mask",
                prepare: Callable[["PoolInfo", dict], dict] | None = None, eligible: bool | None = None):
    """Declare a function ``fn(batch, features, **params) -> np.ndarray`` as a pool filter.

    ``eligible`` is accepted for old plugins and ignored: whether a filter may be ranked is the
    harness's decision (``harness.filters.registry.INELIGIBLE``), never the filter's own."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fn, ATTR, FilterDecl(fn, columns, features, output, prepare))
        return fn

    return wrap


def declaration(fn: Any, where: str) -> FilterDecl:
    decl = getattr(fn, ATTR, None)
    if not isinstance(decl, FilterDecl):
        raise HarnessError(f"{where} is not a pool filter (decorate it with @harness.filters.pool_filter(...))")
    return decl


@dataclass(frozen=True)
class PoolInfo:
    """What ``prepare`` hooks see: the metadata files and pool.json, never the ground truth.

    ``truth`` is set by the harness only for its own reference filters (``oracle``); every other
    filter sees None, and the guard refuses opening the truth file whatever path it is given."""

    root: Path
    files: tuple[Path, ...]
    meta: dict = field(default_factory=dict)
    truth: Path | None = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)

    def schema_names(self) -> list[str]:
        return pq.read_schema(self.files[0]).names

    def column(self, name: str) -> np.ndarray:
        """One column over the whole pool in canonical order (for global prepare steps)."""
        from harness.pool.format import read_columns

        parts = [read_columns(f, [name]).column(name).to_numpy(zero_copy_only=False) for f in self.files]
        return np.concatenate(parts) if parts else np.empty(0)

    def features(self, key: str) -> np.ndarray:
        """One npz feature array over the whole pool, row-aligned with :meth:`column`."""
        from harness.pool.format import load_features

        return np.concatenate([load_features(f, [key])[key] for f in self.files])


def read_pool_info(pool_dir: str | Path) -> PoolInfo:
    from harness.pool.format import open_pool

    pool = open_pool(pool_dir)
    meta_path = pool.root / "pool.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta.pop("truth", None)  # the harness's record of where the truth is: not for filters
    return PoolInfo(pool.root, tuple(pool.parquet_files()), meta)
