"""A subnet's cost as a constant plus one term per block: fast, vectorised prediction.

Every kernel of a CNN subnet belongs to a *unit*: ``stem``, a block ``b<i>`` (expand, dw,
project and residual add) or the ``tail`` (head, pool, classifier). A block's kernels depend
only on that block's width choice, so any cost that sums over units is
``constant + sum_i table[i, widths[i]]``. :class:`UnitTable` stores that form, so predicting
thousands of subnets is one numpy gather.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictors.kernels import Kernel, exit_kernels, subnet_kernels
from supernet.cnn import CNNConfig
from supernet.errors import ConfigError
from supernet.space import SubnetConfig

_BLOCK = re.compile(r"^([bx]\d+)\.")


def unit_of(kernel_name: str) -> str:
    """``b3.dw`` → ``b3``; ``x1.fc1`` → ``x1`` (exit head 1); ``stem`` → ``stem``; anything after the
    blocks → ``tail``."""
    m = _BLOCK.match(kernel_name)
    return m.group(1) if m else ("stem" if kernel_name == "stem" else "tail")


def units(kernels: Sequence[Kernel]) -> dict[str, list[Kernel]]:
    """Kernels grouped by unit, in execution order."""
    out: dict[str, list[Kernel]] = {}
    for k in kernels:
        out.setdefault(unit_of(k.name), []).append(k)
    return out


def unit_key(kernels: Sequence[Kernel]) -> str:
    """LUT key of a unit: its kernels' shape keys joined by ``+``."""
    return "+".join(k.shape_key for k in kernels)


def check_cnn(arch_config: object) -> CNNConfig:
    if not isinstance(arch_config, CNNConfig):
        raise ConfigError(f"latency predictors support CNN supernets (CNNConfig), but got {type(arch_config).__name__}.")
    return arch_config


def arch_hash(arch_config: CNNConfig) -> str:
    """Stable 16-hex-digit hash of an architecture config (cache keys)."""
    text = json.dumps({"family": arch_config.family, **arch_config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_root() -> Path:
    """``$DYNNAS_CACHE`` or ``~/.cache/dynnas``."""
    env = os.environ.get("DYNNAS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dynnas"


@dataclass(frozen=True)
class UnitTable:
    """``cost(subnet) = constant + sum_i table[i, widths[i]]`` for one arch config.

    For early exits it also knows ``stem`` (the part of ``constant`` spent before block 0), the
    cost of each exit head (``heads``, decision included) and the blocks they follow
    (``exit_blocks``), so :meth:`exit_costs` gives the cost of leaving at each exit.
    """

    constant: float
    table: np.ndarray  # (n_blocks, n_width_choices)
    stem: float = 0.0
    heads: tuple[float, ...] = ()
    exit_blocks: tuple[int, ...] = ()

    @classmethod
    def build(cls, arch_config: CNNConfig, cost: Callable[[list[Kernel]], float], *,
              bytes_per_element: int = 4, batch: int = 1) -> UnitTable:
        """Evaluate ``cost`` once per unit shape (uniform subnets cover every block at every width), for
        kernels at ``batch`` images a launch."""
        space = arch_config.space()
        table = np.zeros((space.n_blocks, len(space.width_choices)))
        constant = stem = 0.0
        for j in range(len(space.width_choices)):
            groups = units(subnet_kernels(arch_config, space.uniform(j), bytes_per_element=bytes_per_element,
                                          batch=batch))
            for name, ks in groups.items():
                if name.startswith("b"):
                    table[int(name[1:]), j] = cost(ks)
                elif j == 0:
                    constant += cost(ks)
                    stem += cost(ks) if name == "stem" else 0.0
        heads = tuple(float(cost(exit_kernels(arch_config, e, bytes_per_element=bytes_per_element, batch=batch)))
                      for e in range(len(arch_config.exit_blocks)))
        return cls(float(constant), table, float(stem), heads, tuple(arch_config.exit_blocks))

    def __call__(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        if len(subnets) == 0:
            return np.zeros(0)
        widths = np.asarray([s.widths for s in subnets], dtype=np.int64)
        if widths.ndim != 2 or widths.shape[1] != self.table.shape[0]:
            raise ConfigError(f"subnets must have {self.table.shape[0]} width indices each, but got shape {widths.shape}.")
        if widths.min() < 0 or widths.max() >= self.table.shape[1]:
            raise ConfigError(f"width indices must be in [0, {self.table.shape[1] - 1}], but got "
                              f"[{widths.min()}, {widths.max()}].")
        return self.constant + self.table[np.arange(self.table.shape[0]), widths].sum(axis=1)

    def exit_costs(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, E + 1)``: the cost of leaving at each exit (enabled or not), then at the final classifier.

        Leaving at exit ``e`` costs the stem, the blocks up to it, head ``e`` and every *enabled*
        head before it; the last column is the whole subnet plus every enabled head (all exits fail).
        """
        total = self(subnets)
        n, n_exits = len(total), len(self.heads)
        if n == 0:
            return np.zeros((0, n_exits + 1))
        widths = np.asarray([s.widths for s in subnets], dtype=np.int64)
        per_block = self.table[np.arange(self.table.shape[0]), widths]
        upto = self.stem + np.cumsum(per_block, axis=1)
        heads = np.asarray(self.heads, dtype=np.float64)
        on = np.asarray([s.exits or (0,) * n_exits for s in subnets], dtype=np.float64).reshape(n, n_exits)
        paid = on * heads
        before = np.cumsum(paid, axis=1) - paid
        leave = upto[:, list(self.exit_blocks)] + before + heads if n_exits else np.zeros((n, 0))
        return np.column_stack([leave, total + paid.sum(axis=1)])
