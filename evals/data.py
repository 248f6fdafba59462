"""Reading a task in the CLIP_benchmark WebDataset layout, from a local folder or the Hub.

Layout: ``classnames.txt``, ``zeroshot_classification_templates.txt`` (classification),
``dataset_type.txt`` (``retrieval`` for caption tasks), ``test/nshards.txt``, ``test/{i}.tar``.
A sample holds an image (webp/png/jpg/jpeg), ``cls`` (label), ``txt`` (captions, one per line)
and optional ``json``/``npy`` metadata (WinoGAViL's layout, one sample per candidate image:
``evals/winogavil.py``). Samples carry their (shard, position) so results are in
file order whatever the number of decode workers; an image that does not decode is flagged, not
fatal.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.errors import HarnessError

IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")


@dataclass(frozen=True)
class TaskData:
    """Where a task's shards are and what its text side is."""

    root: str
    urls: tuple[str, ...]
    dataset_type: str
    classnames: tuple[str, ...] | None
    templates: tuple[str, ...] | None


def _read_text(root: str, rel: str, remote: bool) -> str | None:
    if remote:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

        try:
            return Path(hf_hub_download(root, rel, repo_type="dataset")).read_text()
        except EntryNotFoundError:
            return None
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            raise HarnessError(f"cannot read hf://datasets/{root}/{rel}: {str(exc).splitlines()[0]}") from None
    path = Path(root) / rel
    return path.read_text() if path.is_file() else None


def _lines(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(s.strip() for s in text.splitlines() if s.strip())


def open_task(root: str, kind: str, remote: bool = False) -> TaskData:
    """Check a task folder (or Hub repo when ``remote``) and list its shards.

    Raises HarnessError naming the file: nshards.txt missing or not an int, shard files missing or
    not matching nshards.txt, classnames/templates missing or empty for a classification task.
    """
    where = f"hf://datasets/{root}" if remote else root
    nshards_text = _read_text(root, "test/nshards.txt", remote)
    if nshards_text is None:
        raise HarnessError(f"{where}/test/nshards.txt not found")
    try:
        nshards = int(nshards_text.strip())
    except ValueError:
        raise HarnessError(f"{where}/test/nshards.txt does not hold an integer: {nshards_text.strip()[:40]!r}") from None
    if remote:
        from huggingface_hub import constants

        urls = tuple(f"{constants.ENDPOINT}/datasets/{root}/resolve/main/test/{i}.tar" for i in range(nshards))
    else:
        found = sorted(p.name for p in (Path(root) / "test").glob("*.tar"))
        expected = [f"{i}.tar" for i in range(nshards)]
        if sorted(found) != sorted(expected):
            raise HarnessError(f"{where}/test holds {len(found)} shard(s) {found[:4]} but nshards.txt says {nshards}")
        urls = tuple(str(Path(root) / "test" / name) for name in expected)
    dataset_type = (_read_text(root, "dataset_type.txt", remote) or "classification").strip().lower()
    classnames = templates = None
    if kind in ("classification", "fairface"):
        classnames = _lines(_read_text(root, "classnames.txt", remote))
        templates = _lines(_read_text(root, "zeroshot_classification_templates.txt", remote))
        for name, value in (("classnames.txt", classnames), ("zeroshot_classification_templates.txt", templates)):
            if not value:
                raise HarnessError(f"{where}/{name} is {'missing' if value is None else 'empty'}")
    return TaskData(root=where, urls=urls, dataset_type=dataset_type, classnames=classnames, templates=templates)


def _decode_image(sample: dict, transform):
    ext = next((e for e in IMAGE_EXTS if e in sample), None)
    if ext is None:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(sample[ext])) as im:
            return transform(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError):
        return None


def _group_of(sample: dict, spec: dict | None) -> object:
    if not spec:
        return -1
    if spec["from"] == "npy":
        return int(np.load(io.BytesIO(sample["npy"])).reshape(-1)[spec["column"]])
    return json.loads(sample["json"])[spec["field"]]


def decode_sample(sample: dict, transform, retrieval: bool, group: dict | None, want_npy: bool) -> dict:
    """One raw sample -> image tensor (or None), label, captions, group, npy row. Malformed
    metadata (not an undecodable image) is a HarnessError naming the shard and sample."""
    out = {"key": sample.get("__key__", ""), "image": _decode_image(sample, transform)}
    try:
        if retrieval:
            out["captions"] = [c for c in sample.get("txt", b"").decode("utf-8").splitlines() if c.strip()]
        out["label"] = int(sample["cls"].decode().strip()) if "cls" in sample else -1
        if group:
            out["group"] = _group_of(sample, group)
        if want_npy:
            out["npy"] = np.load(io.BytesIO(sample["npy"]))
    except (KeyError, ValueError, IndexError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{sample.get('__url__', '?')}: sample {out['key']}: bad or missing metadata "
                           f"({type(exc).__name__}: {exc})") from None
    return out
