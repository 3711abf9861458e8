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
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from nas.pareto import HVBox
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


def fastest_subnet(space: SearchSpace, latency: LatencyModel) -> tuple[SubnetConfig, float]:
    """The fastest predicted uniform-width subnet (every block at one width; the smallest is usually it)."""
    subs = [space.uniform(i) for i in range(len(space.width_choices))]
    lat = np.asarray(latency.predict_ms(subs), dtype=np.float64)
    i = int(np.argmin(lat))
    return subs[i], float(lat[i])


def check_latency_budget(space: SearchSpace, latency: LatencyModel, budget_ms: float | None) -> None:
    """Raise :class:`InfeasibleConstraintError` when even the fastest subnet is slower than ``budget_ms``.

    Needs only the latency predictor, so the CLI can fail before fitting the accuracy predictor.
    """
    if budget_ms is None:
        return
    sub, lat = fastest_subnet(space, latency)
    if lat > budget_ms:
        raise InfeasibleConstraintError(
            f"latency budget {budget_ms:g} ms is unreachable on {latency.device}: the fastest subnet "
            f"({space.format(sub)}) is predicted at {lat:.4g} ms; pass --latency-budget >= {lat:.4g} or drop it."
        )


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

    def check_feasible(self) -> None:
        """Raise :class:`InfeasibleConstraintError` when the latency budget cannot be met by any subnet."""
        check_latency_budget(self.space, self.latency, self.latency_budget_ms)

    @functools.cached_property
    def hv_box(self) -> HVBox:
        """The hypervolume box of this problem: spanned by the uniform-width baselines (see nas.pareto)."""
        b = self.baselines
        return HVBox.from_points(b.accuracy, b.latency_ms, self.latency_budget_ms)

    def hv_reference(self) -> dict[str, object]:
        """The hypervolume box and reference point (stored in run.json)."""
        return self.hv_box.to_dict()


@dataclass(frozen=True, eq=False)
class ProblemSetup:
    """A problem built from real predictors, with what it was built from (for run.json)."""

    problem: SearchProblem
    accuracy_data: Any  # predictors.AccuracyData
    data_note: str | None  # the dataset accuracy data was measured on now, None when read from the cache


def setup_problem(supernet_file: Path, model: Any, meta: dict[str, Any], profile: Any, *, bn: str, seed: int,
                  latency_budget_ms: float | None = None, accuracy_samples: int = 400, dataset: str | None = None,
                  progress: Callable[[str], Callable[[str, int, int], None]] | None = None) -> ProblemSetup:
    """Build the latency predictor, check the budget, then fit the accuracy predictor.

    The accuracy data comes from the cache beside the supernet; only without a usable cache is
    it measured, on ``dataset`` (default: the supernet's own, else its shipped sample).
    ``progress(phase)`` returns the ``(description, done, total)`` callback of a phase.
    """
    from predictors import latency_predictor, load_or_collect_accuracy
    from supernet.errors import DatasetError
    from supernet.pretrained import load_default_data

    phase = progress or (lambda _name: None)
    lat = latency_predictor(profile, model.config, seed=seed, progress=phase("latency"))
    check_latency_budget(model.space, lat, latency_budget_ms)  # before the slower accuracy predictor
    acc = data_note = None
    if dataset is None:
        try:
            acc, acc_data = load_or_collect_accuracy(supernet_file, model, meta, None, n_samples=accuracy_samples,
                                                     bn=bn, seed=seed, progress=phase("accuracy data"))
        except DatasetError:
            acc = None  # no usable cache: measure on the supernet's own dataset (or its shipped sample)
    if acc is None:
        images, data_note = load_default_data(meta, dataset, supernet_file)
        acc, acc_data = load_or_collect_accuracy(supernet_file, model, meta, images, n_samples=accuracy_samples,
                                                 bn=bn, seed=seed, progress=phase("accuracy data"))
    problem = SearchProblem(space=model.space, accuracy=acc, latency=lat, latency_budget_ms=latency_budget_ms,
                            macs=lambda s: int(sum(layer["macs"] for layer in model.layers(s))))
    return ProblemSetup(problem=problem, accuracy_data=acc_data, data_note=data_note)
