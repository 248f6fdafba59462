"""Typed configs of the pool commands and of the tiny world (``world=`` group).

The defaults here are the only ones: ``conf/cmd_pool_*.yaml`` and ``conf/world/tiny.yaml`` only
choose group members, and ``make_world``/``download_pool`` take these objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.core.schema import MISSING, opt
from tracks.config import ScaleConfig


def _shares() -> dict[str, float]:
    return {"mismatched": 0.20,  # caption of another sample (another shape)
            "non_english": 0.08,  # correct description in fr/de/es/it/pt/nl
            "boilerplate": 0.05,  # spam / placeholder text
            "too_short": 0.04,  # one or two words
            "tiny_image": 0.03,  # original side < 150 px (pixelated)
            "extreme_aspect": 0.03,  # original aspect ratio > 3.5 (a thin strip after resizing)
            "exact_duplicate": 0.03,  # same image bytes and caption as a clean sample
            "near_duplicate": 0.03,  # a clean sample shifted / relit, recaptioned
            "text_only": 0.04,  # the image only shows the caption's words
            "eval_copy": 0.01}  # near-copies of eval images (contamination)


@dataclass
class WorldConfig:
    """The tiny world: sizes, planted defect shares, reference model (``world.<key>=value``)."""

    image_size: int = opt(32, "px; the tiny recipe's model (harness-tiny-32) reads 32 px")
    image_ext: str = opt("jpg", "pool image format (webp is ~15x slower to encode)")
    pool_size: int = opt(40000, "default pool; pool_size=N makes a smaller world with the same shares")
    shard_size: int = opt(8000, "samples per shard = rows per metadata parquet")
    eval_per_class: int = opt(100, "eval images per class (retrieval: 10x this many unique captions)")
    sketch_share: float = opt(0.08, "outline-style scenes in the pool (the sketch task is a distribution shift)")
    bg_bias: float = opt(0.7, "chance a shape sits on its preferred background (worst-group cue)")
    color_mention: float = opt(0.95, "chance a caption naming the texture names the colour too (evals/NOTES.md)")
    digit_share: float = opt(0.03, 'clean rendered-digit samples ("the number seven")')
    shares: dict[str, float] = opt(help="planted defects, fraction of the pool each (one defect per sample)",
                                   factory=_shares)
    reference_size: int = opt(16000, "clean reference set the reference CLIP trains on")
    reference_recipe: str = opt("tiny_reference", "the reference CLIP's recipe (tracks/recipes.py)")
    reference_samples: Optional[int] = opt(None, "null = the recipe's samples seen; an int trains off-recipe (tests)")
    reference_tag: str = opt("tinyref", "npz keys tinyref_img/_txt, column clip_tinyref_similarity_score")
    featurize_batch: int = opt(512, "batch size of the reference model's featurization")


@dataclass
class PoolMakeConfig:
    scale: ScaleConfig = opt(help="pool make only makes the tiny world", factory=ScaleConfig)
    world: WorldConfig = opt(help="the tiny world's knobs", factory=WorldConfig)
    pool_dir: str = opt(MISSING, "where the pool goes")
    eval_dir: Optional[str] = opt(None, "default: evalsets/ beside pool_dir")
    seed: int = opt(0, "world seed")
    pool_size: Optional[int] = opt(None, "null = world.pool_size")
    overwrite: bool = opt(False, "replace a finished world")
    name: str = opt("tiny", "the pool's name")


@dataclass
class DownloadOptions:
    """img2dataset's options; defaults follow DataComp's download script (512 px,
    keep_ratio_largest only if bigger, face blurring when the metadata has face_bboxes);
    DataComp uses processes=16 threads=128."""

    processes: int = opt(2, "img2dataset processes")
    threads: int = opt(32, "download threads per process")
    shard_size: int = opt(10000, "samples per shard")
    image_size: int = opt(512, "px")
    resize_mode: str = opt("keep_ratio_largest", "img2dataset resize mode")
    resize_only_if_bigger: bool = opt(True, "never upscale")
    encode_format: str = opt("jpg", "jpg | png | webp")
    timeout: int = opt(10, "seconds per image")
    retries: int = opt(0, "retries per image")
    blur_faces: bool = opt(True, "blur face_bboxes when the metadata has them")
    url_col: str = opt("url", "the metadata's url column")
    caption_col: str = opt("text", "the metadata's caption column")
    min_free_mb: int = opt(256, "stop cleanly (resumable) when free disk space falls below this")


@dataclass
class PoolDownloadConfig(DownloadOptions):
    metadata_dir: str = opt(MISSING, "folder of url+caption parquets (DataComp's metadata)")
    pool_dir: str = opt(MISSING, "where the pool goes")
    overwrite: bool = opt(False, "start again from the metadata")


@dataclass
class PoolFeaturizeConfig:
    pool_dir: str = opt(MISSING, "the pool to featurize")
    checkpoint: str = opt(MISSING, "a .pt file, or a `harness train` out_dir (its train.json names the model)")
    model: Optional[str] = opt(None, "open_clip architecture of the checkpoint (e.g. harness-tiny-32, ViT-B-32)")
    tag: Optional[str] = opt(None, "names npz keys <tag>_img/<tag>_txt and column clip_<tag>_similarity_score")
    batch_size: int = opt(256, "images per batch")
    threads: Optional[int] = opt(None, "torch CPU threads (null = torch's default)")
    overwrite: bool = opt(False, "recompute files that already have this tag")
