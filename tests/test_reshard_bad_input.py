"""Each kind of bad input, planted in a small pool built here: counted, reported, skipped; strict=true refuses."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.reshard.plan import reshard
from test_reshard import make_subset, read_webdataset, sample, uid_of, write_tar
from harness.reshard.config import ReshardConfig

GOOD = 4  # good samples in each of the two shards


def good_members(shard: int) -> list[tuple[str, bytes]]:
    return [m for k in range(GOOD) for m in sample(f"{shard:04d}{k:05d}", uid_of(shard, k))]


def link(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "0001000000.jpg" if kind != tarfile.DIRTYPE else ""
    return info


def member_offsets(raw: bytes) -> dict[str, tuple[int, int]]:
    """name → (header offset, data offset), from tarfile (independent of the code under test)."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: (m.offset, m.offset_data) for m in tar.getmembers()}


def plant(root: Path, kind: str) -> tuple[int, int]:
    """Write shard 0 (good) and shard 1 holding the defect; returns (samples written, count of ``kind``)."""
    shards = root / "shards"
    shards.mkdir(parents=True)
    write_tar(shards / "00000000.tar", good_members(0))
    members = good_members(1)
    extra = {  # defects that are extra samples/members after the good ones
        "non_regular_member": [link("0001dir", tarfile.DIRTYPE), link("0001link.jpg", tarfile.SYMTYPE),
                               link("0001hard.jpg", tarfile.LNKTYPE)],
        "unsafe_member_name": [("../0001evil.jpg", b"x"), ("/tmp/0001abs.jpg", b"x"), ("a/../../b.jpg", b"x")],
        "member_without_key": [("README", b"x"), (".hidden", b"x")],
        "missing_json": sample("0001nojson", None)[:2],
        "json_unparsable": sample("0001badjson", None, json=b"{not json"),
        "json_missing_uid": sample("0001nouid", None),
        "bad_uid": sample("0001baduid", None, json=json.dumps({"uid": "NOT-A-UID"}).encode()),
        "duplicate_uid": sample("0001dup", uid_of(0, 2)),
    }
    raw = write_tar(shards / "00000001.tar", members + extra.get(kind, []))
    n_planted = {"non_regular_member": 3, "unsafe_member_name": 3, "member_without_key": 2}.get(kind, 1)
    stats = {"successes": GOOD}
    if kind == "truncated_tar":  # cut inside the image of the last sample
        _, data = member_offsets(raw)[f"0001{GOOD - 1:05d}.jpg"]
        (shards / "00000001.tar").write_bytes(raw[:data + 100])
        stats = {"successes": GOOD}
        written = 2 * GOOD - 1
    elif kind == "corrupt_header":  # flip a byte in the caption header of the third sample
        header, _ = member_offsets(raw)["000100002.txt"]
        bad = bytearray(raw)
        bad[header + 10] ^= 0x55
        (shards / "00000001.tar").write_bytes(bytes(bad))
        written = GOOD + 2
    else:
        written = 2 * GOOD
    if kind == "stats_mismatch":
        stats = {"successes": 99}
    (shards / "00000000_stats.json").write_text(json.dumps({"successes": GOOD}))
    if kind != "stats_missing":
        (shards / "00000001_stats.json").write_text(json.dumps(stats))
    return written, n_planted


KINDS = ["truncated_tar", "corrupt_header", "non_regular_member", "unsafe_member_name", "member_without_key",
         "missing_json", "json_unparsable", "json_missing_uid", "bad_uid", "duplicate_uid", "stats_missing",
         "stats_mismatch"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_counted_skipped_and_refused_when_strict(tmp_path, kind):
    written, n_planted = plant(tmp_path / "pool", kind)
    uids = [uid_of(s, k) for s in range(2) for k in range(GOOD)]
    subset = make_subset(tmp_path / "s.npy", uids)
    man = reshard(ReshardConfig(pool_dir=tmp_path / "pool", subset=subset, out_dir=tmp_path / "o", workers=1))
    counts = man["bad_input"]
    assert counts[kind] == n_planted, counts
    others = {k: n for k, n in counts.items() if n and k != kind and k != "stats_mismatch"}
    assert others == {}, others  # damage also makes the stats disagree, nothing else
    assert man["bad_input_examples"][kind]
    samples = read_webdataset(tmp_path / "o")
    assert len(samples) == man["n_samples"] == written
    assert len({s["__key__"] for s in samples}) == written
    assert all(s["__key__"] in uids for s in samples)
    if kind in ("truncated_tar", "corrupt_header"):
        assert man["missing_uids"]["count"] == 2 * GOOD - written
    with pytest.raises(HarnessError, match=f"strict=true and the pool has bad input: .*{kind}"):
        reshard(ReshardConfig(pool_dir=tmp_path / "pool", subset=subset, out_dir=tmp_path / "strict", workers=1, strict=True))
    assert not list((tmp_path / "strict").glob("*.tar"))


def test_duplicate_uid_is_written_once_from_the_first_shard(tmp_path):
    plant(tmp_path / "pool", "duplicate_uid")
    subset = make_subset(tmp_path / "s.npy", [uid_of(0, 2)])
    man = reshard(ReshardConfig(pool_dir=tmp_path / "pool", subset=subset, out_dir=tmp_path / "o"))
    (only,) = read_webdataset(tmp_path / "o")
    assert man["n_samples"] == 1 and man["bad_input"]["duplicate_uid"] == 1
    assert only["jpg"] == dict(sample("000000002", uid_of(0, 2)))["000000002.jpg"]
    assert "00000001.tar" in man["bad_input_examples"]["duplicate_uid"][0]


def test_empty_and_garbage_shards_are_truncated_not_fatal(tmp_path):
    shards = tmp_path / "pool" / "shards"
    shards.mkdir(parents=True)
    write_tar(shards / "00000000.tar", good_members(0))
    (shards / "00000001.tar").write_bytes(b"")
    (shards / "00000002.tar").write_bytes(b"this is not a tar file at all" * 40)
    subset = make_subset(tmp_path / "s.npy", [uid_of(0, k) for k in range(GOOD)])
    man = reshard(ReshardConfig(pool_dir=tmp_path / "pool", subset=subset, out_dir=tmp_path / "o"))
    assert man["n_samples"] == GOOD
    assert man["bad_input"]["truncated_tar"] == 1 and man["bad_input"]["corrupt_header"] == 1
    assert man["bad_input"]["stats_missing"] == 3


def test_cli_reports_bad_input_at_the_end_and_exits_zero(tmp_path, cli):
    plant(tmp_path / "pool", "json_unparsable")
    subset = make_subset(tmp_path / "s.npy", [uid_of(0, 0)])
    res = cli("reshard", f"pool_dir={tmp_path / 'pool'}", f"subset={subset}", f"out_dir={tmp_path / 'o'}")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert "1 samples in 1 shard(s)" in lines[0]
    report = [line for line in lines[1:] if line.startswith("bad input: json_unparsable: 1")]
    assert len(report) == 1 and "0001badjson.json" in report[0]
