"""Exceptions shared by every dynnas package.

Each message states the broken condition, the value received and the fix, in one line:
the CLI prints ``error: <message>`` and exits with code 2.
"""

from __future__ import annotations


class DynnasError(Exception):
    """Base class for every user-facing dynnas error."""


class ConfigError(DynnasError, ValueError):
    """A configuration value is out of range or inconsistent."""


class UnknownNameError(ConfigError):
    """A registry lookup failed (family, dataset, algorithm, device...)."""


class DatasetError(DynnasError):
    """A dataset is missing, empty or does not match the network."""


class CheckpointError(DynnasError):
    """A checkpoint is missing, corrupt or written by an incompatible run."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint exists but belongs to another family or search space."""


class ArchStringError(ConfigError):
    """An architecture string cannot be parsed for this search space."""


class OutputError(DynnasError):
    """An output location cannot be written or already holds another run."""


def closest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest known name, or ``""``."""
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


def unknown(kind: str, name: str, known: list[str] | tuple[str, ...]) -> UnknownNameError:
    """Build the standard "unknown X" error listing the known names and the closest match."""
    hint = closest(name, known) or "."
    return UnknownNameError(f"unknown {kind} '{name}'{hint} Known: {', '.join(sorted(known))}.")
