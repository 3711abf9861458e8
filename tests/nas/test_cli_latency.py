"""`dynnas latency`: per-kernel table / JSON for a reference model or an ONNX file, and every error."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from hw_profiles import load_profile
from nas.cli import app
from predictors.graph_latency import predict_graph
from predictors.onnx_graph import graph_kernels
from predictors.reference_graphs import reference_graph
from tests.cli import fails_cleanly, ok, runner


def _doc(*args: str) -> dict:
    """The --json document (stdout; notes and range warnings go to stderr)."""
    res = runner.invoke(app, ["latency", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_reference_model_json_matches_the_predictor() -> None:
    doc = _doc("--model", "resnet50", "--device", "jetson-orin")
    profile = load_profile("jetson-orin")
    ks = graph_kernels(reference_graph("resnet50", weights="shape-only"), bytes_per_element=2)  # fp16 default
    lat = predict_graph(ks, profile)
    assert doc["precision"] == "fp16" and doc["device"] == "jetson-orin" and doc["calibrated"] is True
    assert len(doc["kernels"]) == len(ks) == 56
    assert doc["total_ms"] == pytest.approx(lat.total_ms) and doc["total_ms"] == pytest.approx(
        sum(k["us"] for k in doc["kernels"]) / 1e3)
    assert doc["total_flops"] == 2 * sum(k.macs for k in ks)
    assert {k["bound"] for k in doc["kernels"]} <= {"compute", "memory", "overhead"}


def test_power_mode_batch_and_precision_change_the_prediction(tmp_path: Path) -> None:
    base = _doc("--model", "mobilenet_v2", "--device", "jetson-orin")["total_ms"]
    assert _doc("--model", "mobilenet_v2", "--device", "jetson-orin", "--power-mode", "15W")["total_ms"] > base
    b8 = _doc("--model", "mobilenet_v2", "--device", "jetson-orin", "--batch", "8")
    assert b8["total_flops"] == 8 * _doc("--model", "mobilenet_v2", "--device", "jetson-orin")["total_flops"]
    fp32 = _doc("--model", "mobilenet_v2", "--device", "jetson-orin", "--precision", "fp32")
    assert fp32["total_bytes"] > _doc("--model", "mobilenet_v2", "--device", "jetson-orin")["total_bytes"]
    out = tmp_path / "r.json"
    table = ok(["latency", "--model", "mobilenet_v2", "--device", "jetson-orin", "--out", str(out)])
    assert "predicted" in table and json.loads(out.read_text())["total_ms"] == pytest.approx(base)
    assert not [p for p in tmp_path.iterdir() if p.name != "r.json"]


def test_onnx_file_with_input_shape_and_host(tmp_path: Path) -> None:
    model = reference_graph("mobilenet_v1", 64)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # a dynamic batch, as exporters write
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    # a dynamic batch alone: batch 1, said in one line on stderr
    res = runner.invoke(app, ["latency", str(path), "--device", "jetson-orin", "--json"])
    assert res.exit_code == 0, res.output
    assert res.stderr.count("batch dimension is dynamic; costing batch 1") == 1
    one = json.loads(res.stdout)
    assert one["kernels"][-1]["out_shape"] == [1, 1000]
    assert _doc(str(path), "--device", "jetson-orin", "--batch", "1")["total_ms"] == pytest.approx(one["total_ms"])
    doc = _doc(str(path), "--device", "host", "--input-shape", "1,3,64,64", "--fusion", "onnxruntime-cpu")
    assert doc["calibrated"] is False and doc["fusion"] == "onnxruntime-cpu" and doc["kernels"][-1]["out_shape"] == [1, 1000]
    # any other dynamic dimension still needs --input-shape; a shape of the wrong rank is refused
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    onnx.save(model, str(path))
    fails_cleanly(["latency", str(path), "--device", "jetson-orin"], "--input-shape")
    fails_cleanly(["latency", str(path), "--device", "jetson-orin", "--input-shape", "3,64,64"], "4 dimensions")


def test_help_has_examples() -> None:
    out = ok(["latency", "--help"])
    assert "dynnas latency --model resnet50 --device jetson-orin" in out and "--input-shape" in out


def _unsupported(path: Path) -> None:
    nodes = [helper.make_node("NonMaxSuppression", ["x"], ["a"]), helper.make_node("RoiAlign", ["a"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    text = tmp_path / "x.onnx"
    text.write_text("not a model")
    fails_cleanly(["latency", str(text), "--device", "jetson-orin"], "is not")
    good = tmp_path / "g.onnx"
    onnx.save(reference_graph("resnet18", 64), str(good))
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[:5000])
    fails_cleanly(["latency", str(cut), "--device", "jetson-orin"], "ONNX model")
    fails_cleanly(["latency", str(tmp_path / "missing.onnx"), "--device", "jetson-orin"], "does not exist")
    bad = tmp_path / "u.onnx"
    _unsupported(bad)
    fails_cleanly(["latency", str(bad), "--device", "jetson-orin"], "unsupported ONNX ops: NonMaxSuppression, RoiAlign;")
    fails_cleanly(["latency", "--model", "resnet50", "--device", "jetson-orn"], "jetson-orin")
    fails_cleanly(["latency", "--model", "resnet50", "--device", "host", "--precision", "int8"], "int8")
    fails_cleanly(["latency", "--model", "resnet50", "--batch", "0", "--device", "jetson-orin"], "--batch must be >= 1, but got 0")
    fails_cleanly(["latency", "--model", "resnet5O", "--device", "jetson-orin"], "did you mean 'resnet50'")
    fails_cleanly(["latency", "--device", "jetson-orin"], "exactly one of")
    fails_cleanly(["latency", "--model", "resnet50", "--power-mode", "99W", "--device", "jetson-orin"], "99W")
    fails_cleanly(["latency", "--model", "resnet50", "--fusion", "tensorrtx", "--device", "jetson-orin"], "tensorrt")
    fails_cleanly(["latency", str(good), "--input-shape", "1,3,a", "--device", "jetson-orin"], "--input-shape must be positive integers")
    fails_cleanly(["latency", str(good), "--input-shape", "1x3x64", "--device", "jetson-orin"], "has 4 dimensions but --input-shape gives 3")


def test_latency_command_imports_no_torch(tmp_path: Path) -> None:
    """`dynnas latency` runs where only onnxruntime is installed (and starts fast): no torch on its path."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "r50.json"
    code = ("import sys\nsys.modules['torch'] = None  # ImportError on import, as on a board without torch\n"
            "from nas.cli import app\n"
            f"try:\n    app(['latency', '--model', 'resnet50', '--device', 'jetson-orin', '--precision', 'int8', "
            f"'--json', '--out', {str(out)!r}])\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["device"] == "jetson-orin" and 0.3 < doc["total_ms"] < 1.5  # MLPerf: 0.636 ms
