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
