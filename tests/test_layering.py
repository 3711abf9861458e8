"""Imports between the top-level packages flow one way, with no circle (the design card's layering).

``nas`` may use everything; ``reports`` shows what ``predictors`` and ``supernet`` hold; ``predictors``
build on ``supernet`` and ``hw_profiles``; ``supernet`` and ``hw_profiles`` import no other dynnas package
(``hw_profiles`` must run where only onnxruntime is installed). Lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nas", "reports", "predictors", "supernet", "hw_profiles")
ALLOWED = {
    "nas": {"reports", "predictors", "supernet", "hw_profiles"},
    "reports": {"predictors", "supernet", "hw_profiles"},
    "predictors": {"supernet", "hw_profiles"},
    "supernet": set(),
    "hw_profiles": set(),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_imports_only_the_layers_below_it():
    offenders: dict[str, list[str]] = {}
    seen = dict.fromkeys(PACKAGES, 0)
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            seen[pkg] += 1
            bad = sorted((_imports(path) & {*PACKAGES, "benchmarks", "tests"}) - ALLOWED[pkg] - {pkg})
            if bad:
                offenders[str(path.relative_to(ROOT))] = bad
    assert all(n > 0 for n in seen.values()), seen
    assert offenders == {}


def test_the_allowed_graph_has_no_circle():
    order: list[str] = []
    pending = dict(ALLOWED)
    while pending:
        ready = [p for p, deps in pending.items() if deps <= set(order)]
        assert ready, f"import circle among {sorted(pending)}"
        order += sorted(ready)
        for p in ready:
            del pending[p]
    assert order.index("supernet") < order.index("predictors") < order.index("nas")


def _module_graph(pkg: str) -> dict[str, set[str]]:
    """Imports between the modules of one package: every ``import``, at any depth (function-local and
    ``TYPE_CHECKING`` ones too: a circle hidden in a function is still a circle)."""
    mods = {}
    for path in (ROOT / pkg).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in mods:
                for a in node.names:  # `from pkg import submodule` names the submodule itself
                    deps.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in mods}
        graph[name] = deps - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_inside_a_package():
    circles = {pkg: _cycles(_module_graph(pkg)) for pkg in PACKAGES}
    assert all(graph for graph in map(_module_graph, PACKAGES))
    assert {p: c for p, c in circles.items() if c} == {}


def test_the_circle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
