"""The filter report's header (short filter label, kept N of M, pool, date) and its rounded figures."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from test_filter_support import make_pool, pool_uids, write_shard

from harness.filters import run_filter
from harness.pool.uids import pairs_to_hex


def _report(tmp_path, spec: dict) -> tuple[dict, str]:
    texts = ["a photo of a dog"] * 6 + ["junk"] * 3
    scores = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85], np.float32)
    root = make_pool(tmp_path / "p", {"text": texts, "clip_l14_similarity_score": scores}, files=1)
    u = list(pairs_to_hex(pool_uids(root)))
    write_shard(root, u, texts)
    pq.write_table(pa.table({"uid": u, "too_short": np.arange(9) >= 6, "mismatched": np.arange(9) < 1}),
                   root / "ground_truth.parquet")
    doc = run_filter(root, spec, tmp_path / "s.npy", report=True)
    return doc, (tmp_path / "s.html").read_text()


def test_report_header_is_readable(tmp_path):
    doc, page = _report(tmp_path, {"name": "clip_score", "fraction": 0.3})
    assert re.search(r"<h1>(.*?)</h1>", page).group(1) == "Filter report: clip_score(fraction=0.3)"
    assert "<title>filter report: clip_score(fraction=0.3)</title>" in page
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", page))
    assert facts["kept"] == f"{doc['n_kept']:,} of 9 ({100 * doc['n_kept'] / 9:.1f} %)" == "3 of 9 (33.3 %)"
    assert facts["pool"] == str(tmp_path / "p")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", facts["date"])
    assert re.fullmatch(r"\d+(\.\d{1,3})? s", facts["filter time"]) and facts["eligible for ranking"] == "yes"
    assert "<details><summary>full filter spec</summary><pre>{" in page  # the JSON only in the folded details


def test_report_figures_are_rounded(tmp_path):
    doc, page = _report(tmp_path, {"name": "clip_score", "threshold": 0.5})
    # kept: scores 0.55-0.85 (4 of 9); clean: rows 1-5, of which row 5 is kept
    assert "precision of the kept set (clean share): 25.0 %; clean samples kept: 20.0 % of 5" in page
    cells = re.findall(r"<td>(.*?)</td>", page)
    assert cells[:4] == ["clip_score", "4", "5", "44.4 %"]
    # per type: n, kept, share removed, share of the removed samples — percentages with one decimal
    assert cells[cells.index("too_short"):][:5] == ["too_short", "3", "3", "0.0 %", "0.0 %"]
    assert cells[cells.index("mismatched"):][:5] == ["mismatched", "1", "0", "100.0 %", "20.0 %"]
    numbers = re.findall(r"\d+\.\d+", re.sub(r"<img[^>]*>|<pre>.*?</pre>", "", page, flags=re.S))
    assert numbers and all(len(n.replace(".", "").lstrip("0")) <= 4 for n in numbers), numbers
