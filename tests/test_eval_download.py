"""`harness eval download` against a Hub endpoint served on 127.0.0.1 from a local folder laid out
like the Hub repos (the real huggingface_hub client talks HTTP to it; nothing leaves the machine)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from evals.export import write_wds_task

COMMIT = "a" * 40


def png(color) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (24, 24), color).save(buf, format="PNG")
    return buf.getvalue()


def hub_handler(root: Path):
    """The Hub endpoints huggingface_hub uses for a dataset snapshot: revision info, tree
    listing (tar files as LFS: sha256 + size; small files as git blobs), resolve (HEAD/GET)."""

    def entry(repo_dir: Path, path: Path) -> dict:
        data = path.read_bytes()
        out = {"type": "file", "path": path.relative_to(repo_dir).as_posix(), "size": len(data),
               "oid": hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()}
        if path.suffix == ".tar":
            out["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
        return out

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _route(self, head: bool):
            parts = unquote(urlparse(self.path).path).strip("/").split("/")
            if parts[:2] == ["api", "datasets"] and len(parts) >= 6:
                repo_dir = root / parts[2] / parts[3]
                if not repo_dir.is_dir():
                    return self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}, head)
                if parts[4] == "revision":
                    files = [p.relative_to(repo_dir).as_posix() for p in sorted(repo_dir.rglob("*")) if p.is_file()]
                    doc = {"id": f"{parts[2]}/{parts[3]}", "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
                    return self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"}, head)
                if parts[4] == "tree":
                    base = repo_dir.joinpath(*parts[6:])
                    doc = [entry(repo_dir, p) for p in sorted(base.rglob("*")) if p.is_file()]
                    return self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"}, head)
            if parts[0] == "datasets" and len(parts) >= 6 and parts[3] == "resolve":
                repo_dir = root / parts[1] / parts[2]
                path = repo_dir.joinpath(*parts[5:])
                if not path.is_file():
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                e = entry(repo_dir, path)
                etag = e["lfs"]["oid"] if "lfs" in e else e["oid"]
                return self._send(200, path.read_bytes(), {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'}, head)
            return self._send(404, b"", {}, head)

        def do_GET(self):
            self._route(head=False)

        def do_HEAD(self):
            self._route(head=True)

    return Handler


@pytest.fixture
def hub(tmp_path):
    root = tmp_path / "hub"
    pngs = [png((25 * i, 200 - 20 * i, 90)) for i in range(10)]
    write_wds_task(root / "djghosh" / "wds_cifar10_test", [{"png": pngs[i % 10], "cls": i % 10} for i in range(30)],
                   [f"class{i}" for i in range(10)], ["a photo of a {c}."], shard_size=10)
    (root / "djghosh" / "wds_cifar10_test" / "README.md").write_text("not needed by the reader\n")
    write_wds_task(root / "clip-benchmark" / "wds_flickr30k", [{"jpg": b"y" * 40, "txt": "a\nb"} for _ in range(5)],
                   dataset_type="retrieval")
    server = ThreadingHTTPServer(("127.0.0.1", 0), hub_handler(root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"root": root, "url": f"http://127.0.0.1:{server.server_address[1]}"}
    server.shutdown()
    server.server_close()


def test_download_verifies_and_resumes(hub, tmp_path, cli):
    env = {"HF_ENDPOINT": hub["url"], "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hfhome"),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    data = tmp_path / "data"
    tasks = "tasks=[cifar10,retrieval/flickr_1k_test_image_text_retrieval,misc/winogavil]"
    first = cli("eval", "download", f"data_dir={data}", tasks, env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "cifar10: 6 files" in first.stdout and "misc/winogavil: no Hub repo" in first.stdout
    src = hub["root"] / "djghosh" / "wds_cifar10_test"
    for rel in ("classnames.txt", "test/nshards.txt", "test/0.tar", "test/2.tar"):
        assert (data / "wds_cifar10_test" / rel).read_bytes() == (src / rel).read_bytes()
    assert not (data / "wds_cifar10_test" / "README.md").exists()
    assert (data / "wds_flickr30k" / "dataset_type.txt").read_text().strip() == "retrieval"
    # a shard corrupted on disk (same size) is caught by sha256, deleted, and fetched again on rerun
    shard = data / "wds_cifar10_test" / "test" / "1.tar"
    raw = bytearray(shard.read_bytes())
    raw[600] ^= 0xFF
    shard.write_bytes(bytes(raw))
    import os

    os.utime(shard, (1, 1))
    again = cli("eval", "download", f"data_dir={data}", "tasks=[cifar10]", env=env)
    # (huggingface_hub trusts its local metadata and keeps the file; our check does not)
    assert again.returncode == 2 and "1.tar: sha256 mismatch" in again.stdout and not shard.exists()
    third = cli("eval", "download", f"data_dir={data}", "tasks=[cifar10]", env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert shard.read_bytes() == (src / "test" / "1.tar").read_bytes()
    missing = cli("eval", "download", f"data_dir={data}", "tasks=[vtab/dtd]", env=env)
    assert missing.returncode == 2 and "vtab/dtd" in missing.stdout and "failed" in missing.stderr


@pytest.mark.slow
def test_eval_streams_from_the_hub_when_asked(hub, tmp_path, cli):
    import open_clip
    import torch

    from harness.core.models import register_model_configs

    register_model_configs()
    model, _, _ = open_clip.create_model_and_transforms("harness-tiny-32")
    ckpt = tmp_path / "ck.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    env = {"HF_ENDPOINT": hub["url"], "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hfhome")}
    args = ["eval", f"checkpoint={ckpt}", "scale=tiny", "suite=datacomp", "tasks=[cifar10]", "progress=false",
            "workers=0", f"data_dir={tmp_path / 'empty'}"]
    streamed = cli(*args, "stream=true", f"out_dir={tmp_path / 'b'}", env=env)
    assert streamed.returncode == 0, streamed.stderr
    row = json.loads((tmp_path / "b" / "eval_results.jsonl").read_text())
    assert row["key"] == "cifar10" and row["metrics"]["n_examples"] == 30 and row["metrics"]["n_undecodable"] == 0
