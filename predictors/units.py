"""A subnet's cost as a constant plus one term per unit: fast, vectorised prediction.

Every kernel of a subnet belongs to a *unit*: ``stem``, a block ``b<i>``, an exit head ``x<e>`` or
the ``tail`` (:func:`supernet.cost.unit_of`). A family splits its blocks into *cost terms* whose
kernels take one of a few variants (:class:`supernet.cost.CostTerms`: a CNN block's width; a ViT
block's attention, token reduction and MLP), so any cost that sums over kernels is
``constant + sum_t table[t, choice_t]``. :class:`UnitTable` stores that form, so predicting
thousands of subnets is one numpy gather.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from predictors.kernels import Kernel, exit_kernels, layer_kernels
from supernet.cost import CostedConfig, check_costed, unit_of
from supernet.errors import ConfigError
from supernet.files import cache_root
from supernet.space import SubnetConfig

__all__ = ["UnitTable", "arch_hash", "cache_root", "check_costed", "macs_table", "unit_key", "unit_of", "units"]


def units(kernels: Sequence[Kernel]) -> dict[str, list[Kernel]]:
    """Kernels grouped by unit, in execution order."""
    out: dict[str, list[Kernel]] = {}
    for k in kernels:
        out.setdefault(unit_of(k.name), []).append(k)
    return out


def unit_key(kernels: Sequence[Kernel]) -> str:
    """LUT key of a unit: its kernels' shape keys joined by ``+``."""
    return "+".join(k.shape_key for k in kernels)


def arch_hash(arch_config: CostedConfig) -> str:
    """Stable 16-hex-digit hash of an architecture config (cache keys)."""
    text = json.dumps({"family": arch_config.family, **arch_config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class UnitTable:
    """``cost(subnet) = constant + sum_t table[t, choice_t]`` for one arch config.

    ``choices`` maps subnets to each term's variant (``CostedConfig.term_choices``). For early exits
    it also knows ``stem`` (the part of ``constant`` spent before block 0), the cost of each exit head
    (``heads``, decision included), the blocks they follow (``exit_blocks``) and each term's block
    (``term_blocks``), so :meth:`exit_costs` gives the cost of leaving at each exit.
    """

    constant: float
    table: np.ndarray  # (n_terms, max variants); unused cells are 0 and never gathered
    stem: float = 0.0
    heads: tuple[float, ...] = ()
    exit_blocks: tuple[int, ...] = ()
    term_blocks: tuple[int, ...] = ()
    choices: Callable[[Sequence[SubnetConfig]], np.ndarray] | None = None
    # Part of each head's cost paid only when a sample goes on past it (the next stage's invoke), refunded on leaving.
    exit_refund: float = 0.0

    @classmethod
    def build(cls, arch_config: CostedConfig, cost: Callable[[list[Kernel]], float], *,
              bytes_per_element: int = 4, batch: int = 1) -> UnitTable:
        """Evaluate ``cost`` once per term variant (and on the stem, the tail and each exit head), for
        kernels at ``batch`` images a launch."""
        config = check_costed(arch_config)
        terms = config.cost_terms()

        def price(layers: Sequence[dict]) -> float:
            return float(cost(layer_kernels(layers, bytes_per_element=bytes_per_element, batch=batch))) if layers else 0.0

        table = np.zeros((len(terms.names), max(terms.n_variants, default=1)))
        for t, variants in enumerate(terms.variants):
            for v, layers in enumerate(variants):
                table[t, v] = price(layers)
        stem = price(terms.stem)
        heads = tuple(float(cost(exit_kernels(config, e, bytes_per_element=bytes_per_element, batch=batch)))
                      for e in range(len(config.exit_blocks)))
        return cls(stem + price(terms.tail), table, stem, heads, tuple(config.exit_blocks), tuple(terms.blocks),
                   config.term_choices)

    def with_values(self, constant: float, table: np.ndarray, stem: float, heads: tuple[float, ...], *,
                    exit_refund: float = 0.0) -> UnitTable:
        """The same terms and choices with other costs (a fitted correction)."""
        return UnitTable(float(constant), table, float(stem), tuple(heads), self.exit_blocks, self.term_blocks,
                         self.choices, float(exit_refund))

    def choice_matrix(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, n_terms)`` variant of every term (validated against the table's shape)."""
        if self.choices is not None:
            idx = np.asarray(self.choices(subnets), dtype=np.int64)
        else:
            idx = np.asarray([s.widths for s in subnets], dtype=np.int64)
        if idx.ndim != 2 or idx.shape[1] != self.table.shape[0]:
            raise ConfigError(f"subnets must map to {self.table.shape[0]} cost terms each, but got shape {idx.shape}.")
        if idx.size and (idx.min() < 0 or idx.max() >= self.table.shape[1]):
            raise ConfigError(f"term variants must be in [0, {self.table.shape[1] - 1}], but got "
                              f"[{idx.min()}, {idx.max()}].")
        return idx

    def _per_term(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        return self.table[np.arange(self.table.shape[0]), self.choice_matrix(subnets)]

    def __call__(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        if len(subnets) == 0:
            return np.zeros(0)
        return self.constant + self._per_term(subnets).sum(axis=1)

    def exit_costs(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, E + 1)``: the cost of leaving at each exit (enabled or not), then at the final classifier.

        Leaving at exit ``e`` costs the stem, the terms of the blocks up to it, head ``e`` and every
        *enabled* head before it; the last column is the whole subnet plus every enabled head (all exits fail).
        """
        n_exits = len(self.heads)
        n = len(subnets)
        if n == 0:
            return np.zeros((0, n_exits + 1))
        per_term = self._per_term(subnets)
        total = self.constant + per_term.sum(axis=1)
        blocks = np.asarray(self.term_blocks or range(self.table.shape[0]))
        heads = np.asarray(self.heads, dtype=np.float64)
        on = np.asarray([s.exits or (0,) * n_exits for s in subnets], dtype=np.float64).reshape(n, n_exits)
        paid = on * heads
        before = np.cumsum(paid, axis=1) - paid
        if n_exits:
            upto = np.column_stack([self.stem + per_term[:, blocks <= b].sum(axis=1) for b in self.exit_blocks])
            leave = upto + before + heads - self.exit_refund
        else:
            leave = np.zeros((n, 0))
        return np.column_stack([leave, total + paid.sum(axis=1)])


def macs_table(arch_config: CostedConfig) -> UnitTable:
    """Static MACs per image of many subnets at once (one gather per cost term; equal to
    :func:`supernet.cost.count_macs` subnet by subnet)."""
    return UnitTable.build(arch_config, lambda ks: float(sum(k.macs for k in ks)))
