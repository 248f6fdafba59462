"""Stage manifests: what went in (content hashes), config, counts, versions, wall time.

A stage is skipped on rerun when its manifest exists and its fingerprint (inputs + config)
is unchanged; it is refused when the output holds a different run unless overwrite is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from harness.core.errors import HarnessError

MANIFEST = "manifest.json"


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-able object with sorted keys: config and recipe fingerprints."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def input_identity(path: str | Path) -> str:
    """Content identity of an input: its manifest's fingerprint if it is a stage output, else sha256.

    A directory without a manifest is hashed file by file (names + contents).
    """
    path = Path(path)
    man = path / MANIFEST if path.is_dir() else None
    if man is not None and man.is_file():
        data = json.loads(man.read_text())
        return data.get("output_hash") or data["fingerprint"]
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode())
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    raise HarnessError(f"input not found: {path}")


def fingerprint(inputs: Mapping[str, str], config: Mapping[str, Any]) -> str:
    return sha256_json({"inputs": dict(inputs), "config": dict(config)})


def versions() -> dict[str, str]:
    """Versions of the harness and the libraries a result depends on (without importing torch)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("datacomp-harness", "numpy", "pyarrow", "torch", "open_clip_torch", "webdataset"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: corrupt manifest ({exc}); delete it or rerun with overwrite=true") from None


def write_manifest(out_dir: str | Path, stage: str, fp: str, inputs: Mapping[str, str], config: Mapping[str, Any],
                   **fields: Any) -> Path:
    """Write ``manifest.json`` atomically; written last, it marks the stage finished."""
    out_dir = Path(out_dir)
    doc = {"stage": stage, "fingerprint": fp, "inputs": dict(inputs), "config": dict(config),
           "versions": versions(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str))
    tmp.replace(out_dir / MANIFEST)
    return out_dir / MANIFEST


def stage_done(out_dir: str | Path, fp: str, overwrite: bool = False, what: str = "stage") -> bool:
    """True if ``out_dir`` holds a finished run with fingerprint ``fp`` (skip it).

    A finished run with another fingerprint is refused unless ``overwrite`` (then cleared).
    """
    out_dir = Path(out_dir)
    man = read_manifest(out_dir)
    if man is None:
        return False
    if man.get("fingerprint") == fp and not overwrite:
        return True
    if not overwrite:
        raise HarnessError(f"{out_dir} holds a finished {what} with other inputs/config "
                           f"(fingerprint {man.get('fingerprint', '?')[:12]} ≠ {fp[:12]}); "
                           "use another directory or overwrite=true to replace it")
    clear_dir(out_dir)
    return False


def clear_dir(path: str | Path) -> None:
    """Really delete a directory's contents (overwrite=true means it)."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(final: Path) -> None:
    """Delete ``.final.tmp-<pid>`` dirs left by killed processes (never one still running)."""
    for tmp in final.parent.glob(f".{final.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place only on success.

    A non-empty ``final`` is refused unless ``overwrite``; a crash leaves only ``.final.tmp-*``.
    """
    final = Path(final)
    if final.exists() and any(final.iterdir()):
        if not overwrite:
            raise HarnessError(f"{final} exists and is not empty; choose another directory or pass overwrite=true")
    final.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(final.parent, os.W_OK):
        raise HarnessError(f"cannot write to {final.parent}: permission denied")
    _remove_stale_temps(final)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
