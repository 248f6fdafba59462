"""Raw tar bytes: walk member headers of a buffer and write deterministic ustar headers.

The resharder never needs a member's bytes except the small json ones, so it walks the 512-byte
headers itself (``tarfile`` builds a TarInfo object per member and reads every byte of a stream)
and copies selected members as byte ranges under headers it writes itself: fixed mode, owner
and mtime, so equal inputs give byte-identical shards.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

BLOCK = 512
RECORD = 20 * BLOCK  # tarfile pads archives to this; readers accept either
ZERO_BLOCK = bytes(BLOCK)
REGULAR = frozenset(b"0\x007")  # typeflags of regular files: "0", NUL (old style), "7" (contiguous)


# a member as scan() returns it: (name, typeflag byte e.g. ord("0"), offset of its data, size);
# pax / GNU long-name records are folded into the name
Member = tuple[str, int, int, int]


class ScanEnd(NamedTuple):
    """How a walk ended: ``problem`` is None for a proper end-of-archive, else a kind + detail.

    ``cut`` names the member whose data was cut off when its header was still readable.
    """

    problem: str | None
    detail: str
    offset: int
    cut: str | None = None


def _size(field: bytes) -> int:
    """Octal (NUL/space terminated) or GNU base-256 size field."""
    if field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * (len(field) - 1))) if field[0] == 0xFF else value
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """Parse ``"<len> key=value\\n"`` records of a pax extended header."""
    out, pos = {}, 0
    while pos < len(data) and data[pos:pos + 1] not in (b"\0", b""):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1: pos + length - 1].partition(b"=")
        out[key] = value
        pos += length
    return out


def _headers(buf, positions: list[int]) -> np.ndarray:
    """The header blocks at ``positions`` as an (n, 512) uint8 array (one gather, no copies per header)."""
    if not positions:
        return np.zeros((0, BLOCK), np.uint8)
    pos = np.asarray(positions, np.int64)
    base = int(pos[0]) % BLOCK  # headers sit on 512-byte blocks counted from the archive start
    blocks = np.frombuffer(buf, np.uint8, (len(buf) - base) // BLOCK * BLOCK, base).reshape(-1, BLOCK)
    out = blocks[(pos - base) // BLOCK]
    del blocks
    return out


def bad_checksums(hdrs: np.ndarray) -> np.ndarray:
    """Indices of headers whose stored checksum is wrong (vectorised).

    The stored octal field is parsed digit by digit; the sum treats the field as 8 spaces.
    Both unsigned and signed byte sums are accepted, as tarfile does.
    """
    field = hdrs[:, 148:156]
    stored = np.zeros(len(hdrs), np.int64)
    for j in range(8):
        digit = field[:, j].astype(np.int64) - 48
        stored = np.where((digit >= 0) & (digit <= 7), stored * 8 + digit, stored)
    rest = hdrs.sum(axis=1, dtype=np.int64) - field.sum(axis=1, dtype=np.int64) + 8 * 32
    signed = rest - 256 * (hdrs > 127).sum(axis=1) + 256 * (field > 127).sum(axis=1)
    return np.flatnonzero((stored != rest) & (stored != signed))


def _member_name(hdr: bytes, long_name: bytes | None, pax: dict[bytes, bytes]) -> str:
    """A member's full name: pax path, else GNU long name, else ustar prefix + name."""
    name = pax.get(b"path") or long_name
    if name is None:
        name = hdr[:100].split(b"\0", 1)[0]
        if hdr[345] and hdr[257:263] == b"ustar\0":
            name = hdr[345:500].split(b"\0", 1)[0] + b"/" + name
    return name.decode("utf-8", "replace")


class _Walk(NamedTuple):
    positions: list[int]  # every header, extended-header records included
    sizes: list[int]
    types: list[int]
    names: dict[int, str]  # header index → name given by a preceding pax / GNU long-name record
    end: ScanEnd


def _walk(buf, pos: int) -> _Walk:
    """The header walk proper: per header only a few byte reads; names and checksums come later, vectorised."""
    positions: list[int] = []
    sizes: list[int] = []
    types: list[int] = []
    names: dict[int, str] = {}
    total = len(buf)
    long_name: bytes | None = None
    pax: dict[bytes, bytes] = {}
    while True:
        if pos + BLOCK > total:
            why = "no end-of-archive marker" if pos == total else "archive ends inside a header"
            return _Walk(positions, sizes, types, names, ScanEnd("truncated_tar", why, pos))
        if not buf[pos] and buf[pos:pos + BLOCK] == ZERO_BLOCK:
            return _Walk(positions, sizes, types, names, ScanEnd(None, "", pos))
        try:
            size = int(buf[pos + 124:pos + 135], 8) if buf[pos + 135] in (0, 32) and not pax else -1
        except ValueError:
            size = -1
        if size < 0:
            try:
                size = int(pax[b"size"]) if b"size" in pax else _size(buf[pos + 124:pos + 136])
            except ValueError:
                size = -1
        if size < 0:
            end = ScanEnd("corrupt_header", f"unreadable size field at byte {pos}", pos)
            return _Walk(positions, sizes, types, names, end)
        typ, data = buf[pos + 156], pos + BLOCK
        positions.append(pos)
        sizes.append(size)
        types.append(typ)
        if data + size > total:
            hdr = buf[pos:pos + BLOCK]
            if bad_checksums(np.frombuffer(hdr, np.uint8).reshape(1, BLOCK)).size:
                end = ScanEnd("corrupt_header", f"bad header checksum at byte {pos}", pos)
            else:
                cut = None if typ in _META else _member_name(hdr, long_name, pax)
                end = ScanEnd("truncated_tar", f"member data at byte {data} needs {size} bytes, "
                              f"{total - data} left", pos, cut)
            return _Walk(positions[:-1], sizes[:-1], types[:-1], names, end)
        if typ in _META:
            try:
                if typ == 120:  # "x": pax extended header for the next member
                    pax = _pax_records(bytes(buf[data:data + size]))
                elif typ == 76:  # "L": GNU long name for the next member
                    long_name = bytes(buf[data:data + size]).split(b"\0", 1)[0]
            except ValueError:
                end = ScanEnd("corrupt_header", f"unreadable pax header at byte {data}", data)
                return _Walk(positions, sizes, types, names, end)
        elif long_name is not None or pax:
            names[len(positions) - 1] = _member_name(buf[pos:pos + BLOCK], long_name, pax)
            long_name, pax = None, {}
        pos = data + (size + BLOCK - 1) // BLOCK * BLOCK


_META = frozenset(b"xgLK")


def _names(hdrs: np.ndarray, given: dict[int, str]) -> list[str]:
    """Member names from the header blocks: the name field, with the ustar prefix where there is one."""
    raw = np.ascontiguousarray(hdrs[:, :100]).view("S100").ravel().tolist()
    names = [n.decode("utf-8", "replace") if b"\0" not in n else n.split(b"\0", 1)[0].decode("utf-8", "replace")
             for n in raw]
    prefixed = np.flatnonzero((hdrs[:, 345] != 0) & (hdrs[:, 257:263] == np.frombuffer(b"ustar\0", np.uint8)).all(1))
    for i in prefixed.tolist():
        names[i] = _member_name(hdrs[i].tobytes(), None, {})
    for i, name in given.items():
        if i < len(names):  # records past a bad checksum were cut off
            names[i] = name
    return names


def scan(buf, start: int = 0) -> tuple[list[Member], ScanEnd]:
    """Walk the member headers of ``buf`` (bytes or mmap) without touching member data.

    Returns the members found, as (name, type, data offset, size), and how the walk ended: ``truncated_tar`` when a header or a
    member's data runs past the end (or the end-of-archive blocks are absent), ``corrupt_header``
    when a header fails its checksum. Members before the problem are returned.
    """
    walk = _walk(buf, start)
    positions, sizes, types, end = walk.positions, walk.sizes, walk.types, walk.end
    hdrs = _headers(buf, positions)
    bad = bad_checksums(hdrs)
    if bad.size:
        cut = int(bad[0])
        end = ScanEnd("corrupt_header", f"bad header checksum at byte {positions[cut]}", positions[cut])
        positions, sizes, types, hdrs = positions[:cut], sizes[:cut], types[:cut], hdrs[:cut]
    names = _names(hdrs, walk.names)
    members = list(zip(names, types, [p + BLOCK for p in positions], sizes))  # plain tuples: 30k per shard
    if _META.intersection(types):
        members = [m for m in members if m[1] not in _META]
    return members, end


def _field(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


# everything but name, size and checksum is fixed: mode 0444, owner 0, mtime 0, empty user names
_MID = _field(0o444, 8) + _field(0, 8) + _field(0, 8)
_MTIME = _field(0, 12)
_TAIL = bytes(100) + b"ustar\x0000" + bytes(64) + _field(0, 8) + _field(0, 8) + bytes(155 + 12)
_CONST_SUM = sum(_MID) + sum(_MTIME) + sum(_TAIL) + 8 * 32


def _header(name: bytes, size: int, typeflag: bytes = b"0") -> bytes:
    size_field = b"%011o\0" % size if size < 8 ** 11 else b"\x80" + size.to_bytes(11, "big")
    chk = _CONST_SUM + sum(name) + sum(size_field) + typeflag[0]
    return b"".join((name, bytes(100 - len(name)), _MID, size_field, _MTIME, b"%06o\0 " % chk, typeflag, _TAIL))


def member_header(name: str, size: int) -> bytes:
    """Header block(s) of a regular file: one ustar block, preceded by a pax block for long names."""
    raw = name.encode("utf-8")
    if len(raw) <= 100:
        return _header(raw, size)
    record = b" path=" + raw + b"\n"
    length = len(record) + 1
    while length != len(record) + len(str(length)):
        length = len(record) + len(str(length))
    body = str(length).encode() + record
    pax = _header(b"././@PaxHeader", len(body), b"x") + body + bytes(padding(len(body)))
    return pax + _header(raw[:100], size)


def padding(size: int) -> int:
    """Zero bytes that follow ``size`` bytes of member data."""
    return -size % BLOCK


def end_of_archive(written: int) -> bytes:
    """Two zero blocks, then zeros up to a full record (as tarfile writes it)."""
    end = written + 2 * BLOCK
    return bytes(2 * BLOCK + (-end % RECORD))
