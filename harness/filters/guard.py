"""The guard that participants' filter code runs under (import, ``prepare`` and batches, all in a
worker process): it refuses opening the world's hidden ground truth and the eval data, and any
write under ``pool_dir``, with an error that names the file. Refusals are also recorded, so a
plugin that catches the error still gets no subset.

How: a Python audit hook (``sys.addaudithook``) on ``open`` (also numpy's and pandas' opens),
``os.open``-style events, directory listings, copies and program starts; plus wrappers around
pyarrow's path-taking readers, whose C++ file system opens files without passing through Python.
What it cannot see (native code that opens files itself, code that edits this module) is listed
in docs/reliability.md, with how the truth is still kept out of reach there.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from harness.pool.format import GROUND_TRUTH, TRUTH_KEY, truth_file


# Audit events that change the file system, and which of their arguments are paths.
WRITE_EVENTS = {"os.rename": (0, 1), "os.replace": (0, 1), "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,),
                "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.link": (0, 1), "os.symlink": (1,),
                "os.utime": (0,), "shutil.rmtree": (0,), "shutil.move": (0, 1), "shutil.copyfile": (1,)}
# Events that read or name what is inside a path (argument indices).
READ_EVENTS = {"os.listdir": (0,), "os.scandir": (0,), "glob.glob": (0,), "os.chdir": (0,), "shutil.copyfile": (0,),
               "shutil.copytree": (0,), "shutil.move": (0,), "os.link": (0,), "os.chmod": (0,), "os.rename": (0,),
               "os.replace": (0,), "os.truncate": (0,), "os.chown": (0,), "os.utime": (0,)}
# Starting a program leaves the guard behind (the child runs without the hook).
SPAWN_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen", "pty.spawn")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# pyarrow readers that take a path and open it in C++ (module → names); ParquetFile is a class.
PYARROW_READERS = {"pyarrow.parquet": ("read_table", "read_schema", "read_metadata", "read_pandas"),
                   "pyarrow.dataset": ("dataset", "parquet_dataset"),
                   "pyarrow": ("memory_map", "input_stream", "create_memory_map"),
                   "pyarrow.feather": ("read_table", "read_feather"), "pyarrow.csv": ("read_csv", "open_csv"),
                   "pyarrow.json": ("read_json",), "pyarrow.ipc": ("open_file", "open_stream"),
                   "pyarrow.orc": ("read_table",)}
PATH_KWARGS = ("source", "path", "path_or_paths", "where", "input_file", "file", "filename")


class Sealed(NamedTuple):
    """What one guarded block protects: real paths that may not be opened, and the read-only root."""

    sealed: tuple[str, ...]
    read_only: str = ""


_ACTIVE: list[Sealed] = []  # the guards in force in this process (innermost last)
_REFUSED: list[str] = []  # refusals since the last `refusals()` call: a caught error still fails the run
_HOOKED: list[Callable] = []  # audit hooks cannot be removed: install once per process


def sealed_paths(pool_root: str | Path, meta: dict | None = None) -> tuple[str, ...]:
    """Real paths participant code may not open: the truth file, its folder and the eval suite."""
    root = Path(pool_root)
    meta = meta if meta is not None else (json.loads((root / "pool.json").read_text())
                                          if (root / "pool.json").is_file() else {})
    out: list[Path] = [root / GROUND_TRUTH]  # the legacy place, whether or not a file is there
    truth = truth_file(root, meta)
    if truth is not None:
        out += [truth, truth.parent]
    rec = meta.get(TRUTH_KEY) if isinstance(meta, dict) else None
    if isinstance(rec, dict) and rec.get("eval_dir"):
        out.append(root / rec["eval_dir"])
    real = {os.path.realpath(p) for p in out}
    return tuple(sorted(p for p in real if p != os.path.realpath(root)))


def _under(path: Any, roots: tuple[str, ...]) -> str | None:
    if isinstance(path, int) or path is None or not roots:
        return None
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return None
    return next((r for r in roots if real == r or real.startswith(r + os.sep)), None)


def _refuse(message: str) -> None:
    _REFUSED.append(message)
    raise PermissionError(message)


def _check_read(event: str, path: Any, guard: Sealed) -> None:
    if _under(path, guard.sealed):
        _refuse(f"participant filters may not open {os.fsdecode(path)}: it is the world's hidden ground truth "
                f"or eval data (refused by the harness guard: {event})")


def _check_write(event: str, path: Any, guard: Sealed) -> None:
    root = _under(path, (guard.read_only,) if guard.read_only else ())
    if root:
        _refuse(f"pool_dir {root} is read-only for filters ({event} {os.fsdecode(path)})")


def _hook(event: str, args: tuple) -> None:
    """Audit hook: refuse reads of sealed paths, writes under pool_dir, program starts."""
    if not _ACTIVE:
        return
    guard = _ACTIVE[-1]
    if event == "open":
        path, mode, flags = args
        _check_read(event, path, guard)
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
        if writes:
            _check_write(event, path, guard)
        return
    if event.startswith(SPAWN_EVENTS) and guard.sealed:
        _refuse(f"participant filters may not start programs ({event}): a program runs outside the harness guard")
    for i in READ_EVENTS.get(event, ()):
        if i < len(args):
            _check_read(event, args[i], guard)
    for i in WRITE_EVENTS.get(event, ()):
        if i < len(args):
            _check_write(event, args[i], guard)


def _paths_of(args: tuple, kwargs: dict) -> list[Any]:
    first = list(args[:1])
    given = first + [kwargs[k] for k in PATH_KWARGS if k in kwargs]
    flat: list[Any] = []
    for g in given:
        flat.extend(g if isinstance(g, (list, tuple)) else [g])
    return [p for p in flat if isinstance(p, (str, bytes, os.PathLike))]


def _checked(fn: Callable, name: str, method: bool = False) -> Callable:
    if getattr(fn, "__harness_guarded__", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _ACTIVE:
            for p in _paths_of(args[1:] if method else args, kwargs):
                _check_read(name, p, _ACTIVE[-1])
        return fn(*args, **kwargs)

    wrapper.__harness_guarded__ = True  # type: ignore[attr-defined]
    return wrapper


def _wrap_pyarrow() -> None:
    """Route pyarrow's path-taking readers through the guard (their C++ opens bypass the hook)."""
    import importlib

    for mod_name, names in PYARROW_READERS.items():
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        for name in names:
            if callable(getattr(mod, name, None)):
                setattr(mod, name, _checked(getattr(mod, name), f"{mod_name}.{name}"))
    import pyarrow.parquet as pq

    init = pq.ParquetFile.__init__
    if not getattr(init, "__harness_guarded__", False):
        pq.ParquetFile.__init__ = _checked(init, "pyarrow.parquet.ParquetFile", method=True)
        pq.ParquetDataset.__init__ = _checked(pq.ParquetDataset.__init__, "pyarrow.parquet.ParquetDataset",
                                             method=True)


@contextmanager
def guarded(guard: Sealed) -> Iterator[None]:
    """Run the block under ``guard`` in this process (the hook is installed once, never removed)."""
    if not _HOOKED:
        sys.addaudithook(_hook)
        _HOOKED.append(_hook)
    if guard.sealed:
        _wrap_pyarrow()
    _ACTIVE.append(Sealed(tuple(guard.sealed), guard.read_only))
    try:
        yield
    finally:
        _ACTIVE.pop()


def refusals() -> list[str]:
    """The refusals recorded in this process since the last call (and forget them)."""
    out = list(_REFUSED)
    _REFUSED.clear()
    return out
