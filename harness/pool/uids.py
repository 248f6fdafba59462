"""DataComp uids: 32 lower-case hex chars ⇄ the ``u8,u8`` pairs of subset files.

Everything is vectorised over Arrow/NumPy buffers: a 12.8M-row pool converts without
building one Python object per row.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.core.errors import HarnessError

UID_DTYPE = np.dtype("u8,u8")
HEX_CHARS = b"0123456789abcdef"

_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(HEX_CHARS, np.uint8)] = np.arange(16, dtype=np.uint8)
_HEX = np.frombuffer(HEX_CHARS, np.uint8)


def _describe(where: str | None, row: int, value: object) -> str:
    place = f"{where}, row {row}" if where else f"row {row}"
    return f"{place}: uid {value!r} is not 32 lower-case hex characters"


def hex_to_pairs(uids: pa.Array | pa.ChunkedArray | list[str] | np.ndarray, where: str | None = None) -> np.ndarray:
    """Convert hex uid strings to a ``u8,u8`` array (not sorted). ``where`` names the file in errors."""
    arr = uids if isinstance(uids, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(uids, dtype=object), pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], pa.string())
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    out = np.empty(n, dtype=UID_DTYPE)
    if n == 0:
        return out
    if arr.null_count:
        row = int(np.flatnonzero(np.asarray(arr.is_null()))[0])
        raise HarnessError(_describe(where, row, None))
    lengths = np.asarray(pc.utf8_length(arr))
    bad = np.flatnonzero(lengths != 32)
    if bad.size:
        raise HarnessError(_describe(where, int(bad[0]), arr[int(bad[0])].as_py()))
    offsets = np.frombuffer(arr.buffers()[1], np.int32, n + 1, arr.offset * 4)
    data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0]: offsets[-1]]
    nibbles = _NIBBLE[data].reshape(n, 32)
    bad_rows = np.flatnonzero((nibbles == 255).any(axis=1))
    if bad_rows.size:
        raise HarnessError(_describe(where, int(bad_rows[0]), arr[int(bad_rows[0])].as_py()))
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # 16 bytes per uid, big-endian halves
    halves = packed.view(">u8")
    out["f0"] = halves[:, 0]
    out["f1"] = halves[:, 1]
    return out


def pairs_to_hex(pairs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hex_to_pairs`: an array of 32-char ``str`` uids."""
    n = len(pairs)
    chars = np.empty((n, 32), np.uint8)
    for field, base in (("f0", 0), ("f1", 16)):
        v = pairs[field].astype(np.uint64)
        for c in range(16):
            shift = np.uint64(4 * (15 - c))
            chars[:, base + c] = _HEX[((v >> shift) & np.uint64(15)).astype(np.intp)]
    return chars.view("S32").ravel().astype("U32")


def pair_keys(pairs: np.ndarray) -> np.ndarray:
    """16-byte big-endian keys that sort like the (high, low) pairs: for searchsorted lookups."""
    keys = np.empty((len(pairs), 2), dtype=">u8")
    keys[:, 0] = pairs["f0"]
    keys[:, 1] = pairs["f1"]
    return keys.view("S16").ravel()


def is_strictly_sorted(pairs: np.ndarray) -> bool:
    """True when pairs are sorted and unique (the subset file invariant)."""
    if len(pairs) < 2:
        return True
    h, l = pairs["f0"], pairs["f1"]
    return bool(np.all((h[1:] > h[:-1]) | ((h[1:] == h[:-1]) & (l[1:] > l[:-1]))))


def sort_pairs(pairs: np.ndarray) -> np.ndarray:
    """Sort by (high, low): one argsort of the high words (ties between random 64-bit words are
    rare), a lexsort only when some high words repeat."""
    order = np.argsort(pairs["f0"])
    out = pairs[order]
    high = out["f0"]
    if len(out) > 1 and (high[1:] == high[:-1]).any():
        out = out[np.lexsort((out["f1"], out["f0"]))]
    return out


def duplicated(sorted_pairs: np.ndarray) -> np.ndarray:
    """Boolean mask of entries equal to their predecessor in a sorted array."""
    mask = np.zeros(len(sorted_pairs), bool)
    if len(sorted_pairs) > 1:
        mask[1:] = (sorted_pairs["f0"][1:] == sorted_pairs["f0"][:-1]) & (sorted_pairs["f1"][1:] == sorted_pairs["f1"][:-1])
    return mask


def isin(pairs: np.ndarray, sorted_subset: np.ndarray) -> np.ndarray:
    """Membership of each pair in a sorted unique subset, by binary search on 16-byte keys."""
    if len(sorted_subset) == 0:
        return np.zeros(len(pairs), bool)
    keys = pair_keys(sorted_subset)
    probe = pair_keys(pairs)
    pos = np.searchsorted(keys, probe)
    pos[pos == len(keys)] = 0
    return keys[pos] == probe


def validate_subset(arr: object, source: str = "subset") -> np.ndarray:
    """Check dtype/shape, sort with a warning, refuse duplicates. Returns the sorted array."""
    if not isinstance(arr, np.ndarray) or arr.dtype != UID_DTYPE or arr.ndim != 1:
        got = f"dtype {arr.dtype}, shape {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise HarnessError(f"{source}: expected a 1-d array of dtype np.dtype('u8,u8') (uid high/low 64 bits), got {got}")
    if is_strictly_sorted(arr):
        return arr
    arr = sort_pairs(arr)
    dup = duplicated(arr)
    if dup.any():
        examples = ", ".join(pairs_to_hex(arr[dup][:3]))
        raise HarnessError(f"{source}: {int(dup.sum())} duplicated uid(s), e.g. {examples}")
    warnings.warn(f"{source}: uids were not sorted; sorted them", stacklevel=2)
    return arr


def read_subset(path: str | Path) -> np.ndarray:
    """Read a DataComp subset ``.npy`` and return it validated and sorted."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"subset file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise HarnessError(f"{path}: not a readable .npy subset file ({exc})") from None
    return validate_subset(arr, str(path))


def write_subset(path: str | Path, pairs: np.ndarray) -> Path:
    """Write a sorted unique ``u8,u8`` subset atomically (DataComp's resharder reads it)."""
    path = Path(path)
    pairs = validate_subset(np.ascontiguousarray(pairs), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, pairs, allow_pickle=False)
    tmp.replace(path)
    return path
