"""The ViT's subnet cost as terms (see :mod:`supernet.cost`): three per block, each with a few variants.

A block's kernels depend on its heads and the tokens entering it (the attention part: ``norm1``, the
q/k/v projections, attention, ``proj``, ``add1``), on the token reduction it runs (``reduce``: method,
tokens in and out) and on its MLP width and the tokens leaving the reduction (``norm2``, ``fc1``,
GELU, ``fc2``, ``add2``). The tokens entering a block follow from the schedule and the method alone,
so every reachable combination comes from enumerating the (few) valid schedules: keep-ratio index
vectors that never increase with depth, times the methods.

Each term's variants are the distinct kernel tables it takes; :func:`vit_term_choices` maps a subnet
to them with dictionary lookups (no kernel table is built per candidate).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from supernet.cost import CostTerms, unit_of
from supernet.space import SubnetConfig

_ATTN = ("norm1", "q", "kv", "qkv", "attn", "proj", "add1")
_MLP = ("norm2", "fc1", "act", "fc2", "add2")


def _part(name: str) -> str:
    """``b3.fc1`` → ``mlp``; ``b3.qkv`` → ``attn``; ``b3.reduce`` → ``reduce``."""
    leaf = name.split(".", 1)[1]
    if leaf in _ATTN:
        return "attn"
    if leaf in _MLP:
        return "mlp"
    if leaf == "reduce":
        return "reduce"
    raise ValueError(f"ViT layer '{name}' belongs to no cost term (expected one of {_ATTN + _MLP + ('reduce',)}).")


def schedules(config: Any) -> list[tuple[tuple[int, ...], int]]:
    """Every distinct (token indices, method) a subnet can take; one method when nothing is reduced."""
    space = config.space()
    n_pos, n_choice = space.n_token_positions, len(space.token_choices)
    methods = range(len(space.token_methods)) if space.token_methods else range(1)
    full = n_choice - 1
    out = []
    for tokens in itertools.product(range(n_choice), repeat=n_pos):
        if any(b > a for a, b in zip(tokens, tokens[1:], strict=False)):
            continue  # keep ratios never increase with depth
        for m in methods:
            if all(t == full for t in tokens) and m > 0:
                continue  # no reduction: the method changes nothing
            out.append((tokens, m))
    return out


@dataclasses.dataclass(frozen=True)
class _Index:
    terms: CostTerms
    # (tokens, method) → per block (tokens in, proportional attention, reduce key, tokens out)
    plans: dict[tuple[tuple[int, ...], int], tuple[tuple[int, bool, tuple, int], ...]]
    attn: tuple[dict[tuple[int, int, bool], int], ...]  # (heads level, tokens in, proportional) → variant
    reduce: tuple[dict[tuple, int], ...]  # (method or None, tokens in, tokens out) → variant
    mlp: tuple[dict[tuple[int, int], int], ...]  # (width level, tokens out) → variant


@functools.lru_cache(maxsize=16)
def _index(config: Any) -> _Index:
    space = config.space()
    depth, n_levels = config.depth, len(space.width_choices)
    maps: list[list[dict]] = [[{}, {}, {}] for _ in range(depth)]  # attn, reduce, mlp: key → variant
    tables: list[list[list]] = [[[], [], []] for _ in range(depth)]
    plans: dict = {}
    stem: tuple = ()
    tail: tuple = ()

    def add(i: int, part: int, key: tuple, layers: list) -> None:
        if key not in maps[i][part]:
            maps[i][part][key] = len(tables[i][part])
            tables[i][part].append(tuple(layers))

    for tokens, method in schedules(config):
        for j in range(n_levels):
            sub = dataclasses.replace(space.uniform(j), tokens=tokens, method=method)
            layers = config.layers(sub)
            if not stem:
                stem = tuple(r for r in layers if unit_of(r["name"]) == "stem")
                tail = tuple(r for r in layers if unit_of(r["name"]) == "tail")
            groups: dict[tuple[int, str], list] = {}
            for layer in layers:
                unit = unit_of(layer["name"])
                if unit.startswith("b"):
                    groups.setdefault((int(unit[1:]), _part(layer["name"])), []).append(layer)
            per_block = []
            for i, p in enumerate(config.block_plan(sub)):
                attn = groups[(i, "attn")]
                prop = any(bool(r.get("proportional")) for r in attn)
                kr = (p.reduce[0] if p.reduce else None, p.tokens_in, p.tokens_out)
                add(i, 0, (j, p.tokens_in, prop), attn)
                add(i, 1, kr, groups.get((i, "reduce"), []))
                add(i, 2, (j, p.tokens_out), groups[(i, "mlp")])
                per_block.append((p.tokens_in, prop, kr, p.tokens_out))
            plans[(tokens, method)] = tuple(per_block)
    names = tuple(f"b{i}.{part}" for i in range(depth) for part in ("attn", "reduce", "mlp"))
    blocks = tuple(i for i in range(depth) for _ in range(3))
    variants = tuple(tuple(tables[i][part]) for i in range(depth) for part in range(3))
    return _Index(CostTerms(names, blocks, variants, stem, tail), plans,
                  tuple(m[0] for m in maps), tuple(m[1] for m in maps), tuple(m[2] for m in maps))


def vit_cost_terms(config: Any) -> CostTerms:
    """Attention, reduction and MLP term of every block, with every variant the search space reaches."""
    return _index(config).terms


@dataclasses.dataclass(frozen=True)
class _Gather:
    """:class:`_Index` as arrays: a plan number per (tokens, method) and, per plan and block, the variant of
    each elastic level, so the choices of many subnets are three gathers."""

    plan_ids: dict[tuple[tuple[int, ...], int], int]
    attn: np.ndarray  # (plans, depth, levels): variant of the attention term at that heads level
    reduce: np.ndarray  # (plans, depth)
    mlp: np.ndarray  # (plans, depth, levels): variant of the MLP term at that width level


@functools.lru_cache(maxsize=16)
def _gather(config: Any) -> _Gather:
    idx = _index(config)
    depth, levels = config.depth, len(config.space().width_choices)
    keys = list(idx.plans)
    attn = np.full((len(keys), depth, levels), -1, dtype=np.int64)
    mlp = np.full((len(keys), depth, levels), -1, dtype=np.int64)
    reduce = np.empty((len(keys), depth), dtype=np.int64)
    for k, key in enumerate(keys):
        for i, (t_in, prop, kr, t_out) in enumerate(idx.plans[key]):
            reduce[k, i] = idx.reduce[i][kr]
            for j in range(levels):
                attn[k, i, j] = idx.attn[i].get((j, t_in, prop), -1)
                mlp[k, i, j] = idx.mlp[i].get((j, t_out), -1)
    return _Gather({key: k for k, key in enumerate(keys)}, attn, reduce, mlp)


def vit_term_choices(config: Any, subnets: Sequence[SubnetConfig]) -> np.ndarray:
    """``(n, 3 * depth)`` variant of each term for each subnet (attention, reduction, MLP of every block)."""
    g = _gather(config)
    depth = config.depth
    out = np.empty((len(subnets), 3 * depth), dtype=np.int64)
    if not len(subnets):
        return out
    full = len(config.token_choices) - 1 if config.token_blocks else 0
    plan = np.asarray([g.plan_ids[(s.tokens, s.method if any(t != full for t in s.tokens) else 0)] for s in subnets],
                      dtype=np.int64)
    heads = np.asarray([s.heads for s in subnets], dtype=np.int64).reshape(len(subnets), depth)
    widths = np.asarray([s.widths for s in subnets], dtype=np.int64).reshape(len(subnets), depth)
    blocks = np.arange(depth)[None, :]
    out[:, 0::3] = g.attn[plan[:, None], blocks, heads]
    out[:, 1::3] = g.reduce[plan]
    out[:, 2::3] = g.mlp[plan[:, None], blocks, widths]
    return out
