"""``nsga2``: pymoo's NSGA-II over the integer encoding, through pymoo's own ask/tell interface.

Integer variables use pymoo's usual recipe: ``IntegerRandomSampling`` and SBX/PM on the real
line followed by ``RoundingRepair``. Duplicates within a generation and against the population
are eliminated by pymoo; a subnet seen in an earlier generation can come back (and counts).
The latency constraint is handled by pymoo (constrained domination: feasible first, then CV).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.problems.static import StaticProblem

from nas.algorithms.base import AlgorithmContext, SearchAlgorithm
from nas.algorithms.registry import register_algorithm
from supernet.space import SubnetConfig


def default_pop_size(budget: int) -> int:
    """Population size for a budget: about a tenth of it, within [10, 50]."""
    return int(np.clip(budget // 10, 10, 50))


class _EncodedProblem(Problem):
    """pymoo's view of the space: one integer per decision, bounds from the cardinalities."""

    def __init__(self, cardinalities: tuple[int, ...], n_constr: int, n_obj: int = 2) -> None:
        card = np.asarray(cardinalities)
        super().__init__(n_var=len(card), n_obj=n_obj, n_ieq_constr=n_constr, xl=np.zeros(len(card)),
                         xu=card - 1, vtype=int)


@register_algorithm
class NSGA2Search(SearchAlgorithm):
    """NSGA-II (rank and crowding survival, binary tournament), seeded through pymoo."""

    name = "nsga2"
    max_objectives = 2

    def __init__(self, ctx: AlgorithmContext, pop_size: int | None = None) -> None:
        self.space = ctx.problem.space
        self.pop_size = pop_size or default_pop_size(ctx.budget)
        self.problem = _EncodedProblem(self.space.cardinalities, ctx.problem.n_constr, ctx.problem.n_obj)
        self.algorithm = self._make(
            pop_size=self.pop_size,
            sampling=IntegerRandomSampling(),
            crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
            mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        self.algorithm.setup(self.problem, termination=NoTermination(), seed=int(ctx.seed), verbose=False)
        self._pending: Population | None = None

    def _make(self, **kwargs: Any) -> Any:
        return NSGA2(**kwargs)

    def ask(self, limit: int) -> list[SubnetConfig]:
        pop = self.algorithm.ask()
        if pop is None or len(pop) == 0:  # mating found no new offspring: pymoo gives up
            return []
        self._pending = pop[: max(1, limit)]
        return [self.space.decode(x) for x in self._pending.get("X")]

    def tell(self, subnets: Sequence[SubnetConfig], F: np.ndarray, G: np.ndarray) -> None:  # noqa: N803
        if self._pending is None:
            raise RuntimeError("tell() called without a pending ask().")
        pop, self._pending = self._pending[: len(subnets)], None
        values = {"F": np.asarray(F, dtype=np.float64)}
        if self.problem.n_ieq_constr:
            values["G"] = np.asarray(G, dtype=np.float64)
        Evaluator().eval(StaticProblem(self.problem, **values), pop)
        self.algorithm.tell(infills=pop)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "library": "pymoo NSGA2", "pop_size": self.pop_size,
                "n_offsprings": self.algorithm.n_offsprings, "sampling": "IntegerRandomSampling",
                "crossover": "SBX(prob=0.9, eta=15) + RoundingRepair", "mutation": "PM(eta=20) + RoundingRepair",
                "eliminate_duplicates": True}


def reference_partitions(n_obj: int, pop_size: int) -> int:
    """Das-Dennis partitions for NSGA-III: the most whose number of directions, C(p + m - 1, m - 1), fits the
    population (at least 1)."""
    from math import comb

    p = 1
    while comb(p + 1 + n_obj - 1, n_obj - 1) <= pop_size:
        p += 1
    return p


@register_algorithm
class NSGA3Search(NSGA2Search):
    """NSGA-III (reference-direction survival; pymoo), for three objectives: the same integer operators as
    ``nsga2``, Das-Dennis reference directions from ``pymoo.util.ref_dirs`` as many as fit the population."""

    name = "nsga3"
    max_objectives = 3

    def _make(self, **kwargs: Any) -> Any:
        from pymoo.algorithms.moo.nsga3 import NSGA3
        from pymoo.util.ref_dirs import get_reference_directions

        self.n_partitions = reference_partitions(self.problem.n_obj, self.pop_size)
        self.ref_dirs = get_reference_directions("das-dennis", self.problem.n_obj, n_partitions=self.n_partitions)
        return NSGA3(ref_dirs=self.ref_dirs, **kwargs)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "library": "pymoo NSGA3",
                "ref_dirs": f"das-dennis, {self.problem.n_obj} objectives, {self.n_partitions} partitions "
                            f"({len(self.ref_dirs)} directions)"}
