"""The raw tar layer against Python's tarfile, and face blurring through the resharder."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pytest

from harness.reshard import tarscan
from harness.core.errors import HarnessError
from harness.reshard.plan import reshard
from test_reshard import make_subset, read_webdataset, uid_of, write_tar
from harness.reshard.config import ReshardConfig

NAMES = ["a.jpg", "a.json", "x" * 150 + ".txt", "é.txt", "d/" * 60 + "p.txt", "dir/", "q/" * 50 + "long.txt"]


def tarfile_bytes(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name in NAMES:
            if fmt == tarfile.USTAR_FORMAT and len(name) > 100 and "/" not in name:
                continue  # ustar cannot hold it
            info = tarfile.TarInfo(name)
            data = b"" if name.endswith("/") else name.encode() * 2
            info.type = tarfile.DIRTYPE if name.endswith("/") else tarfile.REGTYPE
            info.size, info.uname = len(data), "ü" * 3
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_scan_agrees_with_tarfile(fmt):
    raw = tarfile_bytes(fmt)
    members, end = tarscan.scan(raw)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        expected = [(m.name, m.offset_data, m.size) for m in tar.getmembers()]
    assert [(name.rstrip("/"), off, size) for name, _, off, size in members] == expected
    assert end.problem is None
    assert [t for _, t, _, _ in members].count(ord("5")) == 1


def test_scan_reports_truncation_and_bad_checksums():
    raw = tarfile_bytes(tarfile.GNU_FORMAT)
    members, _ = tarscan.scan(raw)
    last_name, _, last_off, _ = members[-1]
    cut_members, end = tarscan.scan(raw[:last_off + 3])
    assert end.problem == "truncated_tar" and end.cut == last_name and len(cut_members) == len(members) - 1
    assert tarscan.scan(raw[:700])[1].problem == "truncated_tar"
    assert tarscan.scan(raw[:members[2][2] - 512 + 100])[1].detail == "archive ends inside a header"
    end_block = members[-1][2] + 512  # no end-of-archive blocks at all
    assert tarscan.scan(raw[:end_block])[1].detail == "no end-of-archive marker"
    damaged = bytearray(raw)
    damaged[1024 + 5] ^= 0x20  # a name byte of the second header
    before, end = tarscan.scan(bytes(damaged))
    assert end.problem == "corrupt_header" and len(before) == 1
    assert tarscan.scan(b"")[1].problem == "truncated_tar"


def test_written_headers_read_back_with_tarfile_and_webdataset_layout():
    body = bytearray()
    files = [("0" * 32 + ".jpg", b"\xff\xd8" * 700), ("0" * 32 + ".json", b"{}"), ("z" * 140 + ".txt", b"long")]
    for name, data in files:
        body += tarscan.member_header(name, len(data)) + data + bytes(tarscan.padding(len(data)))
    body += tarscan.end_of_archive(len(body))
    assert len(body) % tarscan.RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(bytes(body))) as tar:
        got = [(m.name, tar.extractfile(m).read(), m.mode, m.mtime, m.uid, m.uname) for m in tar.getmembers()]
    assert [(n, d) for n, d, *_ in got] == files
    assert {tuple(rest) for *_, mode, mtime, uid, uname in got for rest in [(mode, mtime, uid, uname)]} == {
        (0o444, 0, 0, "")}
    assert [(n, s) for n, _, _, s in tarscan.scan(bytes(body))[0]] == [(n, len(d)) for n, d in files]


def noisy_jpeg(seed: int, size: int = 96) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_blur_blurs_only_boxed_images_and_counts_missing_metadata(tmp_path):
    from PIL import Image

    from harness.pool.format import write_metadata

    root = tmp_path / "pool"
    (root / "shards").mkdir(parents=True)
    uids = [uid_of(0, k) for k in range(4)]
    members = []
    for k, uid in enumerate(uids):
        members += [(f"s{k}.jpg", noisy_jpeg(k)), (f"s{k}.txt", b"a face"), (f"s{k}.json", json.dumps({"uid": uid}).encode())]
    write_tar(root / "shards" / "00000000.tar", members)
    (root / "shards" / "00000000_stats.json").write_text(json.dumps({"successes": 4}))
    boxes = [[[0.25, 0.25, 0.5, 0.5]], [], None]  # uid 3 has no metadata row at all
    table = pa.table({"uid": uids[:3], "url": ["u"] * 3, "text": ["t"] * 3, "original_width": [96] * 3,
                      "original_height": [96] * 3,
                      "face_bboxes": pa.array(boxes, pa.list_(pa.list_(pa.float64())))})
    write_metadata(root / "metadata" / "00000000.parquet", table)
    subset = make_subset(tmp_path / "s.npy", uids)
    man = reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "o", blur=True))
    assert man["blurred"] == 1 and man["bad_input"]["blur_metadata_missing"] == 1 and man["config"]["blur"]
    samples = {s["__key__"]: s for s in read_webdataset(tmp_path / "o")}
    assert "webp" in samples[uids[0]] and "jpg" not in samples[uids[0]]
    for k in (1, 2, 3):
        assert samples[uids[k]]["jpg"] == noisy_jpeg(k)  # untouched bytes
    before = np.asarray(Image.open(io.BytesIO(noisy_jpeg(0))).convert("RGB"), np.float64)
    after = np.asarray(Image.open(io.BytesIO(samples[uids[0]]["webp"])).convert("RGB"), np.float64)
    inside = (slice(30, 42), slice(30, 42))  # well inside the 24..48 box
    assert after[inside].std() < 0.5 * before[inside].std()
    assert np.abs(after[:10, :10] - before[:10, :10]).mean() < 8  # far corner: only re-encoding noise
    write_metadata(root / "metadata" / "00000000.parquet", table.drop_columns(["face_bboxes"]))
    with pytest.raises(HarnessError, match="blur=true needs the face_bboxes column"):
        reshard(ReshardConfig(pool_dir=root, subset=subset, out_dir=tmp_path / "o2", blur=True))
