"""Export of a hand-built run folder on the tiny digits supernet: files, verification, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

from nas.cli import app
from nas.export import combined_front, export_subnets
from nas.verify import ExportVerificationError, check_self_contained, verify_onnx
from predictors.onnx_io import run_onnx
from reports.run_folder import NoRunError
from supernet.checkpoint import load_supernet, load_tensors, save_supernet, sha256
from supernet.cnn import count_macs
from supernet.data import to_tensor
from supernet.errors import CheckpointMismatchError, ConfigError
from supernet.evaluate import accuracy, subnet_model
from supernet.static import StaticCNN
from tests.reports.runs import make_run  # the hand-built run folder shared with the report tests


@pytest.fixture(scope="module")
def exported(tiny_supernet_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    run = make_run(tmp_path_factory.mktemp("export") / "run", tiny_supernet_path)
    return run, export_subnets(run, 3, seed=0)


def test_export_writes_self_contained_verified_subnets(exported, tiny_supernet_path, digits):
    run, done = exported
    front = combined_front(run)
    assert len(done) == 3
    archs = [d["arch"] for d in done]
    assert front["arch"].iloc[0] in archs  # the fastest
    assert front.loc[front["accuracy"].idxmax(), "arch"] in archs  # the most accurate
    assert set(archs) == set(front[front["spread_rank"].between(0, 2)]["arch"])  # the run's spread order
    assert json.loads((run / "run.json").read_text())["exported"] == [d["subnet_id"] for d in done]
    supernet, _ = load_supernet(tiny_supernet_path)
    for d in done:
        folder = Path(d["folder"])
        assert sorted(p.name for p in folder.iterdir()) == ["arch.json", "manifest.json", "model.onnx",
                                                           "verify.json", "weights.safetensors"]
        check_self_contained(folder / "model.onnx")  # no external data, valid graph
        manifest = json.loads((folder / "manifest.json").read_text())  # a static subnet: a chain of one stage
        assert [s["file"] for s in manifest["stages"]] == ["model.onnx"] and manifest["exit_names"] == ["final"]
        arch = json.loads((folder / "arch.json").read_text())
        ver = json.loads((folder / "verify.json").read_text())
        sub = supernet.space.parse(arch["arch"])
        assert arch["subnet_id"] == folder.name == supernet.space.subnet_id(sub)
        assert arch["macs"] == count_macs(supernet.config, sub)
        assert arch["supernet"]["sha256"] == sha256(tiny_supernet_path)
        assert arch["input"]["shape"] == [1, 1, 8, 8] and len(arch["classes"]) == 10
        assert ver["max_abs_logit_diff"] <= 1e-4 and ver["eval_set"] == f"digits test ({len(digits.y_test)})"
        # the ONNX accuracy is the PyTorch accuracy of the same extracted subnet (recalibrated BN, seed 0)
        ref = subnet_model(supernet, sub, digits, "recal", seed=0)
        assert ver["onnx_accuracy"] == pytest.approx(accuracy(ref, digits.x_test, digits.y_test), abs=1e-12)
        assert ver["onnx_accuracy"] == ver["torch_accuracy"]
        logits = run_onnx(folder / "model.onnx", to_tensor(digits.x_test).numpy())
        assert (logits.argmax(1) == digits.y_test).mean() == pytest.approx(ver["onnx_accuracy"], abs=1e-12)
        # weights.safetensors rebuilds the same plain PyTorch module from arch.json
        spec = arch["pytorch"]
        static = StaticCNN(spec["in_channels"], spec["stem"], [tuple(b) for b in spec["blocks"]], spec["head"],
                           spec["num_classes"], spec["dropout"], [tuple(e) for e in spec["exits"]])
        static.load_state_dict(load_tensors(folder / "weights.safetensors")[0])
        with torch.no_grad():
            again = static.eval()(to_tensor(digits.x_test)).numpy()
        assert np.abs(again - logits).max() <= 1e-4
        lat = ver["host_latency_ms"]
        assert lat["repeats"] >= 50 and lat["threads"] == 1 and lat["batch"] == 1
        assert 0 < lat["p10_ms"] <= lat["median_ms"] <= lat["p90_ms"]
        rel = ver["host_latency_relative"]  # timed against the host predictor's reference subnet
        assert rel["ratio"] > 0 and rel["reference_arch"]
        assert rel["at_calibration_speed_ms"] == pytest.approx(rel["ratio"] * rel["reference_ms_at_calibration"])
        assert rel["at_calibration_speed_p10_ms"] <= rel["at_calibration_speed_ms"] <= rel["at_calibration_speed_p90_ms"]
        row = front.set_index("subnet_id").loc[arch["subnet_id"]]
        assert ver["predicted_latency_ms"] == pytest.approx(row["latency_ms"])
        assert ver["predicted_accuracy"] == pytest.approx(row["accuracy"])
        assert ver["predicted_host_latency_ms"] == pytest.approx(row["latency_ms"])  # a host run


def test_corrupted_onnx_weight_fails_verification(exported, tiny_supernet_path, digits, tmp_path):
    run, done = exported
    folder = Path(done[0]["folder"])
    supernet, _ = load_supernet(tiny_supernet_path)
    model = subnet_model(supernet, supernet.space.parse(done[0]["arch"]), digits, "recal", seed=0)
    good = verify_onnx(model, folder / "model.onnx", digits.x_test, digits.y_test, "digits test")
    assert good["max_abs_logit_diff"] <= 1e-4
    proto = onnx.load(str(folder / "model.onnx"))
    init = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))  # the largest weight tensor
    w = numpy_helper.to_array(init).copy()
    w.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    bad = tmp_path / "bad" / "model.onnx"
    bad.parent.mkdir()
    onnx.save(proto, str(bad))
    with pytest.raises(ExportVerificationError, match="disagrees with PyTorch"):
        verify_onnx(model, bad, digits.x_test, digits.y_test, "digits test")


def test_external_weights_are_rejected(exported, tmp_path):
    _run, done = exported
    proto = onnx.load(str(Path(done[0]["folder"]) / "model.onnx"))
    path = tmp_path / "model.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)
    with pytest.raises(ExportVerificationError, match="external weight files"):
        check_self_contained(path)


def test_failed_verification_leaves_no_subnet_folder(tiny_supernet_path, tmp_path):
    model, meta = load_supernet(tiny_supernet_path)
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")  # a corrupt supernet: every logit of class 0 is NaN
    broken = tmp_path / "broken.safetensors"
    save_supernet(broken, model, {k: v for k, v in meta.items() if k not in ("format", "format_version")})
    run = make_run(tmp_path / "run", broken, n=12)
    with pytest.raises(ExportVerificationError, match="non-finite"):
        export_subnets(run, 2)
    assert list((run / "subnets").iterdir()) == []


def test_export_rejects_bad_requests(exported, tmp_path, tiny_supernet_path):
    run, _ = exported
    with pytest.raises(NoRunError, match="no run.json"):
        export_subnets(tmp_path, 2)
    with pytest.raises(ConfigError, match="--top"):
        export_subnets(run, 0)
    model, meta = load_supernet(tiny_supernet_path)
    other = tmp_path / "other.safetensors"  # same weights, other metadata: the sha256 differs from the run's
    save_supernet(other, model, {**{k: v for k, v in meta.items() if k != "format"}, "note": "copy"})
    with pytest.raises(CheckpointMismatchError, match="sha256"):
        export_subnets(run, 1, supernet_path=other)


def test_cli_export_errors_are_one_line(exported, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(tmp_path)])
    assert res.exit_code == 2 and "holds no dynnas search run" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["export", str(exported[0]), "--top", "0"])
    assert res.exit_code == 2 and res.output.strip().count("\n") == 0 and "--top must be >= 1" in res.output

