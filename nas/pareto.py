"""Pareto sets, spread selection and hypervolume, on minimised objectives ``F = (-accuracy, latency_ms)``.

Hypervolume decision: it is computed on objectives *normalised by a box* (:class:`HVBox`) whose
ideal corner is (best accuracy, lowest latency) and nadir corner (worst accuracy, highest
latency) of the supernet's uniform-width subnets (the "just scale the width" baseline); with a
latency budget the latency nadir is the budget. Each axis maps to [0, 1] between the corners and
the reference point is (1.1, 1.1), so the extreme subnets still add volume. An HV is therefore
unitless, roughly the dominated share of the baseline box (a front beyond the ideal corner can
exceed 1), and comparable between algorithms of one run: they share the box, stored in run.json.
Normalising to the baseline box rather than [0, 1] x [0, max latency] keeps HV informative when
all subnets' latencies sit within a few percent of each other (overhead-bound devices).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reports import fronts
from reports.fronts import non_dominated  # noqa: F401 - one implementation (pymoo), shared with the report
from reports.run_folder import HVReference

MARGIN = 0.1  # reference point = nadir + 10 % of the box, in normalised units (1.1, 1.1)


@dataclass(frozen=True, slots=True)
class HVBox:
    """The box objectives are normalised by: ideal and nadir accuracy (fraction) and latency (ms)."""

    acc_ideal: float
    acc_nadir: float
    lat_ideal: float
    lat_nadir: float
    # a third minimised objective (energy_mj or memory_bytes), spanned the same way; None with two objectives
    third_name: str | None = None
    third_ideal: float | None = None
    third_nadir: float | None = None

    @classmethod
    def from_points(cls, accuracy: np.ndarray, latency_ms: np.ndarray, latency_budget_ms: float | None = None, *,
                    third: np.ndarray | None = None, third_cap: float | None = None,
                    third_name: str | None = None) -> HVBox:
        """The box spanned by some points (the uniform baselines); the budget caps the latency nadir (and
        ``third_cap`` the third objective's)."""
        acc, lat = np.asarray(accuracy, float), np.asarray(latency_ms, float)
        lat_nadir = float(latency_budget_ms) if latency_budget_ms is not None else float(lat.max())
        if third is None:
            return cls(float(acc.max()), float(acc.min()), float(lat.min()), lat_nadir)
        t = np.asarray(third, float)
        return cls(float(acc.max()), float(acc.min()), float(lat.min()), lat_nadir, third_name or "third",
                   float(t.min()), float(third_cap) if third_cap is not None else float(t.max()))

    @property
    def n_obj(self) -> int:
        return 2 if self.third_name is None else 3

    def _spans(self) -> tuple[float, ...]:
        tiny = 1e-9  # a degenerate axis (all equal) must not divide by zero
        spans = (max(self.acc_ideal - self.acc_nadir, tiny * max(1.0, abs(self.acc_ideal))),
                 max(self.lat_nadir - self.lat_ideal, tiny * max(1.0, abs(self.lat_nadir))))
        if self.third_name is None:
            return spans
        lo, hi = float(self.third_ideal or 0.0), float(self.third_nadir or 0.0)
        return (*spans, max(hi - lo, tiny * max(1.0, abs(hi))))

    def normalise(self, F: np.ndarray) -> np.ndarray:  # noqa: N803 - pymoo's name
        """``(-acc, lat[, third])`` → ``((acc_ideal - acc) / acc_span, (lat - lat_ideal) / lat_span[, …])``
        (:func:`reports.fronts.normalise` on this box's record: one implementation for search and report)."""
        return fronts.normalise(F, self.record())

    def record(self) -> HVReference:
        """This box as the run folder's ``hv_reference`` record."""
        return HVReference.model_validate(self.to_dict())

    @property
    def reference(self) -> tuple[float, float]:
        """The reference point in raw units: (accuracy, latency_ms)."""
        sa, sl = self._spans()[:2]
        return self.acc_ideal - (1 + MARGIN) * sa, self.lat_ideal + (1 + MARGIN) * sl

    def to_dict(self) -> dict[str, Any]:
        acc, lat = self.reference
        if self.third_name is not None:  # a 3-objective box: the third axis the same way, 3-D HV
            t = self.third_name
            sp = self._spans()
            return {"accuracy": acc, "latency_ms": lat, t: float(self.third_ideal or 0.0) + (1 + MARGIN) * sp[2],
                    "ideal": {"accuracy": self.acc_ideal, "latency_ms": self.lat_ideal, t: self.third_ideal},
                    "nadir": {"accuracy": self.acc_nadir, "latency_ms": self.lat_nadir, t: self.third_nadir},
                    "normalised_reference": [1 + MARGIN] * 3, "third": t,
                    "transform": f"f = ((ideal.accuracy - accuracy) / (ideal.accuracy - nadir.accuracy), "
                                 f"(latency_ms - ideal.latency_ms) / (nadir.latency_ms - ideal.latency_ms), "
                                 f"({t} - ideal.{t}) / (nadir.{t} - ideal.{t})); 3-D HV of f against "
                                 "(1.1, 1.1, 1.1); only feasible points count"}
        return {"accuracy": acc, "latency_ms": lat,
                "ideal": {"accuracy": self.acc_ideal, "latency_ms": self.lat_ideal},
                "nadir": {"accuracy": self.acc_nadir, "latency_ms": self.lat_nadir},
                "normalised_reference": [1 + MARGIN, 1 + MARGIN],
                "transform": "f = ((ideal.accuracy - accuracy) / (ideal.accuracy - nadir.accuracy), "
                             "(latency_ms - ideal.latency_ms) / (nadir.latency_ms - ideal.latency_ms)); "
                             "HV of f against (1.1, 1.1); only feasible points count"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HVBox:
        t = d.get("third")
        if t:
            return cls(float(d["ideal"]["accuracy"]), float(d["nadir"]["accuracy"]), float(d["ideal"]["latency_ms"]),
                       float(d["nadir"]["latency_ms"]), t, float(d["ideal"][t]), float(d["nadir"][t]))
        return cls(float(d["ideal"]["accuracy"]), float(d["nadir"]["accuracy"]), float(d["ideal"]["latency_ms"]),
                   float(d["nadir"]["latency_ms"]))


def hypervolume(F: np.ndarray, box: HVBox) -> float:  # noqa: N803
    """HV of ``F`` (minimised, raw units) in the normalised box (see module docstring); 0.0 if empty
    (:func:`reports.fronts.hypervolume`, the report's own)."""
    return fronts.hypervolume(F, box.record())


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
