"""Batch-norm statistics for one extracted subnet: exact recalibration on training batches."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace every BN's running statistics with exact averages over ``batches``.

    Statistics are reset and accumulated with ``momentum=None`` (a cumulative mean), so the
    result is the exact mean of the per-batch statistics, independent of the momentum used in
    training. Affine parameters are untouched. Use shuffled *training* batches: sorted or test
    batches bias the statistics. Returns the number of images seen; the model ends in eval mode.

    A model with early-exit heads (``forward_all``) runs them too: their BN layers would otherwise
    keep reset statistics (mean 0, variance 1) and the heads would lose several points.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    device = next(model.parameters()).device
    seen = 0
    run = getattr(model, "forward_all", model)
    model.train()
    try:
        for x in batches:
            run(x.to(device))
            seen += int(x.shape[0])
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
        model.eval()
    if seen == 0:
        raise ValueError("BN recalibration needs at least one batch, but got none.")
    return seen
