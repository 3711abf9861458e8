"""Subnet extraction: a pure function from (supernet, config) to a new static module."""

from __future__ import annotations

import torch
from torch import nn

from supernet.cnn import CNNSupernet
from supernet.space import SubnetConfig
from supernet.static import StaticCNN


@torch.no_grad()
def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d) -> None:
    n = dst.num_features
    dst.weight.copy_(src.weight[:n])
    dst.bias.copy_(src.bias[:n])
    dst.running_mean.copy_(src.running_mean[:n])
    dst.running_var.copy_(src.running_var[:n])
    dst.eps, dst.momentum = src.eps, src.momentum


@torch.no_grad()
def extract(supernet: CNNSupernet, subnet: SubnetConfig) -> StaticCNN:
    """Copy the sliced weights of ``subnet`` into a new :class:`StaticCNN` (eval mode, on CPU).

    Every exit head of the supernet is copied (the subnet's exit mask only decides which ones an
    exit policy may use; see :mod:`supernet.early_exit`), each with the BN of its block's width.

    BN statistics are the switchable ones of each block's width choice; call
    :func:`supernet.bn.recalibrate` on the result for exact statistics of this subnet.
    The supernet is left untouched.
    """
    c = supernet.config
    supernet.space.validate(subnet)
    specs = []
    for i, ((cout, stride, _e), idx) in enumerate(zip(c.blocks, subnet.widths, strict=True)):
        specs.append((c.hidden_widths(i)[idx], cout, stride))
    exits = [(b, c.resolution_after(b) // c.exit_pool_size(b), c.exit_pool_size(b), c.exit_hidden) for b in c.exit_blocks]
    model = StaticCNN(c.in_channels, c.stem_channels, specs, c.head_channels, c.num_classes, c.dropout, exits)
    model.mean.copy_(supernet.mean)
    model.std.copy_(supernet.std)
    model.stem.load_state_dict(supernet.stem.state_dict())
    model.head.load_state_dict(supernet.head.state_dict())
    model.classifier.load_state_dict(supernet.classifier.state_dict())
    for dst, src, idx in zip(model.blocks, supernet.blocks, subnet.widths, strict=True):
        k = src.widths[idx]
        dst.expand[0].weight.copy_(src.expand.weight[:k])
        dst.dw[0].weight.copy_(src.dw.weight[:k])
        dst.project[0].weight.copy_(src.project.weight[:, :k])
        _copy_bn(dst.expand[1], src.bn1.bns[idx])
        _copy_bn(dst.dw[1], src.bn2.bns[idx])
        _copy_bn(dst.project[1], src.bn3.bns[idx])
    for dst, src, b in zip(model.exits, supernet.exits, c.exit_blocks, strict=True):
        idx = subnet.widths[b]
        dst.fc1.weight.copy_(src.fc1.weight)
        dst.classifier.load_state_dict(src.classifier.state_dict())
        _copy_bn(dst.bn, src.bn.bns[idx])
    return model.to(supernet.mean.device).eval()
