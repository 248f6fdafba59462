"""``harness filter``: compose the spec from Hydra's ``filter`` group and run it."""

from __future__ import annotations

import sys
import warnings

from omegaconf import DictConfig, OmegaConf


def main(cfg: DictConfig) -> int:
    from harness.filters.run import run_filter

    spec = OmegaConf.to_container(cfg.filter, resolve=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = run_filter(cfg.pool_dir, spec, cfg.out, workers=int(cfg.workers), engine=cfg.engine,
                         report=bool(cfg.report), overwrite=bool(cfg.overwrite), ray_address=cfg.ray_address,
                         seed=int(cfg.seed), verbose=bool(cfg.get("verbose", False)))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    counts = ", ".join(f"{k}: kept {v['kept']}" for k, v in doc["per_filter"].items())
    extra = f"; report {doc['report']}" if doc.get("report") else ""
    print(f"{doc['subset']}: kept {doc['n_kept']} of {doc['n_pool']} ({counts}) in {doc['wall_s']} s{extra}")
    return 0
