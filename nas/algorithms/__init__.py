"""Search algorithms behind one ask/tell protocol, in a registry.

Example::

    algo = make_algorithm("nsga2", AlgorithmContext(problem=problem, seed=0, budget=300, workdir=run_dir))
    subnets = algo.ask(limit=20); ...; algo.tell(subnets, F, G)
"""

from __future__ import annotations

from collections.abc import Callable

from nas.algorithms.base import AlgorithmContext, SearchAlgorithm
from nas.algorithms.nsga2 import NSGA2Search
from nas.algorithms.random_search import RandomSearch
from nas.algorithms.tpe import OptunaSearch
from supernet.errors import unknown

AlgorithmFactory = Callable[[AlgorithmContext], SearchAlgorithm]

ALGORITHMS: dict[str, AlgorithmFactory] = {
    "nsga2": NSGA2Search,
    "optuna": OptunaSearch,
    "random": RandomSearch,
}


def get_algorithm(name: str) -> AlgorithmFactory:
    """The factory registered as ``name``; an unknown name names the closest known one."""
    if name not in ALGORITHMS:
        raise unknown("search algorithm", name, list(ALGORITHMS))
    return ALGORITHMS[name]


def make_algorithm(name: str, ctx: AlgorithmContext) -> SearchAlgorithm:
    return get_algorithm(name)(ctx)


def resolve_algorithms(spec: str) -> list[str]:
    """``"all"`` → every registered algorithm; ``"a,b"`` → those, validated, in the given order."""
    if spec.strip() == "all":
        return list(ALGORITHMS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names or [spec]:
        if n not in ALGORITHMS:
            raise unknown("search algorithm", n, [*ALGORITHMS, "all"])
    return list(dict.fromkeys(names))


__all__ = ["ALGORITHMS", "AlgorithmContext", "SearchAlgorithm", "get_algorithm", "make_algorithm",
           "resolve_algorithms"]
