"""The tiny world's oracle: keeps exactly the samples without a planted defect. It reads the hidden
``ground_truth.parquet`` at the path the harness hands its reference filters (``PoolInfo.truth``;
the plugin API never exposes it) and is ineligible for leaderboards (``registry.INELIGIBLE``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness.core.errors import HarnessError
from harness.filters.api import PoolInfo, pool_filter
from harness.pool.format import GROUND_TRUTH
from harness.pool.uids import hex_to_pairs, isin, sort_pairs



def clean_mask(gt: pa.Table) -> np.ndarray:
    """Clean = no bool defect column set (the ``defect`` label column is informational)."""
    flags = [gt.column(n).to_numpy(zero_copy_only=False) for n, t in zip(gt.column_names, gt.schema.types)
             if pa.types.is_boolean(t)]
    if not flags:
        raise HarnessError(f"{GROUND_TRUTH} has no boolean defect columns")
    return ~np.logical_or.reduce(flags)


def _prepare(info: PoolInfo, params: dict) -> dict:
    path = info.truth
    if path is None or not path.is_file():
        raise HarnessError(f"oracle needs the world's {GROUND_TRUTH} ({path or 'none recorded for ' + str(info.root)}; "
                           "only the tiny world has ground truth)")
    gt = pq.read_table(path)
    keep = hex_to_pairs(gt.column("uid"), where=str(path))[clean_mask(gt)]
    return {**params, "clean_uids": sort_pairs(keep)}


@pool_filter(columns=("uid",), output="mask", prepare=_prepare)
def oracle(batch: pa.RecordBatch, features: dict, clean_uids: np.ndarray | None = None) -> np.ndarray:
    return isin(hex_to_pairs(batch.column("uid")), clean_uids)
