"""Latency of a width cascade: a cheap scout subnet first, the subnet itself only when the scout is unsure.

A subnet with ``cascade = k`` (see :class:`supernet.space.SearchSpace`) runs the uniform scout
``space.scout(subnet)`` with its exits off, tests its final logits, and returns them when
confident; otherwise the subnet runs (with its own exits) as the next stages of the chain
(:mod:`supernet.stages`). Leaving at the scout costs the scout and its exit test; leaving anywhere
later costs that plus the subnet up to there, as the subnet's own chain costs it.

Example::

    lat = CascadeLatency(latency_predictor("jetson-orin", config), dataclasses.replace(space, n_cascade=2))
    lat.predict_exit_ms([space.parse("w3-3-3-3_x01_c1")])   # (1, 1 + E + 1): scout, exits, final
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from supernet.space import SearchSpace, SubnetConfig


class CascadeLatency:
    """Wraps a latency predictor of the plain space so it costs subnets with a cascade scout."""

    def __init__(self, inner: Any, space: SearchSpace) -> None:
        self.inner, self.space = inner, space
        self.device = inner.device

    def predict_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """ms of each subnet alone: exits off, no scout (as the inner predictor)."""
        return self.inner.predict_ms([self.space.without_cascade(s) for s in subnets])

    def predict_exit_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, 1 + E + 1)``: ms of leaving at the scout, at each exit, at the final classifier.

        A subnet without a scout gets its first exit's ms in the scout column (its rate there is 0).
        """
        n = len(subnets)
        mains = [self.space.without_cascade(s) for s in subnets]
        plain = np.asarray(self.inner.predict_exit_ms(mains), dtype=np.float64).reshape(n, -1)
        out = np.column_stack([plain[:, :1], plain]) if n else np.zeros((0, plain.shape[1] + 1))
        rows = [i for i, s in enumerate(subnets) if s.cascade]
        own = getattr(self.inner, "cascade_exit_ms", None)
        if rows and own is not None:  # a predictor that knows how its runtime runs a cascade (the host's)
            out[rows] = own([self.space.scout(subnets[i]) for i in rows], [mains[i] for i in rows])
        elif rows:
            first = {}  # a scout is one of n_cascade subnets: predict each distinct one once
            for i in rows:
                first.setdefault(subnets[i].cascade, i)
            ms = np.asarray(self.inner.predict_ms([self.space.scout(subnets[i]) for i in first.values()]),
                            dtype=np.float64)
            per_kind = dict(zip(first, ms, strict=True))
            scout_ms = np.asarray([per_kind[subnets[i].cascade] for i in rows]) + float(
                getattr(self.inner, "decide_ms", 0.0))
            inside = np.asarray(self.inner.predict_exit_ms([mains[i] for i in rows]),
                                dtype=np.float64).reshape(len(rows), -1)
            out[rows, 0] = scout_ms
            out[rows, 1:] = scout_ms[:, None] + inside
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
