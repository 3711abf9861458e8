"""Imports flow one way: ``nas → reports``; nothing in reports/ imports nas, not even lazily inside a function."""

from __future__ import annotations

from pathlib import Path

import reports
from tests.test_layering import _imports as _imported_top_levels

ROOT = Path(reports.__file__).parent


def test_reports_never_imports_nas():
    files = sorted(ROOT.glob("*.py"))
    assert {p.stem for p in files} >= {"run_folder", "html", "browser", "fronts", "compare", "plots", "interactive"}
    offenders = {p.name: sorted(_imported_top_levels(p) & {"nas", "benchmarks", "tests"}) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}
    allowed = {"reports", "supernet", "predictors", "hw_profiles"}
    local = {n for p in files for n in _imported_top_levels(p)} & {"nas", *allowed}
    assert local <= allowed
