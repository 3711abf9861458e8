"""The ViT family through the family-generic cost path: exact MAC terms, every host LUT unit runs, and the
predictors see token reduction."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from predictors.host_latency import _lut_units
from predictors.kernel_graphs import chain_graph, input_shape
from predictors.kernels import subnet_kernels
from predictors.latency import latency_predictor
from predictors.units import UnitTable
from supernet.cost import count_macs, exit_macs
from supernet.vit import PRESETS


@pytest.mark.parametrize("preset", ["tiny", "cifar-vit"])
def test_cost_terms_reproduce_macs_bytes_and_exit_costs(preset: str) -> None:
    c = PRESETS[preset]
    space = c.space()
    subnets = [space.sample(np.random.default_rng(i)) for i in range(150)]
    macs = UnitTable.build(c, lambda ks: float(sum(k.macs for k in ks)))
    np.testing.assert_array_equal(macs(subnets), [count_macs(c, s) for s in subnets])
    np.testing.assert_array_equal(macs.exit_costs(subnets), [exit_macs(c, s) for s in subnets])
    nbytes = UnitTable.build(c, lambda ks: float(sum(k.bytes for k in ks)))
    np.testing.assert_array_equal(nbytes(subnets[:40]), [sum(k.bytes for k in subnet_kernels(c, s)) for s in subnets[:40]])


def test_every_host_lut_unit_of_the_tiny_vit_runs_with_its_shapes() -> None:
    units = _lut_units(PRESETS["tiny"])
    assert any("attention" in key for key in units) and any("tome" in key for key in units)
    rng = np.random.default_rng(0)
    for ks in units.values():
        sess = ort.InferenceSession(chain_graph(ks, rng), providers=["CPUExecutionProvider"])
        sess.run(None, {"x": rng.random(input_shape(ks[0])).astype(np.float32)})


def test_roofline_costs_token_reduction_and_heads() -> None:
    c = PRESETS["cifar-vit"]
    space = c.space()
    pred = latency_predictor("jetson-orin", c, batch=32)
    full = space.largest()
    pruned = dataclasses.replace(full, tokens=(0,) * space.n_token_positions, method=0)
    merged = dataclasses.replace(pruned, method=1)
    fewer_heads = dataclasses.replace(full, heads=(0,) * space.n_blocks)
    ms = pred.predict_ms([full, pruned, merged, fewer_heads])
    assert ms[1] < 0.8 * ms[0] and ms[2] < 0.8 * ms[0]  # keep 0.5 at 4 blocks: about half the block MACs
    assert ms[3] < ms[0]
