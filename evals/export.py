"""Writing a task folder in the CLIP_benchmark WebDataset layout (what ``evals.data`` reads).

Used to package new eval sets (the tiny world's, a user's own) so they go through the same
reader as DataComp's downloads: ``test/{i}.tar`` shards of ``shard_size`` samples,
``test/nshards.txt``, and the text files of the task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping


def write_wds_task(out_dir: str | Path, samples: Iterable[Mapping[str, object]], classnames: list[str] | None = None,
                   templates: list[str] | None = None, dataset_type: str | None = None, shard_size: int = 1000) -> int:
    """Write ``samples`` (dicts of extension -> bytes/str/int, e.g. ``{"webp": b"...", "cls": 3}``)
    as shards; returns the number of samples. Keys are the running index, zero-padded."""
    import webdataset as wds

    out = Path(out_dir)
    (out / "test").mkdir(parents=True, exist_ok=True)
    n, writer, shard = 0, None, -1
    for sample in samples:
        if n % shard_size == 0:
            if writer is not None:
                writer.close()
            shard += 1
            writer = wds.TarWriter(str(out / "test" / f"{shard}.tar"))
        record = {"__key__": f"s{n:07d}"}
        for ext, value in sample.items():
            record[ext] = str(value).encode() if isinstance(value, (int, str)) else value
        writer.write(record)
        n += 1
    if writer is not None:
        writer.close()
    (out / "test" / "nshards.txt").write_text(f"{shard + 1}\n")
    if classnames is not None:
        (out / "classnames.txt").write_text("\n".join(classnames) + "\n")
    if templates is not None:
        (out / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
    if dataset_type is not None:
        (out / "dataset_type.txt").write_text(dataset_type + "\n")
    return n
