"""Plain PyTorch modules for an extracted ViT subnet: fixed heads, widths and token counts.

Like :mod:`supernet.static`, built from ``torch.nn`` layers only; the token-reduction steps are
the pure functions of :mod:`supernet.tokens` with this subnet's static counts, so the ONNX graph
has static shapes (TopK/GatherElements for pruning, ScatterElements for merging).

:class:`StaticViT` has the interface the early-exit wrappers of :mod:`supernet.early_exit` use:
``mean``, ``std``, ``stem`` (patch embedding), ``segments()``, ``exits``, and the final head as
``classifier(dropout(flatten(pool(head(h)))))`` with ``head`` = CLS token → LayerNorm and
``pool`` = identity. With ToMe, token sizes must cross segment boundaries: a segment then
returns the tokens with one extra last channel holding the sizes (exit heads and the final head
read the first ``dim`` channels of the CLS token, so they ignore it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supernet.tokens import cls_attention, proportional_attention, tome_merge, topk_prune


class PatchEmbedding(nn.Module):
    """Optional conv stem (conv3x3-BN-GELU) → patch projection → CLS token + learned positions."""

    def __init__(self, in_channels: int, stem_channels: int, stem_layers: int, stem_stride: int, patch: int,
                 dim: int, n_patches: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for j in range(stem_channels and stem_layers):
            layers += [nn.Conv2d(cin, stem_channels, 3, stem_stride if j == 0 else 1, 1, bias=False),
                       nn.BatchNorm2d(stem_channels), nn.GELU()]
            cin = stem_channels
        self.conv = nn.Sequential(*layers)
        self.patch = nn.Conv2d(cin, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, dim))
        self.dim, self.n_patches = dim, n_patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.patch(self.conv(x)).reshape(-1, self.dim, self.n_patches).transpose(1, 2)
        # cat([CLS, h]) + pos as a zero pad + a constant: no batch-sized Expand in the exported graph
        return F.pad(h, (0, 0, 1, 0)) + (self.pos_embed + F.pad(self.cls_token, (0, 0, 0, self.n_patches)))


class ViTBlock(nn.Module):
    """Pre-norm block with ``heads`` heads, an MLP of ``hidden`` channels and an optional reduction
    ``(method, non-CLS tokens left)``; ``cls_only``: compute only the CLS token (the last block)."""

    def __init__(self, dim: int, heads: int, head_dim: int, hidden: int, reduce: tuple[str, int] | None = None,
                 cls_only: bool = False) -> None:
        super().__init__()
        a = heads * head_dim
        self.heads, self.head_dim, self.reduce, self.cls_only = heads, head_dim, reduce, cls_only
        self.norm1 = nn.LayerNorm(dim)
        if cls_only:
            self.q = nn.Linear(dim, a)
            self.kv = nn.Linear(dim, 2 * a)
        else:
            self.qkv = nn.Linear(dim, 3 * a)
        self.proj = nn.Linear(a, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, size: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = int(x.shape[1])  # static per subnet: reshapes get constant shapes in ONNX, only the batch is -1
        h, hd = self.heads, self.head_dim
        y = self.norm1(x)
        if self.cls_only:
            q = self.q(y[:, :1]).reshape(-1, 1, h, hd).transpose(1, 2)
            k, v = self.kv(y).reshape(-1, t, 2, h, hd).permute(2, 0, 3, 1, 4)
            x = x[:, :1]
        else:
            q, k, v = self.qkv(y).reshape(-1, t, 3, h, hd).permute(2, 0, 3, 1, 4)
        o = proportional_attention(q, k, v, size)  # explicit MatMul/Softmax: a constant scale in the graph
        x = x + self.proj(o.transpose(1, 2).reshape(-1, 1 if self.cls_only else t, h * hd))
        if self.reduce and self.reduce[0] == "topk":
            x, _ = topk_prune(x, cls_attention(q[:, :, :1], k, size), self.reduce[1] - 1)
        elif self.reduce:
            x, size = tome_merge(x, k, size, t - 1 - self.reduce[1])
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)))), size


class ClsToken(nn.Module):
    """The first ``dim`` channels of the CLS token: (B, T, ≥dim) → (B, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h[:, 0, : self.dim]


class ExitHead(nn.Module):
    """An early exit on the CLS token: LayerNorm → linear."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.token = ClsToken(dim)
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(self.token(h)))


class Segment(nn.Module):
    """Blocks between two exits; unpacks token sizes from the last channel of its input and packs them
    into its output when ToMe tracks sizes across the cut (``packed_in``/``packed_out``)."""

    def __init__(self, blocks: nn.ModuleList, dim: int, packed_in: bool, packed_out: bool) -> None:
        super().__init__()
        self.blocks, self.dim, self.packed_in, self.packed_out = blocks, dim, packed_in, packed_out

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x, size = (h[..., : self.dim], h[..., self.dim:]) if self.packed_in else (h, None)
        for block in self.blocks:
            x, size = block(x, size)
        return torch.cat([x, size], dim=-1) if self.packed_out and size is not None else x


class StaticViT(nn.Module):
    """A fixed ViT subnet; input is an image in [0, 1], NCHW.

    ``blocks`` holds ``(heads, hidden, reduce, cls_only)`` per block; ``exit_blocks`` the blocks an
    exit head follows. ``forward`` returns the final logits, :meth:`forward_all` every head's
    logits and then the final ones.
    """

    def __init__(self, *, in_channels: int, stem_channels: int, stem_layers: int, stem_stride: int, patch: int,
                 dim: int, head_dim: int, n_patches: int, blocks: list[tuple[int, int, tuple[str, int] | None, bool]],
                 num_classes: int, dropout: float = 0.0, exit_blocks: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("mean", torch.zeros(1, in_channels, 1, 1))
        self.register_buffer("std", torch.ones(1, in_channels, 1, 1))
        self.stem = PatchEmbedding(in_channels, stem_channels, stem_layers, stem_stride, patch, dim, n_patches)
        self.blocks = nn.ModuleList(ViTBlock(dim, h, head_dim, k, reduce, last) for h, k, reduce, last in blocks)
        self.head = nn.Sequential(ClsToken(dim), nn.LayerNorm(dim))
        self.pool = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, num_classes)
        self.exit_blocks = tuple(int(b) for b in exit_blocks)
        self.exits = nn.ModuleList(ExitHead(dim, num_classes) for _ in self.exit_blocks)
        sized, self._sized = False, []  # whether token sizes exist after each block (ToMe has merged)
        for _h, _k, reduce, _last in blocks:
            sized = sized or bool(reduce and reduce[0] == "tome")
            self._sized.append(sized)

    def _final(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(torch.flatten(self.pool(self.head(h)), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, size = self.stem((x - self.mean) / self.std), None
        for block in self.blocks:
            h, size = block(h, size)
        return self._final(h)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every exit head, in order, then of the final classifier."""
        h, size = self.stem((x - self.mean) / self.std), None
        out = []
        for i, block in enumerate(self.blocks):
            h, size = block(h, size)
            if i in self.exit_blocks:
                out.append(self.exits[self.exit_blocks.index(i)](h))
        return [*out, self._final(h)]

    def segments(self) -> list[tuple[nn.Module, int | None]]:
        """The backbone cut at the exits: ``(module, exit index or None)`` pairs, in order."""
        cuts = [*self.exit_blocks, len(self.blocks) - 1]
        out, start = [], 0
        for e, end in enumerate(cuts):
            last = e == len(self.exit_blocks)
            packed_in = start > 0 and self._sized[start - 1]
            seg = Segment(self.blocks[start: end + 1], self.dim, packed_in, not last and self._sized[end])
            out.append((seg, None if last else e))
            start = end + 1
        return out
