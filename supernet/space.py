"""The search space as a value object: subnet configs, integer encodings and arch strings.

A :class:`SearchSpace` knows which choices each decision has; a :class:`SubnetConfig` is one
point of it, stored as choice *indices*. The canonical string of a subnet is
``w3-3-2-0`` (one width index per block), followed by ``_h3-3-1-0`` when the space has elastic
attention heads (one head index per block), ``_x0101`` when it has early-exit positions,
``_t2-2-1`` when it has token-schedule positions, ``_m1`` when it has a token-reduction method
gene and ``_c1`` when it has a width cascade. ``subnet_id`` is a stable hash of the space
fingerprint and that string.

*Elastic levels.* With ``head_choices`` (ViT family), level ``j`` means width choice ``j`` and
head choice ``j``: progressive shrinking adds both together, and ``width_indices`` in
:meth:`SearchSpace.sample` restricts both genes of every block to the trained levels.

*Token schedules.* ``token_choices`` are keep ratios (ascending, 1.0 included), each relative to the
tokens entering the block at that position. A schedule never keeps a larger share deeper in the
net: its ratios are non-increasing with depth (:meth:`SearchSpace.validate` rejects an increasing
one, :meth:`SearchSpace.decode` repairs any integer vector by a running minimum).

A *width cascade* (``n_cascade`` > 0) runs a cheap *scout* first: ``cascade = k`` (1 … n_cascade)
is the uniform-width subnet at width choice ``k - 1`` with its exits off; when the scout is
confident its answer is returned, otherwise the subnet itself runs. ``cascade = 0`` is no scout.

Example::

    space = SearchSpace(n_blocks=4, width_choices=(0.25, 0.5, 0.75, 1.0))
    cfg = space.parse("w3-2-1-0")
    assert space.decode(space.encode(cfg)) == cfg
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from supernet.errors import ArchStringError, ConfigError

TOKEN_METHODS = ("topk", "tome")  # EViT-style top-k pruning with a fused token; ToMe bipartite merging
TOME_MIN_KEEP = 0.5  # ToMe merges at most half the tokens of a block (bipartite matching)


@dataclass(frozen=True, slots=True)
class GeneGroup:
    """One group of the genome: a :class:`SubnetConfig` field, its gene-name prefix, how many integers it holds
    (0: absent from this space) and how many choices each integer has; ``scalar`` fields hold one int."""

    field: str
    prefix: str
    count: int
    choices: int
    scalar: bool = False

    def names(self) -> tuple[str, ...]:
        """The gene names: ``w0``, ``w1``… for a vector field, the prefix itself for a scalar one."""
        if self.scalar:
            return (self.prefix,) * self.count
        return tuple(f"{self.prefix}{i}" for i in range(self.count))


@dataclass(frozen=True, slots=True)
class SubnetConfig:
    """One subnet: a width index per block, an exit mask, a token schedule (indices) and a cascade scout
    (0: none; k: the uniform subnet at width choice k - 1 runs first); with elastic heads a head index
    per block, with a method gene the token-reduction method (index into the space's ``token_methods``).

    The positional order stays ``(widths, exits, tokens, cascade)`` for old callers; ``heads`` and
    ``method`` are keywords.
    """

    widths: tuple[int, ...]
    exits: tuple[int, ...] = ()
    tokens: tuple[int, ...] = ()
    cascade: int = 0
    heads: tuple[int, ...] = ()
    method: int = 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"widths": list(self.widths), "exits": list(self.exits), "tokens": list(self.tokens),
                             "cascade": self.cascade}
        if self.heads:  # absent for the CNN family: its dicts stay as they were
            d["heads"] = list(self.heads)
        if self.method:
            d["method"] = self.method
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubnetConfig:
        known = {"widths", "exits", "tokens", "cascade", "heads", "method"}
        if set(d) - known:
            raise ConfigError(f"unknown subnet fields {sorted(set(d) - known)}; known: {sorted(known)}.")
        return cls(tuple(int(i) for i in d["widths"]), tuple(int(i) for i in d.get("exits", ())),
                   tuple(int(i) for i in d.get("tokens", ())), int(d.get("cascade", 0)),
                   heads=tuple(int(i) for i in d.get("heads", ())), method=int(d.get("method", 0)))


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Which choices a subnet may take.

    ``width_choices`` are fractions of each block's maximum hidden width, ascending.
    ``exit_positions`` are block indices after which an early exit may be attached.
    ``token_choices`` are keep ratios per token-schedule position (ascending, in (0, 1], 1.0 = no
    reduction must be one of them), ``n_token_positions`` how many positions there are.
    ``n_cascade`` is how many width-cascade scouts a subnet may choose from (the uniform subnets at
    the ``n_cascade`` narrowest widths; 0: no cascade gene). ``head_choices`` are attention-head
    counts, ascending, one per width choice (one gene per block; empty: no head genes).
    ``token_methods`` name the token-reduction methods (one gene; empty: no method gene).
    """

    n_blocks: int
    width_choices: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    exit_positions: tuple[int, ...] = ()
    token_choices: tuple[float, ...] = ()
    n_token_positions: int = 0
    family: str = "cnn"
    n_cascade: int = 0
    head_choices: tuple[int, ...] = ()
    token_methods: tuple[str, ...] = ()
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
        t = tuple(float(x) for x in self.token_choices)
        if any(not (0.0 < x <= 1.0) for x in t):
            raise ConfigError(f"`token_choices` are keep ratios and must lie in (0, 1], but got {t}; "
                              "pass e.g. (0.5, 0.7, 1.0).")
        if t and (list(t) != sorted(set(t)) or t[-1] != 1.0):
            raise ConfigError(f"`token_choices` must be strictly ascending and end with 1.0 (no reduction), but got {t}.")
        object.__setattr__(self, "token_choices", t)
        h = tuple(int(x) for x in self.head_choices)
        if h and (len(h) != len(w) or h[0] < 1 or list(h) != sorted(set(h))):
            raise ConfigError(f"`head_choices` must be strictly ascending head counts >= 1, one per width choice "
                              f"({len(w)}: {w}), but got {h}.")
        object.__setattr__(self, "head_choices", h)
        m = tuple(str(x) for x in self.token_methods)
        if m and not self.n_token_positions:
            raise ConfigError(f"`token_methods` {m} need token-schedule positions, but `n_token_positions` is 0.")
        bad = [x for x in m if x not in TOKEN_METHODS]
        if bad or len(set(m)) != len(m):
            raise ConfigError(f"`token_methods` must be distinct names from {TOKEN_METHODS}, but got {m}.")
        if "tome" in m and t[0] < TOME_MIN_KEEP:
            raise ConfigError(f"ToMe merges at most half the tokens of a block, so every keep ratio must be "
                              f">= {TOME_MIN_KEEP} with method 'tome', but `token_choices` has {t[0]}; "
                              "drop the smaller ratios or the 'tome' method.")
        object.__setattr__(self, "token_methods", m)
        if not (0 <= self.n_cascade < len(w)):
            raise ConfigError(f"`n_cascade` must be in [0, {len(w) - 1}] (scouts narrower than the widest "
                              f"subnet), but got {self.n_cascade}.")

    # ---- the genome ----------------------------------------------------------------------
    @property
    def genes(self) -> tuple[GeneGroup, ...]:
        """The genome, declared once: each group's field of :class:`SubnetConfig`, how many integers it holds
        in the encoding and how many choices each has, in encoding order. Cardinalities, gene names (optuna's
        parameter names too), :meth:`encode` and :meth:`decode` all derive from it."""
        return (
            GeneGroup("widths", "w", self.n_blocks, len(self.width_choices)),
            GeneGroup("heads", "h", self.n_blocks if self.head_choices else 0, len(self.head_choices)),
            GeneGroup("exits", "x", len(self.exit_positions), 2),
            GeneGroup("tokens", "t", self.n_token_positions, len(self.token_choices)),
            GeneGroup("method", "method", 1 if self.token_methods else 0, len(self.token_methods), scalar=True),
            GeneGroup("cascade", "cascade", 1 if self.n_cascade else 0, self.n_cascade + 1, scalar=True),
        )

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Number of choices of each integer in the encoding (widths, heads, exits, tokens, method, cascade)."""
        return tuple(g.choices for g in self.genes for _ in range(g.count))

    @property
    def gene_names(self) -> tuple[str, ...]:
        """One name per integer of the encoding: ``w<i>``, ``h<i>``, ``x<i>``, ``t<i>``, ``method``, ``cascade``."""
        return tuple(name for g in self.genes for name in g.names())

    def _genome_of(self, cfg: SubnetConfig) -> tuple[int, ...]:
        """``cfg``'s integers in encoding order (not validated)."""
        out: tuple[int, ...] = ()
        for g in self.genes:
            value = getattr(cfg, g.field)
            out += ((value,) if g.count else ()) if g.scalar else tuple(value)
        return out

    @property
    def size(self) -> int:
        """Number of distinct valid subnets (token schedules: the non-increasing ones, C(n + k - 1, n))."""
        n, k = self.n_token_positions, len(self.token_choices)
        product = int(np.prod([int(c) for c in self.cardinalities], dtype=object)) // (k ** n if n else 1)
        return product * (math.comb(n + k - 1, n) if n else 1)

    # ---- construction ------------------------------------------------------------------
    def make(self, widths: tuple[int, ...] | list[int], exits=(), tokens=(), cascade: int = 0, *,
             heads=(), method: int = 0) -> SubnetConfig:
        """Validate and build a config from choice indices."""
        cfg = SubnetConfig(tuple(int(i) for i in widths), tuple(int(i) for i in exits), tuple(int(i) for i in tokens),
                           int(cascade), heads=tuple(int(i) for i in heads), method=int(method))
        self.validate(cfg)
        return cfg

    def replace(self, cfg: SubnetConfig, **changes: Any) -> SubnetConfig:
        """``cfg`` with some fields changed (e.g. ``exits=(1, 1)``), validated; heads and method are kept."""
        return self.make(**{"widths": cfg.widths, "exits": cfg.exits, "tokens": cfg.tokens, "cascade": cfg.cascade,
                            "heads": cfg.heads, "method": cfg.method, **changes})

    def validate(self, cfg: SubnetConfig) -> None:
        """Raise :class:`ConfigError` naming the field, the value and the allowed choices."""
        parts = (
            ("widths", cfg.widths, self.n_blocks, len(self.width_choices)),
            ("heads", cfg.heads, self.n_blocks if self.head_choices else 0, len(self.head_choices)),
            ("exits", cfg.exits, len(self.exit_positions), 2),
            ("tokens", cfg.tokens, self.n_token_positions, len(self.token_choices)),
        )
        for name, values, length, n in parts:
            if len(values) != length:
                raise ConfigError(f"`{name}` must have {length} entries for this space, but got {len(values)}: {values}.")
            for i, v in enumerate(values):
                if not (0 <= v < n):
                    raise ConfigError(f"`{name}[{i}]` must be a choice index in [0, {n - 1}], but got {v}.")
        for i in range(1, len(cfg.tokens)):
            if cfg.tokens[i] > cfg.tokens[i - 1]:
                ratios = self.keep_ratios(cfg)
                raise ConfigError(f"the token schedule must keep a non-increasing share with depth, but keep ratio "
                                  f"{ratios[i]} at position {i} follows {ratios[i - 1]} (schedule {ratios}); "
                                  "reorder it so the ratios never grow.")
        n_methods = len(self.token_methods)
        if not (0 <= cfg.method < max(1, n_methods)):
            raise ConfigError(f"`method` must be an index into {self.token_methods or '(no methods: 0)'}, "
                              f"but got {cfg.method}.")
        if not (0 <= cfg.cascade <= self.n_cascade):
            raise ConfigError(f"`cascade` must be in [0, {self.n_cascade}] for this space, but got {cfg.cascade}.")

    def uniform(self, width_index: int) -> SubnetConfig:
        """Every block at the same elastic level (width and heads; no exits, full tokens, method 0)."""
        return self.make(
            (width_index,) * self.n_blocks,
            (0,) * len(self.exit_positions),
            (len(self.token_choices) - 1,) * self.n_token_positions,
            heads=(width_index,) * (self.n_blocks if self.head_choices else 0),
        )

    def scout(self, cfg: SubnetConfig) -> SubnetConfig | None:
        """The cascade scout of ``cfg`` (a uniform subnet, exits off, no scout), or None without one."""
        return self.uniform(cfg.cascade - 1) if cfg.cascade else None

    def without_cascade(self, cfg: SubnetConfig) -> SubnetConfig:
        """``cfg`` with its scout removed (the network that runs after a scout that is not confident)."""
        return dataclasses.replace(cfg, cascade=0)

    def smallest(self) -> SubnetConfig:
        return self.uniform(0)

    def largest(self) -> SubnetConfig:
        return self.uniform(len(self.width_choices) - 1)

    def sample(self, rng: np.random.Generator, width_indices: tuple[int, ...] | None = None, *,
               tokens: bool = True) -> SubnetConfig:
        """Draw a random subnet.

        ``width_indices`` restricts the elastic levels (widths and heads) to the trained ones
        (progressive shrinking). Token schedules are drawn uniformly among the valid
        (non-increasing) ones; ``tokens=False`` gives full tokens (no reduction, method 0), for
        training before the schedule stage. Exits and the scout are uniform.
        """
        allowed = np.asarray(width_indices if width_indices is not None else range(len(self.width_choices)))
        widths = rng.choice(allowed, size=self.n_blocks)
        heads = rng.choice(allowed, size=self.n_blocks).tolist() if self.head_choices else []
        exits = rng.integers(0, 2, size=len(self.exit_positions))
        if tokens:
            schedule = _sample_schedule(rng, self.n_token_positions, len(self.token_choices))
            method = int(rng.integers(0, len(self.token_methods))) if self.token_methods else 0
        else:
            schedule, method = [len(self.token_choices) - 1] * self.n_token_positions, 0
        cascade = int(rng.integers(0, self.n_cascade + 1)) if self.n_cascade else 0  # no draw without the gene
        return self.make(widths.tolist(), exits.tolist(), schedule, cascade, heads=heads, method=method)

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
        """Config → integer vector (widths, heads, exit bits, token indices, method, scout)."""
        self.validate(cfg)
        return np.asarray(self._genome_of(cfg), dtype=np.int64)

    def encode_many(self, cfgs: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, len(cardinalities))`` encodings of many configs, validated at once (as :meth:`encode`, row by
        row; a bad config raises :meth:`validate`'s error for it)."""
        k = len(self.cardinalities)
        if not len(cfgs):
            return np.zeros((0, k), dtype=np.int64)
        method, cascade = bool(self.token_methods), bool(self.n_cascade)
        rows = [self._genome_of(c) for c in cfgs]
        lengths = {len(r) for r in rows}
        if lengths == {k}:
            enc = np.asarray(rows, dtype=np.int64)
            ok = np.all((enc >= 0) & (enc < np.asarray(self.cardinalities)), axis=1)
            if self.n_token_positions > 1:
                a = self.gene_names.index("t0")
                ok &= np.all(np.diff(enc[:, a:a + self.n_token_positions], axis=1) <= 0, axis=1)
            # the fields' lengths must match too (a short widths with a long heads has the right total)
            n_heads = self.n_blocks if self.head_choices else 0
            if ok.all() and all(len(c.widths) == self.n_blocks and len(c.heads) == n_heads
                                and len(c.exits) == len(self.exit_positions) and len(c.tokens) == self.n_token_positions
                                and (method or c.method == 0) and (cascade or c.cascade == 0) for c in cfgs):
                return enc
        for c in cfgs:  # the slow path names the first bad config exactly as validate does
            self.validate(c)
        return np.asarray(rows, dtype=np.int64)

    def decode(self, vector: np.ndarray | list[int]) -> SubnetConfig:
        """Integer vector → config (rounds, repairs the token schedule, validates).

        Any vector within the cardinalities decodes (evolutionary operators produce arbitrary
        ones): an increasing token schedule is repaired by a running minimum over its indices.
        """
        v = [int(round(float(x))) for x in np.asarray(vector).ravel()]
        if len(v) != len(self.cardinalities):
            raise ConfigError(f"encoding must have {len(self.cardinalities)} integers, but got {len(v)}.")
        cuts = np.cumsum([0, *(g.count for g in self.genes)])
        widths, heads, exits, tokens, method, cascade = (v[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True))
        tokens = np.minimum.accumulate(tokens).tolist() if tokens else []
        return self.make(widths, exits, tokens, cascade[0] if cascade else 0, heads=heads,
                         method=method[0] if method else 0)

    def format(self, cfg: SubnetConfig) -> str:
        """Canonical arch string, e.g. ``w3-2-1-0``, ``w3-2_x01_t2-1``, ``w3-2_h3-1_x01_t2-1_m1`` or ``w3-2_x01_c1``."""
        self.validate(cfg)
        s = "w" + "-".join(map(str, cfg.widths))
        if self.head_choices:
            s += "_h" + "-".join(map(str, cfg.heads))
        if self.exit_positions:
            s += "_x" + "".join(map(str, cfg.exits))
        if self.n_token_positions:
            s += "_t" + "-".join(map(str, cfg.tokens))
        if self.token_methods:
            s += f"_m{cfg.method}"
        if self.n_cascade:
            s += f"_c{cfg.cascade}"
        return s

    def parse(self, text: str) -> SubnetConfig:
        """Inverse of :meth:`format`; raises :class:`ArchStringError` with the expected form."""
        m = ARCH_PATTERN.match(text.strip())
        example = self.format(self.largest())
        if not m:
            raise ArchStringError(f"cannot parse arch string '{text}'; expected the form '{example}'.")
        widths = [int(x) for x in m["w"].split("-")]
        heads = [int(x) for x in m["h"].split("-")] if m["h"] else []
        exits = [int(x) for x in m["x"]] if m["x"] else []
        tokens = [int(x) for x in m["t"].split("-")] if m["t"] else []
        if self.token_methods and m["m"] is None:
            raise ArchStringError(f"arch string '{text}' lacks its token-method part '_m<k>' "
                                  f"(index into {self.token_methods}); e.g. '{example}'.")
        if not self.token_methods and m["m"] is not None:
            raise ArchStringError(f"arch string '{text}' has a token-method part '_m{m['m']}', but this space has "
                                  f"no token-method gene; e.g. '{example}'.")
        if self.n_cascade and m["c"] is None:
            raise ArchStringError(f"arch string '{text}' lacks its cascade part '_c<k>' (0 = no scout); e.g. '{example}'.")
        try:
            return self.make(widths, exits, tokens, int(m["c"]) if m["c"] is not None else 0, heads=heads,
                             method=int(m["m"]) if m["m"] is not None else 0)
        except ConfigError as e:
            raise ArchStringError(f"arch string '{text}' does not fit this space ({e}); e.g. '{example}'.") from e

    def width_fractions(self, cfg: SubnetConfig) -> tuple[float, ...]:
        return tuple(self.width_choices[i] for i in cfg.widths)

    def head_counts(self, cfg: SubnetConfig) -> tuple[int, ...]:
        """Attention heads per block (empty without head genes)."""
        return tuple(self.head_choices[i] for i in cfg.heads)

    def keep_ratios(self, cfg: SubnetConfig) -> tuple[float, ...]:
        """Keep ratio per token-schedule position (each relative to the tokens entering that block)."""
        return tuple(self.token_choices[i] for i in cfg.tokens)

    def token_method(self, cfg: SubnetConfig) -> str | None:
        """Name of the subnet's token-reduction method, or None when the space has no method gene."""
        return self.token_methods[cfg.method] if self.token_methods else None

    # ---- identity ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "n_blocks": self.n_blocks,
            "width_choices": list(self.width_choices),
            "exit_positions": list(self.exit_positions),
            "token_choices": list(self.token_choices),
            "n_token_positions": self.n_token_positions,
        } | ({"n_cascade": self.n_cascade} if self.n_cascade else {}) \
          | ({"head_choices": list(self.head_choices)} if self.head_choices else {}) \
          | ({"token_methods": list(self.token_methods)} if self.token_methods else {})  # absent when empty: old fingerprints hold

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        known = {"family", "n_blocks", "width_choices", "exit_positions", "token_choices", "n_token_positions",
                 "n_cascade", "head_choices", "token_methods"}
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
            head_choices=tuple(d.get("head_choices", ())),
            token_methods=tuple(d.get("token_methods", ())),
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


# The arch-string grammar of :meth:`SearchSpace.format` / :meth:`SearchSpace.parse`, one group per gene group.
ARCH_PATTERN = re.compile(r"^w(?P<w>\d+(?:-\d+)*)(?:_h(?P<h>\d+(?:-\d+)*))?(?:_x(?P<x>[01]+))?"
                          r"(?:_t(?P<t>\d+(?:-\d+)*))?(?:_m(?P<m>\d+))?(?:_c(?P<c>\d+))?$")


def arch_is_dynamic(text: str) -> bool:
    """Whether an arch string enables an exit or a cascade scout (read from the grammar alone, no space needed:
    the report's static/dynamic split)."""
    m = ARCH_PATTERN.match(str(text).strip())
    if m is None:
        raise ArchStringError(f"cannot parse arch string '{text}'; expected the form 'w3-3-3-3_x01_c1'.")
    return "1" in (m["x"] or "") or int(m["c"] or 0) > 0


def _sample_schedule(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """A uniform draw among the non-increasing sequences of ``n`` indices in ``[0, k)`` (stars and bars:
    ``n`` stars among ``n + k - 1`` slots; a star's value is the number of bars before it)."""
    if n == 0:
        return []
    stars = np.sort(rng.choice(n + k - 1, size=n, replace=False))
    values = stars - np.arange(n)  # non-decreasing, in [0, k - 1]
    return [int(v) for v in values[::-1]]
