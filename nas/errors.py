"""Turn any user-facing error into one line and exit code 2 (the CLI's only error path)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from hw_profiles import ProfileError
from supernet.errors import DynnasError

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


@contextmanager
def user_errors() -> Iterator[None]:
    """Print ``error: …`` and exit 2 on any dynnas, profile or config error."""
    try:
        yield
    except (DynnasError, ProfileError, ValidationError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
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
