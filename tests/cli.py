"""Running the `dynnas` CLI in-process from tests: success, and the one-line exit-2 error contract."""

from __future__ import annotations

from typer.testing import CliRunner

from nas.cli import app

runner = CliRunner()


def ok(args: list[str]) -> str:
    """Run ``dynnas ARGS``; assert exit 0; return the output."""
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.output


def fails_cleanly(args: list[str], match: str) -> str:
    """Exit 2 with exactly one ``error: …`` line, the last on stderr (progress lines may precede it)."""
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr
    assert "Traceback" not in res.output
    assert match in errors[0], errors[0]
    return errors[0]
