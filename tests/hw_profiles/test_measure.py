"""hw_profiles.measure: micro-benchmark graphs (FLOPs and bytes by hand), weight randomisation, the fit on
synthetic timings, a small measured profile that loads, and every settings / output error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from hw_profiles import load_profile
from hw_profiles.benches import (
    COMPUTE_CLASSES,
    SINGLE_KERNEL_CLASSES,
    attention_bench,
    conv_bench,
    data_bench,
    elementwise_bench,
    gemm_bench,
    if_bench,
    micro_benchmarks,
    randomize_weights,
)
from hw_profiles.measure import check_out_path, fit_micro, measure_profile, profile_name, reference_order
from hw_profiles.measured import MeasurementError, ProfileSettings, check_provider
from hw_profiles.profile_doc import write_profile
from hw_profiles.timing import Runner

ROOT = Path(__file__).resolve().parents[2]


def test_measurement_module_does_not_import_torch() -> None:
    code = "import sys, hw_profiles.measure; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_bench_flops_and_bytes_by_hand() -> None:
    rng = np.random.default_rng(0)
    conv = conv_bench(rng, 16, 8, 3, 2)
    assert conv.flops == 2 * 16 * 16 * 9 * 8 * 8  # 2 * cout * cin * k * k * h * w
    assert conv.bytes == 4 * (2 * 16 * 64 + 16 * 16 * 9 + 16)  # in + out + weights + bias
    dw = conv_bench(rng, 16, 8, 3, 2, depthwise=True)
    assert dw.op_class == "dwconv" and dw.flops == 2 * 16 * 9 * 64
    gemm = gemm_bench(rng, 4, 8, 16, 2)
    assert gemm.flops == 2 * 4 * 8 * 16 and gemm.bytes == 4 * (4 * 8 + 8 * 16 + 4 * 16)
    att = attention_bench(rng, 2, 5, 8, 1)
    assert att.flops == 4 * 2 * 5 * 5 * 8 and att.kernels == 4  # QK^T and PV: 2 * h * n * n * d each
    add = elementwise_bench(100, 3)
    assert add.flops == 0 and add.bytes == 12 * 100  # read 2, write 1


def test_every_micro_benchmark_is_valid_onnx_and_runs() -> None:
    benches = micro_benchmarks(quick=True, seed=0)
    keys = [b.key for b in benches]
    assert len(set(keys)) == len(keys)
    classes = {b.op_class for b in benches}
    assert classes >= {*COMPUTE_CLASSES, "norm", "elementwise", "pool", "data", "if"}
    for b in benches:
        onnx.checker.check_model(b.model, full_check=True)
        if b.tiny:
            Runner(b.model, ["CPUExecutionProvider"], 1, 0)()
    assert len(micro_benchmarks(quick=False)) > len(benches)


def test_side_by_side_ops_are_not_merged_by_onnxruntime() -> None:
    """Transposes and GlobalAveragePools run on distinct inputs: onnxruntime keeps every copy."""
    bench = data_bench(np.random.default_rng(0), "transpose", 4, 6, 3)
    sess = Runner(bench.model, ["CPUExecutionProvider"], 1, 0)
    outs = sess.session.run(None, sess.feeds)
    assert len(outs) == 3 and all(o.shape == (1, 4, 6, 6) for o in outs)
    np.testing.assert_array_equal(outs[1], sess.feeds["x1"].transpose(0, 1, 3, 2))
    run = Runner(if_bench(4).model, ["CPUExecutionProvider"], 1, 0)
    x = run.feeds["x0"]
    np.testing.assert_allclose(run.session.run(None, run.feeds)[0], np.maximum(x, 0))  # cond True: Relu


def test_randomize_weights_fills_shape_only_weights_and_keeps_bn_an_identity() -> None:
    from predictors.reference_graphs import reference_graph

    model = randomize_weights(reference_graph("mobilenet_v2", 64, weights="shape-only"), seed=3)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w = inits["features.0.weight"]
    assert w.shape == (32, 3, 3, 3) and w.std() > 0.05
    assert (inits["features.0.bn.running_var"] == 1).all() and (inits["features.0.bn.weight"] == 1).all()
    assert (inits["features.0.bn.running_mean"] == 0).all()
    again = randomize_weights(reference_graph("mobilenet_v2", 64, weights="shape-only"), seed=3)
    np.testing.assert_array_equal(numpy_helper.to_array(again.graph.initializer[0]),
                                  numpy_helper.to_array(model.graph.initializer[0]))  # seeded
    run = Runner(model, ["CPUExecutionProvider"], 1, 0)
    assert run.outputs_finite()
    logits = run.session.run(None, run.feeds)[0]
    assert logits.shape == (1, 1000) and logits.std() > 0  # real weights: not the zeros model's constant output


def _synthetic_ms(benches: list, *, a_us: float, o_us: dict, rates: dict) -> dict[str, float]:
    """What a machine with these parameters would time: a + depth * (kernels * o_class + work)."""
    ms = {}
    for b in benches:
        work = 0.0 if b.tiny else (b.flops if b.op_class in COMPUTE_CLASSES else b.bytes) / rates[b.op_class]
        ms[b.key] = (a_us + b.depth * (b.kernels * o_us[b.op_class] + 1e6 * work)) / 1e3
    return ms


def test_fit_recovers_a_synthetic_machine() -> None:
    benches = micro_benchmarks(quick=False, seed=0)
    o_us = {"conv": 2.0, "dwconv": 1.5, "gemm": 0.5, "attention": 0.6, "norm": 0.9, "elementwise": 0.4, "pool": 0.7,
            "data": 1.2, "if": 3.0}
    rates = {"conv": 2e11, "dwconv": 3e10, "gemm": 1.5e11, "attention": 5e10, "norm": 3e10, "elementwise": 2e10,
             "pool": 2.5e10, "data": 4e10}
    fit = fit_micro(benches, _synthetic_ms(benches, a_us=10.0, o_us=o_us, rates=rates))
    assert fit.session_us == pytest.approx(10.0)
    assert fit.overhead_us == pytest.approx(o_us)
    assert fit.kernel_overhead_us == pytest.approx(np.median([o_us[c] for c in SINGLE_KERNEL_CLASSES]))
    assert fit.peak_class == "conv" and fit.peak_flops == pytest.approx(2e11)
    assert fit.bandwidth == pytest.approx(2e10)
    assert {c: b["rate"] for c, b in fit.best.items()} == pytest.approx(rates)


def _tiny_reference(name: str) -> onnx.ModelProto:
    if name == "mobilenet_v3_large":
        raise ImportError("needs torch here")
    from predictors.reference_graphs import reference_graph

    return reference_graph(name, 32, weights="shape-only")


def test_measure_profile_skips_unbuildable_models_and_writes_a_loadable_profile(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    benches = [elementwise_bench(1, d, tiny=True) for d in (1, 8, 32)]
    benches += [conv_bench(rng, 4, 4, 3, 8, tiny=True), conv_bench(rng, 32, 14, 3, 2), elementwise_bench(2**16, 2)]
    settings = ProfileSettings(name="tiny-test", threads=1, quick=True, seed=1)
    seen: list[tuple[str, int, int]] = []
    result = measure_profile(settings, _tiny_reference, benches=benches, progress=lambda *a: seen.append(a))
    # quick: the two smallest models that build (mobilenet_v3_large raised ImportError, so the next one)
    assert [r.model for r in result.references] == ["mobilenet_v2", "efficientnet_lite0"]
    assert list(result.skipped) == ["mobilenet_v3_large"] and "needs torch" in result.skipped["mobilenet_v3_large"]
    assert ("timing reference models", 2, 2) in seen and ("timing micro-benchmarks", 6, 6) in seen
    out = tmp_path / "sub" / "tiny.yaml"
    profile = write_profile(out, result)
    assert [p.name for p in out.parent.iterdir()] == ["tiny.yaml"]  # no temp file left
    loaded = load_profile(out)
    assert loaded == profile and loaded.measured and loaded.name == "tiny-test"
    assert loaded.kernel_overhead.value > 0 and "measured by dynnas profile" in loaded.kernel_overhead.source
    assert all(p.latency_ms.value > 0 and p.precision == "fp32" and p.batch == 1 and p.statistic == "p10"
               for p in loaded.calibration)
    assert "mobilenet_v3_large" in loaded.notes
    assert out.read_text().startswith("# Measured by `dynnas profile`")


def test_reference_order_is_by_macs() -> None:
    order = reference_order()
    assert order[:2] == ["mobilenet_v3_large", "mobilenet_v2"] and order[-1] == "vit_b16"


@pytest.mark.parametrize("threads", [0, -2])
def test_threads_must_be_positive(threads: int) -> None:
    with pytest.raises(MeasurementError, match=f"--threads must be >= 1, but got {threads}"):
        ProfileSettings(name="x", threads=threads)


def test_provider_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MeasurementError, match="unknown provider 'cudaa'; did you mean 'cuda'"):
        check_provider("cudaa")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["AzureExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(MeasurementError, match=r"needs TensorrtExecutionProvider.*available: cpu \(CPUExecutionProvider\), "
                                               "AzureExecutionProvider"):
        check_provider("tensorrt")
    assert check_provider("cpu") == ("CPUExecutionProvider",)


def test_out_path_errors_leave_nothing(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [(Path("/proc/dynnas-x.yaml"), "not writable"), (a_file / "p.yaml", "is a file, not a folder"),
             (a_file / "deeper" / "p.yaml", "is a file, not a folder"), (tmp_path / "p.json", "must end in .yaml"),
             (tmp_path, "must end in .yaml")]
    (tmp_path / "dir.yaml").mkdir()
    cases.append((tmp_path / "dir.yaml", "is a folder"))
    for path, match in cases:
        with pytest.raises(MeasurementError, match=match):
            check_out_path(path)
    check_out_path(tmp_path / "new" / "deep" / "ok.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.yaml", "file"]  # probe folders removed again


def test_profile_name() -> None:
    assert profile_name(Path("out/My Board.yaml"), None) == "my-board"
    assert profile_name(Path("x.yaml"), "pi-4") == "pi-4"
    with pytest.raises(MeasurementError, match="lowercase slug"):
        profile_name(Path("x.yaml"), "Pi 4")
    with pytest.raises(MeasurementError, match="pass --name"):
        profile_name(Path("___.yaml"), None)
