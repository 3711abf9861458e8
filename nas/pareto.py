"""Pareto sets, spread selection and hypervolume, on minimised objectives ``F = (-accuracy, latency_ms)``.

Hypervolume decision: it is computed on *normalised* objectives ``(1 - accuracy,
latency_ms / ref_latency_ms)`` with reference point ``(1, 1)``, so a value is the dominated share of
the box ``accuracy in [0, 1] x latency in [0, ref_latency_ms]`` — unitless, in [0, 1], and
comparable between algorithms of one run (they share ``ref_latency_ms``, stored in run.json).
"""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def non_dominated(F: np.ndarray) -> np.ndarray:  # noqa: N803 - pymoo's name
    """Indices of the non-dominated rows of ``F`` (minimised), sorted by the second objective.

    Exact duplicates are all kept (none dominates the other); deduplicate by subnet first.
    """
    F = np.asarray(F, dtype=np.float64)
    if len(F) == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=np.int64)
    return idx[np.lexsort((F[idx, 0], F[idx, 1]))]


def normalise(F: np.ndarray, ref_latency_ms: float) -> np.ndarray:  # noqa: N803
    """``(-acc, lat)`` → ``(1 - acc, lat / ref_latency_ms)``: the space the hypervolume lives in."""
    F = np.asarray(F, dtype=np.float64).reshape(-1, 2)
    return np.column_stack([1.0 + F[:, 0], F[:, 1] / float(ref_latency_ms)])


def hypervolume(F: np.ndarray, ref_latency_ms: float) -> float:  # noqa: N803
    """Dominated share of the normalised box (see module docstring); 0.0 for an empty set."""
    Z = normalise(F, ref_latency_ms)
    Z = Z[np.all(Z < 1.0, axis=1)]  # points outside the box dominate nothing in it
    if len(Z) == 0:
        return 0.0
    return float(HV(ref_point=np.ones(2))(Z))


def spread_order(latency_ms: np.ndarray) -> np.ndarray:
    """Order in which to pick points of a front so every prefix is spread along latency.

    First the fastest, then the slowest (the most accurate on a front), then repeatedly the point
    farthest in latency from those already picked (ties → the faster). Prefixes are nested, so
    "the top k" is the same set whichever k a later command asks for.
    """
    lat = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    n = len(lat)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = [int(np.argmin(lat))]
    if n > 1:
        order.append(int(np.argmax(np.where(np.arange(n) == order[0], -np.inf, lat))))
    while len(order) < n:
        gap = np.min(np.abs(lat[:, None] - lat[order][None, :]), axis=1)
        gap[order] = -np.inf
        best = np.flatnonzero(gap == gap.max())
        order.append(int(best[np.argmin(lat[best])]))
    return np.asarray(order, dtype=np.int64)


def select_spread(front: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` front points spread along latency (fastest and most accurate included).

    ``front`` is either ``F`` of shape (n, 2) (latency in column 1) or the latencies, shape (n,).
    The indices come back sorted by latency.
    """
    front = np.asarray(front, dtype=np.float64)
    lat = front[:, 1] if front.ndim == 2 else front.reshape(-1)
    chosen = spread_order(lat)[: max(0, int(k))]
    return chosen[np.argsort(lat[chosen], kind="stable")]
