"""Small helpers for tests that build supernets with random weights."""

from __future__ import annotations

import torch


def randomise_bn(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN statistics and affine terms (so a wrong BN shows), in eval mode."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()
