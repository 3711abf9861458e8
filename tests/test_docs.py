"""The README is a front page whose results block is generated, the getting-started commands run, the CLI
reference matches the app, and the docs site builds strictly (a broken link fails)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"
MAX_README_LINES = 200
# Every fenced block of the getting-started page is preceded by one of these markers: run by this test, or
# skipped with the reason (the install, a search, the whole test suite).
MARKER = re.compile(r"<!-- test: (run|skip \([^)]+\)) -->\s*\n```(\w*)\n(.*?)```", re.S)
FENCE = re.compile(r"^```", re.M)


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; the front page keeps to {MAX_README_LINES}"
    assert any("make test" in line for line in lines), "README.md must show the test command `make test` (CI runs it)"


def test_readme_results_block_is_what_the_script_generates():
    summary = _load(ROOT / "benchmarks" / "results_summary.py")
    table = summary.summary_table()
    assert summary.results_block(README.read_text()) == table, "README.md's results block is stale; run `make results`"
    rows = table.splitlines()[2:]
    assert 1 <= len(rows) <= 12
    assert summary.summary_table() == table  # deterministic


def test_results_summary_fails_loudly_on_a_missing_key(tmp_path: Path):
    summary = _load(ROOT / "benchmarks" / "results_summary.py")
    for f in (ROOT / "benchmarks" / "results").glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "early_exit.json").write_text('{"summary": {}}')
    with pytest.raises(summary.ResultsKeyError, match="early_exit.json has no key 'summary.expected_within"):
        summary.summary_table(tmp_path)


def _blocks() -> list[tuple[str, str, str]]:
    """(marker, language, body) of every marked fenced block of the getting-started page."""
    return MARKER.findall(GETTING_STARTED.read_text())


def test_every_getting_started_block_is_marked():
    text = GETTING_STARTED.read_text()
    n_fenced = len(FENCE.findall(text)) // 2
    blocks = _blocks()
    assert len(blocks) == n_fenced, (f"{GETTING_STARTED.name} has {n_fenced} code blocks but {len(blocks)} are marked; "
                                     "put '<!-- test: run -->' or '<!-- test: skip (why) -->' before each")
    assert any(marker == "run" for marker, _, _ in blocks)


@pytest.mark.parametrize("command", [line.strip() for marker, _, body in _blocks() if marker == "run"
                                     for line in body.splitlines() if line.strip()])
def test_getting_started_command_runs(command: str):
    env = dict(os.environ, COLUMNS="120", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"`{command}` failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert done.stdout.strip()


def test_cli_reference_lists_every_command_and_option():
    """docs/cli.md names every command and option of the app (its wording may differ between typer versions)."""
    import typer

    from nas.cli import app

    text = (ROOT / "docs" / "cli.md").read_text()
    sections = dict(re.findall(r"^## dynnas (\S+)\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    group = typer.main.get_command(app)
    assert set(sections) == set(group.commands), "docs/cli.md is stale; run `make docs`"
    for name, command in group.commands.items():
        for param in command.params:
            for opt in param.opts if param.param_type_name == "option" else [param.name.upper()]:
                assert f"`{opt}`" in sections[name], f"docs/cli.md lacks {opt} of dynnas {name}; run `make docs`"


def test_docs_site_builds_strictly(tmp_path: Path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]' installs it)")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "img" / "report_demo.png").is_file()
