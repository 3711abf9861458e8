"""Fleet sanity: predictions between devices agree with published facts, on every network dynnas costs.

For every reference model, and the shipped supernets' smallest and largest subnets (the networks a search
actually ranks), at fp32 and at int8:

* an AGX Orin is faster than an Orin NX, and an Orin NX faster than an Orin Nano (same GPU architecture,
  more SMs and higher clocks: NVIDIA's Jetson Orin module data sheets);
* a Raspberry Pi 5 is faster than a Pi 4 (Cortex-A76 at 2.4 GHz against Cortex-A72 at 1.8 GHz), and slower
  than an AGX Orin and a server CPU;

and on every profile, precision and network:

* no prediction implies more than the device's peak compute at that precision and power mode;
* no prediction falls below the device's per-inference floor (one invoke plus every launched kernel's
  overhead: the cost of running the network's kernels with no work in them).
"""

from __future__ import annotations

import functools

import pytest

from hw_profiles import DeviceProfile, list_profiles, load_profile
from predictors.graph_latency import predict_graph
from predictors.kernels import Kernel
from predictors.onnx_graph import runtime_fusion
from predictors.reference_graphs import reference_graph_names, reference_kernels
from predictors.roofline import BYTES_PER_ELEMENT, RooflinePredictor, fit_roofline, floor_seconds
from supernet.checkpoint import load_supernet
from supernet.pretrained import SHIPPED

PUBLISHED = [n for n in list_profiles() if not load_profile(n).measured]
# (faster, slower): published facts about these boards (module docstring)
FASTER = [("jetson-orin", "jetson-orin-nx"), ("jetson-orin-nx", "jetson-orin-nano"),
          ("raspberry-pi-5", "raspberry-pi-4"), ("jetson-orin", "raspberry-pi-5"), ("xeon-8481c", "raspberry-pi-5")]
PRECISIONS = ("fp32", "int8")
# Where the published data contradicts a fact, pinned so a new contradiction (or a fixed one) fails the test:
# xeon-8481c's only published latencies are cTuning's TFLite harness on 4 vCPUs (thread count unstated), at
# 49 G MAC/s, 7 % of the cores' AVX-512 peak; a Pi 5's XNNPACK runs ResNet-18 at fp32 as fast (Arm's ResNet-18
# card: 8.751 ms INT8, '3.61x faster than baseline', an FP32 baseline of 31.6 ms; predicted 32.8 ms).
KNOWN_CONTRADICTIONS = {("xeon-8481c", "raspberry-pi-5", "fp32"): {"resnet18"}}
REFERENCE = reference_graph_names()
SUPERNETS = ("cnn", "vit")


@functools.cache
def _profile(name: str) -> DeviceProfile:
    return load_profile(name)


@functools.cache
def _kernels(model: str, name: str, precision: str) -> tuple[Kernel, ...]:
    profile = _profile(name)
    return tuple(reference_kernels(model, None, BYTES_PER_ELEMENT[precision], fusion=runtime_fusion(profile.runtime)))


def _reference_ms(model: str, name: str, precision: str) -> float:
    profile = _profile(name)
    return predict_graph(list(_kernels(model, name, precision)), profile, precision=precision,
                         params=_params(name)).total_ms


@functools.cache
def _fit(name: str):  # noqa: ANN202 - (RooflineParams, fit rows): one fit per profile for the whole module
    return fit_roofline(_profile(name))


def _params(name: str):  # noqa: ANN202 - (RooflineParams, fitted), as predict_graph takes them
    return _fit(name)[0], True


@functools.cache
def _supernet(family: str):  # noqa: ANN202 - (config, smallest, largest)
    model, _ = load_supernet(SHIPPED[family])
    space = model.config.space()
    return model.config, space.smallest(), space.largest()


@functools.cache
def _predictor(name: str, family: str, precision: str) -> RooflinePredictor:
    config, _, _ = _supernet(family)
    return RooflinePredictor(_profile(name), config, *_fit(name), precision=precision)


def _subnet_ms(name: str, family: str, precision: str) -> tuple[float, float]:
    _, small, large = _supernet(family)
    small_ms, large_ms = _predictor(name, family, precision).predict_ms([small, large])
    return float(small_ms), float(large_ms)


def _can_run(name: str, precision: str) -> bool:
    return precision in _profile(name).peak_compute


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("fast,slow", FASTER)
def test_reference_models_keep_the_published_device_order(fast: str, slow: str, precision: str) -> None:
    if not (_can_run(fast, precision) and _can_run(slow, precision)):
        pytest.skip(f"{fast} or {slow} has no {precision} peak")
    wrong = [(m, round(_reference_ms(m, fast, precision), 4), round(_reference_ms(m, slow, precision), 4))
             for m in REFERENCE if _reference_ms(m, fast, precision) >= _reference_ms(m, slow, precision)]
    known = KNOWN_CONTRADICTIONS.get((fast, slow, precision), set())
    assert {m for m, _, _ in wrong} == known, (
        f"{fast} predicted no faster than {slow} at {precision} on (model, fast ms, slow ms): {wrong}; known: {known}")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("family", SUPERNETS)
@pytest.mark.parametrize("fast,slow", FASTER)
def test_shipped_subnets_keep_the_published_device_order(fast: str, slow: str, family: str, precision: str) -> None:
    if not (_can_run(fast, precision) and _can_run(slow, precision)):
        pytest.skip(f"{fast} or {slow} has no {precision} peak")
    f_small, f_large = _subnet_ms(fast, family, precision)
    s_small, s_large = _subnet_ms(slow, family, precision)
    assert f_small < s_small and f_large < s_large, (
        f"{family} smallest/largest subnet: {fast} {f_small:.4f}/{f_large:.4f} ms, {slow} {s_small:.4f}/{s_large:.4f} ms")


@pytest.mark.parametrize("name", PUBLISHED)
def test_no_prediction_beats_peak_compute_or_the_launch_floor(name: str) -> None:
    profile = _profile(name)
    params, _ = _params(name)
    for precision in profile.peak_compute:
        peak = profile.peak_ops_per_s(precision)  # the fastest power mode's
        for model in REFERENCE:
            ks = list(_kernels(model, name, precision))
            ms = _reference_ms(model, name, precision)
            flops = sum(k.flops for k in ks)
            assert flops / (ms * 1e-3) <= peak * (1 + 1e-9), (model, precision, ms)
            assert ms * 1e-3 >= floor_seconds(ks, params) * (1 - 1e-9), (model, precision, ms)
        for family in SUPERNETS:
            config, small, large = _supernet(family)
            pred = _predictor(name, family, precision)
            small_ms, large_ms = pred.predict_ms([small, large])
            assert small_ms <= large_ms
            assert small_ms * 1e-3 >= params.invoke_s + params.overhead_s, (family, precision, small_ms)


def test_the_floor_is_invoke_plus_launches() -> None:
    profile = _profile("raspberry-pi-5")
    params, _ = _params("raspberry-pi-5")
    ks = list(_kernels("mobilenet_v2", "raspberry-pi-5", "int8"))
    launched = sum(k.op != "add" for k in ks)
    assert floor_seconds(ks, params) == pytest.approx(params.invoke_s + launched * params.overhead_s)
    assert predict_graph(ks, profile, params=(params, True)).total_ms * 1e-3 > floor_seconds(ks, params)
