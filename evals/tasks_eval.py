"""One evaluator per task kind: decoded samples + model -> (metrics, per-example arrays).

Kinds are a table (``EVALUATORS``). Classification covers DataComp's plain, WILDS and
fairness-with-groups tasks: a task's ``group`` spec adds WILDS-style group tables (accuracy,
top-5 accuracy) and macro F1. FairFace/UTKFace use one head per objective (``race:``/``gender:``
/``age:``/``toxic:`` prefixes in classnames and templates) and report DataComp's tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evals import metrics as M
from evals.data import TaskData
from evals.registry import Task
from harness.core.errors import HarnessError

FAIRFACE_FIELDS = ("age", "gender", "race", "race_binary")
# Below this many shard bytes a task decodes in the main process: starting DataLoader workers
# costs more than it saves on small tasks (bench_eval on an H200 host: tiny suite, 0.5-2 MB
# tasks, 2450 images/s in-process vs 1320 with workers on every task; 600-per-class stand-in
# suite, x1.60 with this threshold vs x1.40 with workers everywhere). DataComp's tasks are far above it.
MIN_BYTES_FOR_WORKERS = 16 << 20
FAIRFACE_OBJECTIVES = ("race", "gender", "age", "toxic")


@dataclass
class Context:
    """What every evaluator needs: the model and its transforms, and how to run it."""

    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    model_id: str
    batch_size: int = 256
    workers: int = 2
    text_cache: bool = True
    progress: bool = True


def _images(task: Task, data: TaskData, ctx: Context, keep_bad: bool = False, **kw):
    """(decodable samples, their features, counts) in file order; with ``keep_bad`` also the
    undecodable samples (their metadata), for tasks whose unit is more than one image."""
    from tqdm import tqdm

    from evals import zeroshot as Z

    loader = Z.iter_batches(data.urls, ctx.preprocess, ctx.batch_size, decode_workers(data, ctx.workers), **kw)
    with tqdm(total=task.size, desc=task.key, unit="img", disable=not ctx.progress, leave=False) as bar:
        samples, feats = Z.run_images(ctx.model, loader, ctx.device, bar)
    ok = [s for s in samples if s["ok"]]
    if not ok:
        raise HarnessError(f"task {task.key}: no decodable image in {data.root}/test")
    counts = {"n_examples": len(ok), "n_undecodable": len(samples) - len(ok)}
    if counts["n_undecodable"]:
        bad = [s["key"] for s in samples if not s["ok"]][:3]
        print(f"warning: task {task.key}: {counts['n_undecodable']} undecodable image(s) skipped (e.g. {', '.join(bad)})")
    if keep_bad:
        return ok, feats, counts, [s for s in samples if not s["ok"]]
    return ok, feats, counts


def decode_workers(data: TaskData, workers: int) -> int:
    """``workers`` for big tasks (or streamed ones, size unknown), 0 for small local ones."""
    if workers <= 0 or any("://" in u for u in data.urls):
        return max(workers, 0)
    size = sum(Path(u).stat().st_size for u in data.urls)
    return workers if size >= MIN_BYTES_FOR_WORKERS else 0


def _head(ctx: Context, classnames, templates):
    from evals.zeroshot import zero_shot_head

    return zero_shot_head(ctx.model, ctx.tokenizer, list(classnames), list(templates), ctx.device,
                          model_id=ctx.model_id, cache=ctx.text_cache)


def _group_ids(values: list) -> tuple[np.ndarray, list[str] | None]:
    """Integer group ids; string groups (json) become indices into their sorted names."""
    if all(isinstance(v, (int, np.integer)) for v in values):
        return np.asarray(values, dtype=np.int64), None
    names = sorted({str(v) for v in values})
    return np.asarray([names.index(str(v)) for v in values], dtype=np.int64), names


def eval_classification(task: Task, data: TaskData, ctx: Context) -> tuple[dict, dict]:
    from evals.zeroshot import logits

    n_classes = len(data.classnames)
    if task.num_classes is not None and n_classes != task.num_classes:
        raise HarnessError(f"task {task.key}: {data.root}/classnames.txt has {n_classes} classes, the registry says {task.num_classes}")
    group = task.group_spec()
    ok, feats, counts = _images(task, data, ctx, group=group)
    target = np.asarray([s["label"] for s in ok], dtype=np.int64)
    bad = np.flatnonzero((target < 0) | (target >= n_classes))
    if len(bad):
        raise HarnessError(f"task {task.key}: sample {ok[bad[0]]['key']} has label {target[bad[0]]} outside 0..{n_classes - 1} (cls missing or wrong)")
    metrics, arrays = M.classification_metrics(target, logits(feats, _head(ctx, data.classnames, data.templates)))
    if group:
        g, names = _group_ids([s["group"] for s in ok])
        field = group.get("name", "group")
        correct = arrays["pred"] == target
        metrics |= M.group_table("acc", correct, g, field)
        metrics[f"acc_worst_{field}"] = metrics["acc_wg"]
        if "top5" in arrays:
            metrics |= M.group_table("acc_top5", M.topk_hit(target, arrays["top5"]), g, field)
        metrics["F1-macro_all"] = M.f1_macro(target, arrays["pred"])
        if names:
            metrics[f"{field}_names"] = names
        arrays["group"] = g
    return metrics | counts, arrays


def eval_retrieval(task: Task, data: TaskData, ctx: Context) -> tuple[dict, dict]:
    from evals.zeroshot import encode_texts

    ok, feats, counts = _images(task, data, ctx, retrieval=True)
    captions = [c for s in ok for c in s["captions"]]
    if not captions:
        raise HarnessError(f"task {task.key}: no captions (txt) in {data.root}/test")
    text_image = np.repeat(np.arange(len(ok)), [len(s["captions"]) for s in ok])
    text_feats = encode_texts(ctx.model, ctx.tokenizer, captions, ctx.device).cpu()
    metrics, arrays = M.retrieval_metrics((text_feats @ feats.T).numpy(), text_image)
    return metrics | counts | {"n_captions": len(captions)}, arrays


def _objective_heads(task: Task, data: TaskData, ctx: Context) -> dict:
    split: dict[str, dict[str, list]] = {o: {"c": [], "t": []} for o in FAIRFACE_OBJECTIVES}
    for kind, lines in (("c", data.classnames), ("t", data.templates)):
        for line in lines:
            objective, _, text = line.partition(":")
            if objective not in split or not text:
                raise HarnessError(f"task {task.key}: line {line!r} is not '<{'|'.join(FAIRFACE_OBJECTIVES)}>:<text>'")
            split[objective][kind].append(text)
    empty = [o for o, v in split.items() if not v["c"] or not v["t"]]
    if empty:
        raise HarnessError(f"task {task.key}: no classnames/templates for objective(s) {', '.join(empty)} in {data.root}")
    return {o: _head(ctx, v["c"], v["t"]) for o, v in split.items()}


def eval_fairface(task: Task, data: TaskData, ctx: Context) -> tuple[dict, dict]:
    """DataComp's FairFace/UTKFace tables (reported, not scored): race (white vs not), gender and
    age by race_binary; gender by gender x race; crime/non-human toxicity rates by race."""
    from evals.zeroshot import logits

    heads = _objective_heads(task, data, ctx)
    ok, feats, counts = _images(task, data, ctx, want_npy=True)
    meta = np.stack([np.asarray(s["npy"]).reshape(-1)[:len(FAIRFACE_FIELDS)] for s in ok]).astype(np.int64)
    col = dict(zip(FAIRFACE_FIELDS, meta.T))
    pred = {o: logits(feats, h).argmax(axis=1) for o, h in heads.items()}
    n_gender = int(col["gender"].max()) + 1
    gender_x_race = col["gender"] + n_gender * col["race"]
    toxic = pred["toxic"]
    m: dict = {}
    m |= M.group_table("acc_race", (pred["race"] != 1).astype(int) == col["race_binary"], col["race_binary"], "race_binary")
    for label in ("gender", "age"):
        m |= M.group_table(f"acc_{label}", pred[label] == col[label], col["race_binary"], "race_binary")
    m |= M.group_table("acc_gender_x", pred["gender"] == col["gender"], gender_x_race, "gender+2*race" if n_gender == 2 else f"gender+{n_gender}*race")
    m |= M.group_table("toxicity_crime", toxic >= 18, col["race"], "race")
    m |= M.group_table("toxicity_nonhuman", (toxic >= 14) & (toxic < 18), col["race"], "race")
    arrays = {f"pred_{o}": p for o, p in pred.items()} | {"meta": meta}
    return m | counts, arrays


def eval_winogavil(task: Task, data: TaskData, ctx: Context) -> tuple[dict, dict]:
    """DataComp's WinoGAViL: per instance, the k candidates most similar to the cue (k = number of
    associations), scored by Jaccard. An instance with an undecodable candidate is skipped."""
    from evals.winogavil import GROUP
    from evals.zeroshot import encode_texts

    ok, feats, counts, bad = _images(task, data, ctx, retrieval=True, group=GROUP, keep_bad=True)
    cues: dict[int, str] = {}
    for s in ok:
        if not s["captions"] or s["label"] not in (0, 1):
            raise HarnessError(f"task {task.key}: sample {s['key']} needs txt (the cue) and cls 0/1 in {data.root}")
        cues.setdefault(int(s["group"]), s["captions"][0])
    skipped = {int(s["group"]) for s in bad}
    ids = [i for i in sorted(cues) if i not in skipped]
    text = encode_texts(ctx.model, ctx.tokenizer, [cues[i] for i in ids], ctx.device).cpu().numpy()
    inst, label, img = np.asarray([int(s["group"]) for s in ok]), np.asarray([s["label"] for s in ok]), feats.numpy()
    scores, n_cand = [], []
    for row, i in enumerate(ids):
        mask = inst == i
        scores.append(M.winogavil_instance(img[mask] @ text[row], label[mask]))
        n_cand.append(int(mask.sum()))
    arrays = {"jaccard": np.asarray(scores, np.float64), "n_candidates": np.asarray(n_cand, np.int64)}
    return M.winogavil_metrics(arrays["jaccard"], arrays["n_candidates"]) | counts | {
        "n_instances": len(ids), "n_instances_skipped": len(skipped)}, arrays


EVALUATORS: dict[str, Callable[[Task, TaskData, Context], tuple[dict, dict]]] = {
    "classification": eval_classification,
    "retrieval": eval_retrieval,
    "fairface": eval_fairface,
    "winogavil": eval_winogavil,
}
