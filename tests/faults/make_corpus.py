"""Generate the bad-input corpus from a tiny world (``harness pool make``): one folder or file per
kind of damage, each next to the clean input it was made from. Nothing here is committed as a
binary: tests call ``make_corpus`` into a temporary folder.

    python tests/faults/make_corpus.py OUT POOL_DIR EVAL_DIR
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np

FOREIGN_UID = "0123456789abcdef0123456789abcdef"  # in no tiny world: uids come from the seed's stream
PLUGINS = {
    "raises.py": '''
from harness.filters import pool_filter

@pool_filter(columns=["text"])
def explode(batch, features):
    raise ValueError("plugin exploded on purpose")
''',
    "writes_pool.py": '''
from pathlib import Path
from harness.filters import pool_filter

@pool_filter(columns=["text"], prepare=lambda info, params: {**params, "root": str(info.root)})
def scribble(batch, features, root):
    (Path(root) / "metadata" / "scribble.txt").write_text("a filter must not write here")
    return [True] * batch.num_rows
''',
    "reads_features.py": '''
from harness.filters import pool_filter

@pool_filter(features=["tinyref_img"])
def has_image_feature(batch, features):
    return features["tinyref_img"][:, 0] == features["tinyref_img"][:, 0]
''',
}


def tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))


def uids_of(members: list[tuple[str, bytes]]) -> list[str]:
    return [json.loads(data)["uid"] for name, data in members if name.endswith(".json")]


def _copy_pool(pool: Path, out: Path, shards: bool) -> Path:
    out.mkdir(parents=True)
    shutil.copytree(pool / "metadata", out / "metadata")
    shutil.copy2(pool / "pool.json", out / "pool.json")
    if shards:
        (out / "shards").mkdir()
    return out


def reshard_pool(pool: Path, out: Path) -> dict:
    """Shard 0 clean; shard 1 truncated mid-member; shard 2 crafted (json without uid, a uid of
    shard 0 again, members named ``../x`` and ``/abs/x``) and without its _stats.json."""
    root = _copy_pool(pool, out, shards=True)
    shutil.copy2(pool / "shards" / "00000000.tar", root / "shards" / "00000000.tar")
    shutil.copy2(pool / "shards" / "00000000_stats.json", root / "shards" / "00000000_stats.json")
    raw = (pool / "shards" / "00000001.tar").read_bytes()
    (root / "shards" / "00000001.tar").write_bytes(raw[:len(raw) // 2 + 100])
    shutil.copy2(pool / "shards" / "00000001_stats.json", root / "shards" / "00000001_stats.json")
    first = tar_members(pool / "shards" / "00000000.tar")
    jpg = first[0][1]
    dup_uid = uids_of(first)[0]
    write_tar(root / "shards" / "00000002.tar", [
        ("nouid.jpg", jpg), ("nouid.txt", b"a caption"), ("nouid.json", b'{"caption": "no uid here"}'),
        ("dup.jpg", jpg), ("dup.txt", b"again"), ("dup.json", json.dumps({"uid": dup_uid}).encode()),
        ("../escape.jpg", jpg), ("/abs/escape.jpg", jpg)])
    from harness.pool.uids import hex_to_pairs, sort_pairs, write_subset

    whole = uids_of(first) + uids_of(tar_members(pool / "shards" / "00000001.tar"))
    subset = write_subset(out.parent / "reshard_subset.npy", sort_pairs(hex_to_pairs(whole)))
    return {"pool": root, "subset": subset, "n_selected": len(whole), "dup_uid": dup_uid}


def subsets(pool: Path, out: Path) -> dict[str, Path]:
    """Subset files: unsorted, duplicated, wrong dtype, one uid not in the pool."""
    from harness.pool.uids import hex_to_pairs, sort_pairs, write_subset

    out.mkdir(parents=True)
    uids = uids_of(tar_members(pool / "shards" / "00000000.tar"))[:3]
    pairs = sort_pairs(hex_to_pairs(uids))
    files = {name: out / f"{name}.npy" for name in ("sorted", "unsorted", "duplicated", "wrong_dtype", "out_of_pool")}
    write_subset(files["sorted"], pairs)
    np.save(files["unsorted"], pairs[::-1].copy(), allow_pickle=False)
    np.save(files["duplicated"], np.concatenate([pairs, pairs[:1]]), allow_pickle=False)
    np.save(files["wrong_dtype"], np.arange(3, dtype=np.int64), allow_pickle=False)
    write_subset(files["out_of_pool"], sort_pairs(hex_to_pairs(uids + [FOREIGN_UID])))
    return files


def short_npz_pool(pool: Path, out: Path) -> Path:
    """The pool's metadata with 00000000.npz one row short of its parquet."""
    root = _copy_pool(pool, out, shards=False)
    npz = root / "metadata" / "00000000.npz"
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k][:-1] for k in z.files}
    np.savez(npz, **arrays)
    return root


def evalsets(eval_dir: Path, out: Path) -> Path:
    """The eval suite with tiny_colors' only shard gone and one undecodable JPEG in tiny_counts."""
    shutil.copytree(eval_dir, out)
    (out / "tiny_colors" / "test" / "0.tar").unlink()
    shard = out / "tiny_counts" / "test" / "0.tar"
    members = tar_members(shard)
    bad = next(i for i, (name, _) in enumerate(members) if name.endswith((".jpg", ".png", ".webp")))
    members[bad] = (members[bad][0], b"\xff\xd8\xff\xe0 this is not a JPEG")
    write_tar(shard, members)
    return out


def make_corpus(out: str | Path, pool_dir: str | Path, eval_dir: str | Path) -> dict:
    """Write every corpus entry under ``out``; returns where each one is."""
    out, pool, evals = Path(out), Path(pool_dir), Path(eval_dir)
    plugins = out / "plugins"
    plugins.mkdir(parents=True)
    for name, text in PLUGINS.items():
        (plugins / name).write_text(text.lstrip())
    return {"reshard": reshard_pool(pool, out / "reshard_pool"), "subsets": subsets(pool, out / "subsets"),
            "short_npz_pool": short_npz_pool(pool, out / "short_npz_pool"),
            "evalsets": evalsets(evals, out / "evalsets"), "plugins": plugins}


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    for key, where in make_corpus(*sys.argv[1:]).items():
        print(f"{key}: {where}")
