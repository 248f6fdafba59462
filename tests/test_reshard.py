"""The resharder on small pools built here with Python's ``tarfile`` (an independent tar writer)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.reshard.plan import reshard
from harness.pool.uids import hex_to_pairs, pairs_to_hex, read_subset, sort_pairs, write_subset
from harness.reshard.config import ReshardConfig


def uid_of(shard: int, k: int) -> str:
    return hashlib.md5(f"{shard}/{k}".encode()).hexdigest()


def sample(key: str, uid: str | None, size: int = 700, **extra: bytes) -> list[tuple[str, bytes]]:
    """One WebDataset sample as (member name, bytes): an image-like blob, a caption, a json with the uid."""
    rng = np.random.default_rng(int(hashlib.md5(key.encode()).hexdigest()[:8], 16))
    meta = {"key": key, "caption": f"caption of {key}"} | ({"uid": uid} if uid else {})
    files = {"jpg": rng.bytes(size), "txt": f"caption of {key}".encode(), "json": json.dumps(meta).encode()}
    files.update(extra)
    return [(f"{key}.{ext}", data) for ext, data in files.items()]


def write_tar(path: Path, members: list) -> bytes:
    """Members are (name, bytes) pairs or ready TarInfo objects (links, directories)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
                continue
            info = tarfile.TarInfo(m[0])
            info.size, info.mtime = len(m[1]), 1_700_000_000
            tar.addfile(info, io.BytesIO(m[1]))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def make_pool(root: Path, n_shards: int = 3, per_shard: int = 12, size: int = 700) -> dict[str, bytes]:
    """A pool of ``shards/{:08d}.tar`` + ``_stats.json``; returns uid → its image bytes."""
    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    images = {}
    for s in range(n_shards):
        members = []
        for k in range(per_shard):
            uid = uid_of(s, k)
            part = sample(f"{s:04d}{k:05d}", uid, size)
            images[uid] = part[0][1]
            members += part
        write_tar(shards / f"{s:08d}.tar", members)
        (shards / f"{s:08d}_stats.json").write_text(json.dumps({"count": per_shard, "successes": per_shard}))
    return images


def make_subset(path: Path, uids: list[str]) -> Path:
    return write_subset(path, sort_pairs(hex_to_pairs(uids)))


def outputs(out: Path) -> dict[str, bytes]:
    """Everything a trainer reads: shards, their stats, sizes.json."""
    names = sorted(p.name for p in out.iterdir() if p.suffix == ".tar" or p.name.endswith("_stats.json"))
    return {n: (out / n).read_bytes() for n in names + ["sizes.json"]}


def read_webdataset(out: Path) -> list[dict]:
    import webdataset as wds

    shards = sorted(str(p) for p in out.glob("*.tar"))
    return list(wds.WebDataset(shards, shardshuffle=False))


@pytest.fixture
def pool(tmp_path: Path) -> tuple[Path, dict[str, bytes], Path]:
    """3 shards × 12 samples; a subset of every 3rd uid plus two uids the pool lacks."""
    images = make_pool(tmp_path / "pool")
    chosen = [u for i, u in enumerate(images) if i % 3 == 0] + ["0" * 32, "f" * 32]
    return tmp_path / "pool", images, make_subset(tmp_path / "subset.npy", chosen)


def test_workers_1_and_2_write_identical_readable_shards(pool, tmp_path):
    root, images, subset = pool
    m1 = reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "o1", workers=1, shard_size=5))
    m2 = reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "o2", workers=2, shard_size=5))
    assert outputs(tmp_path / "o1") == outputs(tmp_path / "o2")
    assert m1["shards"] == m2["shards"] and m1["n_samples"] == 12 and len(m1["shards"]) == 3
    samples = read_webdataset(tmp_path / "o2")
    assert len(samples) == 12 == m2["n_samples"]
    wanted = {u for i, u in enumerate(images) if i % 3 == 0}
    assert {s["__key__"] for s in samples} == wanted
    for s in samples:
        assert s["jpg"] == images[s["__key__"]] and json.loads(s["json"])["uid"] == s["__key__"]
    for entry in m2["shards"]:
        path = tmp_path / "o2" / entry["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        stats = json.loads(path.with_name(path.stem + "_stats.json").read_text())
        assert stats["successes"] == entry["n_samples"]
    assert json.loads((tmp_path / "o2" / "sizes.json").read_text()) == {"00000000.tar": 5, "00000001.tar": 5,
                                                                        "00000002.tar": 2}
    from open_clip_train.data import get_dataset_size  # open_clip sizes its epoch from our sizes.json

    assert get_dataset_size(str(tmp_path / "o2" / "{00000000..00000002}.tar")) == (12, 3)
    assert m2["missing_uids"] == {"count": 2, "uids": ["0" * 32, "f" * 32]}
    assert m2["pool"]["n_samples"] == 36 and m2["subset_size"] == 14 and not m2["skipped"]
    assert not (tmp_path / "o2" / ".reshard").exists()


def test_output_order_follows_input_order_and_tarfile_reads_it(pool, tmp_path):
    root, images, subset = pool
    reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "o", shard_size=100))
    with tarfile.open(tmp_path / "o" / "00000000.tar") as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 and m.mode == 0o444 for m in tar.getmembers())
    keys = list(dict.fromkeys(n.split(".")[0] for n in names))
    assert keys == [u for i, u in enumerate(images) if i % 3 == 0]
    assert names[:3] == [f"{keys[0]}.jpg", f"{keys[0]}.txt", f"{keys[0]}.json"]


def test_finished_run_is_skipped_other_subset_refused_overwrite_clears(pool, tmp_path):
    root, images, subset = pool
    out = tmp_path / "o"
    reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=out, shard_size=5))
    before = (out / "00000000.tar").stat().st_mtime_ns
    again = reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=out, shard_size=5))
    assert again["skipped"] and (out / "00000000.tar").stat().st_mtime_ns == before
    other = make_subset(tmp_path / "other.npy", list(images)[:3])
    with pytest.raises(HarnessError, match="other inputs or settings.*overwrite=true"):
        reshard(ReshardConfig(pool_dir=root, subset=other, out_dir=out, shard_size=5))
    with pytest.raises(HarnessError, match="overwrite=true"):
        reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=out, shard_size=4))  # other settings, same subset
    (out / "stale.tar").write_bytes(b"junk")
    man = reshard(ReshardConfig(pool_dir=root, subset=other, out_dir=out, shard_size=5, overwrite=True))
    assert man["n_samples"] == 3 and not (out / "stale.tar").exists()
    assert sorted(p.name for p in out.glob("*.tar")) == ["00000000.tar"]


def test_foreign_files_in_out_dir_are_refused(pool, tmp_path):
    root, _, subset = pool
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "00000007.tar").write_bytes(b"old")
    with pytest.raises(HarnessError, match="not this reshard's output"):
        reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "o"))


def test_strict_missing_uids_error_only_in_filtering_track(pool, tmp_path, cli):
    root, _, subset = pool
    res = cli("reshard", f"pool_dir={root}", f"subset={subset}", f"out_dir={tmp_path / 'o'}", "strict=true",
              "progress=false")
    assert res.returncode == 2 and "2 subset uid(s) are not in the pool" in res.stderr
    assert not list((tmp_path / "o").glob("*.tar"))
    res = cli("reshard", f"pool_dir={root}", f"subset={subset}", f"out_dir={tmp_path / 'b'}", "strict=true",
              "track=byod", "progress=false")
    assert res.returncode == 0, res.stderr
    assert "12 samples in 1 shard(s)" in res.stdout and "missing from the pool: 2 of 14" in res.stdout


def test_many_missing_uids_go_to_a_subset_file(tmp_path):
    make_pool(tmp_path / "pool", n_shards=1, per_shard=3)
    absent = [hashlib.md5(f"absent{i}".encode()).hexdigest() for i in range(1001)]
    subset = make_subset(tmp_path / "s.npy", absent + [uid_of(0, 1)])
    man = reshard(ReshardConfig(pool_dir=tmp_path / "pool", subset=subset, out_dir=tmp_path / "o"))
    assert man["n_samples"] == 1 and man["missing_uids"] == {"count": 1001, "file": "missing_uids.npy"}
    listed = set(pairs_to_hex(read_subset(tmp_path / "o" / man["missing_uids"]["file"])))
    assert listed == set(absent)


def test_shuffle_is_seeded_and_keeps_the_same_samples(pool, tmp_path):
    root, _, subset = pool
    plain = reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "p", shard_size=100))
    a = reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "a", shard_size=5, shuffle=True, seed=1, workers=1))
    b = reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "b", shard_size=5, shuffle=True, seed=1, workers=2))
    c = reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "c", shard_size=100, shuffle=True, seed=2))
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b") and a["config"]["shuffle"]
    keys = [s["__key__"] for s in read_webdataset(tmp_path / "c")]
    plain_keys = [s["__key__"] for s in read_webdataset(tmp_path / "p")]
    assert keys != plain_keys and sorted(keys) == sorted(plain_keys)
    assert c["n_samples"] == plain["n_samples"] == 12


def test_bare_shards_directory_and_unknown_option(pool, tmp_path, cli):
    root, _, subset = pool
    man = reshard(ReshardConfig(pool_dir=root / "shards", subset=subset, out_dir=tmp_path / "o"))
    assert man["n_samples"] == 12
    res = cli("reshard", f"pool_dir={root}", f"subset={subset}", f"out_dir={tmp_path / 'x'}", "shard_sise=3")
    assert res.returncode == 2 and "harness reshard has no key 'shard_sise'; did you mean shard_size?" in res.stderr
    assert not (tmp_path / "x").exists()
    with pytest.raises(HarnessError, match="holds no \\*.tar"):
        reshard(ReshardConfig(pool_dir=tmp_path, subset=subset, out_dir=tmp_path / "y"))


def test_unfinished_run_of_other_inputs_is_refused(pool, tmp_path):
    root, images, subset = pool
    with pytest.raises(HarnessError, match="strict=true"):  # stops after indexing, leaving its work dir
        reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "o", strict=True))
    assert (tmp_path / "o" / ".reshard" / "state.json").is_file()
    other = make_subset(tmp_path / "other.npy", list(images)[:2])
    with pytest.raises(HarnessError, match="an unfinished reshard of other inputs"):
        reshard(ReshardConfig(pool_dir=root, subset=other, out_dir=tmp_path / "o"))
    assert reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "o"))["n_samples"] == 12  # same inputs: resumes
