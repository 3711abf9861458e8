"""Search algorithms behind one ask/tell protocol, in a registry.

Example::

    algo = make_algorithm("nsga2", AlgorithmContext(problem=problem, seed=0, budget=300, workdir=run_dir))
    subnets = algo.ask(limit=20); ...; algo.tell(subnets, F, G)
"""

from __future__ import annotations

from collections.abc import Callable

from nas.algorithms.base import AlgorithmContext, SearchAlgorithm
from nas.algorithms.nsga2 import NSGA2Search, NSGA3Search
from nas.algorithms.random_search import RandomSearch
from nas.algorithms.tpe import OptunaSearch
from supernet.errors import unknown

AlgorithmFactory = Callable[[AlgorithmContext], SearchAlgorithm]

ALGORITHMS: dict[str, AlgorithmFactory] = {
    "nsga2": NSGA2Search,
    "nsga3": NSGA3Search,
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


# what ``all`` means, and which algorithms handle three objectives
DEFAULT_2 = ("nsga2", "optuna", "random")
DEFAULT_3 = ("nsga3", "optuna", "random")
TWO_OBJECTIVES_ONLY = ("nsga2",)


def resolve_algorithms(spec: str, n_obj: int = 2) -> list[str]:
    """``"all"`` → nsga2, optuna, random (nsga3 instead of nsga2 at three objectives); ``"a,b"`` → those,
    validated, in the given order."""
    from supernet.errors import ConfigError

    if spec.strip() == "all":
        return list(DEFAULT_3 if n_obj > 2 else DEFAULT_2)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names or [spec]:
        if n not in ALGORITHMS:
            raise unknown("search algorithm", n, [*ALGORITHMS, "all"])
        if n_obj > 2 and n in TWO_OBJECTIVES_ONLY:
            raise ConfigError(f"--algorithm {n} handles two objectives, but --objectives gives {n_obj}; use "
                              f"{', '.join(DEFAULT_3)} (or all) for three.")
    return list(dict.fromkeys(names))


__all__ = ["ALGORITHMS", "DEFAULT_2", "DEFAULT_3", "AlgorithmContext", "SearchAlgorithm", "get_algorithm", "make_algorithm",
           "resolve_algorithms"]
