"""The search loop: ask → evaluate → tell until the evaluation budget is spent.

The driver, not the algorithm, owns the loop, records every evaluation (duplicates included:
each suggestion costs one unit of budget) and the hypervolume after every batch (see
:mod:`nas.pareto` for the normalisation and reference point). Predictions are cached per
distinct subnet, so a duplicate costs budget but no predictor time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from nas.algorithms import AlgorithmContext, make_algorithm
from nas.pareto import hypervolume, non_dominated
from nas.problem import SearchProblem
from reports.fronts import exit_free_rows
from reports.run_folder import EVAL_COLUMNS, HISTORY_COLUMNS  # the run-folder contract: columns of the tables
from supernet.errors import ConfigError
from supernet.space import SubnetConfig

__all__ = ["EVAL_COLUMNS", "HISTORY_COLUMNS", "SearchResult", "exit_free_rows", "format_rates", "pareto_rows",
           "run_search"]
MAX_EMPTY_ASKS = 3  # an algorithm that proposes nothing this many times in a row is finished


class SearchProgress(Protocol):
    """Called after every batch: algorithm name, evaluations done, budget, hypervolume so far."""

    def __call__(self, algorithm: str, n_evals: int, budget: int, hypervolume: float) -> None: ...


@dataclass(frozen=True, eq=False)
class SearchResult:
    """Everything one algorithm did: its evaluations, hypervolume trace and settings."""

    algorithm: str
    budget: int
    seed: int
    evaluations: pd.DataFrame  # EVAL_COLUMNS, one row per evaluation, in order
    history: pd.DataFrame  # HISTORY_COLUMNS, one row per batch
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    stopped_early: str | None = None
    objectives: tuple[str, ...] = ("accuracy", "latency_ms")  # the third (energy_mj, memory_bytes) when searched

    @property
    def n_evals(self) -> int:
        return len(self.evaluations)

    @property
    def hypervolume(self) -> float:
        return float(self.history["hypervolume"].iloc[-1]) if len(self.history) else 0.0

    def pareto(self) -> pd.DataFrame:
        """Distinct feasible non-dominated evaluations, fastest first."""
        return pareto_rows(self.evaluations, self.objectives)


def objective_matrix(df: pd.DataFrame, objectives: Sequence[str] = ("accuracy", "latency_ms")) -> np.ndarray:
    """Minimised ``F`` of a table's rows: ``-accuracy``, ``latency_ms`` and any further (minimised) objective."""
    cols = [-df["accuracy"].to_numpy(float)] + [df[c].to_numpy(float) for c in objectives[1:]]
    return np.column_stack(cols).reshape(len(df), len(cols))


def pareto_rows(evaluations: pd.DataFrame, objectives: Sequence[str] = ("accuracy", "latency_ms")) -> pd.DataFrame:
    """The feasible, non-dominated (over ``objectives``), distinct-subnet rows of an evaluations table, fastest first."""
    df = evaluations[evaluations["feasible"].astype(bool)].drop_duplicates("subnet_id")
    return df.iloc[non_dominated(objective_matrix(df, objectives))].reset_index(drop=True)


def format_rates(rates: np.ndarray) -> str:
    """Exit rates as the CSV cell ``0.2500;0.5300;0.2200`` (one per exit, the final classifier last)."""
    return ";".join(f"{float(r):.4f}" for r in rates)


class _Cache:
    """Predictions per distinct subnet, filled in batches: one row and one constraint vector each."""

    def __init__(self, problem: SearchProblem) -> None:
        self.problem = problem
        self.rows: dict[SubnetConfig, tuple[Any, ...]] = {}
        self.g: dict[SubnetConfig, np.ndarray] = {}
        self.f: dict[SubnetConfig, np.ndarray] = {}
        self.extra: dict[SubnetConfig, tuple[float, ...]] = {}

    def evaluate(self, subnets: Sequence[SubnetConfig]) -> tuple[np.ndarray, np.ndarray, list[tuple[Any, ...]]]:
        new = list(dict.fromkeys(s for s in subnets if s not in self.rows))
        if new:
            ev = self.problem.evaluate(new)
            G, F = ev.G, ev.F
            extra = [getattr(ev, c) for c in self.problem.extra_columns]
            for i, s in enumerate(new):
                self.f[s] = F[i]
                self.extra[s] = tuple(float(e[i]) for e in extra)
                self.rows[s] = (float(ev.accuracy[i]), float(ev.latency_ms[i]), int(ev.macs[i]), bool(ev.feasible[i]),
                                float(ev.static_accuracy[i]), float(ev.worst_latency_ms[i]),
                                format_rates(ev.exit_rates[i]))
                self.g[s] = G[i]
        rows = [self.rows[s] + self.extra[s] for s in subnets]
        F = np.asarray([self.f[s] for s in subnets], dtype=np.float64).reshape(len(rows), self.problem.n_obj)
        G = np.asarray([self.g[s] for s in subnets], dtype=np.float64).reshape(len(rows), self.problem.n_constr)
        return F, G, rows


def run_search(problem: SearchProblem, algorithm_name: str, budget: int, seed: int, run_dir: Path,
               progress: SearchProgress | None = None, *, resume: bool = False) -> SearchResult:
    """Run one algorithm for ``budget`` evaluations on ``problem``; ``run_dir`` holds its state files.

    Example::

        result = run_search(problem, "nsga2", budget=300, seed=0, run_dir=Path("runs/x"))
        result.pareto()[["arch", "accuracy", "latency_ms"]]
    """
    if budget < 1:
        raise ConfigError(f"the evaluation budget must be >= 1, but got {budget}; pass e.g. --budget 300.")
    start = time.perf_counter()
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    ctx = AlgorithmContext(problem=problem, seed=int(seed), budget=int(budget), workdir=Path(run_dir), resume=resume)
    algo = make_algorithm(algorithm_name, ctx)
    box = problem.hv_box
    cache = _Cache(problem)
    records: list[tuple[Any, ...]] = []
    history: list[tuple[str, int, float]] = []
    front = np.zeros((0, problem.n_obj))
    columns = [*EVAL_COLUMNS, *problem.extra_columns]
    stopped: str | None = None

    def record(subnets: Sequence[SubnetConfig], F: np.ndarray, rows: list[tuple[Any, ...]]) -> None:
        nonlocal front
        for s, (acc, lat, macs, feas, static, worst, rates, *extra) in zip(subnets, rows, strict=True):
            records.append((len(records), algorithm_name, problem.space.subnet_id(s), problem.space.format(s),
                            acc, lat, macs, feas, static, worst, rates, *extra))
        feas_F = F[[r[3] for r in rows]]
        merged = np.vstack([front, feas_F])
        front = merged[non_dominated(merged)]
        history.append((algorithm_name, len(records), hypervolume(front, box)))
        if progress is not None:
            progress(algorithm_name, len(records), budget, history[-1][2])

    try:
        done = algo.resumed()[:budget]
        if done:
            F, _, rows = cache.evaluate(done)
            record(done, F, rows)
        empty = 0
        while len(records) < budget:
            subnets = algo.ask(budget - len(records))[: budget - len(records)]
            if not subnets:
                empty += 1
                if empty >= MAX_EMPTY_ASKS:
                    stopped = (f"{algorithm_name} proposed no new subnet {MAX_EMPTY_ASKS} times in a row after "
                               f"{len(records)} of {budget} evaluations (space of {problem.space.size} subnets)")
                    break
                continue
            empty = 0
            F, G, rows = cache.evaluate(subnets)
            algo.tell(subnets, F, G)
            record(subnets, F, rows)
    finally:
        algo.close()
    return SearchResult(
        algorithm=algorithm_name, budget=int(budget), seed=int(seed),
        evaluations=pd.DataFrame(records, columns=columns),
        history=pd.DataFrame(history, columns=list(HISTORY_COLUMNS)),
        seconds=time.perf_counter() - start, settings=algo.describe(), stopped_early=stopped,
        objectives=tuple(o.name for o in problem.objectives),
    )
