"""Deterministic WebDataset tars and image/npz encoding.

Tar headers carry fixed mtime/uid/gid/owner names and members are written in sample order, so
the same samples give the same bytes. NumPy's ``savez`` stamps the current time into the zip
headers; ``write_npz`` writes the same .npz format with a fixed timestamp.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
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


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed .npz (what ``np.load`` reads) with fixed zip timestamps, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    tmp.replace(path)
