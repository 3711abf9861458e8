"""Errors of the predictors package: one line naming the condition, the value and the fix."""

from __future__ import annotations

from supernet.errors import CheckpointError, ConfigError


class PredictorCacheError(CheckpointError):
    """A latency or accuracy cache file is corrupt, of another format version, or for another net."""


class CalibrationError(ConfigError):
    """A predictor cannot be calibrated from what it was given."""
