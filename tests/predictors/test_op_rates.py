"""Measured per-op-class rates in a profile (``op_rates``, written by ``dynnas profile``): schema and roofline."""

from __future__ import annotations

import json

import pytest
import yaml

from hw_profiles import MalformedProfileError, load_profile
from hw_profiles.loader import _parse
from predictors.graph_latency import predict_graph
from predictors.kernels import to_kernel
from predictors.roofline import PRIOR_ETA_C, RooflineParams, kernel_rates, network_seconds, prior_etas

SRC = {"source": "measured here"}


def _with_rates(**rates: tuple[float, str]) -> object:
    host = load_profile("host")
    return host.model_copy(update={"op_rates": {k: host.peak_compute["fp32"].model_copy(
        update={"value": v, "unit": u, **SRC}) for k, (v, u) in rates.items()}})


def _kernels() -> list:
    layer = {"cin": 32, "cout": 32, "stride": 1, "h_in": 14, "h_out": 14, "macs": 1000}
    return [to_kernel({**layer, "name": "dw5", "op": "dwconv", "kernel": 5, "groups": 32}),
            to_kernel({**layer, "name": "dw3", "op": "dwconv", "kernel": 3, "groups": 32}),
            to_kernel({**layer, "name": "pw", "op": "conv", "kernel": 1}),
            to_kernel({**layer, "name": "add", "op": "add", "kernel": 0})]


def test_kernel_rates_pick_class_and_kernel_size_then_fall_back() -> None:
    profile = _with_rates(**{"dwconv-k5": (0.02, "TFLOP/s"), "dwconv": (0.05, "TFLOP/s"), "elementwise": (40.0, "GB/s")})
    peak, bw = profile.peak_ops_per_s("fp32"), profile.memory_bandwidth.value * 1e9
    comp, mem = kernel_rates(profile, _kernels(), "fp32", None)
    assert comp.tolist() == pytest.approx([0.02e12, 0.05e12, peak, peak])  # k5 rate, class rate, no rate: peak
    assert mem.tolist() == pytest.approx([bw, bw, bw, 40e9])
    ks = _kernels()
    p = RooflineParams(1.0, 1.0, 1e-6)
    by_hand = sum(max(k.flops / c, k.bytes / m) + 1e-6 for k, c, m in zip(ks, comp, mem, strict=True))
    assert network_seconds(ks, comp, mem, p) == pytest.approx(by_hand - 1e-6)  # the add is fused: no launch
    lat = predict_graph(ks, profile, params=(p, True))
    assert [t.us for t in lat.kernels] == pytest.approx(
        [1e6 * (max(k.flops / c, k.bytes / m) + 1e-6) for k, c, m in zip(ks, comp, mem, strict=True)])


def test_profiles_without_rates_keep_one_peak_and_the_published_priors() -> None:
    orin = load_profile("jetson-orin")
    assert kernel_rates(orin, _kernels(), "int8", "MAXN") == (orin.peak_ops_per_s("int8"),
                                                               orin.memory_bandwidth.value * 1e9)
    assert prior_etas(orin)[0] == PRIOR_ETA_C and prior_etas(_with_rates(conv=(0.1, "TFLOP/s"))) == (1.0, 1.0)


def test_op_rates_are_validated() -> None:
    doc = json.loads(load_profile("host").model_dump_json())
    doc["op_rates"] = {"conv-k3": {"value": 0.1, "unit": "TFLOP/s", "source": "s"}}
    profile = _parse(yaml.safe_dump(doc), "x")
    assert profile.op_rate("conv", 3).value == 0.1 and profile.op_rate("conv", 1) is None
    for bad, match in (({"convv": {"value": 0.1, "unit": "TFLOP/s", "source": "s"}}, "op_rates key 'convv'"),
                       ({"norm": {"value": 0.1, "unit": "TFLOP/s", "source": "s"}}, "op_rates.norm.unit must be"),
                       ({"gemm": {"value": 0.1, "unit": "TFLOP/s", "source": ""}}, "source")):
        doc["op_rates"] = bad
        with pytest.raises(MalformedProfileError, match=match):
            _parse(yaml.safe_dump(doc), "x")
