"""Plain files, no torch: atomic writes, JSON, a writability probe and sha256 (shared by every package, and
usable where only an inference runtime is installed, as by ``dynnas latency`` and ``dynnas profile``)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supernet.errors import CheckpointError, OutputError

__all__ = ["atomic_write", "cache_root", "ensure_writable", "read_json", "remove_empty_dirs", "sha256", "write_json"]


def cache_root() -> Path:
    """The dynnas cache folder: ``$DYNNAS_CACHE`` or ``~/.cache/dynnas`` (``~`` expanded)."""
    env = os.environ.get("DYNNAS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dynnas"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it into place.

    Missing parent folders are created. On any failure the temp file and the folders created
    here are removed again, and an :class:`OSError` of the write names ``path`` (not the temp
    file), so a caller can report it or fall back to another location.
    """
    import errno

    path = Path(path)
    created, p = [], path.parent  # folders this call creates, deepest first
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    tmp: str | None = None
    in_write = False
    try:
        if not p.is_dir():  # a file where a parent folder should be (mkdir would say "File exists")
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        in_write = True
        write(Path(tmp))
        in_write = False
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the file should read like any other
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        for d in created:
            try:
                d.rmdir()
            except OSError:
                pass
        if isinstance(e, OSError) and e.errno is not None and e.filename != str(path):
            # Our own steps always concern ``path``; inside ``write`` only errors on the temp file do.
            about_tmp = e.filename is None or (tmp is not None and e.filename in (tmp, str(Path(tmp))))
            if not in_write or about_tmp:
                raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def write_json(path: Path, obj: Any, *, compact: bool = False) -> None:
    """Write ``obj`` as JSON atomically (temp file, then rename); ``compact`` drops the indentation
    (large data files such as accuracy data)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":")) if compact else json.dumps(obj, indent=2,
                                                                                            sort_keys=True)
    atomic_write(path, lambda p: p.write_text(text + "\n"))


def read_json(path: Path, what: str = "file") -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{what} '{path}' does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{what} '{path}' is corrupt ({e.__class__.__name__}); delete it or restore a good copy.") from None


def ensure_writable(folder: Path, keep: bool = True) -> None:
    """Raise :class:`OutputError` unless files can be created in ``folder``.

    With ``keep=False`` any folders created for the probe are removed again, so a check made
    before the real work leaves nothing behind if that work then fails.
    """
    folder = Path(folder)
    missing, p = [], folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    ok = False
    try:
        if not p.is_dir():  # mkdir would only say "File exists" or "Not a directory"
            what = "it is a file" if p == folder else f"'{p}' is a file"
            raise OutputError(f"output folder '{folder}' is not writable ({what}, not a folder); pass --out to a "
                              "writable folder.")
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test.")
        os.close(fd)
        os.unlink(tmp)
        ok = True
    except OSError as e:
        raise OutputError(f"output folder '{folder}' is not writable ({e.strerror or e}); pass --out to a writable "
                          "folder.") from None
    finally:
        if not (keep and ok):  # a failed probe never leaves folders behind
            remove_empty_dirs(missing)


def remove_empty_dirs(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) where they are empty; others are left as they are."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            pass


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
