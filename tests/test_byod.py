"""BYOD: one shards directory from a pool subset, external shards and a url+caption parquet
(downloaded for real from the loopback server of test_download), with every source recorded."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import make_uids
from harness.reshard.byod import build_byod, parse_source
from harness.cli import load_config
from harness.core.errors import HarnessError
from harness.pool.uids import hex_to_pairs, write_subset
from test_download import TIMEOUT, server, write_metadata  # noqa: F401  (server is a fixture)
from harness.reshard.config import ReshardConfig
from tracks.config import TrackConfig


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (i % 256, 80, 160)).save(buf, "JPEG")
    return buf.getvalue()


def write_tar(path: Path, samples: list[dict]) -> None:
    """Samples as dicts of extension → bytes, plus "__key__"; written member by member."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for s in samples:
            for ext, data in s.items():
                if ext == "__key__":
                    continue
                info = tarfile.TarInfo(f"{s['__key__']}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def make_pool(root: Path, n_shards: int = 2, per_shard: int = 10) -> list[str]:
    uids = make_uids(n_shards * per_shard, seed=7)
    for s in range(n_shards):
        rows = range(s * per_shard, (s + 1) * per_shard)
        write_tar(root / "shards" / f"{s:08d}.tar",
                  [{"__key__": f"{i:09d}", "jpg": _jpeg(i), "txt": f"pool {i}".encode(),
                    "json": json.dumps({"uid": uids[i]}).encode()} for i in rows])
        (root / "shards" / f"{s:08d}_stats.json").write_text(json.dumps({"successes": per_shard}))
    return uids


def out_samples(out: Path) -> list[tuple[str, str]]:
    """(uid, caption) of every sample in the output, in shard and member order."""
    got = []
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as tf:
            members = {m.name: tf.extractfile(m).read() for m in tf}
        for name in members:
            if name.endswith(".json"):
                key = name[:-5]
                assert any(f"{key}.{e}" in members for e in ("jpg", "png", "webp"))
                got.append((json.loads(members[name])["uid"], members[f"{key}.txt"].decode()))
    return got


@pytest.fixture
def external(tmp_path) -> Path:
    """Two external tars: one without any json (uids to generate) and a sample without caption,
    one whose samples already carry uids."""
    ext = tmp_path / "ext"
    write_tar(ext / "a.tar", [{"__key__": f"x{i}", "png": _jpeg(i), "txt": f"ext {i}".encode()} for i in range(5)]
              + [{"__key__": "nocap", "jpg": _jpeg(99)}])
    write_tar(ext / "b.tar", [{"__key__": f"y{i}", "webp": _jpeg(i), "txt": f"tagged {i}".encode(),
                               "json": json.dumps({"uid": f"{i:032x}", "src": "b"}).encode()} for i in range(3)])
    return ext


def test_mixed_sources(tmp_path, external, server):
    pool = tmp_path / "pool"
    pool_uids = make_pool(pool)
    chosen = sorted(pool_uids[i] for i in (1, 4, 12, 19))
    write_subset(tmp_path / "sub.npy", hex_to_pairs(chosen))
    meta, _ = write_metadata(tmp_path / "meta", server.server_address[1], {"ok": 6, "missing": 2}, n_files=1,
                             caption_col="caption")
    pq.write_table(pq.read_table(meta / "00000000.parquet").drop_columns(["uid"]), meta / "00000000.parquet")
    out = tmp_path / "out"
    sources = [f"pool:{pool}@{tmp_path / 'sub.npy'}", f"shards:{external}", f"parquet:{meta / '00000000.parquet'}"]
    man = build_byod(ReshardConfig(out_dir=out, shard_size=8, workers=2, track=TrackConfig(sources=sources, download={"processes": 1, "threads": 4, "timeout": TIMEOUT, "caption_col": "caption"})))
    samples = out_samples(out)
    uids = [u for u, _ in samples]
    assert len(uids) == len(set(uids)) == man["n_samples"] == 4 + 5 + 3 + 6
    assert set(uids[:4]) == set(chosen)  # sources in order
    assert [c for _, c in samples[4:12]] == [f"ext {i}" for i in range(5)] + [f"tagged {i}" for i in range(3)]
    assert sorted(c for _, c in samples[12:]) == [f"ok number {i}" for i in range(6)]  # caption column renamed
    copied = pq.read_table(Path(man["sources"][2]["pool_dir"]) / "metadata" / "00000000.parquet")
    assert set(uids[12:]) == {u for u, url in zip(copied["uid"].to_pylist(), copied["url"].to_pylist())
                              if "/ok/" in url}
    assert [s["kind"] for s in man["sources"]] == ["pool", "shards", "parquet"]
    assert man["track"] == "byod" and man["sources"][1]["incomplete_samples_skipped"] == 1
    assert man["sources"][1]["rewritten_tars"] == 1 and man["sources"][2]["downloaded"] == 6
    assert [s["n_samples"] for s in man["shards"]] == [8, 8, 2]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["sources"] == man["sources"] and on_disk["subset_sha256"]
    again = build_byod(ReshardConfig(out_dir=out, shard_size=8, workers=2, track=TrackConfig(sources=sources, download={"processes": 1, "threads": 4, "timeout": TIMEOUT, "caption_col": "caption"})))
    assert again["skipped"] and out_samples(out) == samples


def test_external_shards_alone_from_cli_keys(tmp_path, external):
    """The track's keys compose with `harness reshard track=byod` and drive the builder."""
    from harness.reshard.command import main

    out = tmp_path / "out"
    cfg = load_config("cmd_reshard", ["track=byod", f"track.sources=[shards:{external}/*.tar]", f"out_dir={out}",
                                  "shard_size=3", "workers=1"])
    assert main(cfg) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["n_samples"] == 8 and [s["n_samples"] for s in man["shards"]] == [3, 3, 2]
    assert man["sources"][0]["path"] == f"{external}/*.tar"
    generated = [u for u, c in out_samples(out) if c.startswith("ext")]
    assert len(set(generated)) == 5 and all(len(u) == 32 for u in generated)


@pytest.mark.parametrize("spec, message", [
    ("tarballs:/x", "unknown kind 'tarballs'"),
    ("pool:/some/pool", "a pool source needs a subset"),
    ("/just/a/path", "expected <kind>:<path>"),
])
def test_bad_source_specs(spec, message):
    with pytest.raises(HarnessError, match=message):
        parse_source(spec)


def test_source_without_complete_samples(tmp_path):
    write_tar(tmp_path / "ext" / "a.tar", [{"__key__": "k", "txt": b"caption but no image"}])
    with pytest.raises(HarnessError, match=r"no complete sample \(image \+ .txt caption\)"):
        build_byod(ReshardConfig(out_dir=tmp_path / "out", track=TrackConfig(sources=[f"shards:{tmp_path / 'ext'}"])))
    assert not (tmp_path / "out").exists()
