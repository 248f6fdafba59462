"""Evaluation metrics as NumPy functions over per-example arrays (no torch, no sklearn).

Definitions follow DataComp's eval code and the libraries it calls: CLIP_benchmark (accuracy,
retrieval recall in the CLIP-paper sense: a query scores 1 if any positive is in its top k),
scikit-learn (balanced accuracy, macro F1 over the labels present in the targets, Jaccard) and
WILDS (group averages; the worst group is the minimum over non-empty groups). Every main metric
is a function of the arrays saved in ``per_example/<key>.npz`` so the leaderboard can bootstrap it
with :func:`recompute`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from harness.core.errors import HarnessError


def topk_indices(logits: np.ndarray, k: int) -> np.ndarray:
    """(n, k) class indices by decreasing logit; ties broken by the lower index (stable sort)."""
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def acc1(target: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(pred == target))


def topk_hit(target: np.ndarray, topk: np.ndarray) -> np.ndarray:
    return (topk == target[:, None]).any(axis=1)


def mean_per_class_recall(target: np.ndarray, pred: np.ndarray) -> float:
    """Balanced accuracy: mean over the classes present in ``target`` of their recall."""
    classes, inverse = np.unique(target, return_inverse=True)
    hits = np.bincount(inverse, weights=(pred == target), minlength=len(classes))
    return float(np.mean(hits / np.bincount(inverse, minlength=len(classes))))


def f1_macro(target: np.ndarray, pred: np.ndarray) -> float:
    """Macro F1 over the labels present in ``target`` (WILDS' F1(average='macro'))."""
    scores = []
    for label in np.unique(target):
        tp = np.sum((pred == label) & (target == label))
        fp = np.sum((pred == label) & (target != label))
        fn = np.sum((pred != label) & (target == label))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def group_means(values: np.ndarray, group: np.ndarray) -> dict[int, float]:
    """Mean of ``values`` per non-empty group id."""
    return {int(g): float(np.mean(values[group == g])) for g in np.unique(group)}


def worst_group(values: np.ndarray, group: np.ndarray) -> float:
    return min(group_means(values, group).values())


def group_table(name: str, correct: np.ndarray, group: np.ndarray, field: str, n_groups: int | None = None) -> dict:
    """WILDS-style table: ``{name}_avg``, ``{name}_{field}:{g}`` and ``count_{field}:{g}`` for every
    group id up to the largest (empty ones 0), and ``{name}_wg`` over the non-empty groups."""
    correct = correct.astype(np.float64)
    n = int(n_groups if n_groups is not None else group.max() + 1)
    out: dict = {f"{name}_avg": float(correct.mean())}
    for g in range(n):
        mask = group == g
        out[f"{name}_{field}:{g}"] = float(correct[mask].mean()) if mask.any() else 0.0
        out[f"count_{field}:{g}"] = int(mask.sum())
    out[f"{name}_wg"] = worst_group(correct, group)
    return out


def retrieval_hits(scores: np.ndarray, text_image: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k hits for both directions. ``scores`` is (n_texts, n_images); ``text_image[t]`` is the
    image of caption t. Returns (per image query: one of its captions in the top k texts,
    per caption query: its image in the top k images)."""
    n_texts, n_images = scores.shape
    k_img, k_txt = min(k, n_images), min(k, n_texts)
    top_img = np.argpartition(-scores, k_img - 1, axis=1)[:, :k_img] if k_img < n_images else np.tile(np.arange(n_images), (n_texts, 1))
    text_hit = (top_img == text_image[:, None]).any(axis=1)
    top_txt = np.argpartition(-scores.T, k_txt - 1, axis=1)[:, :k_txt] if k_txt < n_texts else np.tile(np.arange(n_texts), (n_images, 1))
    image_hit = (text_image[top_txt] == np.arange(n_images)[:, None]).any(axis=1)
    return image_hit, text_hit


def retrieval_metrics(scores: np.ndarray, text_image: np.ndarray, ks=(1, 5, 10)) -> tuple[dict, dict]:
    """CLIP_benchmark's keys (``image_retrieval_recall@k``: text queries retrieving images;
    ``text_retrieval_recall@k``: image queries retrieving texts) and ``mean_recall@1``; plus the
    per-example hit arrays for recompute."""
    metrics, arrays = {}, {"text_image": text_image}
    for k in ks:
        image_hit, text_hit = retrieval_hits(scores, text_image, k)
        metrics[f"image_retrieval_recall@{k}"] = float(text_hit.mean())
        metrics[f"text_retrieval_recall@{k}"] = float(image_hit.mean())
        if k == 1:
            arrays |= {"image_hit1": image_hit, "text_hit1": text_hit}
    metrics["mean_recall@1"] = 0.5 * (metrics["image_retrieval_recall@1"] + metrics["text_retrieval_recall@1"])
    return metrics, arrays


def jaccard(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Jaccard index of two boolean selections (scikit-learn's binary jaccard_score; 0 if both empty)."""
    union = np.sum(y_true | y_pred)
    return float(np.sum(y_true & y_pred) / union) if union else 0.0


def winogavil_instance(similarity: np.ndarray, is_association: np.ndarray) -> float:
    """One WinoGAViL instance: select the k candidates most similar to the cue, k = number of
    true associations, and score the selection by Jaccard."""
    k = int(is_association.sum())
    chosen = np.zeros(len(similarity), bool)
    chosen[np.argsort(similarity, kind="stable")[len(similarity) - k:]] = True
    return jaccard(is_association.astype(bool), chosen)


def winogavil_metrics(scores: np.ndarray, n_candidates: np.ndarray) -> dict:
    """DataComp's WinoGAViL summary: Jaccard averaged over instances with 5, 6, 10, 12, 5-6, 10-12 candidates."""
    out = {"avg_jaccard_score": float(scores.mean())}
    sel = {"5": n_candidates == 5, "6": n_candidates == 6, "10": n_candidates == 10, "12": n_candidates == 12,
           "5-6": n_candidates <= 6, "10-12": n_candidates >= 10}
    for name, mask in sel.items():
        out[f"jaccard_score_{name}"] = float(scores[mask].mean()) if mask.any() else None
    return out


def classification_metrics(target: np.ndarray, logits: np.ndarray) -> tuple[dict, dict]:
    """acc1, acc5 (None under 5 classes), mean_per_class_recall; per-example arrays for recompute."""
    k = min(5, logits.shape[1])
    top = topk_indices(logits, k)
    pred = top[:, 0]
    arrays = {"target": target, "pred": pred}
    metrics = {"acc1": acc1(target, pred), "acc5": None, "mean_per_class_recall": mean_per_class_recall(target, pred)}
    if logits.shape[1] >= 5:
        arrays["top5"] = top
        metrics["acc5"] = float(topk_hit(target, top).mean())
    return metrics, arrays


def _retrieval_mean_recall(a: dict, idx: np.ndarray) -> float:
    """Resampling unit is the image: its caption queries come with it (with multiplicity)."""
    weight = np.bincount(idx, minlength=len(a["image_hit1"]))[a["text_image"]]
    return 0.5 * (float(a["image_hit1"][idx].mean()) + float(np.sum(a["text_hit1"] * weight) / weight.sum()))


def _on(idx_fn: Callable[..., float], *keys: str) -> Callable[[dict, np.ndarray], float]:
    return lambda a, idx: idx_fn(*(a[k][idx] for k in keys))


RECOMPUTE: dict[str, Callable[[dict, np.ndarray], float]] = {
    "acc1": _on(acc1, "target", "pred"),
    "acc5": lambda a, idx: float(topk_hit(a["target"][idx], a["top5"][idx]).mean()),
    "mean_per_class_recall": _on(mean_per_class_recall, "target", "pred"),
    "F1-macro_all": _on(f1_macro, "target", "pred"),
    "acc_wg": lambda a, idx: worst_group(a["pred"][idx] == a["target"][idx], a["group"][idx]),
    "acc_worst_region": lambda a, idx: worst_group(a["pred"][idx] == a["target"][idx], a["group"][idx]),
    "acc_top5_wg": lambda a, idx: worst_group(topk_hit(a["target"][idx], a["top5"][idx]), a["group"][idx]),
    "mean_recall@1": _retrieval_mean_recall,
    "jaccard_score_10-12": lambda a, idx: float(a["jaccard"][idx][a["n_candidates"][idx] >= 10].mean()),
}


def n_units(arrays: dict[str, np.ndarray]) -> int:
    """How many resampling units a per_example file has (examples; images for retrieval)."""
    for key in ("target", "image_hit1", "jaccard"):
        if key in arrays:
            return len(arrays[key])
    raise HarnessError(f"per-example arrays {sorted(arrays)} hold none of target, image_hit1, jaccard")


def recompute(main_metric: str, arrays: dict[str, np.ndarray], idx: np.ndarray) -> float:
    """The main metric on examples ``idx`` (indices into the first axis, see :func:`n_units`)."""
    if main_metric not in RECOMPUTE:
        raise HarnessError(f"no recompute rule for metric {main_metric!r} (known: {', '.join(RECOMPUTE)})")
    return RECOMPUTE[main_metric](arrays, np.asarray(idx))
