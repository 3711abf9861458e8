"""Pareto fronts and hypervolume of run tables, computed the way the search computes them.

Objectives are minimised ``F = (-accuracy, latency_ms[, third])``. The hypervolume is taken in the box a run
stores in ``run.json["hv_reference"]`` (the normalisation of :mod:`nas.pareto`): each axis maps to
[0, 1] between the ideal and nadir corners and the reference point is ``normalised_reference``
(1.1, 1.1), or (1.1, 1.1, 1.1) in a run with a third objective (``hv_reference["third"]``: energy_mj or
memory_bytes). Sorting and volume are pymoo's, as in the search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from reports.run_folder import HVReference
from supernet.space import arch_is_dynamic


def non_dominated(F: np.ndarray) -> np.ndarray:  # noqa: N803 - the usual name
    """Indices of the non-dominated rows of ``F`` (n × k, minimised), sorted by the second objective, then the
    first; exact duplicates are all kept (none dominates the other)."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:  # a flat list of (-accuracy, latency) pairs
        F = F.reshape(-1, 2)
    if len(F) == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=np.int64)
    return idx[np.lexsort((F[idx, 0], F[idx, 1]))]


def third_objective(ref: HVReference) -> str | None:
    """The third objective's column (``energy_mj`` or ``memory_bytes``) of a 3-D box; None in 2-D."""
    third = (ref.model_extra or {}).get("third")
    return str(third) if third and len(ref.normalised_reference) == 3 else None


def objectives(df: pd.DataFrame, third: str | None = None) -> np.ndarray:
    """``(-accuracy, latency_ms)`` of a table's rows, and the ``third`` column when given."""
    cols = [-df["accuracy"].to_numpy(float), df["latency_ms"].to_numpy(float)]
    if third is not None:
        cols.append(df[third].to_numpy(float))
    return np.column_stack(cols)


def front_rows(evaluations: pd.DataFrame) -> pd.DataFrame:
    """The feasible, non-dominated, distinct-subnet rows of an evaluations table, fastest first."""
    df = evaluations[evaluations["feasible"].astype(bool)].drop_duplicates("subnet_id")
    return df.iloc[non_dominated(objectives(df))].reset_index(drop=True)


def exit_free_rows(evaluations: pd.DataFrame) -> pd.DataFrame:
    """The evaluations whose subnet has every exit off and no cascade scout (:func:`supernet.space.arch_is_dynamic`
    false): the static subset of the space."""
    dynamic = evaluations["arch"].astype(str).map(arch_is_dynamic).astype(bool)
    return evaluations[~dynamic]


def exit_free_front(evaluations: pd.DataFrame) -> pd.DataFrame:
    """The Pareto front of the candidates whose exits are all off."""
    static = exit_free_rows(evaluations)
    return front_rows(static) if len(static) else static


def _corner(c: object, key: str) -> float:
    """A corner's value on ``key`` (the third objective is an extra key of the record)."""
    return float(getattr(c, key))


def normalise(F: np.ndarray, ref: HVReference) -> np.ndarray:  # noqa: N803
    """``(-acc, lat[, third])`` → ``((ideal.acc - acc) / acc_span, (lat - ideal.lat) / lat_span[, …])`` in
    ``ref``'s box."""
    third = third_objective(ref)
    F = np.asarray(F, dtype=np.float64).reshape(-1, 3 if third else 2)
    tiny = 1e-9  # a degenerate axis (all equal) must not divide by zero, as in nas.pareto
    sa = max(ref.ideal.accuracy - ref.nadir.accuracy, tiny * max(1.0, abs(ref.ideal.accuracy)))
    sl = max(ref.nadir.latency_ms - ref.ideal.latency_ms, tiny * max(1.0, abs(ref.nadir.latency_ms)))
    cols = [(ref.ideal.accuracy + F[:, 0]) / sa, (F[:, 1] - ref.ideal.latency_ms) / sl]
    if third:
        lo, hi = _corner(ref.ideal, third), _corner(ref.nadir, third)
        cols.append((F[:, 2] - lo) / max(hi - lo, tiny * max(1.0, abs(hi))))
    return np.column_stack(cols)


def accuracy_latency_box(ref: HVReference) -> HVReference:
    """``ref`` on the accuracy and latency axes only (a run with a third objective stores a 3-D box)."""
    if third_objective(ref) is None:
        return ref
    return HVReference(accuracy=ref.accuracy, latency_ms=ref.latency_ms,
                       ideal={"accuracy": ref.ideal.accuracy, "latency_ms": ref.ideal.latency_ms},
                       nadir={"accuracy": ref.nadir.accuracy, "latency_ms": ref.nadir.latency_ms},
                       normalised_reference=tuple(ref.normalised_reference[:2]), transform=ref.transform)


def hypervolume(F: np.ndarray, ref: HVReference) -> float:  # noqa: N803
    """Hypervolume of ``F`` (minimised, raw units; as many columns as ``ref`` has axes) in ``ref``'s normalised
    box; 0.0 if nothing counts."""
    Z = normalise(F, ref)
    r = np.asarray(ref.normalised_reference, dtype=np.float64)
    Z = Z[np.all(Z < r, axis=1)]  # points beyond the reference dominate nothing
    if len(Z) == 0:
        return 0.0
    return float(HV(ref_point=r)(Z))


def hypervolume_trace(evaluations: pd.DataFrame, checkpoints: Sequence[int], ref: HVReference) -> np.ndarray:
    """HV of the feasible evaluations among the first ``n`` (in ``eval_index`` order), for each ``n`` in
    ``checkpoints``: one algorithm's curve, recomputed in any box (2-D or 3-D as ``ref`` is)."""
    ev = evaluations.sort_values("eval_index", kind="stable")
    F = objectives(ev, third_objective(ref))
    feasible = ev["feasible"].astype(bool).to_numpy()
    out = np.zeros(len(checkpoints))
    front = np.zeros((0, F.shape[1]))
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
    whose predictors differ a little compare on one scale (a third axis, when the boxes have one, likewise)."""
    first = refs[0]
    ideal = {"accuracy": max(r.ideal.accuracy for r in refs), "latency_ms": min(r.ideal.latency_ms for r in refs)}
    nadir = {"accuracy": min(r.nadir.accuracy for r in refs), "latency_ms": max(r.nadir.latency_ms for r in refs)}
    m = first.normalised_reference
    extra: dict[str, object] = {}
    third = third_objective(first)
    if third:
        ideal[third] = min(_corner(r.ideal, third) for r in refs)
        nadir[third] = max(_corner(r.nadir, third) for r in refs)
        extra = {"third": third, third: ideal[third] + m[2] * (nadir[third] - ideal[third])}
    return HVReference(accuracy=ideal["accuracy"] - m[0] * (ideal["accuracy"] - nadir["accuracy"]),
                       latency_ms=ideal["latency_ms"] + m[1] * (nadir["latency_ms"] - ideal["latency_ms"]),
                       ideal=ideal, nadir=nadir, normalised_reference=m, transform=first.transform, **extra)