"""`harness pool download` for real: img2dataset against an HTTP server on 127.0.0.1 started here.

The server serves generated images plus 404s, corrupt bytes, slow and too-slow responses; one
url points at a closed port (unreachable host). Success counts are known in advance.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import REPO, make_uids
from harness.pool.download import download_pool
from harness.core.errors import HarnessError
from harness.pool.config import PoolDownloadConfig

# kind -> how many rows of that kind (per parquet file, two files)
KINDS = {"ok": 100, "slow": 8, "missing": 20, "corrupt": 12, "hang": 3, "unreachable": 5}
SUCCESS_KINDS = ("ok", "slow")
TIMEOUT = 2


def _images() -> list[bytes]:
    out = []
    for i, size in enumerate([(64, 48), (40, 90), (700, 300), (32, 32)]):
        buf = io.BytesIO()
        Image.new("RGB", size, (40 * i, 255 - 40 * i, 90)).save(buf, "JPEG")
        out.append(buf.getvalue())
    return out


class Handler(BaseHTTPRequestHandler):
    images: list[bytes] = _images()
    delay = 0.0

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        kind, _, name = self.path.strip("/").partition("/")
        i = int(name.split(".")[0])
        if kind == "missing":
            self.send_error(404)
            return
        body = os.urandom(2000) if kind == "corrupt" else self.images[i % len(self.images)]
        time.sleep({"slow": 0.3, "hang": TIMEOUT + 2}.get(kind, 0) + (self.server.delay if kind == "ok" else 0))
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.delay = 0.0
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_metadata(root: Path, port: int, kinds: dict[str, int] = KINDS, n_files: int = 2,
                   caption_col: str = "text") -> tuple[Path, set[str]]:
    """Parquets of mixed urls; returns (dir, uids expected to succeed)."""
    dead = _closed_port()
    root.mkdir(parents=True)
    good: set[str] = set()
    for f in range(n_files):
        rows = [(k, i) for k, n in kinds.items() for i in range(n)]
        order = np.random.default_rng(f).permutation(len(rows))
        rows = [rows[j] for j in order]
        uids = make_uids(len(rows), seed=100 + f)
        host = lambda k: f"127.0.0.1:{dead}" if k == "unreachable" else f"127.0.0.1:{port}"
        urls = [f"http://{host(k)}/{k}/{i}.jpg" for k, i in rows]
        good |= {u for u, (k, _) in zip(uids, rows) if k in SUCCESS_KINDS}
        pq.write_table(pa.table({"uid": uids, "url": urls, caption_col: [f"{k} number {i}" for k, i in rows],
                                 "original_width": [64] * len(rows), "original_height": [48] * len(rows)}),
                       root / f"{f:08d}.parquet")
    return root, good


def shard_uids(shards_dir: Path) -> list[str]:
    """uid of every image sample in every shard (duplicates kept, to catch them)."""
    uids = []
    for tar in sorted(shards_dir.glob("*.tar")):
        with tarfile.open(tar) as tf:
            members = {m.name: m for m in tf}
            for name, m in members.items():
                if name.endswith(".jpg"):
                    meta = json.loads(tf.extractfile(members[name[:-4] + ".json"]).read())
                    uids.append(meta["uid"])
                    assert tf.extractfile(members[name[:-4] + ".txt"]).read()
    return uids


def test_download_counts_and_layout(tmp_path, server):
    meta, good = write_metadata(tmp_path / "meta", server.server_address[1])
    pool = tmp_path / "pool"
    summary = download_pool(PoolDownloadConfig(metadata_dir=meta, pool_dir=pool, processes=1, threads=16, timeout=TIMEOUT, shard_size=100))
    per_file = sum(KINDS.values())
    assert summary["count"] == 2 * per_file
    assert summary["successes"] == len(good) == 2 * (KINDS["ok"] + KINDS["slow"])
    assert summary["failed_to_resize"] == 2 * KINDS["corrupt"]
    assert summary["failed_to_download"] == 2 * (KINDS["missing"] + KINDS["hang"] + KINDS["unreachable"])
    assert summary["complete"] and summary["shards_done"] == summary["shards_expected"] == 4
    assert sorted(shard_uids(pool / "shards")) == sorted(good)
    assert sorted(p.name for p in (pool / "shards").glob("*.tar")) == [f"{i:08d}.tar" for i in range(4)]
    stats = json.loads((pool / "shards" / "00000000_stats.json").read_text())
    assert stats["successes"] > 0 and stats["count"] == 100
    assert sorted(p.name for p in (pool / "metadata").glob("*.parquet")) == ["00000000.parquet", "00000001.parquet"]
    # images are capped at 512 px on the longer side, never upscaled (DataComp's options)
    with tarfile.open(pool / "shards" / "00000000.tar") as tf:
        sizes = [Image.open(tf.extractfile(m)).size for m in tf if m.name.endswith(".jpg")]
    assert max(max(s) for s in sizes) == 512 and (32, 32) in sizes
    # a rerun finds everything done and downloads nothing
    again = download_pool(PoolDownloadConfig(metadata_dir=meta, pool_dir=pool, processes=1, threads=16, timeout=TIMEOUT, shard_size=100))
    assert again["this_run"]["successes"] == 0 and again["successes"] == summary["successes"]


@pytest.mark.slow
def test_cli_download_renames_caption_and_generates_uids(tmp_path, server, cli):
    """A bring-your-own url+caption parquet: caption column named freely, uids generated."""
    kinds = {"ok": 6, "missing": 2}
    meta, _ = write_metadata(tmp_path / "meta", server.server_address[1], kinds, n_files=1, caption_col="caption")
    table = pq.read_table(meta / "00000000.parquet").drop_columns(["uid"])
    pq.write_table(table, meta / "00000000.parquet")
    pool = tmp_path / "pool"
    res = cli("pool", "download", f"metadata_dir={meta}", f"pool_dir={pool}", "processes=1", "threads=4",
              "caption_col=caption", f"timeout={TIMEOUT}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "downloaded 6 of 8 images (75.0%)" in res.stdout
    copied = pq.read_table(pool / "metadata" / "00000000.parquet")
    assert {"uid", "url", "text"} <= set(copied.column_names)
    assert sorted(shard_uids(pool / "shards")) == sorted(
        u for u, url in zip(copied["uid"].to_pylist(), copied["url"].to_pylist()) if "/ok/" in url)


def test_metadata_without_url_or_caption_is_refused(tmp_path, cli):
    meta = tmp_path / "meta"
    meta.mkdir()
    pq.write_table(pa.table({"uid": make_uids(3), "url": ["http://127.0.0.1:9/a.jpg"] * 3}), meta / "a.parquet")
    res = cli("pool", "download", f"metadata_dir={meta}", f"pool_dir={tmp_path / 'pool'}")
    assert res.returncode == 2
    assert "a.parquet: missing column(s) text" in res.stderr and "caption_col=" in res.stderr
    assert not (tmp_path / "pool").exists()


def _kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow  # long end-to-end check; `pytest -m slow` runs it
def test_resume_after_sigkill(tmp_path, server):
    """SIGKILL mid-download, rerun: every image exactly once, finished shards not redone."""
    kinds = {"ok": 30, "missing": 10}
    meta, good = write_metadata(tmp_path / "meta", server.server_address[1], kinds, n_files=2)
    pool = tmp_path / "pool"
    args = [sys.executable, "-m", "harness", "pool", "download", f"metadata_dir={meta}", f"pool_dir={pool}",
            "processes=1", "threads=2", "shard_size=20", f"timeout={TIMEOUT}"]
    server.delay = 0.05
    proc = subprocess.Popen(args, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while len(list((pool / "shards").glob("*_stats.json"))) < 1 and time.time() < deadline:
            assert proc.poll() is None, "download finished before it could be killed"
            time.sleep(0.05)
        _kill_group(proc)
    finally:
        server.delay = 0.0
        if proc.poll() is None:
            _kill_group(proc)
    done_before = {p.name: p.stat().st_mtime_ns for p in (pool / "shards").glob("*_stats.json")}
    assert 1 <= len(done_before) < 4
    res = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((pool / "download.json").read_text())
    assert summary["complete"] and summary["successes"] == len(good) == 60
    assert sorted(shard_uids(pool / "shards")) == sorted(good)
    assert {p.name: p.stat().st_mtime_ns for p in (pool / "shards").glob("*_stats.json")
            if p.name in done_before} == done_before
    assert summary["this_run"]["successes"] < 60


@pytest.fixture
def small_disk(tmp_path):
    """A real small file system (tmpfs) that a download can fill; grown later with remount."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("needs permission to mount a tmpfs (root) to fill a real file system")
    yield disk
    subprocess.run(["umount", str(disk)], capture_output=True)


def _check_done_shards_whole(shards_dir: Path) -> None:
    for stats in shards_dir.glob("*_stats.json"):
        with tarfile.open(stats.with_name(stats.name.replace("_stats.json", ".tar"))) as tf:
            assert sum(m.name.endswith(".jpg") for m in tf) == json.loads(stats.read_text())["successes"]


def _fill_and_resume(tmp_path: Path, disk: Path, server, match: str, **opts) -> None:
    meta, good = write_metadata(tmp_path / "meta", server.server_address[1], {"ok": 300}, n_files=1)
    pool = disk / "pool"
    opts = dict(processes=1, threads=4, shard_size=25, timeout=TIMEOUT, resize_mode="no", **opts)
    with pytest.raises(HarnessError, match=match):
        download_pool(PoolDownloadConfig(metadata_dir=meta, pool_dir=pool, **opts))
    _check_done_shards_whole(pool / "shards")
    assert not json.loads((pool / "download.json").read_text())["complete"]
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    summary = download_pool(PoolDownloadConfig(metadata_dir=meta, pool_dir=pool, **opts))
    assert summary["complete"] and summary["successes"] == 300
    assert sorted(shard_uids(pool / "shards")) == sorted(good)


@pytest.mark.slow
def test_low_disk_stops_cleanly_and_resumes(tmp_path, small_disk, server):
    """Free space falls below min_free_mb mid-download: stop, keep only whole shards, resume later."""
    _fill_and_resume(tmp_path, small_disk, server, r"disk full .*free space fell below min_free_mb=0.5 MiB.*rerun",
                     min_free_mb=0.5)


@pytest.mark.slow
def test_real_enospc_keeps_no_truncated_shard(tmp_path, small_disk, server):
    """With the floor off, writes hit ENOSPC: truncated shards are un-marked, the rerun completes them."""
    _fill_and_resume(tmp_path, small_disk, server, r"shards did not finish \(disk full\); rerun", min_free_mb=0)


def test_bad_uid_is_refused_before_it_lands(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    uids = make_uids(3)
    uids[1] = "not-a-uid"
    pq.write_table(pa.table({"uid": uids, "url": ["http://127.0.0.1:9/a.jpg"] * 3, "text": ["a"] * 3}),
                   meta / "a.parquet")
    with pytest.raises(HarnessError, match=r"a.parquet, row 1: uid 'not-a-uid' is not 32 lower-case hex"):
        download_pool(PoolDownloadConfig(metadata_dir=meta, pool_dir=tmp_path / "pool"))
    assert not list((tmp_path / "pool" / "metadata").glob("*.parquet"))
    with pytest.raises(HarnessError, match="has no \\*.parquet files"):
        download_pool(PoolDownloadConfig(metadata_dir=tmp_path / "pool" / "metadata", pool_dir=tmp_path / "pool2"))
