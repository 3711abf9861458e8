"""Token reduction for vision transformers: pure functions on ``(B, N, C)`` token tensors.

Index 0 is the CLS token and is never pruned or merged. Each function returns the reduced
tokens and their *sizes* ``(B, N', 1)``: how many input patches each token stands for (1 for an
untouched token). Sizes let a later block weigh tokens by the patches they carry
(:func:`proportional_attention`, as ToMe does) and sum to the number of tokens they came from.

* :func:`topk_prune` (EViT, Liang et al. 2022): keep the ``keep`` tokens the CLS token attends to
  most and fuse the rest into one token, their attention-weighted mean.
* :func:`tome_merge` (ToMe, Bolya et al. 2023): bipartite soft matching on the attention keys;
  the ``r`` most similar pairs are merged by size-weighted averages.

Every shape depends only on ``N``, ``keep`` and ``r``, so for a given subnet the ONNX graph is
static: pruning is TopK + GatherElements, merging is MatMul (similarities) + ReduceMax/ArgMax +
TopK + GatherElements + ScatterElements(reduction="add"). Token and channel counts are read as
Python ints (``int(x.shape[i])``), so a traced export bakes them in as constants instead of
``Shape``/``Gather`` chains; only the batch axis stays dynamic.
"""

from __future__ import annotations

import torch

from supernet.errors import ConfigError


def _ones(x: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(x[..., :1])


def _dim(x: torch.Tensor, i: int) -> int:
    """A static size as a Python int (a constant when traced for export)."""
    return int(x.shape[i])


def _gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[b, idx[b, j], :]`` for every batch row ``b`` (GatherElements in ONNX)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, _dim(x, -1)))


def topk_prune(x: torch.Tensor, cls_attn: torch.Tensor, keep: int, *, fuse: bool = True,
               size: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the CLS token and the ``keep`` highest-scoring other tokens; fuse the pruned ones.

    ``cls_attn`` (B, N - 1) scores the non-CLS tokens (the CLS row of the attention, summed over
    heads). Kept tokens come in *descending score order* (TopK's natural order; later blocks are
    permutation-equivariant, so the order changes nothing but saves a sort). With ``fuse`` the
    pruned tokens become one extra last token, their mean weighted by ``cls_attn`` (EViT's
    "inattentive token fusion"), and its size is the sum of theirs: the output has
    ``1 + keep + 1`` tokens (``1 + keep`` without ``fuse``). ``keep >= N - 1`` returns ``x``.

    Returns ``(tokens, sizes)``; ``size`` defaults to ones (every token one patch).
    """
    n = _dim(x, 1) - 1
    if not (1 <= keep):
        raise ConfigError(f"top-k pruning must keep at least 1 token, but got keep={keep}.")
    if _dim(cls_attn, 1) != n:
        raise ConfigError(f"`cls_attn` must score the {n} non-CLS tokens, but got shape {tuple(cls_attn.shape)}.")
    size = _ones(x) if size is None else size
    if keep >= n:
        return x, size
    order = torch.topk(cls_attn, n, dim=1).indices  # all tokens, best first (a full sort: TopK)
    kept, pruned = order[:, :keep], order[:, keep:]
    tokens, sizes = x[:, 1:], size[:, 1:]
    parts, part_sizes = [x[:, :1], _gather_tokens(tokens, kept)], [size[:, :1], _gather_tokens(sizes, kept)]
    if fuse:
        w = torch.gather(cls_attn, 1, pruned).unsqueeze(-1)  # (B, n - keep, 1)
        w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
        parts.append((_gather_tokens(tokens, pruned) * w).sum(dim=1, keepdim=True))
        part_sizes.append(_gather_tokens(sizes, pruned).sum(dim=1, keepdim=True))
    return torch.cat(parts, dim=1), torch.cat(part_sizes, dim=1)


def tome_merge(x: torch.Tensor, keys: torch.Tensor, size: torch.Tensor | None, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge ``r`` pairs of similar tokens by bipartite soft matching; the CLS token is protected.

    The non-CLS tokens alternate into sets A (even positions) and B (odd). Each A token finds its
    most similar B token (cosine similarity of ``keys``, (B, N, d), or (B, h, N, d) averaged over
    heads); the ``r`` A tokens with the most similar matches are merged into their B tokens by
    size-weighted averages. Output order: CLS, the unmerged A tokens (by descending best
    similarity), then the B tokens in their order: ``N - r`` tokens whose sizes sum to the
    input's. ``r`` may be at most half the non-CLS tokens (``(N - 1) // 2``).

    Returns ``(tokens, sizes)``; ``size`` None means every token has size 1.
    """
    n = _dim(x, 1) - 1
    if not (0 <= r <= n // 2):
        raise ConfigError(f"ToMe merges at most half the tokens of a block: r must be in [0, {n // 2}] for {n} "
                          f"non-CLS tokens, but got r={r}; use a keep ratio >= 0.5.")
    size = _ones(x) if size is None else size
    if r == 0:
        return x, size
    if keys.dim() == 4:
        keys = keys.mean(dim=1)
    c = _dim(x, -1)
    metric = keys[:, 1:]
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scores = metric[:, ::2] @ metric[:, 1::2].transpose(1, 2)  # (B, |A|, |B|)
    best, best_idx = scores.max(dim=-1)  # each A token's best B match
    edges = torch.topk(best, (n + 1) // 2, dim=-1).indices  # A tokens, most similar first
    src, unm = edges[:, :r], edges[:, r:]
    dst = torch.gather(best_idx, 1, src)
    # One tensor of size-weighted tokens with their sizes as a last channel: one gather/scatter moves both,
    # and the CLS token rides along unmerged (x·s / s: exactly x for the ViT's CLS, whose size stays 1).
    weighted = torch.cat([x * size, size], dim=-1)
    a, b = weighted[:, 1::2], weighted[:, 2::2]
    b = b.scatter_add(1, dst.unsqueeze(-1).expand(-1, -1, c + 1), _gather_tokens(a, src))
    merged = torch.cat([weighted[:, :1], _gather_tokens(a, unm), b], dim=1)
    sizes = merged[..., c:]
    return merged[..., :c] / sizes, sizes


def proportional_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: torch.Tensor | None = None, *,
                           return_attn: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q kᵀ / √d + log size) v`` for ``q, k, v`` of shape (B, h, N, d), sizes (B, N, 1).

    A key standing for ``s`` patches gets ``s`` times the weight (ToMe's proportional attention);
    ``size`` None (or all ones) is plain attention. With ``return_attn`` the attention
    probabilities (B, h, N, N) come too.
    """
    logits = (q * _dim(q, -1) ** -0.5) @ k.transpose(-2, -1)
    if size is not None:
        logits = logits + torch.log(size)[:, None, None, :, 0]
    attn = logits.softmax(dim=-1)
    out = attn @ v
    return (out, attn) if return_attn else out


def cls_attention(q_cls: torch.Tensor, k: torch.Tensor, size: torch.Tensor | None = None) -> torch.Tensor:
    """Top-k scores: the CLS token's attention over the other tokens, summed over heads, (B, N - 1).

    ``q_cls`` (B, h, 1, d) is the CLS query, ``k`` (B, h, N, d) the keys; the same probabilities
    as row 0 of :func:`proportional_attention` (computed alone, so the full attention can use a
    fused kernel).
    """
    logits = (q_cls * _dim(q_cls, -1) ** -0.5) @ k.transpose(-2, -1)
    if size is not None:
        logits = logits + torch.log(size)[:, None, None, :, 0]
    return logits.softmax(dim=-1)[:, :, 0, 1:].sum(dim=1)


def kept_tokens(n: int, ratio: float, method: str) -> int:
    """Non-CLS tokens after a reduction step with keep ratio ``ratio`` on ``n`` non-CLS tokens.

    Both methods leave ``ceil(ratio · n)`` tokens (at least 1; top-k at least 2), so a schedule
    costs the same MACs whichever method runs it: top-k keeps one token fewer and adds the fused
    one; ToMe merges ``r = n - ceil(ratio · n)`` pairs (``ratio >= 0.5`` keeps ``r <= n // 2``).
    ``ratio == 1`` keeps all.
    """
    if not (0.0 < ratio <= 1.0):
        raise ConfigError(f"a keep ratio must lie in (0, 1], but got {ratio}.")
    if ratio >= 1.0:
        return n
    out = max(1, -int(-(ratio * n - 1e-9) // 1))  # ceil, robust to 0.7 * 10 = 7.000000000000001
    if method == "topk":
        return min(n, max(2, out))
    if method == "tome":
        if n - out > n // 2:
            raise ConfigError(f"ToMe merges at most half the tokens of a block, but keep ratio {ratio} on {n} tokens "
                              f"asks for {n - out} merges (at most {n // 2}); use a keep ratio >= 0.5.")
        return out
    raise ConfigError(f"unknown token-reduction method '{method}'; known: topk, tome.")
