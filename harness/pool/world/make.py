"""``harness pool make``: the tiny world, deterministically (seed → identical bytes).

Order: eval suite (its images seed the contamination), pool samples (clean scenes, then planted
defects), pool shards + metadata, hidden ground truth, a clean reference set, the reference CLIP
(``harness.train.launch.train`` with the ``tiny_reference`` recipe: the same launcher as ``harness
train``), features and scores from it (``harness.pool.featurize``), ``pool.json`` and the manifest.
Everything is built in temporary directories and renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.core.schema import plain
from harness.pool.config import PoolMakeConfig, WorldConfig
from harness.pool.format import GROUND_TRUTH, TRUTH_DIR
from tracks.config import ScaleConfig
from harness.pool.world import defects, render, scenes, tario, vocab
from harness.pool.world.evalsuite import make_eval_suite

POOL_NAME = "tiny"
TEXT_KEYS = ("uid", "url", "text", "original_width", "original_height")


def world_config(world: WorldConfig | None = None, **knobs: Any) -> dict[str, Any]:
    """The world's knobs as a dict (:class:`WorldConfig`, its defaults when None), with ``knobs``
    on top (a dict knob such as ``shares`` is merged; unknown knobs are refused), checked."""
    conf = plain(world or WorldConfig())
    unknown = sorted(set(knobs) - set(conf))
    if unknown:
        raise HarnessError(f"unknown tiny-world knob(s) {', '.join(unknown)} (known: {', '.join(sorted(conf))})")
    for k, v in knobs.items():
        if v is not None:
            conf[k] = {**conf[k], **v} if isinstance(conf[k], dict) else v
    bad = sorted(k for k in conf["shares"] if k not in defects.DEFECT_TYPES)
    if bad:
        raise HarnessError(f"unknown defect(s) in shares: {', '.join(bad)} (known: {', '.join(defects.DEFECT_TYPES)})")
    if sum(conf["shares"].values()) + conf["digit_share"] > 0.95:
        raise HarnessError("defect shares + digit_share exceed 0.95: too few clean samples to copy from")
    return conf


def _uids(seed: int, n: int, stream: int) -> np.ndarray:
    raw = np.random.default_rng([seed, stream]).bytes(16 * n)
    uids = np.array([raw[16 * i:16 * i + 16].hex() for i in range(n)])
    if len(np.unique(uids)) != n:
        raise HarnessError("uid collision (128-bit): change the seed")
    return uids


def _original_sizes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    w = rng.integers(300, 1025, n)
    return w, np.round(w / rng.uniform(0.75, 1.34, n)).astype(np.int64)


def _digits(rng: np.random.Generator, world: dict, idx: np.ndarray) -> None:
    """Clean samples whose image is a rendered digit, captioned as such (the digits task's data)."""
    d = rng.integers(0, 10, len(idx))
    ink = world["scenes"]["color"][idx]
    paper = np.where((rng.random(len(idx)) < 0.5)[:, None], rng.integers(10, 60, (len(idx), 3)),
                     rng.integers(200, 250, (len(idx), 3)))
    world["images"][idx] = render.render_text([str(x) for x in d], np.array(list(vocab.COLORS.values()))[ink],
                                              paper, world["images"].shape[1])
    for i, c in zip(idx, scenes.digit_captions(rng, d, ink)):
        world["captions"][i] = world["base_captions"][i] = world["alt_captions"][i] = c
    world["kind"][idx] = "digit"
    world["digit"][idx] = d


def clean_samples(seed: int, stream: int, n: int, banks: render.Banks, conf: dict, digit_share: float) -> dict:
    """Rendered clean scenes with English captions (the pool's base and the reference set)."""
    rng = np.random.default_rng([seed, stream])
    sc = scenes.sample_scenes(rng, n, banks.size, sketch_share=conf["sketch_share"], bg_bias=conf["bg_bias"])
    images = render.render_scenes(banks, sc)
    caps = scenes.english_captions(rng, sc, conf["color_mention"])
    w, h = _original_sizes(rng, n)
    world = {"scenes": sc, "images": images, "captions": list(caps), "base_captions": list(caps),
             "alt_captions": scenes.english_captions(rng, sc, conf["color_mention"]), "orig_w": w, "orig_h": h,
             "kind": np.array(["scene"] * n, dtype=object), "digit": np.full(n, -1),
             "lang": np.array(["en"] * n, dtype=object), "source": np.array([""] * n, dtype=object)}
    digits = rng.random(n) < digit_share if digit_share else np.zeros(n, bool)
    _digits(rng, world, np.flatnonzero(digits))
    return world


def build_pool(seed: int, n: int, banks: render.Banks, conf: dict, eval_rendered: dict) -> tuple[dict, np.ndarray]:
    """The pool in memory: clean samples, then each defect planted on its rows."""
    rng = np.random.default_rng([seed, 0xD3F])
    labels, digit_rows = defects.assign(rng, n, conf["shares"], conf["digit_share"])
    world = clean_samples(seed, 0xC1EA, n, banks, conf, digit_share=0.0)
    _digits(rng, world, np.flatnonzero(digit_rows))
    world["uids"] = _uids(seed, n, 0x1D)
    world["clean_rows"] = np.flatnonzero(labels == defects.CLEAN)
    world["eval_rendered"] = eval_rendered
    defects.plant_all(rng, labels, world)
    return world, labels


def _sample_json(uid: str, key: str, url: str, caption: str, w: int, h: int, size: int) -> bytes:
    return json.dumps({"uid": uid, "key": key, "status": "success", "url": url, "caption": caption,
                       "width": size, "height": size, "original_width": int(w), "original_height": int(h)}).encode()


def write_shards(out: Path, world: dict, shard_size: int, image_ext: str, metadata: bool = True) -> list[dict]:
    """Shards (+ stats, + one metadata parquet per shard when ``metadata``); returns shard records."""
    import pyarrow as pa
    from tqdm import tqdm

    from harness.core.manifest import sha256_file
    from harness.pool.format import write_metadata, write_stats

    n = len(world["captions"])
    uids = world.get("uids")
    urls = [f"http://tiny-world.invalid/{u}.{image_ext}" for u in uids]
    size = world["images"].shape[1]
    width = len(str(max(shard_size - 1, 1)))
    shards_dir = out / "shards" if metadata else out
    shards_dir.mkdir(parents=True, exist_ok=True)
    records = []
    bar = tqdm(total=n, desc=f"shards {out.name}", unit="img", leave=False)
    for s, lo in enumerate(range(0, n, shard_size)):
        rows = range(lo, min(n, lo + shard_size))

        def samples():
            for j, i in enumerate(rows):
                key = f"{s:05d}{j:0{width}d}"
                yield key, {image_ext: tario.encode_image(world["images"][i], image_ext),
                            "txt": world["captions"][i].encode(),
                            "json": _sample_json(uids[i], key, urls[i], world["captions"][i],
                                                 world["orig_w"][i], world["orig_h"][i], size)}
                bar.update(1)

        tar = shards_dir / f"{s:08d}.tar"
        count = tario.write_tar(tar, samples())
        write_stats(shards_dir, s, count, failed_to_download=0)
        records.append({"name": tar.name, "n_samples": count, "sha256": sha256_file(tar)})
        if metadata:
            sl = slice(rows.start, rows.stop)
            table = pa.table({"uid": uids[sl].tolist(), "url": urls[sl], "text": world["captions"][sl],
                              "original_width": world["orig_w"][sl].astype(np.int64),
                              "original_height": world["orig_h"][sl].astype(np.int64)})
            write_metadata(out / "metadata" / f"{s:08d}.parquet", table)
    bar.close()
    return records


def ground_truth(world: dict, labels: np.ndarray):
    """Hidden labels: ``defect`` + one bool per defect type + the scene attributes."""
    import pyarrow as pa

    sc = world["scenes"]
    cols: dict[str, Any] = {"uid": world["uids"].tolist(), "defect": labels.tolist()}
    cols.update({name: labels == name for name in defects.DEFECT_TYPES})
    cols.update({"kind": world["kind"].astype(str).tolist(), "language": world["lang"].astype(str).tolist(),
                 "source": world["source"].astype(str).tolist(), "digit": world["digit"].astype(np.int64)})
    names = {"shape": vocab.SHAPES, "color": vocab.COLOR_NAMES, "texture": vocab.TEXTURES,
             "background": vocab.BACKGROUNDS, "style": vocab.STYLES}
    for col, table in names.items():
        cols[col] = [table[i] for i in sc["bg" if col == "background" else col]]
    cols["count"] = sc["count"].astype(np.int64)
    return pa.table(cols)


def write_reference_set(out: Path, seed: int, banks: render.Banks, conf: dict) -> Path:
    """The clean reference set as a shards directory with a manifest (what `harness train` reads)."""
    from harness.core.manifest import sha256_json, write_manifest

    n = int(conf["reference_size"])
    world = clean_samples(seed, 0x2EF, n, banks, conf, conf["digit_share"])
    world["uids"] = _uids(seed, n, 0x2EF1D)
    records = write_shards(out, world, max(1, min(conf["shard_size"], n)), conf["image_ext"], metadata=False)
    write_manifest(out, "tiny_reference_set", sha256_json(records), {}, {"seed": seed, "n": n},
                   n_samples=n, shards=records, subset_sha256=None, finished_at=None)
    return out


def train_reference(data: Path, out: Path, seed: int, conf: dict, work: Path) -> dict:
    """Train the reference CLIP through `harness train`'s launcher; keep only its weights in ``out``."""
    import torch

    from harness.train.config import RecipeFields, TrainConfig
    from harness.train.launch import train

    cfg = TrainConfig(scale=ScaleConfig(conf["reference_recipe"]), data=str(data), out_dir=str(work), seed=seed,
                      num_checkpoints=1)
    if conf["reference_samples"]:
        cfg.recipe, cfg.allow_off_recipe = RecipeFields(train_num_samples=int(conf["reference_samples"])), True
    res = train(cfg)
    state = torch.load(res["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    ckpt = out / f"{conf['reference_tag']}.pt"
    torch.save({"state_dict": state, "model_name": res["model"]}, ckpt)
    keep = ("recipe", "recipe_hash", "model", "samples_seen", "data_manifest_hash", "seed", "off_recipe")
    info = {k: res[k] for k in keep} | {"checkpoint": ckpt.name, "samples_per_s": res["samples_per_s"]}
    (out / "reference.json").write_text(json.dumps({k: v for k, v in info.items() if k != "samples_per_s"},
                                                   indent=2, sort_keys=True))
    return info | {"checkpoint_path": ckpt}


def _check_args(seed: Any, pool_size: Any, pool_dir: Path, eval_dir: Path) -> tuple[int, int | None]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise HarnessError(f"seed must be an integer, got {seed!r}")
    if pool_size is not None and (isinstance(pool_size, bool) or not isinstance(pool_size, (int, np.integer))
                                  or pool_size < 100):
        raise HarnessError(f"pool_size must be an integer >= 100, got {pool_size!r}")
    p, e = pool_dir.resolve(), eval_dir.resolve()
    if e == p or p in e.parents or e in p.parents:
        raise HarnessError(f"eval_dir {eval_dir} must not be inside pool_dir {pool_dir} (nor the reverse)")
    return int(seed), None if pool_size is None else int(pool_size)


def _truth_record(pool_dir: Path, eval_dir: Path, tmp_eval: Path) -> dict[str, str]:
    """Where the harness finds the truth (relative to pool_dir, so the world can move as a whole)."""
    from harness.core.manifest import sha256_file

    rel_eval = os.path.relpath(eval_dir.resolve(), pool_dir.resolve())
    return {"path": f"{Path(rel_eval).as_posix()}/{TRUTH_DIR}/{GROUND_TRUTH}", "eval_dir": Path(rel_eval).as_posix(),
            "sha256": sha256_file(tmp_eval / TRUTH_DIR / GROUND_TRUTH)}



def _non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def make_world(pool_dir: str | Path, eval_dir: str | Path | None = None, seed: int = 0,
               pool_size: int | None = None, overwrite: bool = False,
               world: WorldConfig | None = None) -> dict[str, Any]:
    """Write the tiny world (pool + eval suite); returns the summary (also in ``pool.json``).
    ``world``: the knobs (default :class:`WorldConfig`); ``pool_size`` overrides ``world.pool_size``."""
    import pyarrow.parquet as pq

    from harness.pool.featurize import featurize
    from harness.core.manifest import atomic_dir, fingerprint, input_identity, write_manifest

    pool_dir = Path(pool_dir)
    eval_dir = Path(eval_dir) if eval_dir else pool_dir.parent / "evalsets"
    seed, pool_size = _check_args(seed, pool_size, pool_dir, eval_dir)
    conf = world_config(world)
    n = pool_size or int(conf["pool_size"])
    times: dict[str, float] = {}
    t = t0 = time.time()

    def lap(name: str) -> None:
        nonlocal t
        times[name] = round(time.time() - t, 2)
        t = time.time()

    # a crash between the eval dir's rename and the pool's leaves an eval dir without its pool:
    # the rerun may replace it only with the very same bytes (checked once rebuilt)
    orphan = not overwrite and not _non_empty(pool_dir) and _non_empty(eval_dir)
    try:
        with atomic_dir(pool_dir, overwrite) as tmp, atomic_dir(eval_dir, overwrite or orphan) as tmp_eval, \
                tempfile.TemporaryDirectory(prefix=".tinyref-", dir=tmp.parent) as work:
            banks = render.build_banks(int(conf["image_size"]), seed)
            ev = make_eval_suite(tmp_eval, banks, seed, int(conf["eval_per_class"]))
            lap("eval_suite")
            world, labels = build_pool(seed, n, banks, conf, ev["rendered"])
            lap("render")
            records = write_shards(tmp, world, int(conf["shard_size"]), conf["image_ext"])
            # the hidden labels live with the eval suite, outside pool_dir (participant filters are
            # refused opening them: harness/filters/guard.py)
            (tmp_eval / TRUTH_DIR).mkdir()
            pq.write_table(ground_truth(world, labels), tmp_eval / TRUTH_DIR / GROUND_TRUTH)
            if orphan and input_identity(tmp_eval) != input_identity(eval_dir):
                raise HarnessError(f"{eval_dir} exists and is not empty; choose another directory or pass overwrite=true")
            lap("write")
            ref_dir = tmp / "reference"
            write_reference_set(ref_dir / "shards", seed, banks, conf)
            lap("reference_set")
            ref = train_reference(ref_dir / "shards", ref_dir, seed, conf, Path(work) / "train")
            lap("reference_train")
            feat = featurize(tmp, ref["checkpoint_path"], ref["model"], conf["reference_tag"],
                             batch_size=int(conf["featurize_batch"]))
            lap("featurize")
            counts = {d: int((labels == d).sum()) for d in (defects.CLEAN, *defects.DEFECT_TYPES)}
            doc = {"name": POOL_NAME, "seed": seed, "n_samples": n, "image_size": int(conf["image_size"]),
                   "image_ext": conf["image_ext"], "n_shards": len(records), "defect_counts": counts,
                   "digit_samples": int((world["kind"] == "digit").sum()), "shares": conf["shares"],
                   "reference_model": {"name": ref["model"], "tag": conf["reference_tag"],
                                       "checkpoint": f"reference/{ref['checkpoint']}",
                                       "checkpoint_sha256": feat["checkpoint_sha256"],
                                       **{k: ref[k] for k in ("recipe", "recipe_hash", "samples_seen", "off_recipe")},
                                       "reference_set_size": int(conf["reference_size"])},
                   "default_score_arch": conf["reference_tag"],
                   "eval_tasks": ev["tasks"], "truth": _truth_record(pool_dir, eval_dir, tmp_eval)}
            (tmp / "pool.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
            config = {"seed": seed, "pool_size": n, "world": conf}
            write_manifest(tmp, "pool_make", fingerprint({}, config), {}, config, n_samples=n,
                           output_hash=input_identity(tmp), eval_hash=input_identity(tmp_eval), finished_at=None)
            lap("finish")
    except OSError as exc:
        raise HarnessError(f"cannot write the tiny world: {exc.strerror or exc} ({exc.filename or pool_dir})") from None
    return doc | {"pool_dir": str(pool_dir), "eval_dir": str(eval_dir), "times": times,
                  "wall_s": round(time.time() - t0, 2), "reference_samples_per_s": ref["samples_per_s"],
                  "pool_bytes": sum(f.stat().st_size for f in pool_dir.rglob("*") if f.is_file())}


def print_summary(res: dict) -> None:
    n = res["n_samples"]
    print(f"tiny world (seed {res['seed']}): {n} samples in {res['n_shards']} shards, "
          f"{res['image_size']} px {res['image_ext']}, {res['pool_bytes'] / 1e6:.1f} MB → {res['pool_dir']}")
    for name, k in res["defect_counts"].items():
        print(f"  {name:<16} {k:>7}  {100 * k / n:5.1f}%")
    print(f"  (of the clean: {res['digit_samples']} rendered-digit samples)")
    print(f"eval suite: {', '.join(f'{k} {v}' for k, v in res['eval_tasks'].items())} → {res['eval_dir']}")
    ref = res["reference_model"]
    print(f"reference CLIP {ref['name']} ({ref['recipe']}, {ref['samples_seen']} samples seen"
          f"{', OFF-RECIPE' if ref['off_recipe'] else ''}) → column clip_{ref['tag']}_similarity_score")
    print("wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in res["times"].items()) + f"; total {res['wall_s']:.1f}s")


def main(cfg: PoolMakeConfig) -> int:
    """CLI: ``harness pool make scale=tiny pool_dir=DIR [seed=0] [pool_size=N] [overwrite=true]``."""
    if cfg.scale.name != "tiny":
        raise HarnessError(f"pool make only makes the tiny world (scale=tiny); for scale={cfg.scale.name} "
                           "download a CommonPool with `harness pool download`")
    res = make_world(cfg.pool_dir, cfg.eval_dir, seed=cfg.seed, pool_size=cfg.pool_size,
                     overwrite=cfg.overwrite, world=cfg.world)
    print_summary(res)
    return 0
