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


class StaticCNN(nn.Module):
    """A fixed-width MobileNetV2-style classifier; input is an image in [0, 1], NCHW."""

    def __init__(self, in_channels: int, stem: int, blocks: list[tuple[int, int, int]], head: int,
                 num_classes: int, dropout: float = 0.0) -> None:
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(self.blocks(self.stem((x - self.mean) / self.std)))
        return self.classifier(self.dropout(torch.flatten(self.pool(h), 1)))
