"""Errors of the predictors package: one line naming the condition, the value and the fix."""

from __future__ import annotations

from collections.abc import Callable

from supernet.errors import CheckpointError, ConfigError


class PredictorCacheError(CheckpointError):
    """A latency or accuracy cache file is corrupt, of another format version, or for another net."""


class CalibrationError(ConfigError):
    """A predictor cannot be calibrated from what it was given."""


def check_header(doc: object, fmt: str, version: int, what: str, bad: Callable[[str], PredictorCacheError]) -> None:
    """Raise ``bad(...)`` unless ``doc`` is a mapping of format ``fmt`` at ``version`` (versioned data files)."""
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise bad(f"is not a dynnas {what} file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("format_version") != version:
        raise bad(f"has format version {doc.get('format_version')!r}, this dynnas reads {version}")
