"""The task registry: suites are YAML data (``evals/tasks/<suite>.yaml``) parsed into frozen Tasks.

Adding a task is adding a YAML entry. Defaults follow DataComp: a task without ``main_metric`` is
scored by ``acc1``; classification data lives in ``djghosh/wds_<key with / as ->_test``. The
aggregates are DataComp's, defined by group tags so that the tiny suite reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
SUITES = ("datacomp", "tiny")
KINDS = ("classification", "retrieval", "winogavil", "fairface")

# Aggregate name -> the group tag whose tasks it averages ("scored": every task with a main metric).
AGGREGATES: dict[str, str] = {
    "ImageNet": "imagenet",
    "ImageNet dist. shifts": "imagenet_shift",
    "VTAB": "vtab",
    "Retrieval": "retrieval",
    "Average": "scored",
}


@dataclass(frozen=True)
class Task:
    """One evaluation task. ``group`` says where per-sample group ids come from (worst-group metrics)."""

    key: str
    name: str
    main_metric: str | None
    num_classes: int | None
    random_score: float | None
    size: int | None
    groups: tuple[str, ...]
    kind: str
    hub: str | None
    dir: str
    datacomp_source: str | None = None
    group: tuple[tuple[str, Any], ...] | None = field(default=None)

    @property
    def scored(self) -> bool:
        return self.main_metric is not None

    def group_spec(self) -> dict | None:
        return dict(self.group) if self.group else None


def _wds_name(key: str) -> str:
    """DataComp's WebDataset repo/folder name: ``wds_<key, '/' -> '-'>_test``."""
    return f"wds_{key.replace('/', '-')}_test"


def _task(entry: dict, defaults: dict, where: str) -> Task:
    e = {**defaults, **entry}
    try:
        key = e["key"]
        kind = e.get("kind", "classification")
        if kind not in KINDS:
            raise HarnessError(f"{where}: task {key!r} has unknown kind {kind!r} (choose from {', '.join(KINDS)})")
        name = _wds_name(key)
        group = e.get("group")
        return Task(key=key, name=e["name"], main_metric=e.get("main_metric", "acc1"),
                    num_classes=e.get("num_classes"), random_score=e.get("random_score"), size=e.get("size"),
                    groups=tuple(e.get("groups") or ()), kind=kind, hub=e.get("hub", f"djghosh/{name}"),
                    dir=e.get("dir", name), datacomp_source=e.get("datacomp_source"),
                    group=tuple(sorted(group.items())) if group else None)
    except KeyError as exc:
        raise HarnessError(f"{where}: task entry {entry} lacks {exc}") from None


@lru_cache(maxsize=None)
def _load(path: str) -> tuple[Task, ...]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"suite file not found: {p}")
    doc = yaml.safe_load(p.read_text()) or {}
    tasks = tuple(_task(t, doc.get("defaults") or {}, str(p)) for t in doc.get("tasks") or ())
    keys = [t.key for t in tasks]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup or not tasks:
        raise HarnessError(f"{p}: {'duplicate task keys ' + ', '.join(dup) if dup else 'no tasks'}")
    return tasks


def load_suite(name: str) -> list[Task]:
    """A suite by name (``datacomp`` | ``tiny``) or by path to a YAML file in the same schema."""
    if name in SUITES:
        return list(_load(str(TASKS_DIR / f"{name}.yaml")))
    if name.endswith((".yaml", ".yml")):
        return list(_load(str(Path(name).resolve())))
    raise HarnessError(f"unknown eval suite {name!r} (choose from: {', '.join(SUITES)}, or a .yaml path)")


def select(tasks: list[Task], keys: list[str] | None) -> list[Task]:
    """The tasks named in ``keys`` (by key or display name), in suite order; all when None."""
    if not keys:
        return tasks
    by = {t.key: t for t in tasks} | {t.name: t for t in tasks}
    unknown = [k for k in keys if k not in by]
    if unknown:
        import difflib

        near = difflib.get_close_matches(unknown[0], list(by), n=3)
        raise HarnessError(f"unknown task(s) {', '.join(unknown)}" + (f"; did you mean {', '.join(near)}?" if near else ""))
    wanted = {by[k].key for k in keys}
    return [t for t in tasks if t.key in wanted]


def aggregate_members(tasks: list[Task]) -> dict[str, list[str]]:
    """Task keys of each aggregate, for this suite."""
    return {agg: [t.key for t in tasks if t.scored and (tag == "scored" or tag in t.groups)]
            for agg, tag in AGGREGATES.items()}
