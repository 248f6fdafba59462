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
REGULAR = frozenset((b"0", b"\0", b"7"))  # regular, old-style regular, contiguous


class Member(NamedTuple):
    name: str
    type: bytes  # the typeflag byte, e.g. b"0"; pax/GNU long-name records are folded in
    offset: int  # first byte of the member's data
    size: int


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


def bad_checksums(buf, positions: list[int]) -> np.ndarray:
    """Indices of the headers at ``positions`` whose stored checksum is wrong (vectorised).

    The stored octal field is parsed digit by digit; the sum treats the field as 8 spaces.
    Both unsigned and signed byte sums are accepted, as tarfile does.
    """
    if not positions:
        return np.zeros(0, np.intp)
    pos = np.asarray(positions, np.int64)
    base = int(pos[0]) % BLOCK  # headers sit on 512-byte blocks counted from the archive start
    arr = np.frombuffer(buf, np.uint8, (len(buf) - base) // BLOCK * BLOCK, base).reshape(-1, BLOCK)
    hdrs = arr[(pos - base) // BLOCK]
    field = hdrs[:, 148:156]
    stored = np.zeros(len(hdrs), np.int64)
    for j in range(8):
        digit = field[:, j].astype(np.int64) - 48
        ok = (digit >= 0) & (digit <= 7)
        stored = np.where(ok, stored * 8 + digit, stored)
    rest = hdrs.sum(axis=1, dtype=np.int64) - field.sum(axis=1, dtype=np.int64) + 8 * 32
    signed = rest - 256 * (hdrs > 127).sum(axis=1) + 256 * (field > 127).sum(axis=1)
    del arr, hdrs
    return np.flatnonzero((stored != rest) & (stored != signed))


def _member_name(hdr: bytes, long_name: bytes | None, pax: dict[bytes, bytes]) -> str:
    """A member's full name: pax path, else GNU long name, else ustar prefix + name."""
    name = pax.get(b"path") or long_name
    if name is None:
        name = hdr[:100].split(b"\0", 1)[0]
        if hdr[345] and hdr[257:263] == b"ustar\0":
            name = hdr[345:500].split(b"\0", 1)[0] + b"/" + name
    return name.decode("utf-8", "replace")


def _walk(buf, pos: int) -> tuple[list[Member], list[int], ScanEnd]:
    """The header walk proper: members, every header's position, and how the walk ended."""
    members: list[Member] = []
    positions: list[int] = []
    total = len(buf)
    long_name: bytes | None = None
    pax: dict[bytes, bytes] = {}
    while True:
        if pos + BLOCK > total:
            why = "no end-of-archive marker" if pos == total else "archive ends inside a header"
            return members, positions, ScanEnd("truncated_tar", why, pos)
        hdr = buf[pos:pos + BLOCK]
        if hdr == ZERO_BLOCK:
            return members, positions, ScanEnd(None, "", pos)
        positions.append(pos)
        try:
            size = int(hdr[124:135], 8) if hdr[135] in (0, 32) else -1  # the common "%011o\\0"
        except ValueError:
            size = -1
        try:
            if size < 0 or pax:
                size = int(pax[b"size"]) if b"size" in pax else _size(hdr[124:136])
        except ValueError:
            size = -1
        if size < 0:
            return members, positions, ScanEnd("corrupt_header", f"unreadable size field at byte {pos}", pos)
        typ, data = hdr[156:157], pos + BLOCK
        name = None if typ in _META else _member_name(hdr, long_name, pax)
        if data + size > total:
            return members, positions, ScanEnd("truncated_tar", f"member data at byte {data} needs {size} "
                                               f"bytes, {total - data} left", pos, name)
        pos = data + (size + BLOCK - 1) // BLOCK * BLOCK
        if name is None:
            if typ == b"x":
                try:
                    pax = _pax_records(bytes(buf[data:data + size]))
                except ValueError:
                    return members, positions, ScanEnd("corrupt_header", f"unreadable pax header at byte {data}",
                                                       data)
            elif typ == b"L":
                long_name = bytes(buf[data:data + size]).split(b"\0", 1)[0]
            continue
        members.append(Member(name, typ, data, size))
        if long_name is not None or pax:
            long_name, pax = None, {}


_META = frozenset((b"x", b"g", b"L", b"K"))


def scan(buf, start: int = 0) -> tuple[list[Member], ScanEnd]:
    """Walk the member headers of ``buf`` (bytes or mmap) without touching member data.

    Returns the members found and how the walk ended: ``truncated_tar`` when a header or a
    member's data runs past the end (or the end-of-archive blocks are absent), ``corrupt_header``
    when a header fails its checksum. Members before the problem are returned.
    """
    members, positions, end = _walk(buf, start)
    bad = bad_checksums(buf, positions)
    if bad.size:
        first = positions[int(bad[0])]
        members = [m for m in members if m.offset <= first]
        end = ScanEnd("corrupt_header", f"bad header checksum at byte {first}", first)
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
