"""Early exits in the CNN family: heads, extraction, the branching model and its ONNX export."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from predictors.units import UnitTable
from supernet.checkpoint import load_supernet
from supernet.cnn import PRESETS, CNNConfig, CNNSupernet, count_macs, exit_layers, exit_macs
from supernet.early_exit import AllExits, EarlyExitCNN, exit_score
from supernet.errors import ArchStringError, CheckpointMismatchError, ConfigError, UnknownNameError
from supernet.registry import extract
from supernet.train import TrainConfig, Trainer
from tests.nets import randomise_bn

TINY = PRESETS["tiny"]
CIFAR = PRESETS["cifar-default"]


def _net(config: CNNConfig = TINY, seed: int = 0) -> CNNSupernet:
    torch.manual_seed(seed)
    return randomise_bn(CNNSupernet(config))


def test_exit_positions_are_the_stage_ends_and_heads_are_small():
    for config in (TINY, CIFAR):
        assert config.exit_blocks == config.stage_ends()
        assert config.space().exit_positions == config.exit_blocks
        largest = count_macs(config, config.space().largest())
        for e in range(len(config.exit_blocks)):
            head = sum(r["macs"] for r in exit_layers(config, e))
            assert 0 < head <= 0.05 * largest


def test_exit_blocks_are_validated():
    with pytest.raises(ConfigError, match="exit_blocks"):
        CNNConfig(blocks=((8, 1, 2), (8, 2, 2)), exit_blocks=(1,))  # the last block feeds the classifier
    with pytest.raises(ConfigError, match="exit_blocks"):
        CNNConfig(blocks=((8, 1, 2), (8, 2, 2), (8, 1, 2)), exit_blocks=(1, 0))


@pytest.mark.parametrize("seed", range(4))
def test_extracted_heads_match_the_supernet(seed):
    net = _net(seed=seed)
    space = net.space
    sub = space.sample(np.random.default_rng(seed))
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        want = net.forward_exits(x, sub)
        got = extract(net, sub).forward_all(x)
    assert len(want) == len(got) == len(TINY.exit_blocks) + 1
    for a, b in zip(want, got, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_exit_costs_in_macs_match_the_unit_table():
    table = UnitTable.build(CIFAR, lambda ks: float(sum(k.macs for k in ks)))
    rng = np.random.default_rng(0)
    for _ in range(10):
        sub = CIFAR.space().sample(rng)
        assert table.exit_costs([sub])[0].tolist() == [float(v) for v in exit_macs(CIFAR, sub)]
    static = CIFAR.space().largest()
    assert exit_macs(CIFAR, static)[-1] == count_macs(CIFAR, static)  # no head paid with exits off


def test_exit_scores():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [20.0, 0.0, 0.0, 0.0]])
    conf = exit_score(logits, "confidence")
    ent = exit_score(logits, "entropy")
    assert conf[0].item() == pytest.approx(0.25) and conf[1].item() == pytest.approx(1.0, abs=1e-6)
    assert ent[0].item() == pytest.approx(-1.0) and ent[1].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(UnknownNameError, match="confidence"):
        exit_score(logits, "margin")


@pytest.mark.parametrize("thresholds", [(0.0, 0.0), (math.inf, 0.0), (0.13, 0.12), (math.inf, math.inf)])
def test_branching_forward_equals_per_sample_routing(thresholds):
    net = _net(seed=1)
    sub = net.space.make(net.space.largest().widths, (1, 1))
    ee = EarlyExitCNN(extract(net, sub), sub.exits, thresholds).eval()
    xs = torch.rand(12, 1, 8, 8)
    with torch.no_grad():
        ref_logits, ref_exit = ee.per_sample(ee.forward_all(xs))
        for i in range(len(xs)):
            logits, taken = ee(xs[i: i + 1])
            assert int(taken) == int(ref_exit[i])
            assert torch.allclose(logits, ref_logits[i: i + 1], atol=1e-6)
    if thresholds == (0.0, 0.0):
        assert (ref_exit == 0).all()
    if thresholds[0] == math.inf and thresholds[1] == math.inf:
        assert (ref_exit == 2).all()


def test_disabled_exit_is_never_taken():
    net = _net(seed=2)
    sub = net.space.make(net.space.largest().widths, (0, 1))
    ee = EarlyExitCNN(extract(net, sub), sub.exits, (0.0, math.inf)).eval()
    _, taken = ee.per_sample(ee.forward_all(torch.rand(20, 1, 8, 8)))
    assert (taken == 2).all()  # exit 0 would pass everything, but it is off


def test_branching_model_exports_to_onnx_if_and_agrees_per_sample(tmp_path):
    import onnx

    from predictors.onnx_io import export_branching_onnx, export_multi_output_onnx, session

    net = _net(seed=3)
    sub = net.space.make(net.space.largest().widths, (1, 1))
    model = extract(net, sub)
    xs = torch.rand(40, 1, 8, 8)
    with torch.no_grad():
        conf0 = exit_score(model.forward_all(xs)[0], "confidence")
    t0 = float(torch.quantile(conf0, 0.5))  # about half the samples leave at exit 0
    ee = EarlyExitCNN(model, sub.exits, (t0, 0.0)).eval()
    export_branching_onnx(ee, torch.zeros(1, 1, 8, 8), tmp_path / "m.onnx")
    export_multi_output_onnx(AllExits(model), torch.zeros(1, 1, 8, 8), tmp_path / "all.onnx",
                             ["logits_exit0", "logits_exit1", "logits"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert "If" in ops
    sess, multi = session(tmp_path / "m.onnx"), session(tmp_path / "all.onnx")
    with torch.no_grad():
        heads = ee.forward_all(xs)
        ref_logits, ref_exit = ee.per_sample(heads)
    taken = []
    for i in range(len(xs)):
        logits, e = sess.run(None, {"image": xs[i: i + 1].numpy()})
        taken.append(int(np.asarray(e).reshape(-1)[0]))
        assert np.abs(logits - ref_logits[i: i + 1].numpy()).max() <= 1e-4
    assert taken == ref_exit.tolist()
    assert 0 < taken.count(0) < len(xs)  # both branches were exercised
    for got, want in zip(multi.run(None, {"image": xs.numpy()}), heads, strict=True):
        assert np.abs(got - want.numpy()).max() <= 1e-4


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=4, max_size=4), st.lists(st.integers(0, 1), min_size=2, max_size=2))
def test_arch_strings_with_exits_round_trip(widths, exits):
    space = TINY.space()
    cfg = space.make(widths, exits)
    text = space.format(cfg)
    assert text.endswith("_x" + "".join(map(str, exits)))
    assert space.parse(text) == cfg
    assert space.decode(space.encode(cfg)) == cfg
    assert space.subnet_id(cfg) != space.subnet_id(space.make(widths, [1 - b for b in exits]))


@pytest.mark.parametrize("text", ["w3-3-3-3_x1", "w3-3-3-3_x101", "w3-3-3-3", "w3-3-3-3_x12"])
def test_wrong_exit_masks_are_one_line_errors(text):
    with pytest.raises(ArchStringError, match="w3-3-3-3_x00"):
        TINY.space().parse(text)


def _exit_cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"preset": "tiny", "dataset": "digits", "stage_epochs": (1, 1), "exit_epochs": 2, "seed": 5,
                          **kw})


@pytest.mark.parametrize("route", ["frozen", "joint"])
def test_exit_training_resumes_bit_identically(tmp_path, digits, route):
    full = Trainer(_exit_cfg(exit_route=route), tmp_path / "full", data=digits)
    full.run()
    part = tmp_path / "part"
    Trainer(_exit_cfg(exit_route=route), part, data=digits).run(stop_after=3)  # inside the exit stage
    assert json.loads((part / "state.json").read_text())["epoch"] == 3
    resumed = Trainer(_exit_cfg(exit_route=route), part, data=digits)
    resumed.run(resume=True)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert full.history[-1]["route"] == route and len(full.history[-1]["val_acc_exits_largest"]) == 2


def test_frozen_route_trains_only_the_heads(tmp_path, digits, tiny_supernet_path):
    before, _ = load_supernet(tiny_supernet_path)
    cfg = TrainConfig(preset="tiny", dataset="digits", stage_epochs=(), init_from=str(tiny_supernet_path),
                      exit_epochs=2, seed=0)
    trainer = Trainer(cfg, tmp_path / "heads", data=digits)
    trainer.run()
    after = trainer.model.state_dict()
    changed_heads = 0
    for k, v in before.state_dict().items():
        if k.startswith("exits."):
            changed_heads += int(not torch.equal(v, after[k]))
        else:
            assert torch.equal(v, after[k]), k  # weights and BN statistics of the backbone untouched
    assert changed_heads > 0
    accs = trainer.history[-1]["val_acc_exits_largest"]
    assert all(a > 0.15 for a in accs)  # trained heads beat chance (0.1) on 10 classes


def test_init_from_another_architecture_is_refused(tmp_path, digits, tiny_supernet_path):
    cfg = TrainConfig(preset="tiny", width_choices=(0.5, 1.0), dataset="digits", stage_epochs=(),
                      init_from=str(tiny_supernet_path), exit_epochs=1)
    with pytest.raises(CheckpointMismatchError, match="another architecture"):
        Trainer(cfg, tmp_path / "x", data=digits)


def test_a_config_written_before_exits_loads_without_heads():
    d = {k: v for k, v in TINY.to_dict().items() if not k.startswith("exit_")}
    old = CNNConfig.from_dict(d)
    assert old.exit_blocks == () and old.space().exit_positions == ()
    net = CNNSupernet(old)
    assert len(net.exits) == 0
    assert net.space.format(net.space.largest()) == "w3-3-3-3"


def test_recalibration_reaches_the_exit_heads(tiny_supernet_path, digits):
    """Every BN of an extracted subnet, the heads' included, gets statistics from the recalibration batches."""
    from supernet.checkpoint import load_supernet
    from supernet.evaluate import subnet_model

    model, _ = load_supernet(tiny_supernet_path)
    sub = subnet_model(model, model.space.largest(), digits, "recal")
    bns = [(n, m) for n, m in sub.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    heads = [m for n, m in bns if n.startswith("exits.")]
    assert heads and all(int(m.num_batches_tracked) == 10 for _, m in bns)
    assert all(float(m.running_mean.abs().sum()) > 0 for m in heads)  # not the reset state (mean 0)
