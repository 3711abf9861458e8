"""Every command that writes a file or folder: a path that cannot be written (on /proc, under a regular
file, on a read-only file system, in an impossible $DYNNAS_CACHE) gets one line ``error: …`` naming the
path and the fix, exit code 2, no traceback, and nothing left behind."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nas.cli import app
from nas.errors import user_errors
from supernet.checkpoint import atomic_write, ensure_writable
from supernet.errors import OutputError
from tests.cli import fails_cleanly, ok

runner = CliRunner()
HAS_PROC = sys.platform.startswith("linux") and Path("/proc/self").is_dir()
PROC = "/proc/dynnas-test-no-such-entry"  # /proc takes no new entries, not even from root


def search(sn: Path, out: Path | str, *extra: str) -> list[str]:
    return ["search", "--device", "jetson-orin", "--supernet", str(sn), "--bn", "switchable",
            "--accuracy-samples", "32", "--budget", "5", "--top", "0", "--algorithm", "random", "--seed", "0",
            "--out", str(out), *extra]


def snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def one_error_line(args: list[str], match: str, *, strict: bool = True) -> str:
    """:func:`tests.cli.fails_cleanly`; with ``strict`` stderr holds nothing but that one line."""
    if not strict:
        return fails_cleanly(args, match)
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output, res.output
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(sn: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished search run (random, 5 evaluations, nothing exported)."""
    out = tmp_path_factory.mktemp("outputs") / "run"
    ok(search(sn, out))
    return out


# (name, target under tmp_path or absolute, the path the message must name)
TARGETS = [
    pytest.param(f"{PROC}/x", f"{PROC}", id="proc-nested",
                 marks=pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc")),
    pytest.param(PROC, PROC, id="proc", marks=pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc")),
    pytest.param("{tmp}/afile/x", "{tmp}/afile", id="under-file"),
    pytest.param("{tmp}/afile/x/y", "{tmp}/afile", id="under-file-nested"),
]


def _resolve(target: str, named: str, tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "afile").write_text("x\n")
    return target.format(tmp=tmp_path), named.format(tmp=tmp_path)


@pytest.mark.parametrize("command", ["train", "search", "report"])
@pytest.mark.parametrize("target, named", TARGETS)
def test_unwritable_out_is_one_line_and_leaves_nothing(command, target, named, tmp_path, sn, run_dir):
    target, named = _resolve(target, named, tmp_path)
    before = snapshot(tmp_path)
    args = {"train": ["train", "--out", target, "--train-limit", "64"],
            "search": search(sn, target),
            "report": ["report", str(run_dir), "--out", f"{target}/report.html"]}[command]
    line = one_error_line(args, target if command != "report" else f"{target}/report.html")
    assert named in line and "writable" in line, line
    assert snapshot(tmp_path) == before
    if command == "report":
        assert not any(p.name.startswith(".report.html.") for p in run_dir.iterdir())
    if HAS_PROC:
        assert not Path(PROC).exists()


@pytest.mark.parametrize("command", ["train", "search"])
def test_out_that_is_a_file_is_one_line(command, tmp_path, sn):
    blocker = tmp_path / "afile"
    blocker.write_text("x\n")
    args = ["train", "--out", str(blocker), "--train-limit", "64"] if command == "train" else search(sn, blocker)
    line = one_error_line(args, str(blocker))
    assert "is a file" in line, line
    assert blocker.read_text() == "x\n" and snapshot(tmp_path) == ["afile"]


def test_failed_search_removes_the_parent_folders_it_made(tmp_path, sn):
    """--out in folders that do not exist yet: the run fails after the output checks (unreachable latency
    budget), and neither the staging folder nor the new parents stay behind."""
    out = tmp_path / "new" / "deeper" / "run"
    fails_cleanly(search(sn, out, "--latency-budget", "1e-6"), "is unreachable on jetson-orin")
    assert snapshot(tmp_path) == []


def test_export_errors_are_one_line(tmp_path, run_dir):
    one_error_line(["export", str(tmp_path / "missing")], str(tmp_path / "missing"))
    (tmp_path / "afile").write_text("x\n")
    one_error_line(["export", str(tmp_path / "afile")], str(tmp_path / "afile"))
    if HAS_PROC:
        one_error_line(["export", PROC], PROC)
    assert snapshot(tmp_path) == ["afile"]


def test_export_into_a_read_only_run_is_one_line(run_dir, monkeypatch):
    """A run folder on a read-only file system (simulated: root may write anywhere else) fails before the slow
    work and creates no subnets/."""
    real = tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == run_dir.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(Path(dir) / ".probe"))
        return real(*args, dir=dir, **kwargs)

    before = snapshot(run_dir)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    line = one_error_line(["export", str(run_dir), "--top", "1"], f"run folder '{run_dir}'")
    assert "Read-only file system" in line and "copy the run" in line, line
    assert snapshot(run_dir) == before


def test_calibrate_with_an_impossible_cache_is_one_line(sn, tmp_path, monkeypatch):
    """Beside the supernet is read-only (simulated) and $DYNNAS_CACHE lies under a file: the accuracy data
    has nowhere to go; the message names the cache file and says to set DYNNAS_CACHE."""
    (tmp_path / "afile").write_text("x\n")
    cache = tmp_path / "afile" / "cache"
    monkeypatch.setenv("DYNNAS_CACHE", str(cache))
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == sn.parent else real(p, mode, *a, **k))
    before = snapshot(sn.parent)
    # 40 > the fixture's 32 switchable records: tops up 8 subnets, then has to write the data
    line = one_error_line(["calibrate", "--supernet", str(sn), "--bn", "switchable", "--samples", "40",
                           "--ceiling", "5"], str(cache), strict=False)
    assert "DYNNAS_CACHE" in line, line
    assert snapshot(sn.parent) == before and snapshot(tmp_path) == ["afile"]


# ---- the safety net and the helpers behind it --------------------------------------------------
def _exit_and_line(err: BaseException, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc, user_errors():
        raise err
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return int(exc.value.code), lines[0]


@pytest.mark.parametrize("err, expected", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/out/x.json"),
     "error: cannot access '/data/out/x.json' (Permission denied); check its permissions or pass another path."),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/in.csv"),
     "error: cannot access '/data/in.csv' (No such file or directory); check the path"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/etc/hostname/x"),
     "error: cannot access '/etc/hostname/x' (Not a directory); a part of the path is a file"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/big.onnx"),
     "error: cannot write '/data/big.onnx' (No space left on device); free disk space"),
    (OSError(errno.ENOSPC, "No space left on device"), "error: No space left on device; free disk space"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/a", None, "/mnt/ro/b"),
     "error: cannot write '/mnt/ro/a' → '/mnt/ro/b' (Read-only file system); pass a path on a writable"),
    (PermissionError(errno.EACCES, "Permission denied", "two\nlines"), "error: cannot access 'two lines'"),
])
def test_user_errors_turns_file_oserrors_into_one_line(err, expected, capsys):
    code, line = _exit_and_line(err, capsys)
    assert code == 2 and line.startswith(expected), line


def test_user_errors_names_dynnas_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DYNNAS_CACHE", str(tmp_path / "c"))
    code, line = _exit_and_line(FileNotFoundError(errno.ENOENT, "No such file or directory",
                                                  str(tmp_path / "c" / "latency" / "x.json")), capsys)
    assert code == 2 and "set DYNNAS_CACHE to a writable folder" in line, line


def test_user_errors_keeps_bugs_and_interrupts(capsys):
    with pytest.raises(ConnectionResetError), user_errors():  # an OSError about no file is a bug: traceback
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    with pytest.raises(SystemExit) as exc, user_errors():
        raise KeyboardInterrupt
    assert exc.value.code == 130 and "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("fail", ["under-file", "in-write", "in-write-other-file"])
def test_atomic_write_names_the_target_and_removes_what_it_made(tmp_path, fail):
    (tmp_path / "afile").write_text("x\n")
    target = tmp_path / ("afile" if fail == "under-file" else "new") / "deeper" / "x.json"

    def write(p: Path) -> None:
        if fail == "in-write-other-file":
            open(tmp_path / "missing-input.bin", "rb")  # noqa: SIM115 - an error about another file
        p.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")  # as a full disk reports it: no file name

    with pytest.raises(OSError) as exc:
        atomic_write(target, write)
    expected = str(tmp_path / "missing-input.bin") if fail == "in-write-other-file" else str(target)
    assert exc.value.filename == expected
    assert snapshot(tmp_path) == ["afile"]


def test_ensure_writable_under_a_file_and_on_proc(tmp_path):
    (tmp_path / "afile").write_text("x\n")
    for folder in [tmp_path / "afile" / "x" / "y", *([Path(PROC) / "x"] if HAS_PROC else [])]:
        for keep in (True, False):
            with pytest.raises(OutputError, match="not writable.*pass --out to a writable folder"):
                ensure_writable(folder, keep=keep)
    assert snapshot(tmp_path) == ["afile"]
