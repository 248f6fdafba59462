"""engine=ray gives byte-identical output to engine=local for the filter and the resharder.

One local Ray cluster with 2 CPUs for the module; the commands run in this process through the
CLI (`harness filter|reshard ... engine=ray`), so they use that cluster instead of starting one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import run_command
from harness.pool.uids import hex_to_pairs, sort_pairs, write_subset
from test_filter_support import make_pool as make_metadata_pool
from test_reshard import make_pool as make_shard_pool


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    ray = pytest.importorskip("ray")
    from harness.core.engine import ray_init

    ray_init(None, workers=2)
    assert ray.cluster_resources()["CPU"] == 2
    yield ray  # left running: the next Ray test module reuses it; Ray stops it when pytest exits


def _filter(pool, out, engine: str) -> None:
    status = run_command(["filter", f"pool_dir={pool}", f"out={out}", "filter=clip_score", "filter.fraction=0.4",
                          f"engine={engine}", "workers=2"])
    assert status == 0


def test_filter_on_ray_is_byte_identical(tmp_path):
    rng = np.random.default_rng(3)
    n = 900
    pool = make_metadata_pool(tmp_path / "pool", {"clip_l14_similarity_score": rng.random(n).astype(np.float32),
                                                  "clip_b32_similarity_score": rng.random(n).astype(np.float32)},
                              files=4)
    for engine in ("local", "ray"):
        _filter(pool, tmp_path / f"{engine}.npy", engine)
    assert (tmp_path / "local.npy").read_bytes() == (tmp_path / "ray.npy").read_bytes()
    local, ray = (json.loads((tmp_path / f"{e}.json").read_text()) for e in ("local", "ray"))
    assert ray["engine"] == "ray" and ray["n_kept"] == local["n_kept"] == int(n * 0.4) + 1
    assert ray["per_filter"] == local["per_filter"]


def test_reshard_on_ray_is_byte_identical(tmp_path):
    images = make_shard_pool(tmp_path / "pool", n_shards=5, per_shard=12)
    uids = sorted(images)[::2]
    write_subset(tmp_path / "sub.npy", sort_pairs(hex_to_pairs(uids)))
    for engine in ("local", "ray"):
        status = run_command(["reshard", f"pool_dir={tmp_path / 'pool'}", f"subset={tmp_path / 'sub.npy'}",
                              f"out_dir={tmp_path / engine}", "shard_size=7", "workers=2", f"engine={engine}",
                              "progress=false"])
        assert status == 0
    tars = {e: sorted((tmp_path / e).glob("*.tar")) for e in ("local", "ray")}
    assert [p.name for p in tars["local"]] == [p.name for p in tars["ray"]] and len(tars["ray"]) == 5
    for a, b in zip(tars["local"], tars["ray"]):
        assert a.read_bytes() == b.read_bytes()
    man = {e: json.loads((tmp_path / e / "manifest.json").read_text()) for e in ("local", "ray")}
    assert man["ray"]["shards"] == man["local"]["shards"] and man["ray"]["n_samples"] == len(uids)


@pytest.mark.slow
def test_tiny_world_filter_then_reshard_on_ray(tmp_path, tiny_world):
    """The whole metadata → subset → shards path on the tiny world, Ray against local, byte for byte."""
    pool = tiny_world["pool_dir"]
    for engine in ("local", "ray"):
        _filter(pool, tmp_path / f"{engine}.npy", engine)
        assert run_command(["reshard", f"pool_dir={pool}", f"subset={tmp_path / f'{engine}.npy'}",
                            f"out_dir={tmp_path / engine}", "shard_size=300", f"engine={engine}",
                            "progress=false"]) == 0
    assert (tmp_path / "local.npy").read_bytes() == (tmp_path / "ray.npy").read_bytes()
    tars = [sorted((tmp_path / e).glob("*.tar")) for e in ("local", "ray")]
    assert len(tars[0]) == len(tars[1]) >= 2
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(*tars))
