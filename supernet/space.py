"""The search space as a value object: subnet configs, integer encodings and arch strings.

A :class:`SearchSpace` knows which choices each decision has; a :class:`SubnetConfig` is one
point of it, stored as choice *indices*. The canonical string of a subnet is
``w3-3-2-0`` (one width index per block), followed by ``_x0101`` when the space has early-exit
positions, ``_t0-1-2`` when it has token-schedule positions and ``_c1`` when it has a width
cascade. ``subnet_id`` is a stable hash of the space fingerprint and that string.

A *width cascade* (``n_cascade`` > 0) runs a cheap *scout* first: ``cascade = k`` (1 … n_cascade)
is the uniform-width subnet at width choice ``k - 1`` with its exits off; when the scout is
confident its answer is returned, otherwise the subnet itself runs. ``cascade = 0`` is no scout.

Example::

    space = SearchSpace(n_blocks=4, width_choices=(0.25, 0.5, 0.75, 1.0))
    cfg = space.parse("w3-2-1-0")
    assert space.decode(space.encode(cfg)) == cfg
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from supernet.errors import ArchStringError, ConfigError


@dataclass(frozen=True, slots=True)
class SubnetConfig:
    """One subnet: a width index per block, an exit mask, a token schedule (indices) and a cascade scout
    (0: none; k: the uniform subnet at width choice k - 1 runs first)."""

    widths: tuple[int, ...]
    exits: tuple[int, ...] = ()
    tokens: tuple[int, ...] = ()
    cascade: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "exits": list(self.exits), "tokens": list(self.tokens),
                "cascade": self.cascade}


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Which choices a subnet may take.

    ``width_choices`` are fractions of each block's maximum hidden width, ascending.
    ``exit_positions`` are block indices after which an early exit may be attached (reserved:
    empty for today's CNN). ``token_choices`` are keep ratios per token-schedule position
    (reserved for the ViT family). ``n_cascade`` is how many width-cascade scouts a subnet may
    choose from (the uniform subnets at the ``n_cascade`` narrowest widths; 0: no cascade gene).
    """

    n_blocks: int
    width_choices: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    exit_positions: tuple[int, ...] = ()
    token_choices: tuple[float, ...] = ()
    n_token_positions: int = 0
    family: str = "cnn"
    n_cascade: int = 0
    _names: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n_blocks < 1:
            raise ConfigError(f"`n_blocks` must be >= 1, but got {self.n_blocks}.")
        w = tuple(float(x) for x in self.width_choices)
        if not w or any(not (0.0 < x <= 1.0) for x in w):
            raise ConfigError(f"`width_choices` must be fractions in (0, 1], but got {w}.")
        if list(w) != sorted(set(w)):
            raise ConfigError(f"`width_choices` must be strictly ascending, but got {w}.")
        object.__setattr__(self, "width_choices", w)
        if any(not (0 <= p < self.n_blocks) for p in self.exit_positions):
            raise ConfigError(
                f"`exit_positions` must be block indices in [0, {self.n_blocks}), but got {self.exit_positions}."
            )
        if (self.n_token_positions > 0) != bool(self.token_choices):
            raise ConfigError(
                "`token_choices` and `n_token_positions` go together: got "
                f"{self.token_choices=} and {self.n_token_positions=}."
            )
        if not (0 <= self.n_cascade < len(w)):
            raise ConfigError(f"`n_cascade` must be in [0, {len(w) - 1}] (scouts narrower than the widest "
                              f"subnet), but got {self.n_cascade}.")

    # ---- sizes -------------------------------------------------------------------------
    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Number of choices of each integer in the encoding."""
        return (
            (len(self.width_choices),) * self.n_blocks
            + (2,) * len(self.exit_positions)
            + (len(self.token_choices),) * self.n_token_positions
            + ((self.n_cascade + 1,) if self.n_cascade else ())
        )

    @property
    def size(self) -> int:
        """Number of distinct subnets."""
        return int(np.prod([int(c) for c in self.cardinalities], dtype=object))

    # ---- construction ------------------------------------------------------------------
    def make(self, widths: tuple[int, ...] | list[int], exits=(), tokens=(), cascade: int = 0) -> SubnetConfig:
        """Validate and build a config from choice indices."""
        cfg = SubnetConfig(tuple(int(i) for i in widths), tuple(int(i) for i in exits), tuple(int(i) for i in tokens),
                           int(cascade))
        self.validate(cfg)
        return cfg

    def validate(self, cfg: SubnetConfig) -> None:
        """Raise :class:`ConfigError` naming the field, the value and the allowed choices."""
        parts = (
            ("widths", cfg.widths, self.n_blocks, len(self.width_choices)),
            ("exits", cfg.exits, len(self.exit_positions), 2),
            ("tokens", cfg.tokens, self.n_token_positions, len(self.token_choices)),
        )
        for name, values, length, n in parts:
            if len(values) != length:
                raise ConfigError(f"`{name}` must have {length} entries for this space, but got {len(values)}: {values}.")
            for i, v in enumerate(values):
                if not (0 <= v < n):
                    raise ConfigError(f"`{name}[{i}]` must be a choice index in [0, {n - 1}], but got {v}.")
        if not (0 <= cfg.cascade <= self.n_cascade):
            raise ConfigError(f"`cascade` must be in [0, {self.n_cascade}] for this space, but got {cfg.cascade}.")

    def uniform(self, width_index: int) -> SubnetConfig:
        """Every block at the same width choice (no exits, full tokens)."""
        return self.make(
            (width_index,) * self.n_blocks,
            (0,) * len(self.exit_positions),
            (len(self.token_choices) - 1,) * self.n_token_positions,
        )

    def scout(self, cfg: SubnetConfig) -> SubnetConfig | None:
        """The cascade scout of ``cfg`` (a uniform subnet, exits off, no scout), or None without one."""
        return self.uniform(cfg.cascade - 1) if cfg.cascade else None

    def without_cascade(self, cfg: SubnetConfig) -> SubnetConfig:
        """``cfg`` with its scout removed (the network that runs after a scout that is not confident)."""
        return SubnetConfig(cfg.widths, cfg.exits, cfg.tokens, 0)

    def smallest(self) -> SubnetConfig:
        return self.uniform(0)

    def largest(self) -> SubnetConfig:
        return self.uniform(len(self.width_choices) - 1)

    def sample(self, rng: np.random.Generator, width_indices: tuple[int, ...] | None = None) -> SubnetConfig:
        """Draw a uniform random subnet; ``width_indices`` restricts the widths (progressive shrinking)."""
        allowed = np.asarray(width_indices if width_indices is not None else range(len(self.width_choices)))
        widths = rng.choice(allowed, size=self.n_blocks)
        exits = rng.integers(0, 2, size=len(self.exit_positions))
        tokens = rng.integers(0, max(1, len(self.token_choices)), size=self.n_token_positions)
        cascade = int(rng.integers(0, self.n_cascade + 1)) if self.n_cascade else 0  # no draw without the gene
        return self.make(widths.tolist(), exits.tolist(), tokens.tolist(), cascade)

    def sample_unique(self, rng: np.random.Generator, n: int,
                      first: tuple[SubnetConfig, ...] | list[SubnetConfig] = (), *,
                      exclude: Iterable[SubnetConfig] = ()) -> list[SubnetConfig]:
        """``first``, then distinct random subnets not in ``exclude``: ``n`` in all (fewer if the
        space is smaller).

        The number of draws is bounded, so a small space never loops forever.
        """
        picked = list(dict.fromkeys(first))
        seen = set(picked) | set(exclude)
        for _ in range(100 * n):
            if len(picked) >= min(n, self.size):
                break
            s = self.sample(rng)
            if s not in seen:
                seen.add(s)
                picked.append(s)
        return picked[:n]

    # ---- encodings ---------------------------------------------------------------------
    def encode(self, cfg: SubnetConfig) -> np.ndarray:
        """Config → integer vector (widths, then exit bits, then token indices, then the scout)."""
        self.validate(cfg)
        tail = (cfg.cascade,) if self.n_cascade else ()
        return np.asarray(cfg.widths + cfg.exits + cfg.tokens + tail, dtype=np.int64)

    def decode(self, vector: np.ndarray | list[int]) -> SubnetConfig:
        """Integer vector → config (rounds and validates)."""
        v = [int(round(float(x))) for x in np.asarray(vector).ravel()]
        if len(v) != len(self.cardinalities):
            raise ConfigError(f"encoding must have {len(self.cardinalities)} integers, but got {len(v)}.")
        a, b = self.n_blocks, self.n_blocks + len(self.exit_positions)
        c = b + self.n_token_positions
        return self.make(v[:a], v[a:b], v[b:c], v[c] if self.n_cascade else 0)

    def format(self, cfg: SubnetConfig) -> str:
        """Canonical arch string, e.g. ``w3-2-1-0``, ``w3-2_x01_t2-1`` or ``w3-2_x01_c1``."""
        self.validate(cfg)
        s = "w" + "-".join(map(str, cfg.widths))
        if self.exit_positions:
            s += "_x" + "".join(map(str, cfg.exits))
        if self.n_token_positions:
            s += "_t" + "-".join(map(str, cfg.tokens))
        if self.n_cascade:
            s += f"_c{cfg.cascade}"
        return s

    _ARCH = re.compile(r"^w(?P<w>\d+(?:-\d+)*)(?:_x(?P<x>[01]+))?(?:_t(?P<t>\d+(?:-\d+)*))?(?:_c(?P<c>\d+))?$")

    def parse(self, text: str) -> SubnetConfig:
        """Inverse of :meth:`format`; raises :class:`ArchStringError` with the expected form."""
        m = self._ARCH.match(text.strip())
        example = self.format(self.largest())
        if not m:
            raise ArchStringError(f"cannot parse arch string '{text}'; expected the form '{example}'.")
        widths = [int(x) for x in m["w"].split("-")]
        exits = [int(x) for x in m["x"]] if m["x"] else []
        tokens = [int(x) for x in m["t"].split("-")] if m["t"] else []
        if self.n_cascade and m["c"] is None:
            raise ArchStringError(f"arch string '{text}' lacks its cascade part '_c<k>' (0 = no scout); e.g. '{example}'.")
        try:
            return self.make(widths, exits, tokens, int(m["c"]) if m["c"] is not None else 0)
        except ConfigError as e:
            raise ArchStringError(f"arch string '{text}' does not fit this space ({e}); e.g. '{example}'.") from e

    def width_fractions(self, cfg: SubnetConfig) -> tuple[float, ...]:
        return tuple(self.width_choices[i] for i in cfg.widths)

    # ---- identity ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "n_blocks": self.n_blocks,
            "width_choices": list(self.width_choices),
            "exit_positions": list(self.exit_positions),
            "token_choices": list(self.token_choices),
            "n_token_positions": self.n_token_positions,
        } | ({"n_cascade": self.n_cascade} if self.n_cascade else {})  # absent when 0: old fingerprints hold

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        known = {"family", "n_blocks", "width_choices", "exit_positions", "token_choices", "n_token_positions",
                 "n_cascade"}
        extra = set(d) - known
        if extra:
            raise ConfigError(f"unknown search-space fields {sorted(extra)}; known: {sorted(known)}.")
        return cls(
            n_blocks=int(d["n_blocks"]),
            width_choices=tuple(d.get("width_choices", ())),
            exit_positions=tuple(d.get("exit_positions", ())),
            token_choices=tuple(d.get("token_choices", ())),
            n_token_positions=int(d.get("n_token_positions", 0)),
            family=str(d.get("family", "cnn")),
            n_cascade=int(d.get("n_cascade", 0)),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        return cls.from_dict(json.loads(text))

    @property
    def fingerprint(self) -> str:
        """Short stable hash of the space (family and choices)."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:8]

    def subnet_id(self, cfg: SubnetConfig) -> str:
        """Stable, file-name-safe id of a subnet within this space."""
        return hashlib.sha1(f"{self.fingerprint}/{self.format(cfg)}".encode()).hexdigest()[:12]
