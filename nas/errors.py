"""Turn any user-facing error into one line and exit code 2 (the CLI's only error path)."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hw_profiles import ProfileError
from supernet.errors import DynnasError
from supernet.files import cache_root
from supernet.runtime import RuntimeInputError

EXIT_USAGE = 2


def one_line(err: BaseException) -> str:
    """A single-line message for ``err`` (pydantic errors name the field)."""
    if isinstance(err, ValidationError):
        parts = []
        for e in err.errors():
            loc = ".".join(str(x) for x in e["loc"]) or "config"
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg} (got {e.get('input')!r})" if loc != "config" else msg)
        return "; ".join(parts)
    return " ".join(str(err).split())


# errno values that only a write (or creating a file) produces, and each one's fix.
_WRITE_FIXES = {
    errno.ENOSPC: "free disk space or pass a path on another disk",
    errno.EDQUOT: "free space within your disk quota or pass a path on another disk",
    errno.EFBIG: "pass a path on a file system that takes larger files",
    errno.EROFS: "pass a path on a writable file system",
}
_ACCESS_FIXES = {
    errno.EACCES: "check its permissions or pass another path",
    errno.EPERM: "check its permissions or pass another path",
    errno.ENOENT: "check the path, or pass a path in a writable folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "it is a folder; pass a file path",
    errno.ENAMETOOLONG: "pass a shorter path",
    errno.ELOOP: "check the path's symbolic links",
}


def _in_cache(filename: str) -> Path | None:
    """The dynnas cache folder (``$DYNNAS_CACHE`` or ``~/.cache/dynnas``) when ``filename`` lies in it."""
    root = cache_root()
    try:
        return root if Path(filename).absolute().is_relative_to(root.absolute()) else None
    except (OSError, ValueError):
        return None


def _name(filename: object) -> str:
    return os.fsdecode(filename) if isinstance(filename, bytes | str) else str(filename)


def os_error_line(err: OSError) -> str | None:
    """One line for an OSError about a file: ``cannot write '<file>' (<reason>); <fix>.`` for errors only a
    write produces, else ``cannot access …`` (the same errno can come from a read). ``None`` for one that
    names no file (and is not a full disk): that is a bug to show, not bad input."""
    reason = err.strerror or err.__class__.__name__
    if err.filename is None:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{reason}; {_WRITE_FIXES[err.errno]}."
        return None
    target = _name(err.filename2 if err.filename2 is not None else err.filename)
    where = _name(err.filename) + (f"' → '{target}" if err.filename2 is not None else "")
    if err.errno in _WRITE_FIXES:
        verb, fix = "cannot write", _WRITE_FIXES[err.errno]
    else:  # could be a read as well as a write: say neither
        verb, fix = "cannot access", _ACCESS_FIXES.get(err.errno, "check the path and its permissions")
    cache = _in_cache(target)
    if cache is not None:
        fix = f"it is in the dynnas cache '{cache}': set DYNNAS_CACHE to a writable folder"
    return f"{verb} '{where}' ({reason}); {fix}."


@contextmanager
def user_errors() -> Iterator[None]:
    """Print ``error: …`` and exit 2 on any dynnas, profile or config error, and on any OSError about a file
    (a path that cannot be written or read: the safety net behind the commands' own checks)."""
    try:
        yield
    except (DynnasError, ProfileError, ValidationError, RuntimeInputError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except OSError as e:
        line = os_error_line(e)
        if line is None:
            raise
        print(f"error: {' '.join(line.split())}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        print("error: interrupted; rerun with --resume to continue where it stopped.", file=sys.stderr)
        raise SystemExit(130) from None


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors():
            return fn(*args, **kwargs)

    return wrapper
