from __future__ import annotations

import json

import pytest
import torch

from supernet.checkpoint import load_supernet
from supernet.errors import CheckpointError, CheckpointMismatchError, OutputError
from supernet.train import TrainConfig, Trainer


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"preset": "tiny", "dataset": "digits", "stage_epochs": (1, 1, 1, 1), "seed": 3, **kw})


def test_resume_reaches_the_same_weights(tmp_path, digits):
    full = Trainer(_cfg(), tmp_path / "full", data=digits)
    full.run()
    part = tmp_path / "part"
    Trainer(_cfg(), part, data=digits).run(stop_after=2)  # "killed" after the first two stages
    state = json.loads((part / "state.json").read_text())
    assert state["epoch"] == 2 and not (part / "supernet.safetensors").exists()
    resumed = Trainer(_cfg(), part, data=digits)
    resumed.run(resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]


def test_training_learns_and_writes_a_loadable_artifact(tiny_run, digits):
    model, meta = load_supernet(tiny_run)
    hist = meta["history"]
    assert len(hist) == 7 and hist[-3]["stage"] == 4 and hist[-1]["stage"] == 5 and hist[-1]["route"] == "frozen"
    assert hist[-3]["loss"] < hist[0]["loss"]
    assert hist[-1]["val_acc_largest"] > 0.3  # 10 classes: chance is 0.1
    assert meta["dataset"]["spec"] == "digits" and len(meta["mean"]) == 1
    assert meta["train_config"]["stage_epochs"] == [2, 1, 1, 1]


def test_same_seed_same_weights(tmp_path, digits):
    a = Trainer(_cfg(stage_epochs=(1, 1)), tmp_path / "a", data=digits)
    a.run()
    b = Trainer(_cfg(stage_epochs=(1, 1)), tmp_path / "b", data=digits)
    b.run()
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])


def test_resume_without_checkpoint(tmp_path, digits):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(_cfg(), tmp_path, data=digits).run(resume=True)


def test_resume_with_other_settings_is_refused(tmp_path, digits):
    Trainer(_cfg(), tmp_path, data=digits).run(stop_after=1)
    with pytest.raises(CheckpointMismatchError, match="preset"):
        cfg = TrainConfig(preset="cifar-default", dataset="digits", stage_epochs=(1,))
        t = Trainer.__new__(Trainer)
        t.cfg, t.out, t.space = cfg, tmp_path, cfg.arch().space()
        t.load_checkpoint()


def test_corrupt_checkpoint_is_detected(tmp_path, digits):
    Trainer(_cfg(), tmp_path, data=digits).run(stop_after=1)
    ck = tmp_path / "checkpoint.safetensors"
    ck.write_bytes(ck.read_bytes()[:-100] + b"\0" * 100)
    with pytest.raises(CheckpointError, match="does not match state.json"):
        Trainer(_cfg(), tmp_path, data=digits).run(resume=True)
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer(_cfg(), tmp_path, data=digits).run(resume=True)


def test_refuses_to_overwrite_a_run(tmp_path, digits):
    Trainer(_cfg(), tmp_path, data=digits).run(stop_after=1)
    with pytest.raises(OutputError, match="--resume"):
        Trainer(_cfg(), tmp_path, data=digits).run()


def test_corrupt_artifact_is_detected(tmp_path, tiny_supernet_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny_supernet_path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_supernet(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_supernet(tmp_path / "missing.safetensors")


def _vit_cfg() -> TrainConfig:
    return TrainConfig(family="vit", preset="tiny", dataset="digits", stage_epochs=(1, 1), token_epochs=1,
                       exit_epochs=1, exit_route="joint", optimizer="adamw", lr=2e-3, weight_decay=0.05,
                       warmup_epochs=1, n_random=1, seed=0)


def test_vit_with_token_stage_and_adamw_resumes_bit_identically(tmp_path, digits):
    cfg = _vit_cfg()
    assert cfg.stages == (1, 1, 1, 1) and cfg.is_token_stage(2) and cfg.is_exit_stage(3) and cfg.tokens_on(3)
    full = Trainer(cfg, tmp_path / "full", data=digits)
    full.run()
    part = tmp_path / "part"
    Trainer(cfg, part, data=digits).run(stop_after=3)  # killed after the token stage
    from supernet.checkpoint import load_tensors

    tensors, _ = load_tensors(part / "checkpoint.safetensors")
    assert any(k.endswith(".exp_avg_sq") for k in tensors)  # AdamW's moments are in the checkpoint
    resumed = Trainer(cfg, part, data=digits)
    resumed.run(resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]


def test_token_stage_needs_token_positions():
    with pytest.raises(ValueError, match="no token-reduction positions"):
        TrainConfig(preset="tiny", dataset="digits", stage_epochs=(1,), token_epochs=1)


def test_token_corner_adds_the_largest_width_under_the_strongest_reduction():
    import numpy as np

    from supernet.train import _students

    cfg = TrainConfig(family="vit", preset="tiny", dataset="digits", stage_epochs=(1, 1), token_epochs=1,
                      token_corner=True, n_random=1)
    space, widths = cfg.arch().space(), (0, 1)
    plain = _students(space, widths, np.random.default_rng(5), cfg.model_copy(update={"token_corner": False}), True)
    with_corner = _students(space, widths, np.random.default_rng(5), cfg, True)
    assert with_corner[:-1] == plain  # the corner is drawn last: a run without it draws as before
    corner = with_corner[-1]
    assert corner.widths == space.largest().widths and corner.heads == space.largest().heads
    assert corner.tokens == (0,) * space.n_token_positions  # the strongest keep ratio everywhere
    # width stages (tokens off) have no corner even with the flag
    assert len(_students(space, widths, np.random.default_rng(5), cfg, False)) == 1 + cfg.n_random


def test_token_corner_needs_a_token_stage_and_resumes_only_with_the_same_setting(tmp_path, digits):
    with pytest.raises(ValueError, match="--token-epochs"):
        TrainConfig(family="vit", preset="tiny", dataset="digits", stage_epochs=(1, 1), token_corner=True)
    cfg = _vit_cfg().model_copy(update={"token_corner": True, "exit_epochs": 0})
    Trainer(cfg, tmp_path / "run", data=digits).run(stop_after=1)
    with pytest.raises(CheckpointMismatchError, match="token_corner"):
        Trainer(cfg.model_copy(update={"token_corner": False}), tmp_path / "run", data=digits).run(resume=True)


def test_warmup_ramps_the_learning_rate_linearly():
    from supernet.train import _lr

    cfg = TrainConfig(family="vit", preset="tiny", dataset="digits", stage_epochs=(2, 1), warmup_epochs=1,
                      optimizer="adamw", lr=1e-3)
    assert [round(_lr(cfg, 0, s, 10), 6) for s in (0, 4, 9)] == [1e-4, 5e-4, 1e-3]
    assert _lr(cfg, 1, 9, 10) < _lr(cfg, 1, 0, 10) <= 1e-3  # cosine after the warm-up
