"""Find a filter by name: the ``datacomp_harness.filters`` entry points (built-ins included) or
``path/to/file.py:func``. Workers resolve the same reference again instead of pickling functions.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.util
import inspect
import sys
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from harness.core.errors import HarnessError
from harness.filters.api import FilterDecl, declaration

GROUP = "datacomp_harness.filters"


@lru_cache(maxsize=None)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of the installed filters (built-ins and participants' packages)."""
    return sorted(_entry_points())


def presets() -> list[str]:
    """Names with a YAML in conf/filter (built-ins' defaults, intersect/union, composed presets)."""
    from harness.core.paths import group_options

    return [n for n in group_options("filter") if n != "plugin"]


def is_file_ref(ref: str) -> bool:
    return ":" in ref and ref.rsplit(":", 1)[0].endswith(".py")


def absolute_ref(ref: str) -> str:
    """``file.py:func`` with an absolute path, so that worker processes find the same file."""
    if not is_file_ref(ref):
        return ref
    path, func = ref.rsplit(":", 1)
    return f"{Path(path).resolve()}:{func}"


def _load_file(ref: str) -> FilterDecl:
    path_s, func = ref.rsplit(":", 1)
    path = Path(path_s)
    if not path.is_file():
        raise HarnessError(f"filter file not found: {path}")
    mod_name = "harness_plugin_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    module = sys.modules.get(mod_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise HarnessError(f"filter file {path} failed to import: {type(exc).__name__}: {exc}") from None
        sys.modules[mod_name] = module
    if not hasattr(module, func):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        near = difflib.get_close_matches(func, names, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise HarnessError(f"filter file {path} has no function {func!r}{hint}")
    return declaration(getattr(module, func), f"{path}:{func}")


def decorated_filters(path: Path) -> list[str]:
    """Names of the ``@pool_filter`` functions in a file, read with ast (the file is not run)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []

    def names(dec: ast.expr) -> str:
        dec = dec.func if isinstance(dec, ast.Call) else dec
        return dec.attr if isinstance(dec, ast.Attribute) else getattr(dec, "id", "")

    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and any(names(d) == "pool_filter" for d in node.decorator_list)]


def _file_without_func(ref: str) -> str:
    path = Path(ref)
    if not path.is_file():
        return f"filter file not found: {path} (a filter from a file is filter=path/to/file.py:<func>)"
    found = decorated_filters(path)
    listed = f" (its @pool_filter functions: {', '.join(found)})" if found else " (it has no @pool_filter function)"
    return f"filter {ref!r} names a file; add the function: filter={ref}:<func>{listed}"


@lru_cache(maxsize=None)
def resolve(ref: str) -> FilterDecl:
    """The declaration behind a name or ``file.py:func`` (unknown names list close matches)."""
    if is_file_ref(ref):
        return _load_file(ref)
    if ref.endswith(".py"):
        raise HarnessError(_file_without_func(ref))
    eps = _entry_points()
    if ref not in eps:
        known = sorted(set(eps) | set(presets()))
        near = difflib.get_close_matches(ref, known, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise HarnessError(f"unknown filter {ref!r}{hint} (known: {', '.join(known)}; "
                           "or give path/to/file.py:func or path/to/spec.yaml)")
    try:
        fn = eps[ref].load()
    except Exception as exc:
        raise HarnessError(f"filter {ref!r}: entry point {eps[ref].value} failed to load: "
                           f"{type(exc).__name__}: {exc}") from None
    return declaration(fn, f"entry point {ref!r} ({eps[ref].value})")


def source_file(decl: FilterDecl) -> str:
    return inspect.getsourcefile(decl.fn) or "<unknown>"


def source_hash(decl: FilterDecl) -> str:
    """sha256 of the file that defines the filter: identifies the code that made a subset."""
    path = source_file(decl)
    data = Path(path).read_bytes() if Path(path).is_file() else inspect.getsource(decl.fn).encode()
    return hashlib.sha256(data).hexdigest()
