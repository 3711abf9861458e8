"""Plain PyTorch modules for an extracted subnet: no elastic layers, no supernet imports.

An extracted subnet is an ordinary ``nn.Module`` built only from ``torch.nn`` layers, so it can
be exported, quantised or fine-tuned by any tool that knows PyTorch.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """expand 1×1 → depthwise 3×3 → project 1×1, with a residual when shapes allow."""

    def __init__(self, cin: int, hidden: int, cout: int, stride: int) -> None:
        super().__init__()
        self.expand = conv_bn(cin, hidden, 1)
        self.dw = conv_bn(hidden, hidden, 3, stride, groups=hidden)
        self.project = conv_bn(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(self.dw(self.expand(x)))
        return x + h if self.residual else h


class ExitHead(nn.Module):
    """An early exit: average pool (``kernel`` × ``kernel``, 1 = none) → linear → BN → ReLU6 → classifier."""

    def __init__(self, cin: int, pool_kernel: int, pooled: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool_kernel) if pool_kernel > 1 else nn.Identity()
        self.fc1 = nn.Linear(cin * pooled * pooled, hidden, bias=False)
        self.bn = nn.BatchNorm1d(hidden)
        self.act = nn.ReLU6()
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.act(self.bn(self.fc1(torch.flatten(self.pool(h), 1)))))


class StaticCNN(nn.Module):
    """A fixed-width MobileNetV2-style classifier; input is an image in [0, 1], NCHW.

    ``exits`` lists early-exit heads as ``(after_block, pool_kernel, pooled, hidden)``; ``forward``
    returns the final logits, :meth:`forward_all` every head's logits and then the final ones.
    """

    def __init__(self, in_channels: int, stem: int, blocks: list[tuple[int, int, int]], head: int,
                 num_classes: int, dropout: float = 0.0,
                 exits: list[tuple[int, int, int, int]] | tuple = ()) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, in_channels, 1, 1))
        self.register_buffer("std", torch.ones(1, in_channels, 1, 1))
        self.stem = conv_bn(in_channels, stem, 3)
        layers, cin = [], stem
        for hidden, cout, stride in blocks:
            layers.append(InvertedResidual(cin, hidden, cout, stride))
            cin = cout
        self.blocks = nn.Sequential(*layers)
        self.head = conv_bn(cin, head, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head, num_classes)
        self.exit_blocks = tuple(int(e[0]) for e in exits)
        self.exits = nn.ModuleList(ExitHead(blocks[b][1], k, p, hidden, num_classes) for b, k, p, hidden in exits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(self.blocks(self.stem((x - self.mean) / self.std)))
        return self.classifier(self.dropout(torch.flatten(self.pool(h), 1)))

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every exit head, in order, then of the final classifier."""
        h = self.stem((x - self.mean) / self.std)
        out = []
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i in self.exit_blocks:
                out.append(self.exits[self.exit_blocks.index(i)](h))
        h = self.head(h)
        return [*out, self.classifier(self.dropout(torch.flatten(self.pool(h), 1)))]

    def segments(self) -> list[tuple[nn.Module, int | None]]:
        """The backbone cut at the exits: ``(module, exit index or None)`` pairs, in order."""
        cuts = [*self.exit_blocks, len(self.blocks) - 1]
        out, start = [], 0
        for e, end in enumerate(cuts):
            out.append((self.blocks[start: end + 1], e if e < len(self.exit_blocks) else None))
            start = end + 1
        return out
