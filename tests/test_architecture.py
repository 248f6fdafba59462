"""The import rule of docs/architecture.md, checked on the code: layers only point down, and no
module imports (even lazily) a module that imports it back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "evals", "tracks", "leaderboard")
USER_CODE = ("examples",)  # participants' plugins shipped as examples: not the harness's own modules


def layers() -> dict[str, int]:
    """unit → layer, from the ``import-rules`` block of docs/architecture.md."""
    text = (REPO / "docs" / "architecture.md").read_text()
    block = re.search(r"```import-rules\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no import-rules block"
    out = {}
    for line in block.group(1).splitlines():
        level, *units = line.split()
        out.update({u: int(level) for u in units})
    return out


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            if not any(part in USER_CODE for part in path.relative_to(REPO).parts):
                found[".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules a file imports anywhere in it (a name imported from a package that is
    itself a module counts as that module)."""
    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [resolve(f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            names = [resolve(a.name) for a in node.names]
        else:
            continue
        out |= {n for n in names if n and n.split(".")[0] in PACKAGES}
    return out


def unit_of(module: str, units: dict[str, int]) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in units:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} belongs to no unit of docs/architecture.md's import-rules")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(p, known) - {m} for m, p in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    for root in g:
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_every_import_points_to_its_own_unit_or_a_lower_layer():
    units = layers()
    bad = []
    for module, targets in graph().items():
        src = unit_of(module, units)
        for target in sorted(targets):
            dst = unit_of(target, units)
            if dst != src and units[dst] >= units[src]:
                bad.append(f"{module} ({src}, layer {units[src]}) imports {target} ({dst}, layer {units[dst]})")
    assert not bad, "imports against docs/architecture.md's rule:\n" + "\n".join(bad)


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(graph()) == []


def test_the_checker_sees_lazy_imports_and_cycles():
    """The checker itself: an import inside a function counts, and a two-module loop is found."""
    g = graph()
    assert "harness.train.slurm" in g["harness.train.launch"]  # imported inside train() only
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_package_says_what_it_owns():
    for init in [REPO / p / "__init__.py" for p in PACKAGES] + list((REPO / "harness").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 8, f"{init.relative_to(REPO)} has no docstring saying what it owns"
