"""WinoGAViL in the harness's WebDataset layout, so it is read and streamed like every other task.

DataComp reads WinoGAViL with ``datasets.load_dataset("nlphuji/winogavil")``; no CLIP_benchmark
WebDataset export exists. This module writes one: one sample per *candidate image*, holding the
image, ``txt`` = the instance's cue, ``cls`` = 1 if the candidate is one of the cue's
associations else 0, and ``json`` = ``{"instance": i, "candidate": name}``. The evaluator
(``evals.tasks_eval.eval_winogavil``) groups candidates by instance, picks the k most similar to
the cue (k = number of associations) and scores the pick by Jaccard, as DataComp does.

    python -m evals.winogavil DATA_DIR      # needs `datasets` and the network, once
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.core.errors import HarnessError

GROUP = {"from": "json", "field": "instance"}


def _image_bytes(image: Any) -> tuple[str, bytes]:
    """(extension, bytes) of a candidate given as a file path, raw bytes or a PIL image."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise HarnessError(f"WinoGAViL candidate image not found: {path}")
        ext = path.suffix.lower().lstrip(".")
        return ("jpg" if ext == "jpeg" else ext), path.read_bytes()
    if isinstance(image, (bytes, bytearray)):
        return "jpg", bytes(image)
    import io

    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "png", buf.getvalue()


def candidate_samples(rows: Iterable[Mapping[str, Any]]) -> Iterable[dict]:
    """The WebDataset samples of WinoGAViL rows (fields as in nlphuji/winogavil: ``cue``,
    ``candidates``, ``associations``, ``candidates_images``)."""
    for i, row in enumerate(rows):
        cands, images = list(row["candidates"]), list(row["candidates_images"])
        assoc = set(row["associations"])
        if len(cands) != len(images) or not assoc <= set(cands) or not assoc:
            raise HarnessError(f"WinoGAViL row {i} (cue {row.get('cue')!r}): {len(cands)} candidates, "
                               f"{len(images)} images, associations {sorted(assoc)} not a non-empty subset")
        for name, image in zip(cands, images):
            ext, data = _image_bytes(image)
            yield {ext: data, "txt": str(row["cue"]), "cls": int(name in assoc),
                   "json": json.dumps({"instance": i, "candidate": name})}


def export_winogavil(rows: Iterable[Mapping[str, Any]], out_dir: str | Path, shard_size: int = 2000) -> int:
    """Write ``rows`` as the ``misc/winogavil`` task folder; returns the number of candidate samples.

    Written beside ``out_dir`` and renamed into place: a bad row leaves no half-written task."""
    import shutil

    from evals.export import write_wds_task

    out = Path(out_dir)
    if out.exists():
        raise HarnessError(f"{out} exists: remove it to export WinoGAViL again")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        n = write_wds_task(tmp, candidate_samples(rows), dataset_type="winogavil", shard_size=shard_size)
        if n == 0:
            raise HarnessError("no WinoGAViL rows to export")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(out)
    return n


def export_from_hub(data_dir: str | Path, split: str = "test") -> int:
    """Fetch nlphuji/winogavil with `datasets` (as DataComp does) and write ``data_dir/winogavil``."""
    try:
        import datasets
    except ImportError:
        raise HarnessError("exporting WinoGAViL needs the `datasets` package: pip install datasets") from None
    rows = datasets.load_dataset("nlphuji/winogavil", trust_remote_code=True)[split]
    return export_winogavil(rows, Path(data_dir) / "winogavil")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m evals.winogavil DATA_DIR")
    print(f"wrote {export_from_hub(sys.argv[1])} candidate images to {Path(sys.argv[1]) / 'winogavil'}")
