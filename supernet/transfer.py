"""Carrying a trained supernet's weights into another architecture of its family (``dynnas train --init-from``).

Most families accept only their own architecture (exit heads aside). A ViT may also move to another token
grid: a smaller patch (more tokens, as for a token-reduction study) or another input resolution. Two tensors
then change shape, and both are resized so the new network starts close to the old function:

- the patch projection by FlexiViT's pseudo-inverse resize (Beyer et al., 2023): with ``B`` the bilinear
  resize of an old-size patch to the new size, the new kernel ``w'`` solves ``Bᵀ w' = w`` in the least-squares
  sense, so a patch upsampled from the new size projects as before (patch 2 → 1: the kernel's sum);
- the learned position embeddings by bilinear interpolation of their grid (CLS's own kept), as ViTs are
  fine-tuned at a higher resolution (DeiT, timm's ``resample_abs_pos_embed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from supernet.errors import CheckpointMismatchError

# Config fields a ViT may change on transfer: they set the token grid, and only two tensors' shapes follow them.
VIT_GRID_FIELDS = ("patch", "resolution")


def resize_matrix(old: int, new: int) -> torch.Tensor:
    """``(new², old²)`` matrix of the bilinear (antialiased when shrinking) resize of an ``old``×``old`` patch."""
    basis = torch.eye(old * old, dtype=torch.float64).reshape(old * old, 1, old, old)
    out = F.interpolate(basis, size=(new, new), mode="bilinear", align_corners=False, antialias=new < old)
    return out.reshape(old * old, new * new).T


def resize_patch_kernel(weight: torch.Tensor, new: int) -> torch.Tensor:
    """A ``(out, in, p, p)`` patch projection resized to ``new``×``new`` by the pseudo-inverse resize."""
    out_c, in_c, old, _ = weight.shape
    if new == old:
        return weight.clone()
    b = resize_matrix(old, new)  # (new², old²): x_new = B x_old
    # <B x, w'> = <x, w> for every old-size patch x  ⇔  Bᵀ w' = w; least squares (exact when new > old).
    flat = weight.detach().to(torch.float64).reshape(out_c * in_c, old * old).T  # (old², out·in)
    w_new = torch.linalg.pinv(b.T) @ flat  # (new², out·in)
    return w_new.T.reshape(out_c, in_c, new, new).to(weight.dtype)


def resize_pos_embed(pos: torch.Tensor, side: int) -> torch.Tensor:
    """``(1, 1 + s², dim)`` position embeddings (CLS first) interpolated to a ``side``×``side`` grid."""
    cls, grid = pos[:, :1], pos[:, 1:]
    old = int(round(grid.shape[1] ** 0.5))
    if old * old != grid.shape[1]:
        raise CheckpointMismatchError(f"position embeddings of {grid.shape[1]} patches are not a square grid.")
    if old == side:
        return pos.clone()
    g = grid.detach().reshape(1, old, old, -1).permute(0, 3, 1, 2).to(torch.float64)
    g = F.interpolate(g, size=(side, side), mode="bilinear", align_corners=False, antialias=side < old)
    return torch.cat([cls, g.permute(0, 2, 3, 1).reshape(1, side * side, -1).to(pos.dtype)], dim=1)


def _differing(theirs: dict[str, Any], mine: dict[str, Any], free: tuple[str, ...] = ()) -> list[str]:
    """Config fields (exit heads' and ``free`` ones aside) that differ."""
    keys = {k for k in set(theirs) | set(mine) if not k.startswith("exit_") and k not in free}
    return sorted(k for k in keys if theirs.get(k) != mine.get(k))


def transfer_same(state: dict[str, torch.Tensor], theirs: Any, mine: Any) -> dict[str, torch.Tensor]:
    """The default rule: the same architecture (exit heads aside), tensors unchanged."""
    diff = _differing(theirs.to_dict(), mine.to_dict())
    if diff:
        raise CheckpointMismatchError(f"the supernet's architecture differs in {', '.join(diff)}; "
                                      "pass the preset it was trained with.")
    return dict(state)


def transfer_vit(state: dict[str, torch.Tensor], theirs: Any, mine: Any) -> dict[str, torch.Tensor]:
    """The same ViT but for its token grid (patch size, resolution): patch kernel and positions resized."""
    diff = _differing(theirs.to_dict(), mine.to_dict(), VIT_GRID_FIELDS)
    if diff:
        raise CheckpointMismatchError(f"the ViT's architecture differs in {', '.join(diff)} (only "
                                      f"{' and '.join(VIT_GRID_FIELDS)} may change); pass a preset of the same ViT.")
    out = dict(state)
    if theirs.patch != mine.patch:
        out["embed.patch.weight"] = resize_patch_kernel(state["embed.patch.weight"], mine.patch)
    if theirs.n_patches != mine.n_patches:
        out["embed.pos_embed"] = resize_pos_embed(state["embed.pos_embed"], int(round(mine.n_patches ** 0.5)))
    return out


Transfer = Callable[[dict[str, torch.Tensor], Any, Any], dict[str, torch.Tensor]]
