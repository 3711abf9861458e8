"""The search problem as a frozen value (pymoo style): space, objectives, constraint, evaluation.

Objectives are declared up front: maximise ``accuracy`` (a fraction) and minimise ``latency_ms``.
Internally every algorithm minimises ``F = (-accuracy, latency_ms)``. An optional latency budget
adds one inequality constraint ``g = latency_ms - budget``; a subnet is feasible iff ``g <= 0``.

Example::

    problem = SearchProblem(space=space, accuracy=acc_pred, latency=lat_pred, macs=macs_fn,
                            latency_budget_ms=2.0)
    problem.check_feasible()            # raises InfeasibleConstraintError if 2 ms is unreachable
    ev = problem.evaluate([space.largest(), space.smallest()])
    ev.F, ev.G, ev.feasible
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from supernet.errors import ConfigError, DynnasError
from supernet.space import SearchSpace, SubnetConfig


class InfeasibleConstraintError(DynnasError):
    """The latency budget is below the fastest latency any subnet can reach."""


class AccuracyModel(Protocol):
    """What the problem needs from an accuracy predictor (``predictors.AccuracyPredictor``)."""

    def predict(self, subnets: Sequence[SubnetConfig]) -> np.ndarray: ...


class LatencyModel(Protocol):
    """What the problem needs from a latency predictor (``predictors.LatencyPredictor``)."""

    device: str

    def predict_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Objective:
    """One objective: its name, unit and whether larger or smaller is better."""

    name: str
    direction: Literal["maximize", "minimize"]
    unit: str


OBJECTIVES: tuple[Objective, ...] = (
    Objective("accuracy", "maximize", "fraction"),
    Objective("latency_ms", "minimize", "ms"),
)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Predicted objectives of a batch of subnets (row i belongs to ``subnets[i]``)."""

    subnets: tuple[SubnetConfig, ...]
    accuracy: np.ndarray
    latency_ms: np.ndarray
    macs: np.ndarray
    latency_budget_ms: float | None = None

    def __len__(self) -> int:
        return len(self.subnets)

    @property
    def F(self) -> np.ndarray:  # noqa: N802 - pymoo's name
        """Objectives to minimise, shape (n, 2): ``(-accuracy, latency_ms)``."""
        return np.column_stack([-self.accuracy, self.latency_ms]).astype(np.float64)

    @property
    def G(self) -> np.ndarray:  # noqa: N802 - pymoo's name
        """Inequality constraints, shape (n, 0) or (n, 1): ``latency_ms - budget`` (feasible iff <= 0)."""
        if self.latency_budget_ms is None:
            return np.zeros((len(self), 0))
        return (self.latency_ms - self.latency_budget_ms).reshape(-1, 1).astype(np.float64)

    @property
    def feasible(self) -> np.ndarray:
        return np.all(self.G <= 0.0, axis=1)


@dataclass(frozen=True, kw_only=True, eq=False)
class SearchProblem:
    """Space + predictors + objectives + optional latency budget; evaluation is a batch call.

    ``macs`` maps a subnet to its multiply-accumulates (reported, not optimised).
    """

    space: SearchSpace
    accuracy: AccuracyModel
    latency: LatencyModel
    macs: Callable[[SubnetConfig], int]
    latency_budget_ms: float | None = None
    objectives: tuple[Objective, ...] = field(default=OBJECTIVES, init=False)

    def __post_init__(self) -> None:
        b = self.latency_budget_ms
        if b is not None and not (math.isfinite(b) and b > 0):
            raise ConfigError(f"the latency budget must be a positive number of ms, but got {b}; "
                              "pass e.g. --latency-budget 2.5 or leave it out.")

    @property
    def device(self) -> str:
        return str(self.latency.device)

    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    @property
    def n_constr(self) -> int:
        return 0 if self.latency_budget_ms is None else 1

    def evaluate(self, subnets: Sequence[SubnetConfig]) -> Evaluation:
        """Predict accuracy and latency of ``subnets`` in one batch per predictor."""
        subs = tuple(subnets)
        if not subs:
            empty = np.zeros(0)
            return Evaluation((), empty, empty, np.zeros(0, np.int64), self.latency_budget_ms)
        acc = np.asarray(self.accuracy.predict(subs), dtype=np.float64).reshape(-1)
        lat = np.asarray(self.latency.predict_ms(subs), dtype=np.float64).reshape(-1)
        if acc.shape != (len(subs),) or lat.shape != (len(subs),):
            raise ConfigError(f"predictors returned {acc.shape} accuracies and {lat.shape} latencies for "
                              f"{len(subs)} subnets; a predictor is broken.")
        if not (np.all(np.isfinite(acc)) and np.all(np.isfinite(lat))):
            raise ConfigError("a predictor returned NaN or infinite values; rebuild its cache "
                              "(delete it) or check the supernet.")
        macs = np.asarray([int(self.macs(s)) for s in subs], dtype=np.int64)
        return Evaluation(subs, acc, lat, macs, self.latency_budget_ms)

    @functools.cached_property
    def baselines(self) -> Evaluation:
        """The uniform-width subnets (every block at width choice i), smallest first."""
        return self.evaluate([self.space.uniform(i) for i in range(len(self.space.width_choices))])

    def fastest(self) -> tuple[SubnetConfig, float]:
        """The fastest predicted subnet among the uniform-width ones (the smallest is usually it)."""
        ev = self.baselines
        i = int(np.argmin(ev.latency_ms))
        return ev.subnets[i], float(ev.latency_ms[i])

    def check_feasible(self) -> None:
        """Raise :class:`InfeasibleConstraintError` when the latency budget cannot be met by any subnet."""
        if self.latency_budget_ms is None:
            return
        sub, lat = self.fastest()
        if lat > self.latency_budget_ms:
            raise InfeasibleConstraintError(
                f"latency budget {self.latency_budget_ms:g} ms is unreachable on {self.device}: the fastest "
                f"subnet ({self.space.format(sub)}) is predicted at {lat:.4g} ms; pass --latency-budget "
                f">= {lat:.4g} or drop it."
            )

    @functools.cached_property
    def reference_latency_ms(self) -> float:
        """Latency end of the hypervolume box: the budget if set, else 1.1 x the slowest uniform subnet."""
        if self.latency_budget_ms is not None:
            return float(self.latency_budget_ms)
        return 1.1 * float(np.max(self.baselines.latency_ms))

    def hv_reference(self) -> dict[str, object]:
        """The hypervolume reference point of this problem (stored in run.json)."""
        return {
            "accuracy": 0.0,
            "latency_ms": self.reference_latency_ms,
            "space": "normalised",
            "transform": "f = (1 - accuracy, latency_ms / reference.latency_ms); reference point (1, 1); "
                         "HV is the dominated share of [0, 1] x [0, 1]; only feasible points count",
        }
