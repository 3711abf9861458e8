"""What a family's architecture config tells the cost models, and MAC counts that hold for every family.

A config describes a subnet as a *kernel table* (:meth:`CostedConfig.layers`): one dict per launched
op, named by unit (``stem``, ``b<i>.*`` for block ``i``, ``x<e>.*`` for exit head ``e``, anything else
after the blocks is the tail). Every dict has ``name``, ``op`` and ``macs``; the other fields depend on
the op (see :func:`predictors.kernels.to_kernel`).

For fast prediction the config also splits a subnet's cost into *terms* (:class:`CostTerms`): the
constant stem and tail, and terms whose kernels take one of a few *variants*. A CNN block is one term
whose variant is its width choice; a ViT block is three terms (attention: heads × tokens in; token
reduction: method × tokens in/out; MLP: width × tokens out). :meth:`CostedConfig.term_choices` maps
subnets to the variant of every term, so any additive cost is ``constant + sum_t table[t, choice_t]``:
one numpy gather per subnet, whatever the family (:class:`predictors.units.UnitTable`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from supernet.errors import ConfigError
from supernet.space import SearchSpace, SubnetConfig

Layer = dict[str, Any]
_UNIT = re.compile(r"^([bx]\d+)\.")


def unit_of(name: str) -> str:
    """``b3.dw`` → ``b3``; ``x1.fc1`` → ``x1`` (exit head 1); ``stem`` → ``stem``; anything else → ``tail``."""
    m = _UNIT.match(name)
    return m.group(1) if m else ("stem" if name == "stem" or name.startswith("stem.") else "tail")


@dataclass(frozen=True)
class CostTerms:
    """A family's subnet cost split into a constant part and terms with a few variants each.

    ``variants[t][v]`` is the kernel table of term ``t`` in variant ``v``; ``blocks[t]`` is the
    block the term belongs to (what an exit after that block has paid for).
    """

    names: tuple[str, ...]
    blocks: tuple[int, ...]
    variants: tuple[tuple[tuple[Layer, ...], ...], ...]
    stem: tuple[Layer, ...]
    tail: tuple[Layer, ...]

    @property
    def n_variants(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.variants)


@runtime_checkable
class CostedConfig(Protocol):
    """What every family's architecture config provides (``CNNConfig``, ``ViTConfig``)."""

    family: str
    num_classes: int
    exit_blocks: tuple[int, ...]

    def space(self) -> SearchSpace: ...

    def to_dict(self) -> dict[str, Any]: ...

    def layers(self, subnet: SubnetConfig) -> list[Layer]:
        """The subnet's kernel table with its exits off, in execution order."""
        ...

    def exit_layers(self, e: int) -> list[Layer]:
        """Kernel table of exit head ``e``, its exit test (``decide``) last."""
        ...

    def cost_terms(self) -> CostTerms: ...

    def term_choices(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, n_terms)`` variant index of every term for each subnet."""
        ...


def check_costed(config: object) -> CostedConfig:
    """``config`` if it is a family's architecture config, else a :class:`ConfigError` naming what it lacks."""
    missing = [m for m in ("space", "layers", "exit_layers", "cost_terms", "term_choices") if not hasattr(config, m)]
    if missing:
        raise ConfigError(f"cost models need a supernet family's architecture config (e.g. CNNConfig, ViTConfig), "
                          f"but {type(config).__name__} lacks {', '.join(missing)}.")
    return config  # type: ignore[return-value]


def count_macs(config: CostedConfig, subnet: SubnetConfig) -> int:
    """Multiply-accumulates per image of the subnet with its exits off (the static network)."""
    return int(sum(int(layer["macs"]) for layer in config.layers(subnet)))


def exit_macs(config: CostedConfig, subnet: SubnetConfig) -> list[int]:
    """C_i in MACs: the cost of leaving at each exit (enabled or not), then at the final classifier.

    C_i counts the network up to exit i, head i, and every *enabled* head before it; the last entry
    is the whole network plus every enabled head (the worst case: all exits fail).
    """
    upto: dict[str, int] = {}
    total = 0
    for layer in config.layers(subnet):
        total += int(layer["macs"])
        upto[unit_of(str(layer["name"]))] = total  # the last layer of a unit wins
    exits = subnet.exits or (0,) * len(config.exit_blocks)
    out, heads = [], 0
    for e, b in enumerate(config.exit_blocks):
        head = sum(int(r["macs"]) for r in config.exit_layers(e))
        out.append(upto[f"b{b}"] + heads + head)
        heads += head if exits[e] else 0
    return [*out, total + heads]
