"""Carrying trained weights to another token grid of the ViT (``dynnas train --init-from``)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from supernet.errors import CheckpointMismatchError
from supernet.evaluate import accuracy
from supernet.registry import get_family
from supernet.train import TrainConfig, Trainer
from supernet.transfer import (
    resize_matrix,
    resize_patch_kernel,
    resize_pos_embed,
    transfer_same,
    transfer_vit,
)
from supernet.vit import PRESETS, ViTSupernet

TINY = PRESETS["tiny"]


def test_resize_matrix_is_the_bilinear_resize():
    x = torch.randn(3, 3, dtype=torch.float64)
    want = F.interpolate(x[None, None], size=(5, 5), mode="bilinear", align_corners=False)[0, 0]
    assert torch.allclose(resize_matrix(3, 5) @ x.flatten(), want.flatten())


def test_patch_2_to_1_is_the_kernel_sum():
    w = torch.randn(6, 4, 2, 2)
    assert torch.allclose(resize_patch_kernel(w, 1), w.sum(dim=(2, 3), keepdim=True), atol=1e-6)


def test_a_larger_patch_projects_an_upsampled_patch_as_the_old_kernel_did():
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(5, 3, 2, 2, generator=g), torch.randn(7, 3, 2, 2, generator=g)
    w4 = resize_patch_kernel(w, 4)
    up = F.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.allclose(F.conv2d(up, w4), F.conv2d(x, w), atol=1e-5)  # exact: Bᵀ w' = w has a solution


def test_position_grid_interpolates_and_keeps_cls():
    side = torch.arange(2, dtype=torch.float32)
    grid = (side[:, None] + side[None, :]).reshape(1, 4, 1).expand(1, 4, 3)  # a linear ramp over the 2×2 grid
    pos = torch.cat([torch.full((1, 1, 3), 7.0), grid], dim=1)
    out = resize_pos_embed(pos, 4)
    assert out.shape == (1, 17, 3) and torch.equal(out[:, 0], pos[:, 0])
    ramp = out[0, 1:, 0].reshape(4, 4)
    assert torch.allclose(ramp, ramp.T) and ramp[0, 0] == 0 and ramp[-1, -1] == 2  # monotone, corners kept
    assert torch.all(ramp[:, 1:] >= ramp[:, :-1])
    assert torch.equal(resize_pos_embed(pos, 2), pos)


def test_vit_transfer_to_patch_1_fits_the_new_model():
    src = ViTSupernet(TINY)
    dst_cfg = replace(TINY, patch=1)
    state = get_family("vit").transfer(src.state_dict(), TINY, dst_cfg)
    dst = ViTSupernet(dst_cfg)
    assert dst.load_state_dict(state, strict=True)  # every tensor, exit heads included, has its new shape
    assert state["embed.pos_embed"].shape == (1, dst_cfg.n_patches + 1, TINY.dim) == (1, 65, 32)
    assert torch.allclose(state["embed.patch.weight"], src.state_dict()["embed.patch.weight"].sum((2, 3), keepdim=True),
                          atol=1e-6)
    unchanged = [k for k in state if k not in ("embed.patch.weight", "embed.pos_embed")]
    assert unchanged and all(torch.equal(state[k], src.state_dict()[k]) for k in unchanged)


@pytest.mark.parametrize("change", [{"dim": 16}, {"depth": 3}, {"mlp_ratio": 4.0}])
def test_vit_transfer_refuses_another_vit(change):
    with pytest.raises(CheckpointMismatchError, match=next(iter(change))):
        transfer_vit(ViTSupernet(TINY).state_dict(), TINY, replace(TINY, **change))


def test_other_families_transfer_only_to_their_own_architecture():
    from supernet.cnn import PRESETS as CNN

    tiny = CNN["tiny"]
    with pytest.raises(CheckpointMismatchError, match="width_choices"):
        transfer_same({}, tiny, replace(tiny, width_choices=(0.5, 1.0)))
    with pytest.raises(CheckpointMismatchError, match="patch"):  # the default rule resizes nothing
        transfer_same({}, TINY, replace(TINY, patch=1))
    assert get_family("cnn").transfer is transfer_same and get_family("vit").transfer is transfer_vit


def test_init_from_another_token_grid_trains_the_token_stage(tmp_path, digits, monkeypatch):
    base = TrainConfig(family="vit", preset="tiny", dataset="digits", stage_epochs=(10, 2), optimizer="adamw",
                       lr=4e-3, n_random=1, seed=0, batch_size=32)
    first = Trainer(base, tmp_path / "p2", data=digits)
    first.run()
    monkeypatch.setitem(PRESETS, "tiny-patch1", replace(TINY, patch=1))
    cfg = TrainConfig(family="vit", preset="tiny-patch1", dataset="digits", stage_epochs=(), token_epochs=2,
                      init_from=str(tmp_path / "p2" / "supernet.safetensors"), optimizer="adamw", lr=4e-3,
                      n_random=1, seed=0)
    fine = Trainer(cfg, tmp_path / "p1", data=digits)
    assert fine.model.embed.pos_embed.shape[1] == 65
    largest = fine.space.largest()
    transferred = accuracy(fine.model, digits.x_val, digits.y_val, largest)
    start = fine.model.state_dict()["embed.patch.weight"].clone()
    assert torch.allclose(start, first.model.state_dict()["embed.patch.weight"].sum((2, 3), keepdim=True), atol=1e-6)
    fine.run()
    assert not torch.equal(start, fine.model.state_dict()["embed.patch.weight"])  # the token stage trained it
    assert fine.history[-1]["val_acc_largest"] > transferred + 0.05  # and it learns from where the transfer left it
