"""open_clip models the harness registers, and checkpoint loading that checks the architecture.

open_clip silently resizes position embeddings when a checkpoint was trained at another image
size, so we never load by ``pretrained=``: we build the named architecture and load the state
dict strictly, with ``weights_only=True`` (no pickle code runs).
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness.core.errors import HarnessError

MODEL_CONFIG_DIR = Path(__file__).resolve().parents[2] / "tracks" / "models"
_registered = False


def register_model_configs() -> None:
    """Make the harness's model JSONs (``tracks/models/``) known to open_clip, once per process."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


RANDOM_INIT_WARNING = "No pretrained weights loaded for model"


def _not_random_init(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(RANDOM_INIT_WARNING)


@contextmanager
def checkpoint_follows() -> Iterator[None]:
    """Drop open_clip's "No pretrained weights loaded ... initialized randomly" warning (its root
    logger) while a model is built for a checkpoint loaded right after; every other record passes."""
    root = logging.getLogger()
    root.addFilter(_not_random_init)
    try:
        yield
    finally:
        root.removeFilter(_not_random_init)


def _state_dict(ckpt: Any) -> dict:
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_checkpoint(checkpoint: str | Path, model_name: str, device: str = "cpu"):
    """Build ``model_name`` and load ``checkpoint`` strictly.

    Returns ``(model, preprocess_val, tokenizer)``; the model is in eval mode. A checkpoint of
    another architecture is refused with both names in the message.
    """
    import open_clip
    import torch

    register_model_configs()
    path = Path(checkpoint)
    if not path.is_file():
        raise HarnessError(f"checkpoint not found: {path}")
    with checkpoint_follows():
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None, device=device)
    ckpt = torch.load(path, map_location=device, weights_only=True)
    saved_name = ckpt.get("model_name") if isinstance(ckpt, dict) else None
    try:
        model.load_state_dict(_state_dict(ckpt), strict=True)
    except RuntimeError as exc:
        raise HarnessError(f"{path} is not a {model_name} checkpoint"
                           f"{f' (it records {saved_name})' if saved_name else ''}: "
                           f"{str(exc).splitlines()[0]}") from None
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(model_name)


def model_name_of(train_dir: str | Path) -> str:
    """The architecture recorded in a training run's ``train.json``."""
    path = Path(train_dir) / "train.json"
    if not path.is_file():
        raise HarnessError(f"{path} not found: not a finished `harness train` run")
    return json.loads(path.read_text())["model"]
