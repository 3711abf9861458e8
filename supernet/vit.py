"""The ViT supernet: a small vision transformer with elastic MLP widths, elastic heads and token schedules.

Read top to bottom: :class:`ViTConfig` (the architecture, stored in every checkpoint), the cost
model (:func:`vit_layers`, :func:`exit_layers`, :func:`count_macs`, :func:`exit_macs`),
:class:`ElasticViTBlock` (one pre-norm block), :class:`ViTSupernet` (the whole net) and
:data:`PRESETS`. As in :mod:`supernet.cnn`, a forward pass takes the subnet config explicitly.

Elastic dimensions, per block: the MLP hidden width (the first ``k`` hidden channels) and the
attention heads (the first ``h`` heads of the qkv and output projections, ``head_dim`` fixed).
Both are sorted by importance within the trained levels (:meth:`ViTSupernet.sort_channels`), so
every trained subnet keeps its function. Elastic level ``j`` is width choice ``j`` and head choice
``j`` (see :mod:`supernet.space`).

Token reduction happens inside the blocks listed in ``token_blocks``, after the attention and
before the MLP, by the subnet's method (:mod:`supernet.tokens`): ``topk`` prunes by that block's
CLS attention and fuses the pruned tokens into one (EViT); ``tome`` merges by that block's keys
(ToMe) and every later block uses proportional attention with the tracked token sizes. A keep
ratio ``ρ`` on ``n`` non-CLS tokens leaves ``ceil(ρ·n)`` of them with either method
(:func:`supernet.tokens.kept_tokens`), so MACs depend on the schedule, not the method.

The last block computes only what the classifier reads: the CLS query, its attention row, its
projection and MLP (keys and values of every token). This is exact (every op after the attention
is per token) and saves about half the last block; that block cannot reduce tokens.

There is no batch norm in the blocks: LayerNorm normalises each token by itself, so it does not
depend on the width choice and needs no switching; :meth:`ViTSupernet.activate_width` is a no-op.
(The optional conv stem has plain BatchNorm, shared by every subnet: it is not elastic.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet.cost import CostTerms
from supernet.cost import count_macs as _count_macs
from supernet.cost import exit_macs as _exit_macs
from supernet.dynamic import register_normalisation, segment_sort
from supernet.errors import ConfigError, unknown
from supernet.space import SearchSpace, SubnetConfig
from supernet.tokens import cls_attention, kept_tokens, tome_merge, topk_prune
from supernet.vit_cost import vit_cost_terms, vit_term_choices


@dataclass(frozen=True, kw_only=True)
class ViTConfig:
    """Architecture of a ViT supernet.

    The input (``resolution`` × ``resolution``, ``in_channels``) goes through an optional conv stem
    (``stem_layers`` conv3x3-BN-GELU layers of ``stem_channels``, the first with ``stem_stride``;
    ``stem_channels = 0``: none), then a ``patch`` × ``patch`` projection to ``dim`` channels,
    a CLS token and a learned position embedding, then ``depth`` pre-norm blocks. Attention has
    up to ``max_heads`` heads of ``dim // max_heads`` channels; ``head_choices`` are the head counts
    a block may use, ``width_choices`` the MLP hidden fractions of ``mlp_ratio · dim`` (one each
    per elastic level). ``exit_blocks``: blocks after which an exit head (LayerNorm + linear on
    CLS) may be attached; ``token_blocks``: blocks that may reduce tokens, with keep ratios
    ``token_choices`` and methods ``token_methods``.
    """

    in_channels: int = 3
    num_classes: int = 10
    resolution: int = 32
    patch: int = 4
    stem_channels: int = 0
    stem_layers: int = 1
    stem_stride: int = 1
    dim: int = 128
    depth: int = 6
    max_heads: int = 4
    head_choices: tuple[int, ...] = (1, 2, 3, 4)
    mlp_ratio: float = 2.0
    width_choices: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    exit_blocks: tuple[int, ...] = ()
    token_blocks: tuple[int, ...] = ()
    token_choices: tuple[float, ...] = (0.5, 0.7, 1.0)
    token_methods: tuple[str, ...] = ("topk", "tome")
    dropout: float = 0.0
    family: str = field(default="vit", init=False)

    def __post_init__(self) -> None:
        for name in ("head_choices", "exit_blocks", "token_blocks"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(self, "width_choices", tuple(float(w) for w in self.width_choices))
        object.__setattr__(self, "token_choices", tuple(float(t) for t in self.token_choices))
        object.__setattr__(self, "token_methods", tuple(str(m) for m in self.token_methods))
        for name in ("in_channels", "num_classes", "resolution", "patch", "dim", "depth", "max_heads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be >= 1, but got {getattr(self, name)}.")
        if self.stem_channels < 0:
            raise ConfigError(f"`stem_channels` must be >= 0 (0: plain patch embedding), but got {self.stem_channels}.")
        if self.stem_channels and (self.stem_layers not in (1, 2) or self.stem_stride not in (1, 2)):
            raise ConfigError(f"a conv stem has 1 or 2 layers and stride 1 or 2, but got {self.stem_layers=} "
                              f"and {self.stem_stride=}.")
        stride = self.stem_stride if self.stem_channels else 1
        side = self.resolution // stride
        if self.resolution % stride or side % self.patch:
            where = f"the {side}×{side} map the stride-{stride} conv stem makes of " if stride > 1 else ""
            raise ConfigError(f"patch size {self.patch} does not divide {where}the input resolution {self.resolution}; "
                              "pick a patch size that divides it (or another --resolution).")
        if self.dim % self.max_heads:
            raise ConfigError(f"{self.max_heads} attention heads do not divide the embedding width dim={self.dim} "
                              f"(head_dim = dim / heads must be whole); pick a head count that divides {self.dim}.")
        h = self.head_choices
        if not h or list(h) != sorted(set(h)) or h[0] < 1 or h[-1] > self.max_heads:
            raise ConfigError(f"`head_choices` must be strictly ascending head counts in [1, {self.max_heads}] "
                              f"(max_heads={self.max_heads} sets head_dim = dim / max_heads), but got {h}.")
        if not self.mlp_ratio > 0:
            raise ConfigError(f"`mlp_ratio` must be > 0, but got {self.mlp_ratio}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"`dropout` must be in [0, 1), but got {self.dropout}.")
        eb = self.exit_blocks
        if list(eb) != sorted(set(eb)) or any(not (0 <= b < self.depth - 1) for b in eb):
            raise ConfigError(f"`exit_blocks` must be ascending block indices in [0, {self.depth - 2}] "
                              f"(the last block feeds the final classifier), but got {eb}.")
        tb = self.token_blocks
        if list(tb) != sorted(set(tb)) or any(not (0 <= b < self.depth - 1) for b in tb):
            raise ConfigError(f"`token_blocks` must be ascending block indices in [0, {self.depth - 2}] (the last block "
                              f"computes only the CLS token), but got {tb}.")
        if tb and not self.token_methods:
            raise ConfigError(f"`token_blocks` {tb} need at least one of the token methods ('topk', 'tome').")
        self.space()  # validates the choices (keep ratios in (0, 1], ToMe >= 0.5, one head count per width)

    @property
    def head_dim(self) -> int:
        return self.dim // self.max_heads

    @property
    def n_patches(self) -> int:
        """Patch tokens (CLS not counted)."""
        side = self.resolution // (self.stem_stride if self.stem_channels else 1) // self.patch
        return side * side

    def hidden_widths(self) -> tuple[int, ...]:
        """MLP hidden width of each width choice (ascending, nested; the same for every block)."""
        full = round(self.mlp_ratio * self.dim)
        return tuple(max(1, round(a * full)) for a in self.width_choices)

    def space(self) -> SearchSpace:
        tb = bool(self.token_blocks)
        return SearchSpace(n_blocks=self.depth, width_choices=self.width_choices, exit_positions=self.exit_blocks,
                           token_choices=self.token_choices if tb else (), n_token_positions=len(self.token_blocks),
                           family="vit", head_choices=self.head_choices,
                           token_methods=self.token_methods if tb else ())

    # ---- per-subnet shapes ---------------------------------------------------------------
    def block_plan(self, subnet: SubnetConfig) -> list[BlockPlan]:
        """Heads, hidden width, tokens in/out and the reduction of every block of ``subnet``."""
        space = self.space()
        space.validate(subnet)
        method = space.token_method(subnet)
        ratios = dict(zip(self.token_blocks, space.keep_ratios(subnet), strict=True))
        hidden = self.hidden_widths()
        plan, t = [], self.n_patches + 1
        for i in range(self.depth):
            n = t - 1
            out = kept_tokens(n, ratios[i], method) if i in ratios and method else n
            reduce = (method, out) if out < n else None
            last = i == self.depth - 1
            plan.append(BlockPlan(self.head_choices[subnet.heads[i]], hidden[subnet.widths[i]], t,
                                  1 if last else out + 1, reduce, last))
            t = out + 1
        return plan

    def tokens_per_block(self, subnet: SubnetConfig) -> list[tuple[int, int]]:
        """``(tokens in, tokens out)`` of every block, CLS included (and top-k's fused token); the last
        block outputs the CLS token alone."""
        return [(p.tokens_in, p.tokens_out) for p in self.block_plan(subnet)]

    def layers(self, subnet: SubnetConfig) -> list[dict[str, Any]]:
        return vit_layers(self, subnet)

    def exit_layers(self, e: int) -> list[dict[str, Any]]:
        return exit_layers(self, e)

    def static_spec(self, subnet: SubnetConfig) -> dict[str, Any]:
        """Constructor arguments of :class:`supernet.static_vit.StaticViT` for ``subnet`` (written into arch.json)."""
        plan = self.block_plan(subnet)
        return {"class": "supernet.static_vit.StaticViT", "in_channels": self.in_channels,
                "stem_channels": self.stem_channels, "stem_layers": self.stem_layers, "stem_stride": self.stem_stride,
                "patch": self.patch, "dim": self.dim, "head_dim": self.head_dim, "n_patches": self.n_patches,
                "blocks": [[p.heads, p.hidden, list(p.reduce) if p.reduce else None, p.cls_only] for p in plan],
                "num_classes": self.num_classes, "dropout": self.dropout, "exit_blocks": list(self.exit_blocks)}

    def subnet_summary(self, subnet: SubnetConfig) -> dict[str, Any]:
        """What a subnet is: heads, MLP hidden width and tokens in/out of every block, and its reduction."""
        plan = self.block_plan(subnet)
        space = self.space()
        return {"heads": [p.heads for p in plan], "hidden_channels": [p.hidden for p in plan],
                "tokens_per_block": [[p.tokens_in, p.tokens_out] for p in plan],
                "token_method": space.token_method(subnet) if any(p.reduce for p in plan) else None,
                "keep_ratios": list(space.keep_ratios(subnet))}

    def cost_terms(self) -> CostTerms:
        """Per block: attention (heads × tokens in), token reduction and MLP (width × tokens out) terms."""
        return vit_cost_terms(self)

    def term_choices(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        return vit_term_choices(self, subnets)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("head_choices", "width_choices", "exit_blocks", "token_blocks", "token_choices", "token_methods"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViTConfig:
        d = {k: v for k, v in d.items() if k != "family"}
        known = {f for f in cls.__dataclass_fields__ if f != "family"}
        if set(d) - known:
            raise ConfigError(f"unknown ViT config fields {sorted(set(d) - known)}; known: {sorted(known)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True, slots=True)
class BlockPlan:
    """One block of one subnet: active heads and hidden width, token counts (CLS included), the
    reduction ``(method, non-CLS tokens left)`` or None, and whether only the CLS token is computed
    after the keys and values (the last block)."""

    heads: int
    hidden: int
    tokens_in: int
    tokens_out: int
    reduce: tuple[str, int] | None
    cls_only: bool = False


# ---- cost model ------------------------------------------------------------------------------
def _row(name: str, op: str, rows: int, cin: int, cout: int, macs: int, params: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "op": op, "macs": int(macs), "rows": int(rows), "cin": int(cin), "cout": int(cout),
            "params": int(params), **extra}


def _linear(name: str, rows: int, cin: int, cout: int) -> dict[str, Any]:
    return _row(name, "linear", rows, cin, cout, rows * cin * cout, cin * cout + cout)


def _conv(name: str, cin: int, cout: int, k: int, stride: int, hw: int, pad: int) -> dict[str, Any]:
    out = (hw + 2 * pad - k) // stride + 1
    return _row(name, "conv", out * out, cin, cout, out * out * cout * cin * k * k, cin * cout * k * k + cout,
                kernel=k, stride=stride, groups=1, h_in=hw, h_out=out)


def vit_layers(c: ViTConfig, subnet: SubnetConfig) -> list[dict[str, Any]]:
    """Kernel list of a subnet: one dict per launched op, names prefixed by unit (``stem``, ``b{i}``;
    the tail ``pool``/``norm``/``classifier`` has no prefix).

    Common fields: ``name, op, macs, rows, cin, cout, params``; ``conv`` adds the CNN fields
    (``kernel, stride, groups, h_in, h_out``; BN folded), ``attention`` adds ``tokens, heads,
    head_dim, proportional`` (QKᵀ and AV: ``2·T²·h·d`` MACs; softmax included), ``reduce`` adds
    ``method, tokens_in, tokens_out``. ``rows`` is the token count a linear op runs on.
    """
    plan = c.block_plan(subnet)
    layers, hw, cin = [], c.resolution, c.in_channels
    for j in range(c.stem_channels and c.stem_layers):
        stride = c.stem_stride if j == 0 else 1
        layers.append(_conv(f"stem.conv{j}", cin, c.stem_channels, 3, stride, hw, 1))
        hw, cin = layers[-1]["h_out"], c.stem_channels
        layers.append(_row(f"stem.act{j}", "act", hw * hw, cin, cin, 0))
    layers.append(_conv("stem.patch", cin, c.dim, c.patch, c.patch, hw, 0))
    layers.append(_row("stem.pos", "add", c.n_patches + 1, c.dim, c.dim, 0, (c.n_patches + 2) * c.dim))
    d, hd, sized = c.dim, c.head_dim, False
    for i, p in enumerate(plan):
        t, t2, a = p.tokens_in, p.tokens_out, p.heads * hd
        nq = 1 if p.cls_only else t  # queries: the last block asks only for the CLS token
        qkv = [_linear(f"b{i}.q", 1, d, a), _linear(f"b{i}.kv", t, d, 2 * a)] if p.cls_only \
            else [_linear(f"b{i}.qkv", t, d, 3 * a)]
        layers += [_row(f"b{i}.norm1", "norm", t, d, d, 0, 2 * d), *qkv,
                   _row(f"b{i}.attn", "attention", nq, a, a, 2 * nq * t * a, tokens=t, queries=nq, heads=p.heads,
                        head_dim=hd, proportional=sized),
                   _linear(f"b{i}.proj", nq, a, d), _row(f"b{i}.add1", "add", nq, d, d, 0)]
        if p.reduce:
            method, left = p.reduce
            n = t - 1
            if method == "tome":  # cosine similarities of |A| × |B| key pairs, then r size-weighted adds
                macs = ((n + 1) // 2) * (n // 2) * hd + (n - left) * d
            else:  # the fused token: a weighted sum of the pruned ones (scores come from the attention)
                macs = (n - left + 1) * d
            layers.append(_row(f"b{i}.reduce", "reduce", t, d, d, macs, method=method, tokens_in=t, tokens_out=t2))
            sized = sized or method == "tome"
        layers += [_row(f"b{i}.norm2", "norm", t2, d, d, 0, 2 * d), _linear(f"b{i}.fc1", t2, d, p.hidden),
                   _row(f"b{i}.act", "act", t2, p.hidden, p.hidden, 0), _linear(f"b{i}.fc2", t2, p.hidden, d),
                   _row(f"b{i}.add2", "add", t2, d, d, 0)]
    layers += [_row("pool", "pool", 1, d, d, 0), _row("norm", "norm", 1, d, d, 0, 2 * d),
               _linear("classifier", 1, d, c.num_classes)]
    return layers


def exit_layers(c: ViTConfig, e: int) -> list[dict[str, Any]]:
    """Kernel list of exit head ``e`` (after block ``c.exit_blocks[e]``): CLS pick, LayerNorm, linear, decision.

    The ``decide`` layer is the exit test (softmax, max, compare) and the branch it feeds.
    """
    d = c.dim
    return [_row(f"x{e}.pool", "pool", 1, d, d, 0), _row(f"x{e}.norm", "norm", 1, d, d, 0, 2 * d),
            _linear(f"x{e}.classifier", 1, d, c.num_classes), _row(f"x{e}.decide", "decide", 1, c.num_classes, 1, 0)]


def count_macs(c: ViTConfig, subnet: SubnetConfig) -> int:
    """Multiply-accumulates per image of the subnet with its exits off (see :func:`supernet.cost.count_macs`)."""
    return _count_macs(c, subnet)


def exit_macs(c: ViTConfig, subnet: SubnetConfig) -> list[int]:
    """C_i in MACs of leaving at each exit, then at the final classifier (see :func:`supernet.cost.exit_macs`)."""
    return _exit_macs(c, subnet)


# ---- modules -----------------------------------------------------------------------------------
class ElasticViTBlock(nn.Module):
    """Pre-norm block: LN → attention (first ``h`` heads) → [token reduction] → LN → MLP (first ``k`` channels)."""

    def __init__(self, dim: int, max_heads: int, heads: tuple[int, ...], hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.dim, self.max_heads, self.head_dim = dim, max_heads, dim // max_heads
        self.heads, self.hidden = heads, hidden
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)  # rows: [q heads | k heads | v heads], head_dim rows a head
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden[-1])
        self.fc2 = nn.Linear(hidden[-1], dim)

    def qkv_weights(self, h: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of the qkv projection restricted to the first ``h`` heads."""
        if h == self.max_heads:
            return self.qkv.weight, self.qkv.bias
        a = h * self.head_dim
        w = self.qkv.weight.view(3, self.dim, self.dim)[:, :a].reshape(3 * a, self.dim)
        return w, self.qkv.bias.view(3, self.dim)[:, :a].reshape(3 * a)

    def forward(self, x: torch.Tensor, size: torch.Tensor | None, plan: BlockPlan) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, t, _ = x.shape
        h, k, hd = plan.heads, plan.hidden, self.head_dim
        a = h * hd
        w, bias = self.qkv_weights(h)
        y = self.norm1(x)
        if plan.cls_only:  # only the CLS token goes on: its query, all keys and values
            q = F.linear(y[:, :1], w[:a], bias[:a]).view(b, 1, h, hd).transpose(1, 2)
            kk, v = F.linear(y, w[a:], bias[a:]).view(b, t, 2, h, hd).permute(2, 0, 3, 1, 4)
            x = x[:, :1]
        else:
            q, kk, v = F.linear(y, w, bias).view(b, t, 3, h, hd).permute(2, 0, 3, 1, 4)
        mask = None if size is None else torch.log(size)[:, None, None, :, 0]  # proportional attention
        o = F.scaled_dot_product_attention(q, kk, v, attn_mask=mask)
        x = x + F.linear(o.transpose(1, 2).reshape(b, -1, a), self.proj.weight[:, :a], self.proj.bias)
        if plan.reduce and plan.reduce[0] == "topk":  # EViT: no sizes in later attention
            x, _ = topk_prune(x, cls_attention(q[:, :, :1], kk, size), plan.reduce[1] - 1)
        elif plan.reduce:
            x, size = tome_merge(x, kk, size, t - 1 - plan.reduce[1])
        y = F.gelu(F.linear(self.norm2(x), self.fc1.weight[:k], self.fc1.bias[:k]))
        return x + F.linear(y, self.fc2.weight[:, :k], self.fc2.bias), size

    @torch.no_grad()
    def sort_channels(self, trained: tuple[int, ...], importance: str = "l1") -> tuple[torch.Tensor, torch.Tensor]:
        """Reorder MLP hidden channels and heads by importance within segments of the ``trained`` levels.

        Importance (``l1``): the L1 norm of the weights that *read* a channel or head (``fc2``'s
        columns; ``proj``'s columns of a head), as OFA does for convolutions. Every trained subnet
        computes the same function before and after. Returns ``(channel perm, head perm)``.
        """
        if importance not in VIT_IMPORTANCE:
            raise unknown("ViT importance measure", importance, list(VIT_IMPORTANCE))
        mlp_scores, head_scores = VIT_IMPORTANCE[importance](self)
        perm = segment_sort(mlp_scores, tuple(self.hidden[i] for i in trained))
        self.fc1.weight.copy_(self.fc1.weight[perm])
        self.fc1.bias.copy_(self.fc1.bias[perm])
        self.fc2.weight.copy_(self.fc2.weight[:, perm])
        hperm = segment_sort(head_scores, tuple(self.heads[i] for i in trained))
        ch = (hperm[:, None] * self.head_dim + torch.arange(self.head_dim)).reshape(-1)  # head order → channels
        w = self.qkv.weight.view(3, self.dim, self.dim)
        w.copy_(w[:, ch])
        bq = self.qkv.bias.view(3, self.dim)
        bq.copy_(bq[:, ch])
        self.proj.weight.copy_(self.proj.weight[:, ch])
        return perm, hperm


def _l1_importance(block: ElasticViTBlock) -> tuple[torch.Tensor, torch.Tensor]:
    mlp = block.fc2.weight.detach().abs().sum(dim=0)
    heads = block.proj.weight.detach().abs().view(block.dim, block.max_heads, block.head_dim).sum(dim=(0, 2))
    return mlp, heads


VIT_IMPORTANCE = {"l1": _l1_importance}


class PatchEmbedding(nn.Module):
    """Optional conv stem (conv3x3-BN-GELU ×1–2) → patch projection → CLS token + learned positions."""

    def __init__(self, c: ViTConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = c.in_channels
        for j in range(c.stem_channels and c.stem_layers):
            layers += [nn.Conv2d(cin, c.stem_channels, 3, c.stem_stride if j == 0 else 1, 1, bias=False),
                       nn.BatchNorm2d(c.stem_channels), nn.GELU()]
            cin = c.stem_channels
        self.conv = nn.Sequential(*layers)
        self.patch = nn.Conv2d(cin, c.dim, c.patch, c.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, c.n_patches + 1, c.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.patch(self.conv(x)).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1) + self.pos_embed


class ViTExitHead(nn.Module):
    """An early exit on the CLS token: LayerNorm → linear. Width-independent (no switchable norm)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(h[:, 0]))


class ViTSupernet(nn.Module):
    """Patch embedding → elastic pre-norm blocks → LN + linear on CLS. Inputs are images in [0, 1], NCHW."""

    def __init__(self, config: ViTConfig, mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None) -> None:
        super().__init__()
        self.config = config
        self.space = config.space()
        c = config
        register_normalisation(self, c.in_channels, mean, std)
        self.embed = PatchEmbedding(c)
        self.blocks = nn.ModuleList(ElasticViTBlock(c.dim, c.max_heads, c.head_choices, c.hidden_widths())
                                    for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(c.dim, c.num_classes)
        self.exits = nn.ModuleList(ViTExitHead(c.dim, c.num_classes) for _ in c.exit_blocks)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.embed.pos_embed, std=0.02)
        nn.init.normal_(self.embed.cls_token, std=1e-6)

    def forward(self, x: torch.Tensor, subnet: SubnetConfig | None = None) -> torch.Tensor:
        """Logits of the final classifier (the subnet with its exits off)."""
        return self.forward_exits(x, subnet, heads=False)[-1]

    def forward_exits(self, x: torch.Tensor, subnet: SubnetConfig | None = None, *, heads: bool = True,
                      features: bool = False) -> list[torch.Tensor]:
        """Logits of every exit head (in order, whether or not the subnet enables it), then the final ones.

        With ``features=True`` the exits' *input tokens* (B, T, dim) are returned instead of their
        logits (for training heads on a frozen backbone); ``heads=False`` skips the heads.
        """
        plan = self.config.block_plan(subnet or self.space.largest())
        h, size = self.embed((x - self.mean) / self.std), None
        out: list[torch.Tensor] = []
        positions = dict(zip(self.config.exit_blocks, range(len(self.exits)), strict=True))
        for i, (block, p) in enumerate(zip(self.blocks, plan, strict=True)):
            h, size = block(h, size, p)
            if i in positions and (heads or features):
                out.append(h if features else self.exits[positions[i]](h))
        return [*out, self.classifier(self.dropout(self.norm(h[:, 0])))]

    def exit_logits(self, feats: list[torch.Tensor], subnet: SubnetConfig) -> list[torch.Tensor]:
        """Every exit head applied to its input tokens (from ``forward_exits(features=True)``)."""
        return [head(f) for head, f in zip(self.exits, feats, strict=True)]

    # ---- progressive shrinking hooks ---------------------------------------------------
    def sort_channels(self, trained: tuple[int, ...], importance: str = "l1") -> None:
        """Sort every block's MLP channels and heads within the ``trained`` levels (nested sets kept)."""
        for b in self.blocks:
            b.sort_channels(trained, importance)

    def activate_width(self, idx: int, src_idx: int) -> None:
        """No-op: LayerNorm normalises each token alone, so it is the same for every width and head count."""

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the exit heads'."""
        head = {id(p) for p in self.exits.parameters()}
        return [p for p in self.parameters() if id(p) not in head]

    # ---- cost model inputs ---------------------------------------------------------------
    def layers(self, subnet: SubnetConfig) -> list[dict[str, Any]]:
        """The subnet as a list of kernels with their shapes (for MACs and latency predictors)."""
        return vit_layers(self.config, subnet)

    def tokens_per_block(self, subnet: SubnetConfig) -> list[tuple[int, int]]:
        return self.config.tokens_per_block(subnet)


PRESETS: dict[str, ViTConfig] = {
    # Tests and smoke runs: 8×8 single-channel digits, patch 2 → 16 tokens + CLS, two blocks; block 0 may reduce
    # tokens (the last block computes only CLS) and is followed by the exit, so ToMe sizes cross an exit cut.
    "tiny": ViTConfig(in_channels=1, resolution=8, patch=2, dim=32, depth=2, max_heads=2, head_choices=(1, 2),
                      mlp_ratio=2.0, width_choices=(0.5, 1.0), exit_blocks=(0,), token_blocks=(0,),
                      token_choices=(0.5, 0.75, 1.0), token_methods=("topk", "tome")),
    # The shipped CIFAR-10 ViT: a stride-2 conv stem (3→32 channels, 16×16), patch 2 → 64 tokens + CLS, dim 96,
    # 6 blocks of up to 4 heads × 24; 30.3 M MACs largest, 8.3 M smallest (full tokens), sized for CPU training.
    "cifar-vit": ViTConfig(in_channels=3, resolution=32, patch=2, stem_channels=32, stem_layers=1, stem_stride=2,
                           dim=96, depth=6, max_heads=4, head_choices=(1, 2, 3, 4), mlp_ratio=2.0,
                           width_choices=(0.25, 0.5, 0.75, 1.0), exit_blocks=(1, 3), token_blocks=(1, 2, 3, 4),
                           token_choices=(0.5, 0.7, 1.0), token_methods=("topk", "tome"), dropout=0.1),
}
# The same ViT with a plain patch-4 embedding instead of the conv stem (the same 64 tokens + CLS): the ablation of
# benchmarks/supernet_vs_scratch.py --stem-ablation, which measures whether the stem pays on CIFAR-10.
PRESETS["cifar-vit-patch4"] = replace(PRESETS["cifar-vit"], patch=4, stem_channels=0)
# The shipped ViT at patch 1: 256 tokens + CLS of the conv stem's 16×16 map, 164 M MACs largest. It measures what
# token reduction gains when there are many redundant tokens (benchmarks/token_reduction.py); `make
# train-vit-256` fine-tunes it from the shipped weights (patch kernel and positions resized, supernet.transfer).
PRESETS["cifar-vit-256"] = replace(PRESETS["cifar-vit"], patch=1)

