"""``harness pool download`` images/s on loopback, against a plain sequential fetch in the same run.

Starts an HTTP server on 127.0.0.1 serving generated JPEGs (~10-30 KB), writes a metadata parquet
of N urls, then times (a) ``download_pool`` (img2dataset: fetch, decode, resize to 512 px,
re-encode, shard) and (b) the floor of any downloader: ``urllib`` fetching every url one after
another, keeping the bytes in memory. Loopback has no network latency, so (a) measures the
per-image CPU cost of img2dataset's pipeline and (b) the server's; on the web, latency dominates
and threads hide it. Usage: ``python benchmarks/bench_download.py [--n 2000] [--processes 2] [--threads 32]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _images(k: int = 8) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for i in range(k):
        w, h = int(rng.integers(200, 900)), int(rng.integers(200, 700))
        arr = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).resize((w, h)).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


class Handler(BaseHTTPRequestHandler):
    images: list[bytes] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.images[int(self.path.rsplit("/", 1)[1].split(".")[0]) % len(self.images)]
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=32)
    args = ap.parse_args()
    Handler.images = _images()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{srv.server_address[1]}/img/{i}.jpg" for i in range(args.n)]
    root = Path(tempfile.mkdtemp(prefix="bench_download_"))
    try:
        (root / "meta").mkdir()
        pq.write_table(pa.table({"uid": [hashlib.md5(u.encode()).hexdigest() for u in urls], "url": urls,
                                 "text": [f"image {i}" for i in range(args.n)]}), root / "meta" / "0.parquet")
        from harness.pool.config import PoolDownloadConfig
        from harness.pool.download import download_pool

        t0 = time.perf_counter()
        s = download_pool(PoolDownloadConfig(metadata_dir=root / "meta", pool_dir=root / "pool", processes=args.processes, threads=args.threads, shard_size=1000, min_free_mb=0))
        a = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = sum(len(urllib.request.urlopen(u, timeout=10).read()) > 0 for u in urls)
        b = time.perf_counter() - t0
        print(f"{args.n} images on loopback, {os.cpu_count()} CPUs (shared with other work: timings are noisy)")
        print(f"(a) harness pool download, processes={args.processes} threads={args.threads}: {a:.1f} s, "
              f"{s['successes'] / a:.0f} images/s ({s['successes']} ok; img2dataset's own time "
              f"{s['this_run']['wall_s']:.1f} s incl. worker start-up)")
        print(f"(b) sequential urllib fetch, bytes only: {b:.1f} s, {got / b:.0f} images/s")
        print(f"(a)/(b) throughput: {(s['successes'] / a) / (got / b):.2f}x")
    finally:
        srv.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
