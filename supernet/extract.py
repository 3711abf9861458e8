"""Subnet extraction per family: pure functions from (supernet, config) to a new static module.

:func:`extract_cnn` gives a :class:`StaticCNN`, :func:`extract_vit` a :class:`StaticViT`. Callers use
:func:`supernet.registry.extract`, which dispatches on the supernet's family (each
:class:`supernet.registry.Family` names its extraction function), so they need no family branches.
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.cnn import CNNSupernet
from supernet.space import SubnetConfig
from supernet.static import StaticCNN
from supernet.static_vit import StaticViT
from supernet.vit import ViTSupernet


@torch.no_grad()
def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d) -> None:
    n = dst.num_features
    dst.weight.copy_(src.weight[:n])
    dst.bias.copy_(src.bias[:n])
    dst.running_mean.copy_(src.running_mean[:n])
    dst.running_var.copy_(src.running_var[:n])
    dst.eps, dst.momentum = src.eps, src.momentum


@torch.no_grad()
def extract_cnn(supernet: CNNSupernet, subnet: SubnetConfig) -> StaticCNN:
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


@torch.no_grad()
def extract_vit(supernet: ViTSupernet, subnet: SubnetConfig) -> StaticViT:
    """Copy the sliced weights of ``subnet`` (first heads, first MLP channels) into a new
    :class:`StaticViT` with this subnet's fixed token counts (eval mode).

    Every exit head is copied (the exit mask decides which ones a policy may use). The conv
    stem's BN statistics are the supernet's (shared by all subnets); :func:`supernet.bn.recalibrate`
    works on the result as on a CNN.
    """
    c = supernet.config
    plan = c.block_plan(subnet)
    model = StaticViT(in_channels=c.in_channels, stem_channels=c.stem_channels, stem_layers=c.stem_layers,
                      stem_stride=c.stem_stride, patch=c.patch, dim=c.dim, head_dim=c.head_dim, n_patches=c.n_patches,
                      blocks=[(p.heads, p.hidden, p.reduce, p.cls_only) for p in plan], num_classes=c.num_classes,
                      dropout=c.dropout, exit_blocks=c.exit_blocks)
    model.mean.copy_(supernet.mean)
    model.std.copy_(supernet.std)
    model.stem.load_state_dict(supernet.embed.state_dict())
    for dst, src, p in zip(model.blocks, supernet.blocks, plan, strict=True):
        a = p.heads * c.head_dim
        w, b = src.qkv_weights(p.heads)
        if p.cls_only:
            dst.q.weight.copy_(w[:a])
            dst.q.bias.copy_(b[:a])
            dst.kv.weight.copy_(w[a:])
            dst.kv.bias.copy_(b[a:])
        else:
            dst.qkv.weight.copy_(w)
            dst.qkv.bias.copy_(b)
        dst.proj.weight.copy_(src.proj.weight[:, :a])
        dst.proj.bias.copy_(src.proj.bias)
        dst.fc1.weight.copy_(src.fc1.weight[: p.hidden])
        dst.fc1.bias.copy_(src.fc1.bias[: p.hidden])
        dst.fc2.weight.copy_(src.fc2.weight[:, : p.hidden])
        dst.fc2.bias.copy_(src.fc2.bias)
        dst.norm1.load_state_dict(src.norm1.state_dict())
        dst.norm2.load_state_dict(src.norm2.state_dict())
    model.head[1].load_state_dict(supernet.norm.state_dict())
    model.classifier.load_state_dict(supernet.classifier.state_dict())
    for dst, src in zip(model.exits, supernet.exits, strict=True):
        dst.norm.load_state_dict(src.norm.state_dict())
        dst.classifier.load_state_dict(src.classifier.state_dict())
    return model.to(supernet.mean.device).eval()
