"""Filter specs: a dict (from Hydra or a user's YAML) → a tree of leaves and intersect/union nodes.

A leaf is ``{name: <filter>, <param>: v, threshold|fraction|top_k: v}``; a composition is
``{name: intersect|union, filters: [<spec>, ...]}``; ``name: path/to/spec.yaml`` loads a spec
file (its other keys override the file's). Each leaf's defaults come from ``conf/filter/<name>.yaml``.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.core.errors import HarnessError
from harness.filters.api import FilterDecl
from harness.filters.registry import absolute_ref, resolve
from harness.filters.select import SELECTION_KEYS, check_selection

COMBINERS = {"intersect": np.logical_and, "union": np.logical_or}
RESERVED = {"name", "filters", "default_selection", *SELECTION_KEYS}


@dataclass
class Leaf:
    label: str
    ref: str
    decl: FilterDecl
    params: dict
    selection: tuple[str, float | int] | None
    spec: dict = field(default_factory=dict)


@dataclass
class Node:
    op: str
    children: list


def _yaml(path: Path) -> dict:
    from omegaconf import OmegaConf

    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as exc:
        raise HarnessError(f"filter spec {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise HarnessError(f"filter spec {path}: expected a mapping with a 'name' key")
    return data


def defaults(name: str) -> dict:
    """The built-in YAML defaults of a filter name (empty for plugins)."""
    from harness.core.paths import conf_dir

    path = conf_dir() / "filter" / f"{name}.yaml"
    return _yaml(path) if path.is_file() and name != "plugin" else {}


def expand(spec: dict | str) -> dict:
    """Load spec files and merge a name's YAML defaults under the given keys."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise HarnessError(f"filter spec {spec!r} has no 'name'")
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise HarnessError(f"filter spec file not found: {path}")
        rest = {k: v for k, v in spec.items() if k != "name"}
        return expand({**_yaml(path), **rest})
    base = defaults(name)
    if base.get("name", name) != name:  # a preset such as image_based_intersect_clip_score
        return expand({**base, **{k: v for k, v in spec.items() if k != "name"}})
    return {**base, **spec}


def _check_params(label: str, decl: FilterDecl, params: dict) -> None:
    sig = inspect.signature(decl.fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    known = [n for n in list(sig.parameters)[2:]]
    for key in params:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise HarnessError(f"filter {label} has no parameter {key!r}{hint} "
                               f"(parameters: {', '.join(known + list(SELECTION_KEYS)) or 'none'})")


def _selection(label: str, decl: FilterDecl, spec: dict) -> tuple[str, float | int] | None:
    given = {k: spec[k] for k in SELECTION_KEYS if spec.get(k) is not None}
    if decl.output == "mask":
        if given:
            raise HarnessError(f"filter {label} returns a keep mask; {', '.join(given)} apply only to score filters")
        return None
    if not given:
        given = dict(spec.get("default_selection") or {})
    if len(given) != 1:
        what = "none" if not given else ", ".join(given)
        raise HarnessError(f"filter {label} returns scores: give exactly one of filter.threshold, "
                           f"filter.fraction, filter.top_k (got {what})")
    ((key, value),) = given.items()
    return key, check_selection(label, key, value)


def build(spec: dict | str, label: str = "") -> Leaf | Node:
    """Resolve every name and validate every parameter before any file is read."""
    spec = expand(spec)
    name = spec["name"]
    label = label or name
    if name in COMBINERS:
        subs = spec.get("filters")
        extra = sorted(set(spec) - {"name", "filters"})
        if extra:
            raise HarnessError(f"filter {label}: {', '.join(extra)} do not apply to '{name}'; "
                               "set them on its sub-filters (filter.filters.<i>.<param>=v)")
        if not isinstance(subs, list) or not subs:
            raise HarnessError(f"filter {label}: '{name}' needs a non-empty list 'filters' of sub-filter specs")
        return Node(name, [build(s, f"{label}[{i}].{expand(s)['name']}") for i, s in enumerate(subs)])
    ref = absolute_ref(name)
    decl = resolve(ref)
    params = {k: v for k, v in spec.items() if k not in RESERVED}
    _check_params(label, decl, params)
    return Leaf(label, ref, decl, params, _selection(label, decl, spec), spec)


def leaves(tree: Leaf | Node) -> Iterator[Leaf]:
    if isinstance(tree, Leaf):
        yield tree
    else:
        for child in tree.children:
            yield from leaves(child)


def combine(tree: Leaf | Node, keeps: dict[str, np.ndarray]) -> np.ndarray:
    if isinstance(tree, Leaf):
        return keeps[tree.label]
    return COMBINERS[tree.op].reduce([combine(c, keeps) for c in tree.children])


def describe(tree: Leaf | Node) -> dict[str, Any]:
    """The spec as it ran (resolved names, final parameters, selection) for S.json."""
    if isinstance(tree, Node):
        return {"name": tree.op, "filters": [describe(c) for c in tree.children]}
    out = {"name": tree.spec["name"], "params": _jsonable(tree.params)}
    if tree.selection:
        out[tree.selection[0]] = tree.selection[1]
    return out


def _jsonable(params: dict) -> dict:
    """Parameters for the report: arrays (fitted state) summarised by shape."""
    def short(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return f"<array {v.dtype} {list(v.shape)}>"
        return f"<{len(v)} chars>" if isinstance(v, str) and len(v) > 200 else v

    return {k: short(v) for k, v in params.items()}
