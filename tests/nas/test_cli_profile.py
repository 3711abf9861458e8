"""`dynnas profile`: a --quick profile made here round-trips through the loader, `devices`, `latency` and the
roofline; the torch-free path; every bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from hw_profiles import load_profile
from tests.cli import fails_cleanly, ok

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("profile") / "made-here.yaml"
    ok(["profile", "--out", str(out), "--quick", "--threads", "1", "--seed", "0"])
    return out


def test_quick_profile_round_trips(quick_profile: Path) -> None:
    from predictors.graph_latency import predict_graph
    from predictors.onnx_graph import graph_kernels
    from predictors.reference_graphs import reference_graph, reference_kernels
    from predictors.roofline import fit_roofline, roofline_predictor
    from supernet.cnn import PRESETS

    profile = load_profile(quick_profile)
    assert profile.name == "made-here" and profile.measured and profile.kind == "cpu"
    assert profile.power_modes[0].compute_units.value == 1.0
    peak = profile.peak_ops_per_s("fp32")
    assert 1e8 <= peak <= 1e13
    # µs; the fit floors it at 1e-3 µs: a --quick run on a loaded 2-core machine cannot resolve tiny ops better
    assert 1e-3 <= profile.kernel_overhead.value <= 100
    assert 0.1 <= profile.memory_bandwidth.value <= 10_000  # GB/s
    models = [p.model for p in profile.calibration]
    assert len(models) == 2 and set(models) <= {"mobilenet_v3_large", "mobilenet_v2", "efficientnet_lite0",
                                                 "mobilenet_v1"}
    for point in profile.calibration:
        assert 0.1 < point.latency_ms.value < 5000 and point.power_mode == "measured"
        assert point.source.startswith("measured by dynnas profile on ") and "onnxruntime" in point.source
    # measured rates per op class and kernel size, in the schema's units, each with its benches named
    assert {"conv", "conv-k3", "conv-k1", "dwconv-k3", "dwconv-k5", "gemm", "elementwise"} <= set(profile.op_rates)
    assert profile.op_rates["conv"].unit == "TFLOP/s" and profile.op_rates["norm"].unit == "GB/s"
    assert "dwconv 5x5" in profile.op_rates["dwconv-k5"].derived
    assert 1e8 <= profile.op_rates["dwconv-k5"].value * 1e12 <= peak * 1.001
    params, rows = fit_roofline(profile)
    # the efficiencies scale measured rates: a whole network may run a little faster than its isolated ops
    assert 0 < params.eta_c <= 3 and 0 < params.eta_m <= 3 and params.overhead_s > 0
    assert all(abs(r["residual_pct"]) < 100 for r in rows)
    lat = predict_graph(graph_kernels(reference_graph("resnet50", weights="shape-only")), profile)
    assert lat.calibrated and 1 < lat.total_ms < 10_000
    pred = roofline_predictor(profile, PRESETS["tiny"])
    assert 0 < pred.kernels_ms(reference_kernels("mobilenet_v2")) < 5000
    space = PRESETS["tiny"].space()
    assert (pred.predict_ms([space.smallest(), space.largest()]) > 0).all()


def test_profile_works_with_devices_and_latency(quick_profile: Path) -> None:
    table = ok(["devices", "--profile", str(quick_profile)])
    assert "made-here" in table and "2 points" in table
    doc = json.loads(ok(["latency", "--model", "mobilenet_v2", "--device", str(quick_profile), "--json"]))
    assert doc["device"] == "made-here" and doc["calibrated"] is True and doc["total_ms"] > 0


def test_profile_path_needs_no_torch(tmp_path: Path) -> None:
    """A device without torch: `import torch` fails, the command still measures and writes the profile."""
    out = tmp_path / "no-torch.yaml"
    code = ("import sys\nsys.modules['torch'] = None  # ImportError on import, as on a board without torch\n"
            "import nas.cmd_profile, hw_profiles.measure\n"
            "from nas.cli import app\n"
            f"try:\n    app(['profile', '--out', {str(out)!r}, '--quick', '--threads', '1'])\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert sys.modules['torch'] is None and 'sklearn' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(load_profile(out).calibration) == 2
    imports = "import sys, nas.cmd_profile, hw_profiles.measure; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", imports], cwd=ROOT, check=True, timeout=120)


def test_every_reference_model_builds_without_torch() -> None:
    """The profile's reference graphs (predictors.reference_graphs, through the lazy predictors package) import
    no torch and no scikit-learn, so a board with only onnxruntime measures all of them."""
    names = "['efficientnet_lite0', 'mobilenet_v1', 'mobilenet_v1_0.25', 'mobilenet_v1_0.5', 'mobilenet_v2', " \
            "'mobilenet_v2_0.35', 'mobilenet_v2_0.5', 'mobilenet_v2_0.75', 'mobilenet_v2_1.4', 'mobilenet_v3_large', " \
            "'resnet18', 'resnet50', 'shufflenet_v2', 'ssd_mobilenet_v1', 'vit_b16']"
    code = ("import sys\nsys.modules['torch'] = None\n"
            "from nas.cmd_profile import reference_graph_builder\n"
            "from predictors.reference_graphs import reference_graph_names\n"
            f"assert reference_graph_names() == {names}, reference_graph_names()\n"
            "build = reference_graph_builder()\n"
            "dims = {n: build(n).graph.input[0].type.tensor_type.shape.dim[2].dim_value for n in reference_graph_names()}\n"
            "assert dims['mobilenet_v2'] == 224 and dims['vit_b16'] == 224, dims\n"
            "assert sys.modules['torch'] is None and 'sklearn' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-2000:]


def _nothing_in(folder: Path) -> None:
    assert not list(folder.iterdir()), list(folder.iterdir())


def test_bad_outputs_fail_cleanly_and_write_nothing(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    fails_cleanly(["profile", "--out", "/proc/dynnas/p.yaml", "--quick"], "--out '/proc/dynnas/p.yaml'")
    fails_cleanly(["profile", "--out", "/proc/p.yaml", "--quick"], "not writable")
    fails_cleanly(["profile", "--out", str(a_file / "p.yaml"), "--quick"], "is a file, not a folder")
    fails_cleanly(["profile", "--out", str(tmp_path / "p.txt"), "--quick"], "must end in .yaml or .yml")
    (tmp_path / "d.yaml").mkdir()
    fails_cleanly(["profile", "--out", str(tmp_path / "d.yaml"), "--quick"], "is a folder")
    (tmp_path / "d.yaml").rmdir()
    a_file.unlink()
    _nothing_in(tmp_path)


def test_bad_settings_fail_cleanly_and_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = str(tmp_path / "p.yaml")
    for threads in ("0", "-1"):
        fails_cleanly(["profile", "--out", out, "--threads", threads], f"--threads must be >= 1, but got {threads}")
    fails_cleanly(["profile", "--out", out, "--provider", "gpu"], "unknown provider 'gpu'")
    err = fails_cleanly(["profile", "--out", out, "--provider", "cudaa"], "did you mean 'cuda'?")
    assert "Known: cpu, cuda, tensorrt" in err
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["AzureExecutionProvider", "CPUExecutionProvider"])
    for provider, ep in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
        err = fails_cleanly(["profile", "--out", out, "--provider", provider], f"needs {ep}")
        assert "available: cpu (CPUExecutionProvider), AzureExecutionProvider" in err
    fails_cleanly(["profile", "--out", out, "--name", "My Board"], "lowercase slug")
    _nothing_in(tmp_path)


def test_install_makes_host_this_machines_measured_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hw_profiles.installed import installed_host_path, machine_key, machine_path

    monkeypatch.setenv("DYNNAS_CACHE", str(tmp_path / "cache"))
    nominal = load_profile("host")
    assert nominal.calibration == () and "nominal" in nominal.notes.lower()
    ok(["profile", "--install", "--quick", "--threads", "1", "--seed", "0"])
    path = installed_host_path()
    assert path == tmp_path / "cache" / "profiles" / "host.yaml" and path.is_file()
    assert json.loads(machine_path(path).read_text())["machine_key"] == machine_key()
    host = load_profile("host")
    assert host.name == "host" and host.measured and len(host.calibration) == 2
    assert host.memory_size.source.startswith("/proc/meminfo")
    mode = host.power_modes[0]
    assert mode.power_w is None or "RAPL" in mode.power_w.source  # a figure only when a sensor gave one
    doc = json.loads(ok(["latency", "--model", "mobilenet_v2", "--device", "host", "--json"]))
    assert doc["device"] == "host" and doc["calibrated"] is True and doc["fusion"] == "onnxruntime-cpu"
    # a cache shared with another machine: its profile is not this machine's, so the nominal one is used
    machine_path(path).write_text(json.dumps({"machine_key": "aarch64|4|Cortex-A76"}))
    assert load_profile("host").calibration == ()
    machine_path(path).unlink()
    assert load_profile("host").calibration == ()


def test_install_bad_combinations_fail_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNNAS_CACHE", str(tmp_path / "cache"))
    fails_cleanly(["profile", "--quick"], "give exactly one of --out FILE.yaml or --install")
    fails_cleanly(["profile", "--install", "--out", str(tmp_path / "p.yaml")], "exactly one of")
    fails_cleanly(["profile", "--install", "--provider", "cuda"], "CPU provider")
    fails_cleanly(["profile", "--install", "--name", "my-box"], "writes the profile named 'host'")
    monkeypatch.setenv("DYNNAS_CACHE", "/proc/dynnas-cache")
    fails_cleanly(["profile", "--install", "--quick"], "/proc/dynnas-cache/profiles/host.yaml")
    assert list(tmp_path.iterdir()) == []


def test_help_has_examples() -> None:
    out = ok(["profile", "--help"])
    assert "Examples" in out and "dynnas profile --out my-board.yaml" in out and "--provider" in out
