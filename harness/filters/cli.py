"""``harness filter``: compose the spec from Hydra's ``filter`` group and run it."""

from __future__ import annotations

import sys
import warnings

from harness.filters.config import FilterCommandConfig


def main(cfg: FilterCommandConfig) -> int:
    from harness.filters.run import run_filter

    spec = dict(cfg.filter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = run_filter(cfg.pool_dir, spec, cfg.out, workers=int(cfg.workers), engine=cfg.engine,
                         report=bool(cfg.report), overwrite=bool(cfg.overwrite), ray_address=cfg.ray_address,
                         seed=int(cfg.seed), verbose=cfg.verbose)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    counts = ", ".join(f"{k}: kept {v['kept']}" for k, v in doc["per_filter"].items())
    extra = f"; report {doc['report']}" if doc.get("report") else ""
    print(f"{doc['subset']}: kept {doc['n_kept']} of {doc['n_pool']} ({counts}) in {doc['wall_s']} s{extra}")
    return 0
