"""ONNX export, inference and the timing protocol, on a tiny extracted subnet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from predictors import export_onnx, measure_latencies, measure_latency, run_onnx, subnet_kernels
from predictors.kernel_graphs import chain_graph, input_shape
from predictors.units import units
from supernet.cnn import PRESETS, CNNSupernet
from supernet.errors import ConfigError
from supernet.registry import extract


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = CNNSupernet(PRESETS["tiny"])
    return extract(net, net.space.parse("w3-1-2-0_x00"))


def test_export_is_one_self_contained_file_that_matches_torch(tmp_path: Path, tiny_model: torch.nn.Module) -> None:
    path = tmp_path / "model.onnx"
    export_onnx(tiny_model, torch.zeros(1, 1, 8, 8), path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no .onnx.data, no temp file left
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == ["logits"]
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)  # batch 5: the batch axis is dynamic
    with torch.no_grad():
        want = tiny_model(torch.from_numpy(x)).numpy()
    got = run_onnx(path, x, batch_size=2)
    assert got.shape == (5, 10)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_measure_latency_reports_an_ordered_summary(tmp_path: Path, tiny_model: torch.nn.Module) -> None:
    path = tmp_path / "model.onnx"
    export_onnx(tiny_model, torch.zeros(1, 1, 8, 8), path)
    stats = measure_latency(path, (1, 1, 8, 8), warmup=2, repeats=20)
    assert 0 < stats.p10_ms <= stats.median_ms <= stats.p90_ms
    assert stats.repeats == 20 and stats.threads == 1
    with pytest.raises(ConfigError, match="repeats >= 1"):
        measure_latency(path, (1, 1, 8, 8), repeats=0)
    with pytest.raises(ConfigError, match="does not exist"):
        measure_latency(tmp_path / "missing.onnx", (1, 1, 8, 8))


@pytest.mark.timing
def test_unit_graphs_are_valid_and_time_in_rounds() -> None:
    config = PRESETS["tiny"]
    groups = units(subnet_kernels(config, config.space().largest()))
    rng = np.random.default_rng(0)
    models = {}
    for name, ks in groups.items():
        data = chain_graph(ks, rng)
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
        models[name] = (data, input_shape(ks[0]))
    timed = measure_latencies(models, models["b3"], rounds=2, warmup=1, repeats=10, block=5)
    assert set(timed.timings) == set(groups) == {"stem", "b0", "b1", "b2", "b3", "tail"}
    assert all(t.median_ms > 0 and t.blocks == 4 for t in timed.timings.values()) and timed.machine_spread >= 1.0
    # the reference against itself is 1 up to timing noise; every ms figure is ratio * reference
    assert 0.7 < timed["b3"].ratio < 1.4
    assert timed["stem"].median_ms == pytest.approx(timed["stem"].ratio * timed.reference_ms)
    with pytest.raises(ConfigError, match="multiple of `block`"):
        measure_latencies(models, models["b3"], repeats=7, block=5)
    # the whole subnet as one chain computes logits of the right shape
    whole = chain_graph(subnet_kernels(config, config.space().largest()), rng)
    assert run_onnx(whole, np.zeros((1, 1, 8, 8), np.float32)).shape == (1, 10)
