"""Small networks on published devices (issue 27): the per-invoke cost, the calibrated MAC range and its
warning, width-multiplied reference networks, and bad profiles refused in one line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from hw_profiles import REFERENCE_MODELS, load_profile
from nas.cli import app
from predictors.graph_latency import device_params, predict_graph
from predictors.onnx_graph import runtime_fusion
from predictors.profile_quality import calibrated_macs, confidence_of, n_fitted, range_warning
from predictors.reference_graphs import reference_kernels
from predictors.roofline import (
    BYTES_PER_ELEMENT,
    RooflinePredictor,
    fit_roofline,
    floor_seconds,
    inference_seconds,
    kernel_rates,
    network_seconds,
    roofline_predictor,
)
from supernet.cnn import PRESETS
from tests.cli import fails_cleanly, runner

SMALL = {"raspberry-pi-4", "raspberry-pi-5", "snapdragon-8-gen-2", "xeon-8481c"}  # profiles with small points


@pytest.mark.parametrize("name", sorted(SMALL))
def test_profiles_with_small_points_fit_an_invoke_cost_and_span_small_networks(name: str) -> None:
    profile = load_profile(name)
    params, rows = fit_roofline(profile)
    assert params.invoke_s > 0 and params.overhead_s > 0
    lo, hi = calibrated_macs(profile)
    assert lo < 300e6 < hi  # the calibration now reaches below 0.3 G MACs
    # every point is predicted by kernels + launches + one invoke, nothing else
    for pt, row in zip(profile.calibration, rows, strict=True):
        ks = reference_kernels(pt.model, pt.resolution, BYTES_PER_ELEMENT[pt.precision], batch=pt.batch,
                               fusion=runtime_fusion(profile.runtime))
        rates = kernel_rates(profile, ks, pt.precision, pt.power_mode)
        assert 1e3 * inference_seconds(ks, *rates, params) == pytest.approx(row["predicted_ms"], rel=1e-9)
        assert inference_seconds(ks, *rates, params) == pytest.approx(network_seconds(ks, *rates, params)
                                                                      + params.invoke_s)


def test_a_profile_without_invoke_cost_fits_three_parameters() -> None:
    orin = load_profile("jetson-orin")
    assert orin.invoke_overhead is None and n_fitted(orin) == 3
    params, _ = fit_roofline(orin)
    assert params.invoke_s == 0.0
    assert n_fitted(load_profile("raspberry-pi-5")) == 4
    assert confidence_of(load_profile("raspberry-pi-5")) == "low"  # 3 points for 4 parameters


def test_free_overheads_is_what_the_points_alone_say() -> None:
    """raspberry-pi-4 cites as its priors the overheads of its own prior-free fit: the two fits agree."""
    pi4 = load_profile("raspberry-pi-4")
    free, _ = fit_roofline(pi4, free_overheads=True)
    fitted, _ = fit_roofline(pi4)
    assert free.overhead_s * 1e6 == pytest.approx(pi4.kernel_overhead.value, rel=0.02)
    assert free.invoke_s * 1e6 == pytest.approx(pi4.invoke_overhead.value, rel=0.02)
    assert fitted.overhead_s == pytest.approx(free.overhead_s, rel=0.05)


def test_graph_latency_adds_one_invoke_and_the_floor_bounds_it() -> None:
    profile = load_profile("raspberry-pi-5")
    params, _ = device_params(profile)
    ks = reference_kernels("mobilenet_v1_0.25", 128, 1, fusion=runtime_fusion(profile.runtime))
    lat = predict_graph(ks, profile, params=(params, True))
    assert lat.invoke_ms == pytest.approx(params.invoke_s * 1e3)
    assert lat.total_ms == pytest.approx(sum(k.us for k in lat.kernels) / 1e3 + lat.invoke_ms)
    assert lat.total_ms * 1e-3 > floor_seconds(ks, params)


def test_exit_chain_pays_one_invoke_per_stage_run() -> None:
    """On a profile with an invoke cost, leaving at an exit pays the stages run (one invoke each), not the next."""
    config = PRESETS["tiny"]
    profile = load_profile("raspberry-pi-5")
    pred = roofline_predictor(profile, config)
    bare = RooflinePredictor(profile, config, pred.params.__class__(pred.params.eta_c, pred.params.eta_m,
                                                                  pred.params.overhead_s, 0.0), pred.fit_rows)
    space = config.space()
    sub = space.make((3,) * space.n_blocks, (1,) * len(config.exit_blocks))
    inv = pred.invoke_ms
    diff = pred.predict_exit_ms([sub])[0] - bare.predict_exit_ms([sub])[0]
    n = len(config.exit_blocks)
    np.testing.assert_allclose(diff, [inv * (e + 1) for e in range(n)] + [inv * (n + 1)], rtol=1e-9)
    static = space.make((3,) * space.n_blocks, (0,) * n)
    assert pred.predict_ms([static])[0] - bare.predict_ms([static])[0] == pytest.approx(inv)


def test_range_warning_says_where_the_profile_was_calibrated() -> None:
    orin = load_profile("jetson-orin")
    lo, hi = calibrated_macs(orin)
    assert range_warning(orin, lo, hi) is None
    text = range_warning(orin, 9.96e6)
    assert text is not None and text.count("\n") == 0
    assert "jetson-orin is calibrated on networks of 1.24 G–4.09 G MACs" in text and "9.96 M" in text
    assert range_warning(load_profile("host"), 1e3) is None  # a self-measured profile never warns


def test_width_variants_are_cited_and_calibration_only() -> None:
    for name in ("mobilenet_v1_0.25", "mobilenet_v1_0.5", "mobilenet_v2_0.35", "mobilenet_v2_0.5",
                 "mobilenet_v2_0.75", "mobilenet_v2_1.4", "shufflenet_v2"):
        ref = REFERENCE_MODELS[name]
        assert not ref.profiled and ref.macs.source and ref.resolution == 224
        macs = sum(k.macs for k in reference_kernels(name, 224, 4, fusion="none"))
        assert macs / 1e9 == pytest.approx(ref.macs.value, rel=0.02)
    # width 0.25 at 128 px is TF-slim's 14 M MACs (research/slim/nets/mobilenet_v1.md)
    assert sum(k.macs for k in reference_kernels("mobilenet_v1_0.25", 128, 4)) / 1e6 == pytest.approx(14, rel=0.05)


def test_latency_cli_warns_once_outside_the_calibrated_range() -> None:
    res = runner.invoke(app, ["latency", "--model", "resnet50", "--device", "jetson-orin", "--json"])
    assert res.exit_code == 0 and "warning" not in res.stderr  # 4.09 G MACs: inside 1.24-4.09 G
    res = runner.invoke(app, ["latency", "--model", "resnet50", "--device", "xeon-8481c", "--json"])
    assert res.exit_code == 0
    assert res.stderr.count("warning: xeon-8481c is calibrated on networks of") == 1
    assert "4.09 G MACs lies outside" in res.stderr


def _bad(tmp_path: Path, edit: dict, name: str = "raspberry-pi-5") -> Path:
    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "hw_profiles" / f"{name}.yaml").read_text())
    doc["name"] = "bad-device"
    for path, value in edit.items():
        node = doc
        *keys, last = path.split(".")
        for k in keys:
            node = node[int(k)] if k.isdigit() else node[k]
        node[last] = value
    out = tmp_path / "bad.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


@pytest.mark.parametrize("edit,match", [
    ({"calibration.0.resolution": 16}, "calibration[0].resolution 16 is below 32"),
    ({"calibration.2.model": "squeezenet"}, "is not a reference model"),
    ({"kernel_overhead.value": -3.0}, "kernel_overhead.value must be finite and > 0"),
    ({"kernel_overhead.value": math.nan}, "kernel_overhead.value must be finite and > 0"),
    ({"invoke_overhead.value": 0.0}, "invoke_overhead.value must be finite and > 0"),
    ({"invoke_overhead.unit": "ms"}, "invoke_overhead.unit must be 'us'"),
])
def test_bad_profiles_are_one_line_and_write_nothing(tmp_path: Path, edit: dict, match: str) -> None:
    path = _bad(tmp_path, edit)
    out = tmp_path / "out.json"
    fails_cleanly(["latency", "--model", "mobilenet_v2", "--device", str(path), "--out", str(out)], match)
    assert not out.exists()
