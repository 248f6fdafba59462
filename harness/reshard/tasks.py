"""The resharder's per-shard work: pure top-level functions over JSON-able task dicts.

``index_shard`` reads one input shard's tar headers and json members and says which samples the
subset selects; ``write_shard`` writes one planned output shard from raw byte ranges. Both run
under any engine (in-process, process pool, Ray) and both leave a record in the work directory,
so a killed run resumes from what is on disk.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import queue
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.reshard import tarscan
from harness.core.errors import HarnessError
from harness.pool.format import SHARD_PATTERN, write_stats
from harness.pool.uids import UID_DTYPE, pair_keys

# every kind of bad input the resharder counts (manifest ``bad_input``), and what it means
BAD_KINDS = {
    "truncated_tar": "tar ends inside a member or lacks its end-of-archive blocks (the cut sample is dropped)",
    "corrupt_header": "tar header fails its checksum (rest of the shard and the sample before it skipped)",
    "non_regular_member": "member is a directory, link, device or other non-file (skipped)",
    "unsafe_member_name": "member name is absolute or contains '..' (skipped)",
    "member_without_key": "member name is not <key>.<extension> (skipped)",
    "missing_json": "sample has no .json member, so no uid (skipped)",
    "json_unparsable": "sample's .json does not parse (skipped)",
    "json_missing_uid": "sample's .json has no 'uid' (skipped)",
    "bad_uid": "sample's uid is not 32 lower-case hex characters (skipped)",
    "duplicate_uid": "uid seen in an earlier sample or shard (written once, from the first)",
    "stats_missing": "input shard has no _stats.json",
    "stats_mismatch": "_stats.json 'successes' disagrees with the samples in the tar",
    "blur_metadata_missing": "blur=true but the metadata has no row for a selected uid (written unblurred)",
}
EXAMPLES_PER_KIND = 5
IMAGE_EXTS = frozenset(("jpg", "jpeg", "png", "webp"))
FLUSH_BYTES = 1 << 20  # small enough that a buffer is still in cache when written and hashed
MAX_OPEN_INPUTS = 256
STALL_ENV = "HARNESS_RESHARD_STALL"
_UID = re.compile(r"[0-9a-f]{32}")
_ZEROS = bytes(tarscan.BLOCK)


def new_bad() -> dict[str, Any]:
    return {"counts": {}, "examples": {}}


def note(bad: dict[str, Any], kind: str, where: str) -> None:
    """Count one bad input of ``kind``; keep the first few places for the report."""
    bad["counts"][kind] = bad["counts"].get(kind, 0) + 1
    examples = bad["examples"].setdefault(kind, [])
    if len(examples) < EXAMPLES_PER_KIND:
        examples.append(where)


@contextmanager
def mapped(path: str | Path) -> Iterator[Any]:
    """Read-only map of a file (``b""`` when empty): pages are read only where we look.

    The descriptor is closed at once (the map stays valid), so a shuffled output shard that
    draws from thousands of inputs holds no thousands of open files.
    """
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(fh.fileno()).st_size else None
    if mm is None:
        yield b""
        return
    with mm:
        yield mm


def write_json_atomic(path: Path, doc: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True))
    tmp.replace(path)


def _test_stall(stage: str, index: int, work: str) -> None:
    """Test hook: ``HARNESS_RESHARD_STALL=<stage>:<index>`` parks that task so a test can SIGKILL it."""
    if os.environ.get(STALL_ENV) == f"{stage}:{index}":
        (Path(work) / f"stalled-{stage}-{index}").touch()
        time.sleep(3600)


def _member_key(name: str, typ: int, shard: str, bad: dict) -> tuple[str | None, str]:
    """Key and extension of an unusual member (not a plain ``key.ext`` file); bad ones are counted."""
    if typ not in tarscan.REGULAR:
        note(bad, "non_regular_member", f"{shard}: {name} (type {chr(typ)!r})")
    elif name.startswith("/") or ".." in name.split("/"):
        note(bad, "unsafe_member_name", f"{shard}: {name}")
    else:
        key, ext = split_name(name)
        if key is not None:
            return key, ext
        note(bad, "member_without_key", f"{shard}: {name}")
    return None, ""


def group_samples(members: list[tarscan.Member], shard: str, bad: dict) -> list[tuple[str, list]]:
    """Group consecutive members by key as WebDataset does: ``dir/key.ext`` → (key, [(ext, offset, size)])."""
    samples: list[tuple[str, list]] = []
    current, group, regular = None, None, tarscan.REGULAR
    for name, typ, offset, size in members:
        dot = name.find(".")
        if dot > 0 and typ in regular and "/" not in name and ".." not in name:  # the usual key.ext
            key, ext = name[:dot], name[dot + 1:]
        else:
            key, ext = _member_key(name, typ, shard, bad)
            if key is None:
                continue
        if key != current:
            group = []
            samples.append((key, group))
            current = key
        group.append((ext, offset, size))
    return samples


def split_name(name: str) -> tuple[str | None, str]:
    """WebDataset's split of a member name: key = path up to the first dot of the file name."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    return (name[:dot], name[dot + 1:]) if dot > slash else (None, "")


def sample_uids(samples: list[tuple[str, list]], buf: Any, shard: str, bad: dict) -> tuple[list[str], list[list]]:
    """The uid of each sample from its json member; samples without a valid one are counted and dropped."""
    uids, kept = [], []
    for key, members in samples:
        js = None
        for m in members:
            if m[0].lower() == "json":
                js = m
                break
        if js is None:
            note(bad, "missing_json", f"{shard}: {key}")
            continue
        try:
            doc = json.loads(buf[js[1]:js[1] + js[2]])
        except (ValueError, RecursionError):
            note(bad, "json_unparsable", f"{shard}: {key}.{js[0]}")
            continue
        uid = doc.get("uid") if isinstance(doc, dict) else None
        if uid is None:
            note(bad, "json_missing_uid", f"{shard}: {key}.{js[0]}")
        elif not isinstance(uid, str) or not _UID.fullmatch(uid):
            note(bad, "bad_uid", f"{shard}: {key}.{js[0]}: {uid!r}")
        else:
            uids.append(uid)
            kept.append(members)
    return uids, kept


def check_stats(stats: Path, n_samples: int, shard: str, bad: dict) -> None:
    """Compare the shard's ``_stats.json`` ``successes`` with what the tar holds."""
    if not stats.is_file():
        note(bad, "stats_missing", f"{shard}: {stats.name} not found")
        return
    try:
        successes = int(json.loads(stats.read_text())["successes"])
    except (ValueError, KeyError, TypeError) as exc:
        note(bad, "stats_mismatch", f"{shard}: {stats.name} unreadable ({type(exc).__name__})")
        return
    if successes != n_samples:
        note(bad, "stats_mismatch", f"{shard}: {stats.name} says {successes} samples, tar has {n_samples}")


def uid_pairs(uids: list[str]) -> np.ndarray:
    """Validated hex uids → ``u8,u8`` pairs, without Arrow (whose first list conversion imports pandas)."""
    raw = np.frombuffer(bytes.fromhex("".join(uids)), dtype=">u8").reshape(-1, 2)
    pairs = np.empty(len(uids), UID_DTYPE)
    pairs["f0"], pairs["f1"] = raw[:, 0], raw[:, 1]
    return pairs


def selected(pairs: np.ndarray, subset_keys: str) -> np.ndarray:
    """Membership in the subset by binary search in its sorted 16-byte keys, memory-mapped."""
    keys = np.load(subset_keys, mmap_mode="r", allow_pickle=False)
    if len(keys) == 0 or len(pairs) == 0:
        return np.zeros(len(pairs), bool)
    probe = pair_keys(pairs)
    pos = np.searchsorted(keys, probe)
    pos[pos == len(keys)] = 0
    return np.asarray(keys[pos]) == probe


def index_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Index one input shard: its samples, their uids, the ones the subset selects, its bad inputs.

    Reads tar headers and json members only. The JSON-able result is also written to
    ``task["cache"]`` so that a resumed run skips this shard.
    """
    path = Path(task["path"])
    shard, bad = path.name, new_bad()
    with mapped(path) as buf:
        members, end = tarscan.scan(buf)
        if end.problem:
            note(bad, end.problem, f"{shard}: {end.detail}")
        samples = group_samples(members, shard, bad)
        if end.problem and samples and (end.cut is None or split_name(end.cut)[0] == samples[-1][0]):
            samples.pop()  # it may have lost members past the damage
        _test_stall("index", task["position"], task["work"])
        uids, kept = sample_uids(samples, buf, shard, bad)
    check_stats(Path(task["stats"]), len(samples), shard, bad)
    keep = np.flatnonzero(selected(uid_pairs(uids), task["subset_keys"]))
    result = {"shard": shard, "n_samples": len(samples), "n_with_uid": len(uids),
              "uids": [uids[i] for i in keep], "members": [kept[i] for i in keep], **bad}
    write_json_atomic(Path(task["cache"]), result)
    return result


def uids_digest(uids: list[str]) -> str:
    """Identity of an output shard's planned content: its uids in order."""
    return hashlib.sha256("\n".join(uids).encode()).hexdigest()


def check_written(path: Path, names: list[str]) -> None:
    """Read a written shard's headers back: a complete archive holding exactly ``names`` in order."""
    with mapped(path) as buf:
        members, end = tarscan.scan(buf)
    found = [name for name, typ, _, _ in members if typ in tarscan.REGULAR]
    if end.problem or found != names or len(found) != len(members):
        raise HarnessError(f"{path}: written shard does not read back as planned "
                           f"({end.problem or 'member list differs'}); rerun to rewrite it")


class _HashingWriter:
    """Fills fixed buffers (input bytes land in place through ``preadv``); full buffers go to a
    writer thread, then to a hashing thread. write and sha256 release the GIL, so copying,
    writing and hashing overlap: a lone last output shard still keeps two cores busy.
    """

    def __init__(self, fh: Any, buffer_bytes: int = FLUSH_BYTES, n_buffers: int = 4) -> None:
        self.sha, self.error, self.total, self.n_buffers = hashlib.sha256(), None, 0, n_buffers
        self.free: queue.Queue = queue.Queue()
        self.full: queue.Queue = queue.Queue()
        self.written: queue.Queue = queue.Queue()
        for _ in range(n_buffers):
            self.free.put(bytearray(buffer_bytes))
        self.buf = self.free.get()
        self.view, self.pos, self.cap = memoryview(self.buf), 0, buffer_bytes
        self.threads = [threading.Thread(target=self._stage, args=(self.full, self.written, fh.write), daemon=True),
                        threading.Thread(target=self._stage, args=(self.written, self.free, self.sha.update),
                                         daemon=True)]
        for t in self.threads:
            t.start()

    def _stage(self, inbox: queue.Queue, outbox: queue.Queue, step: Any) -> None:
        """Apply ``step`` to each full buffer, in order, and pass it on; None ends the stage."""
        while (item := inbox.get()) is not None:
            if self.error is None:
                try:
                    with memoryview(item[0])[:item[1]] as data:
                        step(data)
                except BaseException as exc:  # handed to the caller in close()
                    self.error = exc
            outbox.put(item[0] if outbox is self.free else item)
        if outbox is not self.free:
            outbox.put(None)

    def _rotate(self) -> None:
        self.view.release()
        self.full.put((self.buf, self.pos))
        self.buf = self.free.get()
        self.view, self.pos = memoryview(self.buf), 0

    def put(self, data: bytes) -> None:
        """Append bytes we made (headers, padding, blurred images)."""
        end = self.pos + len(data)
        self.total += len(data)
        if end < self.cap:  # the common case: it fits
            self.view[self.pos:end] = data
            self.pos = end
            return
        done = 0
        while done < len(data):
            n = min(len(self.buf) - self.pos, len(data) - done)
            self.view[self.pos:self.pos + n] = data[done:done + n]
            self.pos, done = self.pos + n, done + n
            if self.pos == len(self.buf):
                self._rotate()

    def copy(self, fd: int, offset: int, size: int, where: str) -> None:
        """Append ``size`` bytes of an input file from ``offset``, read straight into the buffer."""
        self.total += size
        end = self.pos + size
        if end < self.cap:  # the common case: it fits
            if os.preadv(fd, [self.view[self.pos:end]], offset) != size:
                raise HarnessError(f"{where}: input shard changed while resharding (short read at byte {offset})")
            self.pos = end
            return
        while size:
            n = min(len(self.buf) - self.pos, size)
            got = os.preadv(fd, [self.view[self.pos:self.pos + n]], offset)
            if got != n:
                raise HarnessError(f"{where}: input shard changed while resharding (short read at byte {offset})")
            self.pos, offset, size = self.pos + n, offset + n, size - n
            if self.pos == len(self.buf):
                self._rotate()

    def settle(self) -> None:
        """Hand over the current buffer and wait until every full buffer is written and hashed."""
        self._rotate()
        while self.free.qsize() < self.n_buffers - 1:
            time.sleep(0.01)

    def close(self) -> str:
        """Write what is left, stop the threads, return the sha256 of everything written."""
        self._rotate()
        self.full.put(None)
        for t in self.threads:
            t.join()
        if self.error is not None:
            raise self.error
        return self.sha.hexdigest()


def _write_sample(out: _HashingWriter, fd: int, uid: str, members: list, boxes: list | None,
                  names: list[str], where: str) -> bool:
    """Append one sample's members under ``<uid>.<ext>`` headers; images are decoded only to blur."""
    blurred = False
    for ext, offset, size in members:
        if boxes and ext.lower() in IMAGE_EXTS:
            from harness.reshard.blur import blur_faces

            data = blur_faces(os.pread(fd, size, offset), boxes)
            ext, blurred, size = "webp", True, len(data)
        else:
            data = None
        name = f"{uid}.{ext}"
        names.append(name)
        out.put(tarscan.member_header(name, size))
        if data is None:
            out.copy(fd, offset, size, where)
        else:
            out.put(data)
        if size % 512:
            out.put(_ZEROS[:512 - size % 512])
    return blurred


def _close_all(fds: dict[int, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


def write_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Write one planned output shard, read it back, rename it into place, and record it as done.

    Members are copied as raw byte ranges under deterministic ``<uid>.<ext>`` headers with large
    buffered writes; the sha256 is computed on the way. The done record, written last, is what a
    resumed run trusts.
    """
    out, index, samples = Path(task["out_dir"]), task["index"], task["samples"]
    name, boxes = SHARD_PATTERN.format(index), task.get("boxes") or {}
    tmp = out / f".{name}.tmp"
    stall_at = len(samples) // 2 if os.environ.get(STALL_ENV) == f"write:{index}" else -1
    names: list[str] = []
    n_blurred = 0
    fds: dict[int, int] = {}
    try:
        with open(tmp, "wb", buffering=0) as fh:
            writer = _HashingWriter(fh)
            for k, (src, uid, members) in enumerate(samples):
                if k == stall_at:
                    writer.settle()  # the first half on disk, under the temporary name
                    _test_stall("write", index, task["work"])
                if src not in fds:
                    if len(fds) >= MAX_OPEN_INPUTS:  # a shuffled shard draws from every input
                        _close_all(fds)
                    fds[src] = os.open(task["inputs"][src], os.O_RDONLY)
                path = task["inputs"][src]
                n_blurred += _write_sample(writer, fds[src], uid, members, boxes.get(uid), names, path)
            writer.put(tarscan.end_of_archive(writer.total))
            sha = writer.close()
            written = fh.tell()
    finally:
        _close_all(fds)
    check_written(tmp, names)
    tmp.replace(out / name)
    write_stats(out, index, len(samples))
    record = {"index": index, "name": name, "n_samples": len(samples), "sha256": sha,
              "size": written, "uids_sha256": uids_digest([s[1] for s in samples]), "blurred": n_blurred}
    write_json_atomic(Path(task["work"]) / "done" / f"{index:08d}.json", record)
    return record
