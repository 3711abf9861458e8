"""Elastic building blocks: switchable batch norm and channel-importance measures.

Convolutions stay plain ``nn.Conv2d`` parameters that the blocks *slice* (first ``k`` channels),
so a narrow subnet really runs fewer FLOPs. Batch norm is switchable (Yu et al., 2019): one
private ``BatchNorm2d`` per width choice, with its own running statistics and affine terms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from supernet.errors import ConfigError, unknown


class SwitchableBatchNorm2d(nn.Module):
    """One ``BatchNorm2d`` per width choice; ``forward(x, idx)`` uses the ``idx``-th."""

    bn_class: type[nn.modules.batchnorm._BatchNorm] = nn.BatchNorm2d

    def __init__(self, num_features: tuple[int, ...], momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = tuple(int(n) for n in num_features)
        self.bns = nn.ModuleList(self.bn_class(n, momentum=momentum) for n in self.num_features)

    def forward(self, x: torch.Tensor, idx: int) -> torch.Tensor:
        return self.bns[idx](x)

    @torch.no_grad()
    def init_from(self, idx: int, src_idx: int) -> None:
        """Initialise choice ``idx`` from the first channels of choice ``src_idx`` (a wider one)."""
        dst, src = self.bns[idx], self.bns[src_idx]
        n = dst.num_features
        dst.weight.copy_(src.weight[:n])
        dst.bias.copy_(src.bias[:n])
        dst.running_mean.copy_(src.running_mean[:n])
        dst.running_var.copy_(src.running_var[:n])
        dst.num_batches_tracked.copy_(src.num_batches_tracked)

    @torch.no_grad()
    def permute(self, idx: int, perm: torch.Tensor) -> None:
        """Reorder choice ``idx``'s channels; ``perm`` must be a permutation of ``range(n)``."""
        bn = self.bns[idx]
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            t.copy_(t[perm])


class SwitchableBatchNorm1d(SwitchableBatchNorm2d):
    """One ``BatchNorm1d`` per width choice (exit heads: features after a linear layer)."""

    bn_class = nn.BatchNorm1d


# Channel importance: a function of an elastic block returning one score per hidden channel.
Importance = Callable[[nn.Module], torch.Tensor]
IMPORTANCE: dict[str, Importance] = {}


def register_importance(name: str) -> Callable[[Importance], Importance]:
    def wrap(fn: Importance) -> Importance:
        IMPORTANCE[name] = fn
        return fn

    return wrap


@register_importance("l1")
def l1_importance(block: nn.Module) -> torch.Tensor:
    """L1 norm of the projection weights that read each hidden channel (as in OFA)."""
    return block.project.weight.detach().abs().sum(dim=(0, 2, 3))


@register_importance("bn_gamma")
def bn_gamma_importance(block: nn.Module) -> torch.Tensor:
    """|γ| of the widest depthwise BN (network-slimming style)."""
    return block.bn2.bns[-1].weight.detach().abs()


def get_importance(name: str) -> Importance:
    if name not in IMPORTANCE:
        raise unknown("channel-importance measure", name, list(IMPORTANCE))
    return IMPORTANCE[name]


def segment_sort(scores: torch.Tensor, boundaries: tuple[int, ...]) -> torch.Tensor:
    """Permutation that sorts ``scores`` descending *within* each segment between boundaries.

    Sorting only inside ``[0, b1), [b1, b2), ...`` keeps every already-trained width's channel
    set intact (Channels(α_i) ⊆ Channels(α_j)) while moving the most important channels first.
    """
    edges = [0, *sorted(set(boundaries))]
    if edges[-1] != scores.numel():
        edges.append(scores.numel())
    parts = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        order = torch.argsort(scores[a:b], descending=True, stable=True)
        parts.append(order + a)
    return torch.cat(parts)


def register_normalisation(module: nn.Module, in_channels: int, mean: tuple[float, ...] | None,
                           std: tuple[float, ...] | None) -> None:
    """Give a supernet its input normalisation as ``mean``/``std`` buffers (defaults 0.5 / 0.25 per channel)."""
    mean = mean or (0.5,) * in_channels
    std = std or (0.25,) * in_channels
    if len(mean) != in_channels or len(std) != in_channels:
        raise ConfigError(f"normalisation needs {in_channels} channels, but got {mean=} and {std=}.")
    module.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
    module.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
