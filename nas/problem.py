"""The search problem as a frozen value (pymoo style): space, objectives, constraints, evaluation.

Objectives are declared up front: maximise ``accuracy`` (a fraction) and minimise ``latency_ms``.
With early exits both are *dynamic*: the accuracy of the subnet under its calibrated exit policy
and the expected latency ``Σ p_i · L_i`` (p_i: predicted fraction of inputs leaving at exit i,
L_i: latency of leaving there, heads on the way included); the worst case (every exit fails) is
recorded too. Internally every algorithm minimises ``F = (-accuracy, latency_ms)``. An optional
latency budget adds the constraint ``g = latency_ms - budget`` (on the expected latency), an
optional worst-case budget ``g = worst_latency_ms - max_worst``; feasible iff every ``g <= 0``.

Example::

    problem = SearchProblem(space=space, accuracy=acc_pred, latency=lat_pred, macs=macs_fn,
                            latency_budget_ms=2.0)
    problem.check_feasible()            # raises InfeasibleConstraintError if 2 ms is unreachable
    ev = problem.evaluate([space.largest(), space.smallest()])
    ev.F, ev.G, ev.feasible
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from nas.pareto import HVBox
from predictors.exit_policy import DEFAULT_MAX_DROP
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


def exit_latencies(latency: LatencyModel, subnets: Sequence[SubnetConfig]) -> np.ndarray:
    """``(n, E + 1)`` ms of leaving at each exit then at the final classifier (one column without exits)."""
    fn = getattr(latency, "predict_exit_ms", None)
    if fn is None:
        return np.asarray(latency.predict_ms(subnets), dtype=np.float64).reshape(-1, 1)
    return np.asarray(fn(subnets), dtype=np.float64).reshape(len(subnets), -1)


def exit_rates(accuracy: AccuracyModel, subnets: Sequence[SubnetConfig]) -> np.ndarray:
    """``(n, E + 1)`` predicted exit rates; a predictor that knows no exits sends every input to the final
    classifier (one column of ones)."""
    fn = getattr(accuracy, "predict_exit_rates", None)
    if fn is None:
        return np.ones((len(subnets), 1))
    return np.asarray(fn(subnets), dtype=np.float64).reshape(len(subnets), -1)


def fastest_subnet(space: SearchSpace, latency: LatencyModel) -> tuple[SubnetConfig, float]:
    """The fastest predicted uniform-width subnet with its exits off (the smallest is usually it)."""
    subs = [space.uniform(i) for i in range(len(space.width_choices))]
    lat = np.asarray(latency.predict_ms(subs), dtype=np.float64)
    i = int(np.argmin(lat))
    return subs[i], float(lat[i])


def fastest_expected(space: SearchSpace, latency: LatencyModel) -> tuple[SubnetConfig, float]:
    """A lower bound of the expected latency: uniform-width subnets with every exit on, as if every
    input left at the first exit."""
    subs = [dataclasses.replace(space.uniform(i), exits=(1,) * len(space.exit_positions))
            for i in range(len(space.width_choices))]
    lat = exit_latencies(latency, subs)[:, 0]
    i = int(np.argmin(lat))
    return subs[i], float(lat[i])


def check_worst_latency(space: SearchSpace, latency: LatencyModel, max_worst_ms: float | None) -> None:
    """Raise :class:`InfeasibleConstraintError` when no subnet's worst case (every exit fails) fits."""
    if max_worst_ms is None:
        return
    sub, lat = fastest_subnet(space, latency)  # exits off: no head is paid for
    if lat > max_worst_ms:
        raise InfeasibleConstraintError(
            f"worst-case latency budget {max_worst_ms:g} ms is unreachable on {latency.device}: the fastest worst "
            f"case ({space.format(sub)}, exits off) is predicted at {lat:.4g} ms; pass --max-worst-latency >= "
            f"{lat:.4g} or drop it.")


def check_latency_budget(space: SearchSpace, latency: LatencyModel, budget_ms: float | None, *,
                         exits: bool = True) -> None:
    """Raise :class:`InfeasibleConstraintError` when even the fastest subnet is slower than ``budget_ms``.

    Needs only the latency predictor, so the CLI can fail before fitting the accuracy predictor.
    """
    if budget_ms is None:
        return
    sub, lat = fastest_subnet(space, latency)
    if space.exit_positions and exits:
        sub_x, lat_x = fastest_expected(space, latency)
        sub, lat = (sub_x, lat_x) if lat_x < lat else (sub, lat)
    if lat > budget_ms:
        raise InfeasibleConstraintError(
            f"latency budget {budget_ms:g} ms is unreachable on {latency.device}: the fastest subnet "
            f"({space.format(sub)}) is predicted at {lat:.4g} ms; pass --latency-budget >= {lat:.4g} or drop it."
        )


def check_max_memory(memory: Any, max_bytes: float | None) -> None:
    """Raise :class:`InfeasibleConstraintError` when ``max_bytes`` is below the smallest subnet's memory."""
    if max_bytes is None:
        return
    least, sub = memory.minimum_bytes()
    if least > max_bytes:
        raise InfeasibleConstraintError(
            f"--max-memory {max_bytes:.0f} bytes is below the smallest subnet ({memory.space.format(sub)}), which "
            f"needs {least:.0f} bytes ({least / 1e6:.3g} MB: weights + input + peak activations); pass "
            f"--max-memory >= {least:.0f} or drop it.")


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
# --objectives names → objectives; the third (energy or memory) is optional
OBJECTIVE_CHOICES: dict[str, Objective] = {
    "accuracy": OBJECTIVES[0], "latency": OBJECTIVES[1],
    "energy": Objective("energy_mj", "minimize", "mJ"), "memory": Objective("memory_bytes", "minimize", "bytes"),
}


def parse_objectives(spec: str) -> tuple[Objective, ...]:
    """``--objectives``: ``accuracy,latency`` (default) or ``accuracy,latency,energy|memory``."""
    from supernet.errors import unknown

    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names or [spec]:
        if n not in OBJECTIVE_CHOICES:
            raise unknown("objective", n, list(OBJECTIVE_CHOICES))
    if names[:2] != ["accuracy", "latency"] or len(names) > 3 or len(set(names)) != len(names):
        raise ConfigError(f"--objectives must be accuracy,latency or accuracy,latency,energy or "
                          f"accuracy,latency,memory, but got '{spec}'.")
    return tuple(OBJECTIVE_CHOICES[n] for n in names)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Predicted objectives of a batch of subnets (row i belongs to ``subnets[i]``).

    ``accuracy`` and ``latency_ms`` are the dynamic accuracy and the expected latency (equal to
    the static ones for a subnet without exits); ``exit_rates`` is ``(n, E + 1)``.
    """

    subnets: tuple[SubnetConfig, ...]
    accuracy: np.ndarray
    latency_ms: np.ndarray
    macs: np.ndarray
    latency_budget_ms: float | None = None
    worst_latency_ms: np.ndarray | None = None
    static_accuracy: np.ndarray | None = None
    exit_rates: np.ndarray | None = None
    max_worst_latency_ms: float | None = None
    energy_mj: np.ndarray | None = None  # predicted only when an objective or constraint needs it
    memory_bytes: np.ndarray | None = None
    third: str | None = None  # the third objective's name (energy_mj or memory_bytes), None with two
    max_energy_mj: float | None = None
    max_memory_bytes: float | None = None

    def __len__(self) -> int:
        return len(self.subnets)

    @property
    def F(self) -> np.ndarray:  # noqa: N802 - pymoo's name
        """Objectives to minimise, shape (n, 2): ``(-accuracy, latency_ms)``, or (n, 3) with the third objective."""
        cols = [-self.accuracy, self.latency_ms]
        if self.third is not None:
            cols.append(getattr(self, self.third))
        return np.column_stack(cols).astype(np.float64).reshape(len(self), len(cols))

    @property
    def G(self) -> np.ndarray:  # noqa: N802 - pymoo's name
        """Inequality constraints (n, 0…2): ``latency_ms - budget``, ``worst_latency_ms - max_worst`` (feasible iff <= 0)."""
        cols = []
        if self.latency_budget_ms is not None:
            cols.append(self.latency_ms - self.latency_budget_ms)
        if self.max_worst_latency_ms is not None:
            worst = self.worst_latency_ms if self.worst_latency_ms is not None else self.latency_ms
            cols.append(worst - self.max_worst_latency_ms)
        if self.max_memory_bytes is not None and self.memory_bytes is not None:
            cols.append(self.memory_bytes - self.max_memory_bytes)
        if self.max_energy_mj is not None and self.energy_mj is not None:
            cols.append(self.energy_mj - self.max_energy_mj)
        if not cols:
            return np.zeros((len(self), 0))
        return np.column_stack(cols).astype(np.float64)

    @property
    def feasible(self) -> np.ndarray:
        return np.all(self.G <= 0.0, axis=1)


@dataclass(frozen=True, kw_only=True, eq=False)
class SearchProblem:
    """Space + predictors + objectives + optional latency budget; evaluation is a batch call.

    ``macs`` maps a batch of subnets (in ``full_space`` when it is given) to their multiply-accumulates
    (reported, not optimised), e.g. :func:`predictors.units.macs_table`.
    """

    space: SearchSpace
    accuracy: AccuracyModel
    latency: LatencyModel
    macs: Callable[[Sequence[SubnetConfig]], np.ndarray]
    latency_budget_ms: float | None = None
    max_worst_latency_ms: float | None = None
    objectives: tuple[Objective, ...] = OBJECTIVES
    energy: Any = None  # predictors.energy.EnergyPredictor, for an energy objective or --max-energy
    memory: Any = None  # predictors.memory.MemoryPredictor, for a memory objective or --max-memory
    full_space: SearchSpace | None = None  # the space the memory/energy predictors know (exits, no scout)
    max_memory_bytes: float | None = None
    max_energy_mj: float | None = None

    def __post_init__(self) -> None:
        b = self.latency_budget_ms
        if b is not None and not (math.isfinite(b) and b > 0):
            raise ConfigError(f"the latency budget must be a positive number of ms, but got {b}; "
                              "pass e.g. --latency-budget 2.5 or leave it out.")
        w = self.max_worst_latency_ms
        if w is not None and not (math.isfinite(w) and w > 0):
            raise ConfigError(f"the worst-case latency budget must be a positive number of ms, but got {w}; "
                              "pass e.g. --max-worst-latency 3 or leave it out.")

    @property
    def device(self) -> str:
        return str(self.latency.device)

    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    @property
    def n_constr(self) -> int:
        return len(self.constraint_names)

    @property
    def constraint_names(self) -> tuple[str, ...]:
        """Names of the columns of ``Evaluation.G``, in order."""
        return tuple(name for name, b in (("latency_ms", self.latency_budget_ms),
                                          ("worst_latency_ms", self.max_worst_latency_ms),
                                          ("memory_bytes", self.max_memory_bytes),
                                          ("energy_mj", self.max_energy_mj)) if b is not None)

    @property
    def third(self) -> str | None:
        """The third objective's name (``energy_mj`` or ``memory_bytes``), None with two objectives."""
        return self.objectives[2].name if len(self.objectives) > 2 else None

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Columns evaluations.csv gains: energy_mj / memory_bytes when an objective or constraint uses them."""
        return tuple(c for c in ("energy_mj", "memory_bytes")
                     if self.third == c or (c == "energy_mj" and self.max_energy_mj is not None)
                     or (c == "memory_bytes" and self.max_memory_bytes is not None))

    def evaluate(self, subnets: Sequence[SubnetConfig]) -> Evaluation:
        """Predict dynamic accuracy, exit rates and expected/worst latency of ``subnets`` in one batch."""
        subs = tuple(subnets)
        if not subs:
            empty = np.zeros(0)
            ex = self.extra_columns
            return Evaluation((), empty, empty, np.zeros(0, np.int64), self.latency_budget_ms, empty, empty,
                              np.zeros((0, 1)), self.max_worst_latency_ms, empty if "energy_mj" in ex else None,
                              empty if "memory_bytes" in ex else None, self.third, self.max_energy_mj,
                              self.max_memory_bytes)
        both = getattr(self.accuracy, "predict_with_static", None)
        if both is not None:  # the static prediction once, not again below
            acc, static = (np.asarray(a, dtype=np.float64).reshape(-1) for a in both(subs))
        else:
            acc = np.asarray(self.accuracy.predict(subs), dtype=np.float64).reshape(-1)
            static_fn = getattr(self.accuracy, "predict_static", None)
            static = np.asarray(static_fn(subs), dtype=np.float64) if static_fn is not None else acc
        if hasattr(self.accuracy, "predict_exit_rates"):
            per_exit = exit_latencies(self.latency, subs)
        else:  # an accuracy model that knows no exits: the static network, no head evaluated
            per_exit = np.asarray(self.latency.predict_ms(subs), dtype=np.float64).reshape(-1, 1)
        rates = exit_rates(self.accuracy, subs)
        if rates.shape != per_exit.shape:
            raise ConfigError(f"the accuracy predictor gives {rates.shape[1]} exit rates per subnet but the latency "
                              f"predictor {per_exit.shape[1]} exit latencies; they were built for different spaces.")
        lat = (rates * per_exit).sum(axis=1)
        worst = per_exit[:, -1]
        if acc.shape != (len(subs),) or lat.shape != (len(subs),):
            raise ConfigError(f"predictors returned {acc.shape} accuracies and {lat.shape} latencies for "
                              f"{len(subs)} subnets; a predictor is broken.")
        if not (np.all(np.isfinite(acc)) and np.all(np.isfinite(lat)) and np.all(np.isfinite(rates))):
            raise ConfigError("a predictor returned NaN or infinite values; rebuild its cache "
                              "(delete it) or check the supernet.")
        full = [_full(s, self.full_space) for s in subs] if self.full_space is not None else list(subs)
        macs = np.asarray(self.macs(full), dtype=np.int64).reshape(len(subs))
        extra = self.extra_columns
        energy = memory = None
        if "energy_mj" in extra:
            if self.energy.method == "power_x_latency":  # linear in t: P x sum_i p_i L_i
                energy = np.asarray(self.energy.predict_mj(lat), dtype=np.float64)
            else:
                energy = (rates * self.energy.predict_exit_mj(per_exit, full)).sum(axis=1)
        if "memory_bytes" in extra:
            memory = np.asarray(self.memory.predict_bytes(full), dtype=np.float64)
        return Evaluation(subs, acc, lat, macs, self.latency_budget_ms, worst, static, rates,
                          self.max_worst_latency_ms, energy, memory, self.third, self.max_energy_mj,
                          self.max_memory_bytes)

    @functools.cached_property
    def baselines(self) -> Evaluation:
        """The uniform-width subnets (every block at width choice i), smallest first."""
        return self.evaluate([self.space.uniform(i) for i in range(len(self.space.width_choices))])

    def check_feasible(self) -> None:
        """Raise :class:`InfeasibleConstraintError` when a latency budget cannot be met by any subnet."""
        check_latency_budget(self.space, self.latency, self.latency_budget_ms,
                             exits=hasattr(self.accuracy, "predict_exit_rates"))
        check_worst_latency(self.space, self.latency, self.max_worst_latency_ms)
        check_max_memory(self.memory, self.max_memory_bytes)
        if self.max_energy_mj is not None:
            sub, lat = fastest_subnet(self.space, self.latency)
            low = float(self.energy.predict_mj(np.asarray([lat]))[0]) if self.energy.method == "power_x_latency" \
                else None
            if low is not None and low > self.max_energy_mj:
                raise InfeasibleConstraintError(
                    f"energy budget {self.max_energy_mj:g} mJ is unreachable on {self.device}: the fastest subnet "
                    f"({self.space.format(sub)}) is predicted at {low:.4g} mJ; pass --max-energy >= {low:.4g} or "
                    "drop it.")

    @functools.cached_property
    def hv_box(self) -> HVBox:
        """The hypervolume box of this problem: spanned by the uniform-width baselines (see nas.pareto) and,
        when exits are searched, the same subnets with every exit on (exits reach far below the
        exit-free latencies on launch-bound devices; a box of the exit-free baselines alone would
        put the whole front outside it)."""
        b = self.baselines
        acc, lat = list(b.accuracy), list(b.latency_ms)
        if self.space.exit_positions and hasattr(self.accuracy, "predict_exit_rates"):
            n = len(self.space.exit_positions)
            on = self.evaluate([dataclasses.replace(s, exits=(1,) * n) for s in b.subnets])
            acc += list(on.accuracy)
            lat += list(on.latency_ms)
            third = list(getattr(b, self.third)) + list(getattr(on, self.third)) if self.third else None
        else:
            third = list(getattr(b, self.third)) if self.third else None
        cap = {"energy_mj": self.max_energy_mj, "memory_bytes": self.max_memory_bytes}.get(self.third or "")
        return HVBox.from_points(np.asarray(acc), np.asarray(lat), self.latency_budget_ms,
                                 third=None if third is None else np.asarray(third, dtype=np.float64),
                                 third_cap=cap, third_name=self.third)

    def hv_reference(self) -> dict[str, object]:
        """The hypervolume box and reference point (stored in run.json)."""
        return self.hv_box.to_dict()


@dataclass(frozen=True, eq=False)
class ProblemSetup:
    """A problem built from real predictors, with what it was built from (for run.json)."""

    problem: SearchProblem
    accuracy_data: Any  # predictors.AccuracyData
    data_note: str | None  # the dataset accuracy data was measured on now, None when read from the cache
    shared: SharedAccuracy | None = None  # what a search of the same supernet on another device reuses


@dataclass(frozen=True, eq=False)
class SharedAccuracy:
    """The accuracy side of a problem, fitted once and shared by the searches of several devices: the static
    predictor, the (dynamic, with exits or a cascade) predictor the search scores, its data."""

    static: Any
    predictor: Any
    accuracy_data: Any
    data_note: str | None
    n_cascade: int


def setup_problem(supernet_file: Path, model: Any, meta: dict[str, Any], profile: Any, *, bn: str, seed: int,
                  latency_budget_ms: float | None = None, accuracy_samples: int = 400, dataset: str | None = None,
                  progress: Callable[[str], Callable[[str, int, int], None]] | None = None,
                  max_accuracy_drop: float = DEFAULT_MAX_DROP, max_worst_latency_ms: float | None = None,
                  exits: bool = True, cascade: bool = True, power_mode: str | None = None,
                  batch: int = 1, shared: SharedAccuracy | None = None,
                  objectives: tuple[Objective, ...] = OBJECTIVES, max_memory_bytes: float | None = None,
                  max_energy_mj: float | None = None) -> ProblemSetup:
    """Build the latency predictor, check the budgets, then fit the accuracy predictors.

    The accuracy data comes from the cache beside the supernet; only without a usable cache is
    it measured, on ``dataset`` (default: the supernet's own, else its shipped sample).
    ``progress(phase)`` returns the ``(description, done, total)`` callback of a phase. With
    ``exits=False`` (or a supernet without exit heads) the space has no exit choices. With
    ``cascade`` and accuracy data calibrated with width-cascade scouts, the space gets the
    ``cascade`` gene (not with ``exits=False``: that searches static networks). ``batch`` > 1 costs
    a batch of that many images (ms per batch) and needs ``exits=False``: a batch leaves an exit
    only when every image in it passes, so the expected-latency model holds at batch 1 only.
    ``shared`` (``ProblemSetup.shared`` of another device's setup) reuses its accuracy predictors
    instead of fitting them again.
    """
    if batch > 1 and exits:
        raise ConfigError(f"--batch {batch} searches static networks only (a batch leaves an exit only when every "
                          "image in it passes); add --exits off, or search at --batch 1.")
    from predictors import latency_predictor
    from predictors.cascade import CascadeLatency
    from predictors.units import macs_table

    names = {o.name for o in objectives}
    energy = memory = None
    if "energy_mj" in names or max_energy_mj is not None:
        from predictors.energy import EnergyPredictor

        if not EnergyPredictor.supports(profile, power_mode):
            modes = [m.name for m in profile.power_modes if m.power_w is not None]
            raise ConfigError(f"device '{profile.name}' publishes no power figure for mode "
                              f"'{power_mode or profile.default_power_mode}', so energy (--objectives …,energy, "
                              f"--max-energy) cannot be predicted; "
                              + (f"use a mode with one ({', '.join(modes)}) or " if modes else "")
                              + "drop the energy objective.")
        energy = EnergyPredictor(profile, power_mode, arch_config=model.config, batch=batch)
    if "memory_bytes" in names or max_memory_bytes is not None:
        from predictors.memory import MemoryPredictor, rules_for_device

        memory = MemoryPredictor(model.config, profile.default_precision, batch=batch, rules=rules_for_device(profile))
        check_max_memory(memory, max_memory_bytes)  # before the slower predictors
    phase = progress or (lambda _name: None)
    lat = latency_predictor(profile, model.config, seed=seed, progress=phase("latency"), power_mode=power_mode,
                            batch=batch)
    check_latency_budget(model.space, lat, latency_budget_ms)  # before the slower accuracy predictor
    check_worst_latency(model.space, lat, max_worst_latency_ms)
    space = model.space
    if shared is None:
        shared = _fit_accuracy(supernet_file, model, meta, bn=bn, seed=seed, accuracy_samples=accuracy_samples,
                               dataset=dataset, phase=phase, max_accuracy_drop=max_accuracy_drop, exits=exits,
                               cascade=cascade)
    acc, acc_data, data_note = shared.static, shared.accuracy_data, shared.data_note
    predictor, n_cascade = shared.predictor, shared.n_cascade
    if n_cascade:
        space = dataclasses.replace(space, n_cascade=n_cascade)
        lat = CascadeLatency(lat, space)
    if space.exit_positions and not exits:
        space = dataclasses.replace(space, exit_positions=())
        predictor = _NoExits(acc, model.space)
        lat = _NoExits(lat, model.space)
    problem = SearchProblem(space=space, accuracy=predictor, latency=lat, latency_budget_ms=latency_budget_ms,
                            max_worst_latency_ms=max_worst_latency_ms, objectives=tuple(objectives), energy=energy,
                            memory=memory, full_space=model.space, max_memory_bytes=max_memory_bytes,
                            max_energy_mj=max_energy_mj,
                            macs=macs_table(model.config))
    return ProblemSetup(problem=problem, accuracy_data=acc_data, data_note=data_note, shared=shared)


def _fit_accuracy(supernet_file: Path, model: Any, meta: dict[str, Any], *, bn: str, seed: int,
                  accuracy_samples: int, dataset: str | None, phase: Callable[[str], Any],
                  max_accuracy_drop: float, exits: bool, cascade: bool) -> SharedAccuracy:
    """Load (or measure) the accuracy data and fit the accuracy predictors (device-independent)."""
    from predictors import DynamicAccuracyPredictor, load_or_collect_accuracy
    from predictors.accuracy import data_cascade
    from predictors.dynamic_accuracy import check_drop
    from supernet.errors import DatasetError
    from supernet.pretrained import load_default_data

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
    space = model.space
    n_cascade = data_cascade(acc_data) if cascade and exits else 0
    if (space.exit_positions and exits) or n_cascade:
        check_drop(acc_data, max_accuracy_drop)
        predictor: Any = DynamicAccuracyPredictor(acc, acc_data, max_drop=max_accuracy_drop, seed=seed,
                                                  cascade=n_cascade > 0)
    else:
        predictor = acc
    return SharedAccuracy(static=acc, predictor=predictor, accuracy_data=acc_data, data_note=data_note,
                          n_cascade=n_cascade)


def _full(subnet: SubnetConfig, space: SearchSpace) -> SubnetConfig:
    """``subnet`` in ``space``: exit bits (all off) added when a search dropped the exit choices, the
    cascade scout dropped (MACs are the subnet's own)."""
    if len(subnet.exits) == len(space.exit_positions) and not subnet.cascade:
        return subnet
    exits = subnet.exits if len(subnet.exits) == len(space.exit_positions) else (0,) * len(space.exit_positions)
    return dataclasses.replace(subnet, exits=exits, cascade=0)


class _NoExits:
    """A predictor of the full space used on the exit-free space (``--no-exits``): exits all off."""

    def __init__(self, inner: Any, full_space: SearchSpace) -> None:
        self.inner, self.full_space = inner, full_space
        self.device = getattr(inner, "device", "")

    def _subs(self, subnets: Sequence[SubnetConfig]) -> list[SubnetConfig]:
        return [_full(s, self.full_space) for s in subnets]

    def predict(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        return self.inner.predict(self._subs(subnets))

    def predict_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        return self.inner.predict_ms(self._subs(subnets))

    def __getattr__(self, name: str) -> Any:
        if name in ("predict_exit_ms", "predict_exit_rates", "predict_static", "predict_with_static"):
            raise AttributeError(name)  # one column, the static network
        return getattr(self.inner, name)
