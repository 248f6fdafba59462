"""``harness eval download data_dir=D [tasks=[...]]``: fetch eval sets from the Hub and verify them.

Each task's Hub repo (``djghosh/wds_*_test``, ``clip-benchmark/wds_*``) is mirrored with
huggingface_hub's ``snapshot_download`` into ``data_dir/<task dir>`` (only what the reader
needs: text files and ``test/``), then every file is checked against the Hub's listing: size,
and sha256 for LFS files or the git blob id for small ones. A file that fails is deleted, so a
rerun fetches it again; files that are already right are not downloaded twice.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.core.errors import HarnessError
from evals.config import EvalDownloadConfig

WANTED = ["classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt", "test/*"]
# Kinds with no Hub repo in the harness's layout: the command that writes their task folder.
EXPORTERS = {"winogavil": "`python -m evals.winogavil DATA_DIR` (reads nlphuji/winogavil with `datasets`)"}


def _digest(path: Path, algo: str, prefix: bytes = b"") -> str:
    h = hashlib.new(algo)
    h.update(prefix)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, size: int, sha256: str | None, blob_id: str | None) -> str | None:
    """None if ``path`` matches the Hub's record, else what is wrong."""
    if not path.is_file():
        return "missing"
    actual = path.stat().st_size
    if actual != size:
        return f"size {actual} != {size}"
    if sha256 is not None and _digest(path, "sha256") != sha256:
        return "sha256 mismatch"
    if sha256 is None and blob_id is not None and _digest(path, "sha1", f"blob {size}\0".encode()) != blob_id:
        return "git blob id mismatch"
    return None


def download_task(repo: str, dest: str | Path, revision: str = "main", workers: int = 4) -> dict:
    """Mirror ``repo``'s eval files into ``dest`` and verify them; returns counts."""
    from fnmatch import fnmatch

    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.hf_api import RepoFile

    from huggingface_hub.errors import HfHubHTTPError

    dest = Path(dest)
    try:
        tree = list(HfApi().list_repo_tree(repo, repo_type="dataset", revision=revision, recursive=True))
    except (HfHubHTTPError, OSError) as exc:
        raise HarnessError(f"cannot list hf://datasets/{repo}@{revision}: {str(exc).splitlines()[0]}") from None
    listing = [f for f in tree if isinstance(f, RepoFile) and any(fnmatch(f.path, p) for p in WANTED)]
    if not any(f.path == "test/nshards.txt" for f in listing):
        raise HarnessError(f"hf://datasets/{repo}@{revision} has no test/nshards.txt: not a CLIP_benchmark WebDataset repo")
    snapshot_download(repo, repo_type="dataset", revision=revision, local_dir=dest, allow_patterns=WANTED,
                      max_workers=workers)
    bad = {}
    for f in listing:
        problem = verify_file(dest / f.path, f.size, f.lfs.sha256 if f.lfs else None, f.blob_id)
        if problem:
            bad[f.path] = problem
            (dest / f.path).unlink(missing_ok=True)
    if bad:
        path, problem = next(iter(bad.items()))
        raise HarnessError(f"{dest / path}: {problem} against hf://datasets/{repo} ({len(bad)} bad file(s) deleted; rerun to fetch again)")
    return {"repo": repo, "files": len(listing), "bytes": sum(f.size for f in listing)}


def main(cfg: EvalDownloadConfig) -> int:
    """Download the suite's tasks (those with a Hub repo) into ``data_dir``."""
    from evals.registry import load_suite, select

    tasks = select(load_suite(str(cfg.suite)), list(cfg.tasks) if cfg.tasks else None)
    failed = 0
    for task in tasks:
        if not task.hub:
            how = EXPORTERS.get(task.kind, "")
            print(f"{task.key}: no Hub repo in the CLIP_benchmark layout, skipped{how and '; make it with ' + how}")
            continue
        try:
            info = download_task(task.hub, Path(cfg.data_dir) / task.dir, str(cfg.revision), int(cfg.workers))
        except HarnessError as exc:
            print(f"error: {task.key}: {exc}")
            failed += 1
            continue
        print(f"{task.key}: {info['files']} files, {info['bytes'] / 1e6:.1f} MB verified in {Path(cfg.data_dir) / task.dir}")
    if failed:
        raise HarnessError(f"{failed} task(s) failed to download or verify (see above); rerun to retry")
    return 0
