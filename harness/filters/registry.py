"""Find a filter by name: the ``datacomp_harness.filters`` entry points (built-ins included) or
``path/to/file.py:func``. Workers resolve the same reference again instead of pickling functions.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.filters.api import FilterDecl, declaration

GROUP = "datacomp_harness.filters"


def debug_enabled() -> bool:
    """``HARNESS_DEBUG=1`` (or ``verbose=true``, which sets it in the filter's worker): full tracebacks."""
    return os.environ.get("HARNESS_DEBUG", "") not in ("", "0")


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
        sys.path.insert(0, str(path.resolve().parent))  # its helpers beside it import as for a script
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            tb = "\n" + "".join(traceback.format_exception(exc)).rstrip() if debug_enabled() else ""
            raise HarnessError(f"filter file {path} failed to import: {type(exc).__name__}: "
                               f"{(str(exc).splitlines() or [''])[0]}{tb}") from None
        finally:
            sys.path.remove(str(path.resolve().parent))
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
    """sha256 of the one file that defines the filter (kept for S.json's ``sources``; the entry's
    identity is :func:`identity`, over the whole source closure)."""
    path = source_file(decl)
    data = Path(path).read_bytes() if Path(path).is_file() else inspect.getsource(decl.fn).encode()
    return hashlib.sha256(data).hexdigest()


# The harness's own decision on what may be ranked, by built-in name: never a filter's declaration.
INELIGIBLE = {"oracle": "it reads the world's hidden ground truth"}
# Built-ins the harness hands the world's truth to (PoolInfo.truth); every other filter gets None.
REFERENCE_FILTERS = frozenset({"oracle"})
BUILTIN_PACKAGE = "harness.filters"
# Libraries whose version is part of a filter's identity when its code imports them (models inside).
MODEL_LIBRARIES = ("langid", "fasttext", "gcld3", "pycld3", "nltk", "open_clip", "torch", "transformers",
                   "sentence_transformers", "sklearn", "faiss")


def is_builtin(ref: str) -> bool:
    """A name registered by the harness itself (``harness.filters.builtin``), not a participant's."""
    if is_file_ref(ref):
        return False
    ep = _entry_points().get(ref)
    return ep is not None and ep.value.startswith(BUILTIN_PACKAGE + ".builtin")


def ineligible_reason(ref: str) -> str | None:
    """Why the harness keeps a filter off the ranking (None: eligible)."""
    return INELIGIBLE.get(ref) if is_builtin(ref) else None


def spec_refs(spec: dict | None) -> list[str]:
    """Every leaf name of a recorded filter spec (S.json's ``filter`` or an entry's ``filter.spec``)."""
    if not isinstance(spec, dict):
        return []
    subs = spec.get("filters")
    if isinstance(subs, list) and spec.get("name") in ("intersect", "union"):
        return [r for s in subs for r in spec_refs(s)]
    return [str(spec.get("name"))]


def spec_eligible(spec: dict | None) -> bool:
    """The harness's eligibility of a recorded spec: no leaf is on :data:`INELIGIBLE`."""
    return not any(ineligible_reason(r) for r in spec_refs(spec))


def _py_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """(level, dotted name) of each import in a file, read with ast (nothing is run)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(0, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            out.append((node.level, mod))
            out += [(node.level, f"{mod}.{a.name}" if mod else a.name) for a in node.names]
    return out


def _local_module(base: Path, dotted: str) -> list[Path]:
    """The files under ``base`` that importing ``dotted`` runs (package inits + the module)."""
    found: list[Path] = []
    here = base
    for part in dotted.split("."):
        if not part:
            return found
        if (here / part / "__init__.py").is_file():
            here = here / part
            found.append(here / "__init__.py")
        elif (here / f"{part}.py").is_file():
            found.append(here / f"{part}.py")
            return found
        else:
            return found
    return found


def _file_closure(entry: Path) -> tuple[Path, list[Path], set[str]]:
    """A plugin file and every local module it imports, transitively; plus the outside top names."""
    base = entry.parent
    seen: list[Path] = []
    outside: set[str] = set()
    todo = [entry.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for level, name in _imported_names(path):
            root = base if level == 0 else path.parent.joinpath(*[".."] * (level - 1)).resolve()
            local = _local_module(root, name)
            if local:
                todo += [p.resolve() for p in local]
            elif level == 0:
                outside.add(name.split(".")[0])
    return base.resolve(), sorted(set(seen)), outside


def _package_closure(module: str) -> tuple[Path, list[Path]]:
    """Every module of the top-level package that holds ``module`` (found without running it)."""
    top = module.split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None:
        raise HarnessError(f"cannot find the package {top!r} of filter module {module!r}")
    if spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0])
        return folder.parent, _py_files(folder)
    origin = Path(spec.origin or "")
    return origin.parent, [origin]


def source_closure(ref: str) -> tuple[Path, list[Path], set[str]]:
    """(base, files, outside imports) of a filter's code: built-ins → all of ``harness.filters``,
    a participant's package → its whole top-level package, a file → it and its local imports."""
    if is_file_ref(ref):
        path = Path(ref.rsplit(":", 1)[0])
        if not path.is_file():
            raise HarnessError(f"filter file not found: {path}")
        return _file_closure(path)
    ep = _entry_points().get(ref)
    if ep is None:
        resolve(ref)  # raises with close matches
    module = ep.value.split(":")[0]
    if is_builtin(ref):
        base, files = _package_closure(BUILTIN_PACKAGE)
        folder = base / BUILTIN_PACKAGE.split(".")[0] / BUILTIN_PACKAGE.split(".")[1]
        return base, _py_files(folder), set()
    base, files = _package_closure(module)
    outside = {n.split(".")[0] for f in files for lvl, n in _imported_names(f) if lvl == 0}
    return base, files, outside


def _model_versions(outside: set[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    dists = packages_distributions()
    out: dict[str, str] = {}
    for name in sorted(outside & set(MODEL_LIBRARIES)):
        for dist in dists.get(name, [name]):
            try:
                out[dist] = version(dist)
            except PackageNotFoundError:
                continue
    return out


def _param_files(params: Any) -> dict[str, str]:
    """sha256 of every file a parameter names (a target set, a model file), by parameter path."""
    out: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{key}.{i}")
        elif isinstance(value, str) and len(value) < 4096 and Path(value).is_file():
            out[key] = hashlib.sha256(Path(value).read_bytes()).hexdigest()

    walk(params, "")
    return out


def identity(ref: str, described: dict) -> dict:
    """A filter leaf's identity: its whole source closure (relative paths + bytes, so the same code
    gives the same hash on every machine), its resolved parameters, the files they name and the
    versions of the model libraries its code imports. ``sha256`` is the one to compare."""
    from harness.core.manifest import sha256_json

    base, files, outside = source_closure(ref)
    code = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.relative_to(base).as_posix()):
        code.update(f.relative_to(base).as_posix().encode() + b"\0")
        code.update(hashlib.sha256(f.read_bytes()).digest())
    if ref in _entry_points() and is_builtin(ref):
        outside = {n.split(".")[0] for f in files for lvl, n in _imported_names(f) if lvl == 0}
    params = {k: v for k, v in described.items() if k != "name"}
    if is_file_ref(ref):  # the file's place on this machine is not part of the method
        params["func"] = ref.rsplit(":", 1)[1]
    doc = {"code_sha256": code.hexdigest(), "n_files": len(files), "params": params,
           "param_files": _param_files(described.get("params", {})), "models": _model_versions(outside)}
    return {**doc, "sha256": sha256_json(doc)}
