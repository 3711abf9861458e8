"""The search-algorithm registry: each algorithm module registers its class with :func:`register_algorithm`
(as timm's ``@register_model``), so a new algorithm is one new file in ``nas/algorithms/``; what an algorithm
can do (``max_objectives``) is declared on its class, next to its code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from nas.algorithms.base import AlgorithmContext, SearchAlgorithm
from supernet.errors import ConfigError, unknown

AlgorithmFactory = Callable[[AlgorithmContext], SearchAlgorithm]
A = TypeVar("A", bound=type[SearchAlgorithm])

ALGORITHMS: dict[str, type[SearchAlgorithm]] = {}

# what ``all`` means at two and at three objectives
DEFAULT_2 = ("nsga2", "optuna", "random")
DEFAULT_3 = ("nsga3", "optuna", "random")


def register_algorithm(cls: A) -> A:
    """Class decorator: register ``cls`` under its ``name``; a second class of the same name is an error."""
    name = cls.name
    if name in ALGORITHMS and ALGORITHMS[name] is not cls:
        raise ValueError(f"search algorithm {name!r} is registered twice ({ALGORITHMS[name].__name__}, {cls.__name__})")
    ALGORITHMS[name] = cls
    return cls


def get_algorithm(name: str) -> AlgorithmFactory:
    """The factory registered as ``name``; an unknown name names the closest known one."""
    if name not in ALGORITHMS:
        raise unknown("search algorithm", name, list(ALGORITHMS))
    return ALGORITHMS[name]


def make_algorithm(name: str, ctx: AlgorithmContext) -> SearchAlgorithm:
    return get_algorithm(name)(ctx)


def resolve_algorithms(spec: str, n_obj: int = 2) -> list[str]:
    """``"all"`` → nsga2, optuna, random (nsga3 instead of nsga2 at three objectives); ``"a,b"`` → those,
    validated (each against its class's ``max_objectives``), in the given order."""
    if spec.strip() == "all":
        return list(DEFAULT_3 if n_obj > 2 else DEFAULT_2)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names or [spec]:
        if n not in ALGORITHMS:
            raise unknown("search algorithm", n, [*ALGORITHMS, "all"])
        if n_obj > ALGORITHMS[n].max_objectives:
            most = ALGORITHMS[n].max_objectives
            raise ConfigError(f"--algorithm {n} handles {'two' if most == 2 else most} objectives, but --objectives "
                              f"gives {n_obj}; use {', '.join(DEFAULT_3)} (or all) for three.")
    return list(dict.fromkeys(names))
