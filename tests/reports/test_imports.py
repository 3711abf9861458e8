"""Imports flow one way: ``nas → reports``; nothing in reports/ imports nas, not even lazily inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import reports

ROOT = Path(reports.__file__).parent


def _imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_reports_never_imports_nas():
    files = sorted(ROOT.glob("*.py"))
    assert {p.stem for p in files} >= {"run_folder", "html", "browser", "fronts", "compare", "plots", "interactive"}
    offenders = {p.name: sorted(_imported_top_levels(p) & {"nas", "benchmarks", "tests"}) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}
    allowed = {"reports", "supernet", "predictors", "hw_profiles"}
    local = {n for p in files for n in _imported_top_levels(p)} & {"nas", *allowed}
    assert local <= allowed
