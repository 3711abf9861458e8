"""The CNN supernet: a MobileNetV2-style net whose every block has an elastic hidden width.

Read top to bottom: :class:`CNNConfig` (the architecture, stored in every checkpoint),
:class:`ElasticInvertedResidual` (one block), :class:`CNNSupernet` (the whole net) and
:data:`PRESETS`. A forward pass takes the subnet config explicitly, so no hidden
"active subnet" state exists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from supernet.dynamic import SwitchableBatchNorm2d, get_importance, segment_sort
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
        SearchSpace(n_blocks=len(self.blocks), width_choices=self.width_choices)  # validates choices

    def space(self) -> SearchSpace:
        return SearchSpace(n_blocks=len(self.blocks), width_choices=self.width_choices, family="cnn")

    def hidden_widths(self, block: int) -> tuple[int, ...]:
        """Hidden channel count of ``block`` for each width choice (ascending, nested)."""
        out_prev = self.stem_channels if block == 0 else self.blocks[block - 1][0]
        full = out_prev * self.blocks[block][2]
        return tuple(max(1, round(a * full)) for a in self.width_choices)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["blocks"] = [list(b) for b in self.blocks]
        d["width_choices"] = list(self.width_choices)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CNNConfig:
        d = {k: v for k, v in d.items() if k != "family"}
        known = {f for f in cls.__dataclass_fields__ if f != "family"}
        if set(d) - known:
            raise ConfigError(f"unknown CNN config fields {sorted(set(d) - known)}; known: {sorted(known)}.")
        return cls(**{**d, "blocks": tuple(tuple(b) for b in d.get("blocks", ())) or CNNConfig().blocks})


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


class CNNSupernet(nn.Module):
    """Stem → elastic inverted-residual blocks → head. Inputs are images in [0, 1], NCHW."""

    def __init__(self, config: CNNConfig, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None):
        super().__init__()
        self.config = config
        self.space = config.space()
        c = config
        mean = mean or (0.5,) * c.in_channels
        std = std or (0.25,) * c.in_channels
        if len(mean) != c.in_channels or len(std) != c.in_channels:
            raise ConfigError(f"normalisation needs {c.in_channels} channels, but got {mean=} and {std=}.")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
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
                nn.init.zeros_(m.bias)
        for b in self.blocks:  # zero-init the last BN of residual blocks (each starts as identity)
            if b.residual:
                for bn in b.bn3.bns:
                    nn.init.zeros_(bn.weight)

    def forward(self, x: torch.Tensor, subnet: SubnetConfig | None = None) -> torch.Tensor:
        widths = (subnet or self.space.largest()).widths
        h = self.stem((x - self.mean) / self.std)
        for block, idx in zip(self.blocks, widths, strict=True):
            h = block(h, idx)
        h = self.head(h)
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        return self.classifier(self.dropout(h))

    # ---- progressive shrinking hooks ---------------------------------------------------
    def sort_channels(self, trained: tuple[int, ...], importance: str = "l1") -> None:
        for b in self.blocks:
            b.sort_channels(trained, importance)

    def activate_width(self, idx: int, src_idx: int) -> None:
        for b in self.blocks:
            b.activate(idx, src_idx)

    # ---- cost model inputs ---------------------------------------------------------------
    def layers(self, subnet: SubnetConfig) -> list[dict[str, int | str]]:
        """The subnet as a list of kernels with their shapes (for MACs and latency predictors)."""
        return cnn_layers(self.config, subnet)


def _conv(name: str, cin: int, cout: int, k: int, stride: int, groups: int, hw: int) -> dict[str, Any]:
    out = (hw + 2 * (k // 2) - k) // stride + 1
    return {"name": name, "op": "dwconv" if groups > 1 else "conv", "cin": cin, "cout": cout, "kernel": k,
            "stride": stride, "groups": groups, "h_in": hw, "h_out": out,
            "macs": out * out * cout * (cin // groups) * k * k}


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
        layers.append(_conv(f"b{i}.project", k, cout, 1, 1, 1, hw))
        if stride == 1 and cin == cout:
            layers.append({"name": f"b{i}.add", "op": "add", "cin": cout, "cout": cout, "kernel": 0, "stride": 1,
                           "groups": 1, "h_in": hw, "h_out": hw, "macs": 0})
        cin = cout
    layers.append(_conv("head", cin, c.head_channels, 1, 1, 1, hw))
    layers.append({"name": "pool", "op": "pool", "cin": c.head_channels, "cout": c.head_channels, "kernel": hw,
                   "stride": 1, "groups": 1, "h_in": hw, "h_out": 1, "macs": 0})
    layers.append({"name": "classifier", "op": "linear", "cin": c.head_channels, "cout": c.num_classes, "kernel": 1,
                   "stride": 1, "groups": 1, "h_in": 1, "h_out": 1, "macs": c.head_channels * c.num_classes})
    return layers


def count_macs(c: CNNConfig, subnet: SubnetConfig) -> int:
    """Multiply-accumulates per image."""
    return int(sum(layer["macs"] for layer in cnn_layers(c, subnet)))


PRESETS: dict[str, CNNConfig] = {
    # Tests and smoke runs: 8×8 single-channel digits, a few thousand MACs.
    "tiny": CNNConfig(in_channels=1, resolution=8, stem_channels=8,
                      blocks=((8, 1, 2), (16, 2, 2), (16, 1, 2), (24, 2, 2)), head_channels=32),
    # The shipped CIFAR-10 default: ~10 M MACs at full width, sized for CPU training.
    "cifar-default": CNNConfig(
        in_channels=3, resolution=32, stem_channels=16,
        blocks=((24, 2, 4), (24, 1, 4), (40, 2, 4), (40, 1, 4), (40, 1, 4),
                (80, 2, 4), (80, 1, 4), (80, 1, 4), (96, 1, 4)),
        head_channels=320, dropout=0.1,
    ),
}
