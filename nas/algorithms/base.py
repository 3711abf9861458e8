"""The ask/tell protocol every search algorithm implements, and what it is built from.

The driver owns the loop (ask → evaluate → tell), so slow evaluations (device measurements) fit
between ``ask`` and ``tell``. Objectives are minimised ``F = (-accuracy, latency_ms)``;
constraints ``G`` are feasible iff ``<= 0`` (see :mod:`nas.problem`).

Duplicate suggestions are allowed: each one counts against the evaluation budget (the driver
still only runs the predictors once per distinct subnet). An algorithm that cannot propose
anything new returns an empty list; the driver then stops early instead of looping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nas.problem import SearchProblem
from supernet.space import SubnetConfig


@dataclass(frozen=True, kw_only=True, eq=False)
class AlgorithmContext:
    """Everything an algorithm is built from: the problem, its seed, budget and working folder.

    ``workdir`` is the run folder being written (the optuna study lives there); ``resume`` asks
    an algorithm with persistent state to continue it rather than start over.
    """

    problem: SearchProblem
    seed: int
    budget: int
    workdir: Path
    resume: bool = False


class SearchAlgorithm(ABC):
    """Ask/tell search over the problem's space."""

    name: ClassVar[str]
    max_objectives: ClassVar[int] = 3  # how many objectives it optimises (NSGA-II's crowding: two)

    @abstractmethod
    def ask(self, limit: int) -> list[SubnetConfig]:
        """Up to ``limit`` (>= 1) subnets to evaluate next; ``[]`` when it has nothing new to offer."""

    @abstractmethod
    def tell(self, subnets: Sequence[SubnetConfig], F: np.ndarray, G: np.ndarray) -> None:  # noqa: N803
        """Results of the subnets of the last :meth:`ask`, in order: ``F`` (n, 2), ``G`` (n, n_constr)."""

    def resumed(self) -> list[SubnetConfig]:
        """Subnets already evaluated and told in an earlier, interrupted session (counted in the budget)."""
        return []

    def describe(self) -> dict[str, Any]:
        """Settings worth recording in run.json (library, operators, population size...)."""
        return {"name": self.name}

    def close(self) -> None:
        """Release files or connections (the optuna storage); nothing to release by default."""
        return None
