"""Kernel lists: MACs agree with the supernet's own count and with the published reference totals."""

from __future__ import annotations

import numpy as np
import pytest

from hw_profiles import REFERENCE_MODELS
from predictors import reference_kernels, subnet_kernels
from predictors.kernels import total_macs, total_params
from predictors.units import UnitTable, unit_of
from supernet.cnn import PRESETS, count_macs
from supernet.errors import UnknownNameError


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_subnet_kernel_macs_equal_count_macs(preset: str) -> None:
    config = PRESETS[preset]
    space = config.space()
    rng = np.random.default_rng(0)
    for subnet in [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(10)]:
        ks = subnet_kernels(config, subnet)
        assert total_macs(ks) == count_macs(config, subnet)
        assert all(k.flops == 2 * k.macs for k in ks)
        assert all(k.bytes > 0 for k in ks)
        # batch scales MACs and activations; bytes per element scales bytes exactly
        ks2 = subnet_kernels(config, subnet, batch=2, bytes_per_element=2)
        assert total_macs(ks2) == 2 * count_macs(config, subnet)
        assert [k.bytes for k in subnet_kernels(config, subnet, bytes_per_element=2)] == [k.bytes // 2 for k in ks]


def test_conv_bytes_count_input_output_and_weights() -> None:
    config = PRESETS["tiny"]  # stem: 1 -> 8 channels, 3x3, on 8x8
    stem = subnet_kernels(config, config.space().largest())[0]
    weights = 8 * 1 * 3 * 3 + 8  # BN folded into a bias
    assert stem.bytes == 4 * (1 * 8 * 8 + 8 * 8 * 8 + weights)
    assert stem.shape_key == "conv:1>8:k3s1g1:h8:b1:relu6"


def test_equal_shapes_share_a_shape_key() -> None:
    config = PRESETS["cifar-default"]  # blocks 3 and 4 are both (40 -> 40, stride 1)
    ks = {k.name: k for k in subnet_kernels(config, config.space().largest())}
    assert ks["b3.expand"].shape_key == ks["b4.expand"].shape_key
    assert ks["b2.expand"].shape_key != ks["b3.expand"].shape_key


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_reference_model_totals_match_published(name: str) -> None:
    ref = REFERENCE_MODELS[name]
    ks = reference_kernels(name)
    assert total_macs(ks) / 1e9 == pytest.approx(ref.macs.value, rel=0.03)
    assert total_params(ks) / 1e6 == pytest.approx(ref.params.value, rel=0.05)
    # MACs grow with the square of the resolution (every kernel is a conv or per-pixel op) ...
    if name.startswith(("resnet", "mobilenet")):
        assert total_macs(reference_kernels(name, 2 * ref.resolution)) > 3.5 * total_macs(ks)
    # ... and the weights are read once per batch while activations scale with it
    k8 = reference_kernels(name, batch=8)
    assert total_macs(k8) == 8 * total_macs(ks)
    assert sum(k.bytes for k in k8) < 8 * sum(k.bytes for k in ks)


def test_unknown_reference_model_names_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'resnet50'.*mobilenet_v2"):
        reference_kernels("resnet5O")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_unit_table_is_additive_over_blocks(preset: str) -> None:
    config = PRESETS[preset]
    space = config.space()
    table = UnitTable.build(config, lambda ks: float(sum(k.macs for k in ks)))
    subnets = [space.sample(np.random.default_rng(s)) for s in range(20)]
    assert table(subnets).tolist() == [float(count_macs(config, s)) for s in subnets]
    assert unit_of("b12.dw") == "b12" and unit_of("stem") == "stem" and unit_of("classifier") == "tail"
