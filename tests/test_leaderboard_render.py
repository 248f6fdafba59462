"""show (sorting), render (HTML, Markdown, figures), and the rendered page in headless Chromium."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_leaderboard_runs import make_run

from harness.errors import HarnessError
from leaderboard import table as lbtable
from leaderboard.render import render
from leaderboard.store import add_entry, entry_from_run, load_leaderboard

LB = ("filtering", "tiny")
METHODS = [("no_filter", 0.35, 20000), ("basic", 0.45, 9000), ("clip_score", 0.6, 6000)]
BAR_BLUE = (0x3B, 0x75, 0xAF)  # bar colour of ranked methods in render.bar_chart


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    """Three methods × 2 seeds and an oracle reference."""
    root = tmp_path_factory.mktemp("board")
    for method, quality, size in METHODS:
        for seed in (0, 1):
            run = make_run(root / "runs", method, seed, quality + 0.02 * seed, n_kept=size)
            add_entry(root / "lb", entry_from_run(run, method, *LB))
    oracle = make_run(root / "runs", "oracle", 0, 0.8, n_kept=10000, eligible=False)
    add_entry(root / "lb", entry_from_run(oracle, "oracle", *LB, reference=True))
    return root / "lb"


def test_table_sorts_by_any_column(board):
    doc = load_leaderboard(board, *LB)
    headers, rows = lbtable.build(doc, sort="rank")
    rank, ident = headers.index("rank"), headers.index("id")
    assert [r[rank] for r in rows] == [1, 2, 3, 4, 5, 6, None]  # the reference comes last, unranked
    assert rows[-1][ident] == "oracle-seed0" and rows[-1][headers.index("reference")] == "reference"
    _, by_size = lbtable.build(doc, sort="SIZE", ascending=True)
    assert [r[headers.index("size")] for r in by_size] == sorted(r[headers.index("size")] for r in rows)
    task_headers, by_task = lbtable.build(doc, sort="tiny_counts")
    values = [r[task_headers.index("tiny_counts")] for r in by_task]
    assert values == sorted(values, reverse=True)
    with pytest.raises(HarnessError, match="cannot sort by 'nope'; columns: rank, id, method"):
        lbtable.build(doc, sort="nope")


def test_show_command_prints_the_table(board, cli):
    res = cli("leaderboard", "show", f"leaderboard_dir={board}", "sort=method", "tasks=true")
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "-seed" in ln]
    order = [re.search(r"(\w+)-seed(\d)", ln).group(1) for ln in lines]
    assert order == ["basic", "basic", "clip_score", "clip_score", "no_filter", "no_filter", "oracle"]
    assert "tiny_worst_group" in res.stdout and "reference" in res.stdout
    missing = cli("leaderboard", "show", f"leaderboard_dir={board / 'none'}")
    assert missing.returncode == 2 and "no leaderboard at" in missing.stderr


def test_render_writes_html_markdown_and_figures(board, tmp_path):
    doc = load_leaderboard(board, *LB)
    out = render(doc, tmp_path / "site")
    html_text = Path(out["html"]).read_text()
    assert html_text.count('<tr data-id="') == len(doc["entries"]) == 7
    assert "http" not in html_text and "<script" not in html_text  # self-contained, nothing from the network
    names = sorted(Path(f).name for f in out["figures"])
    assert names == sorted(["bars_imagenet.png", "bars_imagenet_dist_shifts.png", "bars_vtab.png",
                            "bars_retrieval.png", "bars_average.png", "size_vs_score.png", "heatmap.png"])
    for f in out["figures"]:
        with Image.open(f) as im:
            assert im.width > 200 and im.height > 150
        assert f'src="figures/{Path(f).name}"' in html_text
    md = Path(out["markdown"]).read_text()
    assert md.count("-seed") >= 7 and "![per-task heatmap](figures/heatmap.png)" in md
    again = render(doc, tmp_path / "site2")
    assert Path(again["figures"][0]).read_bytes() == Path(out["figures"][0]).read_bytes()  # reproducible


class _LoggingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        self.server.requests.append((self.path, args[1] if len(args) > 1 else ""))


def _serve(folder: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_LoggingHandler, directory=str(folder)))
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1400,4000")


def _chromium(url: str, *action: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([shutil.which("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, url],
                              capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)")
def test_rendered_page_in_headless_chromium(board, tmp_path):
    doc = load_leaderboard(board, *LB)
    out = render(doc, tmp_path / "site")
    server = _serve(tmp_path / "site")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        dom = _chromium(url, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        shot = tmp_path / "shot.png"
        snap = _chromium(url, f"--screenshot={shot}")
        assert snap.returncode == 0 and shot.is_file(), snap.stderr[-2000:]
    finally:
        server.shutdown()
    rows = re.findall(r'<tr data-id="([^"]+)">', dom.stdout)
    assert sorted(rows) == sorted(e["id"] for e in doc["entries"])
    assert re.search(r'<table id="leaderboard">', dom.stdout)
    assert re.search(r'<p id="stability">Ranking stability across seeds .*mean 1\.00', dom.stdout)
    srcs = re.findall(r'<img src="([^"]+)"', dom.stdout)
    assert len(srcs) == len(out["figures"]) == 7
    fetched = {path.lstrip("/"): code for path, code in server.requests}
    assert all(fetched.get(src) == "200" for src in srcs), fetched  # the browser loaded every chart
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    blue = np.all(np.abs(pixels.astype(int) - BAR_BLUE) <= 3, axis=1).sum()
    assert blue > 5000, "no bar chart pixels on the screenshot: the charts did not render"


def test_render_command_needs_out_and_writes_the_page(board, tmp_path, cli):
    res = cli("leaderboard", "render", f"leaderboard_dir={board}")
    assert res.returncode == 2 and res.stderr.strip().startswith(
        "error: harness leaderboard render: missing required key(s) out (e.g. out=...")
    ok = cli("leaderboard", "render", f"leaderboard_dir={board}", f"out={tmp_path / 'site'}")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "site" / "index.html").is_file() and len(list((tmp_path / "site" / "figures").glob("*.png"))) == 7
