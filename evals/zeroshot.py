"""Zero-shot heads and batched encoding with open_clip models.

A class's weight is the normalised mean of its normalised template embeddings (CLIP's prompt
ensembling); logits are ``100 * normalised image features @ head``. Heads are cached per
(model, classnames, templates) for the life of the process, so the ImageNet variants that share
ImageNet's classes and templates encode the text once. Images are decoded by DataLoader workers,
each taking every n-th sample of the shards, so one shard still decodes in parallel.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator

import numpy as np
import torch

from evals.data import decode_sample
from harness.core.errors import HarnessError

_HEADS: dict[tuple, torch.Tensor] = {}
TEXT_BATCH = 256


class TaskStream(torch.utils.data.IterableDataset):
    """Decoded samples of a task's shards, split across DataLoader workers sample by sample."""

    def __init__(self, urls, transform, retrieval: bool, group: dict | None, want_npy: bool):
        super().__init__()
        self.urls, self.transform, self.retrieval, self.group, self.want_npy = urls, transform, retrieval, group, want_npy

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        counter = 0
        for shard, url in enumerate(self.urls):
            for pos, sample in enumerate(_samples(url)):
                counter += 1
                if (counter - 1) % nw != wid:
                    continue
                out = decode_sample(sample, self.transform, self.retrieval, self.group, self.want_npy)
                out["order"] = (shard, pos)
                yield out


def _samples(url: str) -> Iterator[dict]:
    """Grouped samples of one shard; a shard that is not a readable tar is a HarnessError."""
    import tarfile

    from webdataset.tariterators import tarfile_samples

    try:
        yield from tarfile_samples([{"url": url}])
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise HarnessError(f"{url}: not a readable tar shard ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


def _collate(samples: list[dict]) -> dict:
    """Stack the decodable images in the worker: one tensor crosses the process boundary per batch."""
    images = [s.pop("image") for s in samples]
    for s, im in zip(samples, images):
        s["ok"] = im is not None
    good = [im for im in images if im is not None]
    return {"images": torch.stack(good) if good else None, "samples": samples}


def iter_batches(urls, transform, batch_size: int, workers: int, retrieval=False, group=None, want_npy=False):
    """Lists of decoded samples; order within and across batches is restored by the caller."""
    stream = TaskStream(urls, transform, retrieval, group, want_npy)
    return torch.utils.data.DataLoader(stream, batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                                       pin_memory=torch.cuda.is_available(), prefetch_factor=4 if workers else None)


def autocast(device: str):
    """bf16 (fp16 where bf16 is unsupported) autocast on CUDA; full precision on CPU."""
    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


@torch.no_grad()
def encode_texts(model, tokenizer, texts: list[str], device: str) -> torch.Tensor:
    feats = []
    for i in range(0, len(texts), TEXT_BATCH):
        with autocast(device):
            f = model.encode_text(tokenizer(texts[i:i + TEXT_BATCH]).to(device))
        feats.append(torch.nn.functional.normalize(f.float(), dim=-1))
    return torch.cat(feats) if feats else torch.zeros(0)


@torch.no_grad()
def encode_images(model, images: torch.Tensor, device: str) -> torch.Tensor:
    with autocast(device):
        f = model.encode_image(images.to(device, non_blocking=True))
    return torch.nn.functional.normalize(f.float(), dim=-1)


def zero_shot_head(model, tokenizer, classnames, templates, device: str, model_id: str = "", cache: bool = True) -> torch.Tensor:
    """(dim, n_classes) head: per class, the normalised mean of its normalised template embeddings."""
    key = (model_id or id(model), hashlib.sha256("\n".join(classnames).encode()).hexdigest(),
           hashlib.sha256("\n".join(templates).encode()).hexdigest())
    if cache and key in _HEADS:
        return _HEADS[key]
    texts = [t.format(c=c) for c in classnames for t in templates]
    emb = encode_texts(model, tokenizer, texts, device).reshape(len(classnames), len(templates), -1)
    head = torch.nn.functional.normalize(emb.mean(dim=1), dim=-1).T.contiguous()
    if cache:
        _HEADS[key] = head
    return head


def clear_cache() -> None:
    _HEADS.clear()


def run_images(model, loader, device: str, progress=None) -> tuple[list[dict], torch.Tensor]:
    """Encode every decodable image; returns the samples in file order (undecodable ones with
    ``ok=False``) and the features of the decodable ones, in the same order."""
    samples, feats = [], []
    for batch in _reraised(loader):
        good = [s for s in batch["samples"] if s["ok"]]
        if good:
            for s, row in zip(good, encode_images(model, batch["images"], device).cpu()):
                s["feat"] = row
        samples += batch["samples"]
        if progress is not None:
            progress.update(len(batch["samples"]))
    samples.sort(key=lambda s: s["order"])
    good = [s.pop("feat") for s in samples if s["ok"]]
    return samples, (torch.stack(good) if good else torch.zeros(0, 0))


def _reraised(loader) -> Iterator[list[dict]]:
    """DataLoader workers wrap errors in a traceback text; keep a HarnessError's one line."""
    try:
        yield from loader
    except HarnessError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.startswith("harness.core.errors.HarnessError: ")]
        raise HarnessError(lines[-1].split(": ", 1)[1] if lines else str(exc)) from None


def logits(features: torch.Tensor, head: torch.Tensor) -> np.ndarray:
    return (100.0 * features @ head.to(features.device)).float().cpu().numpy()
