"""Pareto fronts and 2-D hypervolume of run tables, computed the way the search computes them.

Objectives are minimised ``F = (-accuracy, latency_ms)``. The hypervolume is taken in the box a run
stores in ``run.json["hv_reference"]`` (the normalisation of :mod:`nas.pareto`): each axis maps to
[0, 1] between the ideal and nadir corners and the reference point is ``normalised_reference``
(1.1, 1.1). The 2-D case is exact with one sort, so the report needs no optimisation library.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from reports.run_folder import HVReference


def non_dominated(F: np.ndarray) -> np.ndarray:  # noqa: N803 - the usual name
    """Indices of the non-dominated rows of ``F`` (n × 2, minimised), sorted by the second objective, then the
    first; exact duplicates are all kept (none dominates the other)."""
    F = np.asarray(F, dtype=np.float64).reshape(-1, 2)
    if len(F) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((F[:, 1], F[:, 0]))  # by f0, then f1
    keep = np.zeros(len(F), dtype=bool)
    best = np.inf  # lowest f1 among the strictly smaller points (lexicographically) seen so far
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and np.array_equal(F[order[j + 1]], F[order[i]]):
            j += 1  # a run of exact duplicates
        f1 = F[order[i], 1]
        if f1 < best:
            keep[order[i: j + 1]] = True
            best = f1
        i = j + 1
    idx = np.flatnonzero(keep)
    return idx[np.lexsort((F[idx, 0], F[idx, 1]))]


def objectives(df: pd.DataFrame) -> np.ndarray:
    """``(-accuracy, latency_ms)`` of a table's rows."""
    return np.column_stack([-df["accuracy"].to_numpy(float), df["latency_ms"].to_numpy(float)])


def front_rows(evaluations: pd.DataFrame) -> pd.DataFrame:
    """The feasible, non-dominated, distinct-subnet rows of an evaluations table, fastest first."""
    df = evaluations[evaluations["feasible"].astype(bool)].drop_duplicates("subnet_id")
    return df.iloc[non_dominated(objectives(df))].reset_index(drop=True)


def exit_free_rows(evaluations: pd.DataFrame) -> pd.DataFrame:
    """The evaluations whose subnet has every exit off and no cascade scout (arch strings without a ``1`` after
    ``_x`` and without ``_c1``…``_c9``): the static subset of the space."""
    arch = evaluations["arch"].astype(str)
    return evaluations[~arch.str.contains(r"_x\d*1") & ~arch.str.contains(r"_c[1-9]")]


def exit_free_front(evaluations: pd.DataFrame) -> pd.DataFrame:
    """The Pareto front of the candidates whose exits are all off."""
    static = exit_free_rows(evaluations)
    return front_rows(static) if len(static) else static


def normalise(F: np.ndarray, ref: HVReference) -> np.ndarray:  # noqa: N803
    """``(-acc, lat)`` → ``((ideal.acc - acc) / acc_span, (lat - ideal.lat) / lat_span)`` in ``ref``'s box."""
    F = np.asarray(F, dtype=np.float64).reshape(-1, 2)
    tiny = 1e-9  # a degenerate axis (all equal) must not divide by zero, as in nas.pareto
    sa = max(ref.ideal.accuracy - ref.nadir.accuracy, tiny * max(1.0, abs(ref.ideal.accuracy)))
    sl = max(ref.nadir.latency_ms - ref.ideal.latency_ms, tiny * max(1.0, abs(ref.nadir.latency_ms)))
    return np.column_stack([(ref.ideal.accuracy + F[:, 0]) / sa, (F[:, 1] - ref.ideal.latency_ms) / sl])


def accuracy_latency_box(ref: HVReference) -> HVReference:
    """``ref`` on the accuracy and latency axes only (a run with a third objective stores a 3-D box)."""
    if len(ref.normalised_reference) == 2:
        return ref
    return ref.model_copy(update={"normalised_reference": tuple(ref.normalised_reference[:2])})


def hypervolume(F: np.ndarray, ref: HVReference) -> float:  # noqa: N803
    """Hypervolume of ``F`` (minimised, raw units) in ``ref``'s normalised box; 0.0 if nothing counts."""
    Z = normalise(F, ref)
    r0, r1 = ref.normalised_reference
    Z = Z[(Z[:, 0] < r0) & (Z[:, 1] < r1)]  # points beyond the reference dominate nothing
    if len(Z) == 0:
        return 0.0
    Z = Z[non_dominated(Z)]
    Z = Z[np.argsort(Z[:, 0], kind="stable")]  # on a front: f0 ascending, f1 descending
    right = np.append(Z[1:, 0], r0)
    return float(np.sum((right - Z[:, 0]) * (r1 - Z[:, 1])))


def hypervolume_trace(evaluations: pd.DataFrame, checkpoints: Sequence[int], ref: HVReference) -> np.ndarray:
    """HV of the feasible evaluations among the first ``n`` (in ``eval_index`` order), for each ``n`` in
    ``checkpoints``: one algorithm's curve, recomputed in any box."""
    ev = evaluations.sort_values("eval_index", kind="stable")
    F = objectives(ev)
    feasible = ev["feasible"].astype(bool).to_numpy()
    out = np.zeros(len(checkpoints))
    front = np.zeros((0, 2))
    done = 0
    for k, n in enumerate(checkpoints):
        n = int(min(n, len(ev)))
        if n > done:
            new = F[done:n][feasible[done:n]]
            merged = np.vstack([front, new])
            front = merged[non_dominated(merged)]
            done = n
        out[k] = hypervolume(front, ref)
    return out


def union_box(refs: Sequence[HVReference]) -> HVReference:
    """The smallest box holding every one of ``refs``' boxes (best ideal, worst nadir), so hypervolumes of runs
    whose predictors differ a little compare on one scale."""
    first = refs[0]
    ideal = {"accuracy": max(r.ideal.accuracy for r in refs), "latency_ms": min(r.ideal.latency_ms for r in refs)}
    nadir = {"accuracy": min(r.nadir.accuracy for r in refs), "latency_ms": max(r.nadir.latency_ms for r in refs)}
    m0, m1 = first.normalised_reference
    return HVReference(accuracy=ideal["accuracy"] - m0 * (ideal["accuracy"] - nadir["accuracy"]),
                       latency_ms=ideal["latency_ms"] + m1 * (nadir["latency_ms"] - ideal["latency_ms"]),
                       ideal=ideal, nadir=nadir, normalised_reference=first.normalised_reference,
                       transform=first.transform)
