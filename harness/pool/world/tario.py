"""Deterministic WebDataset tars and image/npz encoding.

Tar headers carry fixed mtime/uid/gid/owner names and members are written in sample order, so
the same samples give the same bytes.
(Deterministic npz files: ``harness.pool.format.write_npz``.)
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Iterable

import numpy as np

IMAGE_OPTIONS = {"jpg": {"format": "JPEG", "quality": 92}, "png": {"format": "PNG", "compress_level": 6},
                 "webp": {"format": "WEBP", "lossless": True}}


def encode_image(arr: np.ndarray, ext: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, **IMAGE_OPTIONS[ext])
    return buf.getvalue()


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar(path: Path, samples: Iterable[tuple[str, dict[str, bytes]]]) -> int:
    """Write ``(key, {ext: bytes})`` samples as a WebDataset tar (members ``key.ext``, in order).

    Written under a temporary name and renamed, so a tar that exists is complete.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    n = 0
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, data in members.items():
                tar.addfile(_member(f"{key}.{ext}", len(data)), io.BytesIO(data))
            n += 1
    tmp.replace(path)
    return n
