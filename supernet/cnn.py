"""The CNN supernet: a MobileNetV2-style net whose every block has an elastic hidden width.

Read top to bottom: :class:`CNNConfig` (the architecture, stored in every checkpoint),
:class:`ElasticInvertedResidual` (one block), :class:`CNNSupernet` (the whole net) and
:data:`PRESETS`. A forward pass takes the subnet config explicitly, so no hidden
"active subnet" state exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet.cost import CostTerms, unit_of
from supernet.cost import count_macs as _count_macs
from supernet.cost import exit_macs as _exit_macs
from supernet.dynamic import (
    SwitchableBatchNorm1d,
    SwitchableBatchNorm2d,
    get_importance,
    register_normalisation,
    segment_sort,
)
from supernet.errors import ConfigError
from supernet.space import SearchSpace, SubnetConfig


@dataclass(frozen=True, kw_only=True)
class CNNConfig:
    """Architecture of a CNN supernet. ``blocks`` holds ``(out_channels, stride, expand)``."""

    in_channels: int = 3
    num_classes: int = 10
    resolution: int = 32
    stem_channels: int = 16
    blocks: tuple[tuple[int, int, int], ...] = ((24, 2, 4), (24, 1, 4))
    head_channels: int = 128
    width_choices: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    dropout: float = 0.0
    # Early exits: block indices after which an exit head may be attached (ascending, not the last
    # block: the final classifier is always there). A head is avg-pool to ``exit_pool`` × ``exit_pool``,
    # a linear layer to ``exit_hidden`` units with switchable BN and ReLU6, then the classifier.
    exit_blocks: tuple[int, ...] = ()
    exit_hidden: int = 128
    exit_pool: int = 4
    family: str = field(default="cnn", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(tuple(int(v) for v in b) for b in self.blocks))
        object.__setattr__(self, "width_choices", tuple(float(w) for w in self.width_choices))
        for name in ("in_channels", "num_classes", "resolution", "stem_channels", "head_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be >= 1, but got {getattr(self, name)}.")
        if not self.blocks:
            raise ConfigError("`blocks` must hold at least one (out, stride, expand) triple.")
        for i, (out, stride, expand) in enumerate(self.blocks):
            if out < 1 or stride not in (1, 2) or expand < 1:
                raise ConfigError(f"`blocks[{i}]` = {(out, stride, expand)} needs out >= 1, stride in (1, 2), expand >= 1.")
        object.__setattr__(self, "exit_blocks", tuple(int(b) for b in self.exit_blocks))
        eb = self.exit_blocks
        if list(eb) != sorted(set(eb)) or any(not (0 <= b < len(self.blocks) - 1) for b in eb):
            raise ConfigError(f"`exit_blocks` must be ascending block indices in [0, {len(self.blocks) - 2}] "
                              f"(the last block feeds the final classifier), but got {eb}.")
        if self.exit_hidden < 1 or self.exit_pool < 1:
            raise ConfigError(f"`exit_hidden` and `exit_pool` must be >= 1, but got {self.exit_hidden}, {self.exit_pool}.")
        self.space()  # validates the choices

    def space(self) -> SearchSpace:
        return SearchSpace(n_blocks=len(self.blocks), width_choices=self.width_choices,
                           exit_positions=self.exit_blocks, family="cnn")

    def resolution_after(self, block: int) -> int:
        """Feature-map side length after ``block``."""
        hw = self.resolution
        for cout_stride in self.blocks[: block + 1]:
            hw = (hw + 2 - 3) // cout_stride[1] + 1
        return hw

    def exit_pool_size(self, block: int) -> int:
        """Side of the pooled map an exit head after ``block`` reads (divides the map exactly)."""
        hw = self.resolution_after(block)
        p = min(self.exit_pool, hw)
        while hw % p:
            p -= 1
        return p

    def stage_ends(self) -> tuple[int, ...]:
        """The last block of every resolution stage except the final one: the natural exit positions."""
        n = len(self.blocks)
        return tuple(i for i in range(n - 1) if self.blocks[i + 1][1] == 2)

    def hidden_widths(self, block: int) -> tuple[int, ...]:
        """Hidden channel count of ``block`` for each width choice (ascending, nested)."""
        out_prev = self.stem_channels if block == 0 else self.blocks[block - 1][0]
        full = out_prev * self.blocks[block][2]
        return tuple(max(1, round(a * full)) for a in self.width_choices)

    # ---- cost-model interface (supernet.cost.CostedConfig) ---------------------------------
    def layers(self, subnet: SubnetConfig) -> list[dict[str, Any]]:
        return cnn_layers(self, subnet)

    def exit_layers(self, e: int) -> list[dict[str, Any]]:
        return exit_layers(self, e)

    def cost_terms(self) -> CostTerms:
        """One term per block; its variant is the block's width choice (a block's kernels depend on nothing else)."""
        space = self.space()
        per_width = [cnn_layers(self, space.uniform(j)) for j in range(len(self.width_choices))]
        variants = tuple(tuple(tuple(layer for layer in layers if unit_of(layer["name"]) == f"b{i}")
                               for layers in per_width) for i in range(len(self.blocks)))
        first = per_width[0]
        return CostTerms(names=tuple(f"b{i}" for i in range(len(self.blocks))), blocks=tuple(range(len(self.blocks))),
                         variants=variants, stem=tuple(r for r in first if unit_of(r["name"]) == "stem"),
                         tail=tuple(r for r in first if unit_of(r["name"]) == "tail"))

    def term_choices(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        return np.asarray([s.widths for s in subnets], dtype=np.int64).reshape(len(subnets), len(self.blocks))

    def static_spec(self, subnet: SubnetConfig) -> dict[str, Any]:
        """Constructor arguments of :class:`supernet.static.StaticCNN` for ``subnet`` (written into arch.json)."""
        blocks = [[self.hidden_widths(i)[idx], cout, stride]
                  for i, ((cout, stride, _e), idx) in enumerate(zip(self.blocks, subnet.widths, strict=True))]
        return {"class": "supernet.static.StaticCNN", "in_channels": self.in_channels, "stem": self.stem_channels,
                "blocks": blocks, "head": self.head_channels, "num_classes": self.num_classes,
                "dropout": self.dropout,
                "exits": [[b, self.resolution_after(b) // self.exit_pool_size(b), self.exit_pool_size(b),
                           self.exit_hidden] for b in self.exit_blocks]}

    def subnet_summary(self, subnet: SubnetConfig) -> dict[str, Any]:
        """What a subnet is, in the units a reader wants (hidden channels per block)."""
        return {"hidden_channels": [self.hidden_widths(i)[idx] for i, idx in enumerate(subnet.widths)]}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["blocks"] = [list(b) for b in self.blocks]
        d["width_choices"] = list(self.width_choices)
        d["exit_blocks"] = list(self.exit_blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CNNConfig:
        d = {k: v for k, v in d.items() if k != "family"}
        known = {f for f in cls.__dataclass_fields__ if f != "family"}
        if set(d) - known:
            raise ConfigError(f"unknown CNN config fields {sorted(set(d) - known)}; known: {sorted(known)}.")
        return cls(**{**d, "blocks": tuple(tuple(b) for b in d.get("blocks", ())) or CNNConfig().blocks,
                      "exit_blocks": tuple(d.get("exit_blocks", ()))})


class ElasticInvertedResidual(nn.Module):
    """expand 1×1 → depthwise 3×3 → project 1×1; the hidden width is the elastic dimension."""

    def __init__(self, cin: int, cout: int, stride: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.cin, self.cout, self.stride, self.widths = cin, cout, stride, widths
        k = widths[-1]
        self.expand = nn.Conv2d(cin, k, 1, bias=False)
        self.bn1 = SwitchableBatchNorm2d(widths)
        self.dw = nn.Conv2d(k, k, 3, stride, 1, groups=k, bias=False)
        self.bn2 = SwitchableBatchNorm2d(widths)
        self.project = nn.Conv2d(k, cout, 1, bias=False)
        # The output width is fixed but its statistics depend on the hidden width: switch too.
        self.bn3 = SwitchableBatchNorm2d((cout,) * len(widths))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor, idx: int) -> torch.Tensor:
        k = self.widths[idx]
        h = F.relu6(self.bn1(F.conv2d(x, self.expand.weight[:k]), idx))
        h = F.relu6(self.bn2(F.conv2d(h, self.dw.weight[:k], None, self.stride, 1, 1, k), idx))
        h = self.bn3(F.conv2d(h, self.project.weight[:, :k]), idx)
        return x + h if self.residual else h

    @torch.no_grad()
    def sort_channels(self, trained: tuple[int, ...], importance: str = "l1") -> torch.Tensor:
        """Reorder hidden channels by importance within segments of the ``trained`` widths.

        ``trained`` are the width indices already trained; their channel sets and BN
        statistics are permuted consistently, so every trained subnet computes the same
        function before and after. Returns the permutation applied.
        """
        perm = segment_sort(get_importance(importance)(self), tuple(self.widths[i] for i in trained))
        self.expand.weight.copy_(self.expand.weight[perm])
        self.dw.weight.copy_(self.dw.weight[perm])
        self.project.weight.copy_(self.project.weight[:, perm])
        for i in trained:
            sub = perm[: self.widths[i]]
            self.bn1.permute(i, sub)
            self.bn2.permute(i, sub)
        return perm

    @torch.no_grad()
    def activate(self, idx: int, src_idx: int) -> None:
        """Start training width ``idx``: initialise its BNs from the wider choice ``src_idx``."""
        for bn in (self.bn1, self.bn2, self.bn3):
            bn.init_from(idx, src_idx)


class ExitHead(nn.Module):
    """An early exit: average-pool to ``pool`` × ``pool`` → linear → switchable BN → ReLU6 → classifier.

    It reads the fixed output channels of the block before it, so it serves every width of that
    block; its BN is switchable by that block's width choice (the statistics of the block's output
    depend on its hidden width, as for the block's own last BN).
    """

    def __init__(self, cin: int, hw: int, pool: int, hidden: int, num_classes: int, n_widths: int) -> None:
        super().__init__()
        self.cin, self.hw, self.pool = cin, hw, pool
        self.fc1 = nn.Linear(cin * pool * pool, hidden, bias=False)
        self.bn = SwitchableBatchNorm1d((hidden,) * n_widths)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, h: torch.Tensor, idx: int) -> torch.Tensor:
        z = F.avg_pool2d(h, self.hw // self.pool) if self.pool < self.hw else h
        return self.classifier(F.relu6(self.bn(self.fc1(torch.flatten(z, 1)), idx)))

    @torch.no_grad()
    def activate(self, idx: int, src_idx: int) -> None:
        self.bn.init_from(idx, src_idx)


class CNNSupernet(nn.Module):
    """Stem → elastic inverted-residual blocks → head. Inputs are images in [0, 1], NCHW."""

    def __init__(self, config: CNNConfig, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None):
        super().__init__()
        self.config = config
        self.space = config.space()
        c = config
        register_normalisation(self, c.in_channels, mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(c.in_channels, c.stem_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(c.stem_channels), nn.ReLU6()
        )
        blocks, cin = [], c.stem_channels
        for i, (cout, stride, _expand) in enumerate(c.blocks):
            blocks.append(ElasticInvertedResidual(cin, cout, stride, c.hidden_widths(i)))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, c.head_channels, 1, bias=False), nn.BatchNorm2d(c.head_channels), nn.ReLU6())
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(c.head_channels, c.num_classes)
        self.exits = nn.ModuleList(
            ExitHead(c.blocks[b][0], c.resolution_after(b), c.exit_pool_size(b), c.exit_hidden, c.num_classes,
                     len(c.width_choices)) for b in c.exit_blocks)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for b in self.blocks:  # zero-init the last BN of residual blocks (each starts as identity)
            if b.residual:
                for bn in b.bn3.bns:
                    nn.init.zeros_(bn.weight)

    def forward(self, x: torch.Tensor, subnet: SubnetConfig | None = None) -> torch.Tensor:
        """Logits of the final classifier (the subnet with its exits off)."""
        return self.forward_exits(x, subnet, heads=False)[-1]

    def forward_exits(self, x: torch.Tensor, subnet: SubnetConfig | None = None, *, heads: bool = True,
                      features: bool = False) -> list[torch.Tensor]:
        """Logits of every exit head (in order, whether or not the subnet enables it), then the final ones.

        With ``features=True`` the exits' *input feature maps* are returned instead of their logits
        (for training heads on a frozen backbone); ``heads=False`` skips the heads.
        """
        widths = (subnet or self.space.largest()).widths
        h = self.stem((x - self.mean) / self.std)
        out: list[torch.Tensor] = []
        positions = dict(zip(self.config.exit_blocks, range(len(self.exits)), strict=True))
        for i, (block, idx) in enumerate(zip(self.blocks, widths, strict=True)):
            h = block(h, idx)
            if i in positions and (heads or features):
                out.append(h if features else self.exits[positions[i]](h, idx))
        h = self.head(h)
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        return [*out, self.classifier(self.dropout(h))]

    def exit_logits(self, feats: list[torch.Tensor], subnet: SubnetConfig) -> list[torch.Tensor]:
        """Every exit head applied to its input feature map (from ``forward_exits(features=True)``)."""
        return [head(f, subnet.widths[b]) for head, f, b in zip(self.exits, feats, self.config.exit_blocks, strict=True)]

    # ---- progressive shrinking hooks ---------------------------------------------------
    def sort_channels(self, trained: tuple[int, ...], importance: str = "l1") -> None:
        for b in self.blocks:
            b.sort_channels(trained, importance)

    def activate_width(self, idx: int, src_idx: int) -> None:
        for b in self.blocks:
            b.activate(idx, src_idx)
        for e in self.exits:
            e.activate(idx, src_idx)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the exit heads'."""
        head = {id(p) for p in self.exits.parameters()}
        return [p for p in self.parameters() if id(p) not in head]

    # ---- cost model inputs ---------------------------------------------------------------
    def layers(self, subnet: SubnetConfig) -> list[dict[str, int | str]]:
        """The subnet as a list of kernels with their shapes (for MACs and latency predictors)."""
        return cnn_layers(self.config, subnet)


def _conv(name: str, cin: int, cout: int, k: int, stride: int, groups: int, hw: int, act: str = "relu6") -> dict[str, Any]:
    """A conv with its BN folded in and ``act`` fused after it (as TensorRT and onnxruntime run it)."""
    out = (hw + 2 * (k // 2) - k) // stride + 1
    return {"name": name, "op": "dwconv" if groups > 1 else "conv", "cin": cin, "cout": cout, "kernel": k,
            "stride": stride, "groups": groups, "h_in": hw, "h_out": out,
            "macs": out * out * cout * (cin // groups) * k * k, "act": act}


def cnn_layers(c: CNNConfig, subnet: SubnetConfig) -> list[dict[str, Any]]:
    """Kernel list of a subnet: one dict per conv/linear/add/pool with shapes and MACs."""
    c.space().validate(subnet)
    hw, layers = c.resolution, [_conv("stem", c.in_channels, c.stem_channels, 3, 1, 1, c.resolution)]
    cin = c.stem_channels
    for i, ((cout, stride, _e), idx) in enumerate(zip(c.blocks, subnet.widths, strict=True)):
        k = c.hidden_widths(i)[idx]
        layers.append(_conv(f"b{i}.expand", cin, k, 1, 1, 1, hw))
        layers.append(_conv(f"b{i}.dw", k, k, 3, stride, k, hw))
        hw = layers[-1]["h_out"]
        layers.append(_conv(f"b{i}.project", k, cout, 1, 1, 1, hw, act="none"))
        if stride == 1 and cin == cout:
            layers.append({"name": f"b{i}.add", "op": "add", "cin": cout, "cout": cout, "kernel": 0, "stride": 1,
                           "groups": 1, "h_in": hw, "h_out": hw, "macs": 0, "act": "none"})
        cin = cout
    layers.append(_conv("head", cin, c.head_channels, 1, 1, 1, hw))
    layers.append({"name": "pool", "op": "pool", "cin": c.head_channels, "cout": c.head_channels, "kernel": hw,
                   "stride": 1, "groups": 1, "h_in": hw, "h_out": 1, "macs": 0, "act": "none"})
    layers.append({"name": "classifier", "op": "linear", "cin": c.head_channels, "cout": c.num_classes, "kernel": 1,
                   "stride": 1, "groups": 1, "h_in": 1, "h_out": 1, "macs": c.head_channels * c.num_classes,
                   "act": "none"})
    return layers


def exit_layers(c: CNNConfig, e: int) -> list[dict[str, Any]]:
    """Kernel list of exit head ``e`` (after block ``c.exit_blocks[e]``): pool, linear, classifier, decision.

    The ``decide`` layer is the exit test (softmax, max, compare) and the branch it feeds.
    """
    b = c.exit_blocks[e]
    cin, hw, p = c.blocks[b][0], c.resolution_after(b), c.exit_pool_size(b)

    def row(name: str, op: str, ci: int, co: int, k: int, h_in: int, h_out: int, macs: int) -> dict[str, Any]:
        return {"name": f"x{e}.{name}", "op": op, "cin": ci, "cout": co, "kernel": k, "stride": k or 1, "groups": 1,
                "h_in": h_in, "h_out": h_out, "macs": macs, "act": "relu6" if name == "fc1" else "none"}

    layers = []
    if p < hw:
        layers.append(row("pool", "pool", cin, cin, hw // p, hw, p, 0))
    layers.append(row("fc1", "linear", cin * p * p, c.exit_hidden, 1, 1, 1, cin * p * p * c.exit_hidden))
    layers.append(row("classifier", "linear", c.exit_hidden, c.num_classes, 1, 1, 1, c.exit_hidden * c.num_classes))
    layers.append(row("decide", "decide", c.num_classes, 1, 0, 1, 1, 0))
    return layers


def count_macs(c: CNNConfig, subnet: SubnetConfig) -> int:
    """Multiply-accumulates per image of the subnet with its exits off (see :func:`supernet.cost.count_macs`)."""
    return _count_macs(c, subnet)


def exit_macs(c: CNNConfig, subnet: SubnetConfig) -> list[int]:
    """C_i in MACs of leaving at each exit, then at the final classifier (see :func:`supernet.cost.exit_macs`)."""
    return _exit_macs(c, subnet)


PRESETS: dict[str, CNNConfig] = {
    # Tests and smoke runs: 8×8 single-channel digits, a few thousand MACs.
    "tiny": CNNConfig(in_channels=1, resolution=8, stem_channels=8,
                      blocks=((8, 1, 2), (16, 2, 2), (16, 1, 2), (24, 2, 2)), head_channels=32,
                      exit_blocks=(0, 2), exit_hidden=32, exit_pool=2),
    # The shipped CIFAR-10 default: ~10 M MACs at full width, sized for CPU training.
    "cifar-default": CNNConfig(
        in_channels=3, resolution=32, stem_channels=16,
        blocks=((24, 2, 4), (24, 1, 4), (40, 2, 4), (40, 1, 4), (40, 1, 4),
                (80, 2, 4), (80, 1, 4), (80, 1, 4), (96, 1, 4)),
        head_channels=320, dropout=0.1, exit_blocks=(1, 4), exit_hidden=128, exit_pool=4,
    ),
}
