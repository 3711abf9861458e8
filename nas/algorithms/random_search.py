"""``random``: seeded uniform sampling, the baseline every other algorithm must beat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nas.algorithms.base import AlgorithmContext, SearchAlgorithm
from nas.algorithms.registry import register_algorithm
from supernet.space import SubnetConfig


@register_algorithm
class RandomSearch(SearchAlgorithm):
    """Independent uniform draws from the space (duplicates possible and counted)."""

    name = "random"

    def __init__(self, ctx: AlgorithmContext, batch_size: int = 20) -> None:
        self.space = ctx.problem.space
        self.rng = np.random.default_rng(ctx.seed)
        self.batch_size = batch_size

    def ask(self, limit: int) -> list[SubnetConfig]:
        return [self.space.sample(self.rng) for _ in range(min(limit, self.batch_size))]

    def tell(self, subnets: Sequence[SubnetConfig], F: np.ndarray, G: np.ndarray) -> None:  # noqa: N803
        """Random search learns nothing."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sampler": "uniform per decision (numpy default_rng)", "batch_size": self.batch_size}
