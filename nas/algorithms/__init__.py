"""Search algorithms behind one ask/tell protocol, in a registry each algorithm module fills itself.

Every module of this package but ``base`` and ``registry`` is imported here, and registers its classes
with :func:`nas.algorithms.registry.register_algorithm`: a new algorithm is one new file.

Example::

    algo = make_algorithm("nsga2", AlgorithmContext(problem=problem, seed=0, budget=300, workdir=run_dir))
    subnets = algo.ask(limit=20); ...; algo.tell(subnets, F, G)
"""

from __future__ import annotations

import importlib
import pkgutil

from nas.algorithms.base import AlgorithmContext, SearchAlgorithm
from nas.algorithms.registry import (
    ALGORITHMS,
    DEFAULT_2,
    DEFAULT_3,
    get_algorithm,
    make_algorithm,
    register_algorithm,
    resolve_algorithms,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ALGORITHMS", "DEFAULT_2", "DEFAULT_3", "AlgorithmContext", "SearchAlgorithm", "get_algorithm",
           "make_algorithm", "register_algorithm", "resolve_algorithms"]
