"""show (sorting), render (HTML, Markdown, figures), and the rendered page in headless Chromium."""

from __future__ import annotations

import functools
import html
import http.server
import json
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

from harness.core.errors import HarnessError
from leaderboard import table as lbtable
from leaderboard.boards import load_boards, methods
from leaderboard.compare import method_deltas
from leaderboard.render import bar_chart, render, size_vs_score
from leaderboard.store import add_entry, entry_from_run, load_leaderboard

LB = ("filtering", "tiny")
METHODS = [("no_filter", 0.35, 20000), ("basic", 0.45, 9000), ("clip_score", 0.6, 6000)]
BAR_BLUE = (0x3B, 0x75, 0xAF)  # bar colour of ranked methods in render.bar_chart


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    """A user's board: three methods × 2 seeds, a one-seed method, and an oracle reference."""
    root = tmp_path_factory.mktemp("board")
    for method, quality, size in METHODS:
        for seed in (0, 1):
            run = make_run(root / "runs", method, seed, quality + 0.02 * seed, n_kept=size)
            add_entry(root / "lb", entry_from_run(run, method, *LB))
    solo = make_run(root / "runs", "solo", 0, 0.5, n_kept=7000)
    add_entry(root / "lb", entry_from_run(solo, "solo", *LB))
    oracle = make_run(root / "runs", "oracle", 0, 0.8, n_kept=10000, eligible=False)
    add_entry(root / "lb", entry_from_run(oracle, "oracle", *LB, reference=True))
    return root / "lb"


def test_table_sorts_by_any_column(board):
    doc = load_leaderboard(board, *LB)
    headers, rows = lbtable.build(doc, sort="rank")
    rank, ident = headers.index("rank"), headers.index("id")
    assert [r[rank] for r in rows] == [1, 2, 3, 4, 5, 6, 7, None]  # the reference comes last, unranked
    assert rows[-1][ident] == "oracle-seed0" and rows[-1][headers.index("method")] == "oracle"
    _, by_size = lbtable.build(doc, sort="SIZE", ascending=True)
    assert [r[headers.index("size")] for r in by_size] == sorted(r[headers.index("size")] for r in rows)
    task_headers, by_task = lbtable.build(doc, sort="tiny_counts")
    values = [r[task_headers.index("tiny_counts")] for r in by_task]
    assert values == sorted(values, reverse=True)
    with pytest.raises(HarnessError, match="cannot sort by 'nope'; columns: rank, id, method, filter"):
        lbtable.build(doc, sort="nope")


def test_show_command_prints_the_table(board, cli):
    res = cli("leaderboard", "show", f"leaderboard_dir={board}", "sort=method", "tasks=true", "ci=false",
              env={"COLUMNS": "400"})
    assert res.returncode == 0, res.stderr
    mine = [re.search(r"yours:(\w+)-seed(\d)", ln).group(1) for ln in res.stdout.splitlines() if "yours:" in ln]
    assert mine == ["basic", "basic", "clip_score", "clip_score", "no_filter", "no_filter", "oracle", "solo"]
    assert "tiny_worst_group" in res.stdout and "basic (yours)" in res.stdout
    assert "Δ to no_filter not computed (ci=false). Rank —: unranked reference entry." in res.stdout


def _page(board: Path, out: Path) -> tuple[dict, dict]:
    doc = load_boards(*LB, board)
    return doc, render(doc, out, n_boot=50)


def test_render_writes_html_markdown_and_figures(board, tmp_path):
    doc, out = _page(board, tmp_path / "site")
    html_text = Path(out["html"]).read_text()
    # the per-method table first, then the per-seed rows, then per-task scores and specs folded away
    order = [html_text.index(f'<table id="{t}">') for t in ("methods", "leaderboard", "tasks", "specs")]
    assert order == sorted(order)
    assert html_text.index('<details id="per-task">') < order[2] and '<details id="filter-specs">' in html_text
    assert html_text.count('<tr data-method="') == len(methods(doc)) == 8 + 5
    assert html_text.count('<tr data-id="') == 2 * len(doc["entries"])  # per seed, and per task
    assert html_text.count("class=yours") == 2 * 8 + 5
    assert "http" not in html_text and "<script" not in html_text  # self-contained, nothing from the network
    names = sorted(Path(f).name for f in out["figures"])
    assert names == sorted(["bars_imagenet.png", "bars_imagenet_dist_shifts.png", "bars_vtab.png",
                            "bars_retrieval.png", "bars_average.png", "size_vs_score.png", "heatmap.png"])
    for f in out["figures"]:
        with Image.open(f) as im:
            assert im.width > 200 and im.height > 150
        assert f'src="figures/{Path(f).name}"' in html_text
    md = Path(out["markdown"]).read_text()
    assert md.index("## Methods") < md.index("## Entries (one row per seed)") < md.index("Per-task scores")
    assert md.count("yours:") >= 2 * 8 and "![per-task heatmap](figures/heatmap.png)" in md
    again = render(doc, tmp_path / "site2", n_boot=50)
    assert Path(again["figures"][0]).read_bytes() == Path(out["figures"][0]).read_bytes()  # reproducible


def test_bar_charts_draw_no_error_bar_for_one_seed_and_labels_do_not_overlap(board):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rows = methods(load_boards(*LB, board))
    fig = bar_chart(rows, "Average")
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    drawn = [m for m in rows if "Average" in m["stats"]][::-1]  # bottom to top
    whiskers = ax.containers[1].lines[2][0].get_segments()
    assert len(whiskers) == sum(m["n"] > 1 for m in drawn)
    solo_y = next(i for i, m in enumerate(drawn) if m["label"] == "solo (yours)")
    assert all(seg[0][1] != solo_y for seg in whiskers)  # the one-seed method has no (zero) whisker
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{m['label']} (n={m['n']})" for m in drawn]
    boxes = sorted((t.get_window_extent() for t in ax.get_yticklabels()), key=lambda b: b.y0)
    assert all(lo.y1 <= hi.y0 for lo, hi in zip(boxes, boxes[1:])), "method names overlap"
    legend = [t.get_text() for t in size_vs_score(rows).axes[0].get_legend().get_texts()]
    assert legend == [f"{m['label']} (n={m['n']})" for m in rows if m["size"] is not None]


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


MEASURE_PAGE = """<!DOCTYPE html><html><body><pre id="measured">pending</pre>
<iframe id="page" src="index.html" style="width:1400px;height:4000px"></iframe>
<script>
document.getElementById("page").addEventListener("load", () => {
  const d = document.getElementById("page").contentDocument;
  const widths = {};
  for (const t of d.querySelectorAll("table")) widths[t.id] = t.getBoundingClientRect().width;
  const methods = [...d.querySelectorAll("#methods tbody tr")].map(
    tr => [tr.dataset.method, [...tr.cells].map(td => td.innerText)]);
  const images = [...d.querySelectorAll("img")].map(i => [i.getAttribute("src"), i.complete, i.naturalWidth]);
  const open = [...d.querySelectorAll("details")].map(x => [x.id, x.open]);
  const heads = [...d.querySelectorAll("#methods thead th")].map(th => th.innerText);
  document.getElementById("measured").textContent = JSON.stringify({widths, methods, images, open, heads});
});
</script></body></html>
"""


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)")
def test_rendered_page_in_headless_chromium(board, tmp_path):
    """The page as a browser lays it out: the per-method table's rows and cells, tables no wider than
    1,200 px, per-task scores and full specs folded away, and every figure loaded and drawn."""
    doc, out = _page(board, tmp_path / "site")
    (tmp_path / "site" / "measure.html").write_text(MEASURE_PAGE)
    server = _serve(tmp_path / "site")
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        dom = _chromium(f"{base}/index.html", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        measured = _chromium(f"{base}/measure.html", "--virtual-time-budget=15000", "--dump-dom")
        assert measured.returncode == 0, measured.stderr[-2000:]
        shot = tmp_path / "shot.png"
        snap = _chromium(f"{base}/index.html", f"--screenshot={shot}")
        assert snap.returncode == 0 and shot.is_file(), snap.stderr[-2000:]
    finally:
        server.shutdown()
    rows = re.findall(r'<tr data-id="([^"]+)"', dom.stdout)
    assert sorted(rows) == sorted(2 * [e["key"] for e in doc["entries"]])
    assert re.search(r'<p id="stability">Ranking stability across seeds .*mean \d\.\d\d', dom.stdout)
    page = json.loads(html.unescape(re.search(r'<pre id="measured">([^<]*)</pre>', measured.stdout).group(1)))
    headers, table_rows, _ = lbtable.method_table(doc, method_deltas(doc, n_boot=50))
    assert page["heads"] == headers
    want = [[m["key"], [lbtable.fmt(v, multiline=True) for v in r]] for m, r in zip(methods(doc), table_rows)]
    assert page["methods"] == want
    clip = dict(page["methods"])["clip_score"]
    assert clip[1:5] == ["clip_score (yours)", "yours", "2", "6,000"] and re.fullmatch(r"0\.\d{4}\n± 0\.\d{4}", clip[5])
    assert re.fullmatch(r"\+0\.\d{4}\n\[\+0\.\d{4}, \+0\.\d{4}\] \*", clip[6])  # Δ and its CI, beyond noise
    assert dict(page["methods"])["yours:no_filter"][6] == dict(page["methods"])["ref:no_filter"][6] == "baseline"
    assert page["widths"]["methods"] <= 1200 and page["widths"]["leaderboard"] <= 1200, page["widths"]
    assert page["open"] == [["per-task", False], ["filter-specs", False]]
    assert [src for src, _, _ in page["images"]] == [f"figures/{Path(f).name}" for f in out["figures"]]
    assert all(done and width > 200 for _, done, width in page["images"]), page["images"]
    fetched = {path.lstrip("/"): code for path, code in server.requests}
    assert all(fetched.get(src) == "200" for src, _, _ in page["images"]), fetched
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    blue = np.all(np.abs(pixels.astype(int) - BAR_BLUE) <= 3, axis=1).sum()
    assert blue > 5000, "no bar chart pixels on the screenshot: the charts did not render"


def test_render_command_needs_out_and_writes_the_page(board, tmp_path, cli):
    res = cli("leaderboard", "render", f"leaderboard_dir={board}")
    assert res.returncode == 2 and res.stderr.strip().startswith(
        "error: harness leaderboard render: missing required key(s) out (e.g. out=...")
    ok = cli("leaderboard", "render", f"leaderboard_dir={board}", f"out={tmp_path / 'site'}", "n_boot=50")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "site" / "index.html").is_file() and len(list((tmp_path / "site" / "figures").glob("*.png"))) == 7
