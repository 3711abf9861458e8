"""Agreement between predictions and measurements: rank correlation, RMSE, share within ±pct %."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau

from supernet.errors import ConfigError


def _pair(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ConfigError(f"metrics need two arrays of the same length, but got {x.size} and {y.size}.")
    return x, y


def kendall_tau(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """Kendall's tau-b (ties handled); NaN when fewer than 2 values or one side is constant."""
    x, y = _pair(a, b)
    if x.size < 2:
        return float("nan")
    return float(kendalltau(x, y).statistic)


def rmse(pred: np.ndarray | list[float], true: np.ndarray | list[float]) -> float:
    """Root-mean-square error, in the units of the inputs."""
    x, y = _pair(pred, true)
    return float(np.sqrt(np.mean((x - y) ** 2))) if x.size else float("nan")


def within(pred: np.ndarray | list[float], true: np.ndarray | list[float], pct: float) -> float:
    """Share of predictions within ±``pct`` % of the true value (relative to the true value)."""
    x, y = _pair(pred, true)
    if x.size == 0:
        return float("nan")
    return float(np.mean(np.abs(x - y) <= pct / 100.0 * np.abs(y)))
