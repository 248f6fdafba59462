"""``harness reshard``: the filtering track's resharder (:mod:`harness.reshard.plan`) or, with
``track=byod track.sources=[...]``, the BYOD builder (:mod:`harness.reshard.byod`), which itself
runs the resharder over the gathered inputs."""

from __future__ import annotations

from harness.core.errors import HarnessError
from harness.reshard.byod import build_byod
from harness.reshard.config import ReshardConfig
from harness.reshard.plan import reshard, summary


def main(cfg: ReshardConfig) -> int:
    """``harness reshard pool_dir=P subset=S.npy out_dir=O [workers=N] [shard_size=10000] ...``."""
    if cfg.track.sources:
        man = build_byod(cfg)
        print(summary(man, cfg.out_dir))
        for src in man["sources"]:
            print(f"  source {src['kind']}:{src['path']}: {src['n_uids']} uid(s)")
        return 0
    missing = [k for k in ("pool_dir", "subset") if not getattr(cfg, k)]
    if missing:
        raise HarnessError(f"harness reshard: missing required key(s) {', '.join(missing)} "
                           "(or track=byod track.sources=[...])")
    print(summary(reshard(cfg), cfg.out_dir))
    return 0
