"""``report=true``: one self-contained HTML page showing what a filter did before any GPU is spent:
counts per sub-filter, score histograms with the threshold, a grid of kept and dropped images read
from the pool's shards, and (tiny world only) precision/recall against the planted defects.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness.filters.api import PoolInfo
from harness.pool.uids import hex_to_pairs, isin, read_subset
from harness.core.labels import spec_label

GRID = 12
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")


def defect_metrics(pool_root: Path, kept: np.ndarray) -> dict | None:
    """Per planted defect type: how many there are and the share the filter removed (recall);
    overall: the share of kept samples that are clean (precision) and of clean samples kept."""
    from harness.pool.format import truth_file

    path = truth_file(pool_root)  # read by the harness's report (main process), never by a filter
    if path is None or not path.is_file():
        return None
    gt = pq.read_table(path)
    flags = {n: gt.column(n).to_numpy(zero_copy_only=False) for n in gt.column_names
             if pa.types.is_boolean(gt.schema.field(n).type)}
    keep = isin(hex_to_pairs(gt.column("uid"), where=str(path)), kept)
    clean = ~np.logical_or.reduce(list(flags.values())) if flags else np.ones(len(keep), bool)
    per_type = {}
    for name, flag in flags.items():
        n = int(flag.sum())
        per_type[name] = {"n": n, "kept": int((flag & keep).sum()),
                          "recall": float((flag & ~keep).sum() / n) if n else None,
                          "precision": float((flag & ~keep).sum() / max(int((~keep).sum()), 1))}
    n_kept = int(keep.sum())
    return {"precision": float((clean & keep).sum() / n_kept) if n_kept else None,
            "clean_recall": float((clean & keep).sum() / max(int(clean.sum()), 1)),
            "n_clean": int(clean.sum()), "per_type": per_type}


def _histogram_png(histograms: dict) -> str | None:
    shown = {k: h for k, h in histograms.items() if h and h["counts"]}
    if not shown:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(shown), 1, figsize=(7, 2.6 * len(shown)), squeeze=False)
    for ax, (label, h) in zip(axes[:, 0], shown.items()):
        edges = np.asarray(h["edges"])
        ax.stairs(h["counts"], edges, fill=True, alpha=0.7)
        if h.get("threshold") is not None and np.isfinite(h["threshold"]):
            ax.axvline(h["threshold"], color="crimson", label=f"threshold {h['threshold']:.4g}")
            ax.legend()
        ax.set_title(label)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def sample_images(shards: list[Path], kept: np.ndarray, n: int = GRID) -> dict[str, list[tuple[str, bytes, str]]]:
    """Up to ``n`` (uid, image bytes, caption) each of kept and dropped samples, in shard order."""
    out: dict[str, list] = {"kept": [], "dropped": []}
    for shard in shards:
        samples: dict[str, dict] = {}
        with tarfile.open(shard) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.rpartition(".")
                samples.setdefault(key, {})[f".{ext.lower()}"] = tar.extractfile(member).read()
        for parts in samples.values():
            img = next((parts[e] for e in IMAGE_EXT if e in parts), None)
            if img is None or ".json" not in parts:
                continue
            uid = json.loads(parts[".json"]).get("uid")
            if not uid:
                continue
            which = "kept" if isin(hex_to_pairs([uid]), kept)[0] else "dropped"
            if len(out[which]) < n:
                out[which].append((uid, img, parts.get(".txt", b"").decode("utf-8", "replace")))
        if all(len(v) >= n for v in out.values()):
            break
    return out


def _grid(title: str, items: list[tuple[str, bytes, str]]) -> str:
    cells = "".join(
        f'<figure><img src="data:image/{_kind(img)};base64,{base64.b64encode(img).decode()}" title="{uid}">'
        f"<figcaption>{html.escape(text[:80])}</figcaption></figure>" for uid, img, text in items)
    return f"<h2>{title} ({len(items)} shown)</h2><div class=grid>{cells or '<p>none</p>'}</div>"


def _kind(img: bytes) -> str:
    return "png" if img[:4] == b"\x89PNG" else "webp" if img[8:12] == b"WEBP" else "jpeg"


def _table(rows: list[list], head: list[str]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(_num(c))}</td>" for c in r) + "</tr>" for r in rows)
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{cells}</table>"


def _num(value) -> str:
    """A figure as the report prints it: counts with thousands separators, other numbers to 4 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.1f} %"


def _header(doc: dict) -> str:
    """Title (the filter's short label), then kept N of M, pool, date and time; the full spec folded away."""
    spec = doc["filter"]
    facts = {"kept": f"{doc['n_kept']:,} of {doc['n_pool']:,} ({_pct(doc['n_kept'] / max(doc['n_pool'], 1))})",
             "pool": doc["pool_dir"], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             "filter time": f"{_num(float(doc['wall_s']))} s",
             "eligible for ranking": "yes" if doc.get("eligible", True) else "no (reference only)"}
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items())
    return (f"<h1>Filter report: {html.escape(spec_label(spec))}</h1><dl class=facts>{rows}</dl>"
            f"<details><summary>full filter spec</summary><pre>{html.escape(json.dumps(spec, indent=2))}</pre></details>")


def write_report(info: PoolInfo, doc: dict, final: np.ndarray, values: dict, path: Path) -> Path:
    """Write the HTML report beside the subset; add defect metrics to ``doc`` on the tiny world."""
    kept = read_subset(doc["subset"])
    parts = [_header(doc),
             _table([[k, v["kept"], v["dropped"], _pct(v["kept"] / max(v["kept"] + v["dropped"], 1))]
                     for k, v in doc["per_filter"].items()], ["filter", "kept", "dropped", "kept share"])]
    png = _histogram_png(doc["histograms"])
    if png:
        parts.append(f'<h2>Score histograms</h2><img src="data:image/png;base64,{png}">')
    metrics = defect_metrics(info.root, kept)
    if metrics:
        doc["defects"] = metrics
        parts.append(f"<h2>Planted defects (tiny world)</h2><p>precision of the kept set (clean share): "
                     f"{_pct(metrics['precision'])}; clean samples kept: {_pct(metrics['clean_recall'])} "
                     f"of {metrics['n_clean']:,}</p>")
        parts.append(_table([[k, v["n"], v["kept"], _pct(v["recall"]), _pct(v["precision"])]
                             for k, v in metrics["per_type"].items()],
                            ["defect", "n", "kept", "recall (share removed)", "share of removed"]))
    shards = sorted((info.root / "shards").glob("*.tar"))
    if shards:
        grid = sample_images(shards, kept)
        parts += [_grid("Kept", grid["kept"]), _grid("Dropped", grid["dropped"])]
    style = ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:2px 8px}dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}"
             "dd{margin:0}.grid{display:flex;flex-wrap:wrap;gap:8px}figure{width:140px;margin:0}"
             "figure img{width:128px;image-rendering:pixelated}figcaption{font-size:11px}</style>")
    tmp = path.with_name(f".{path.name}.tmp")
    title = html.escape(f"filter report: {spec_label(doc['filter'])}")
    tmp.write_text(f"<!doctype html><meta charset=utf-8><title>{title}</title>{style}{''.join(parts)}")
    tmp.replace(path)
    return path
