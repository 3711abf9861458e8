"""Early exits through the search and the export: objectives, constraints, the exit-free subset, `If` export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.pareto import non_dominated
from supernet.checkpoint import save_supernet
from supernet.cnn import PRESETS, CNNConfig, CNNSupernet
from tests.cli import fails_cleanly, ok


def search(sn: Path, out: Path, *extra: str) -> list[str]:
    return ["search", "--device", "jetson-orin", "--supernet", str(sn), "--bn", "switchable",
            "--accuracy-samples", "32", "--out", str(out), "--budget", "40", "--seed", "0", *extra]


@pytest.fixture(scope="module")
def exit_run(sn, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exits") / "run"
    ok(search(sn, out, "--top", "0", "--algorithm", "nsga2,random", "--max-accuracy-drop", "2"))
    return out


def test_search_objectives_are_dynamic(exit_run):
    run = json.loads((exit_run / "run.json").read_text())
    assert run["exits"]["searched"] and run["exits"]["positions"] == [0, 2]
    assert run["settings"]["max_accuracy_drop"] == pytest.approx(0.02)
    ev = pd.read_csv(exit_run / "evaluations.csv", dtype={"exit_rates": str, "arch": str})
    rates = np.array([[float(v) for v in r.split(";")] for r in ev["exit_rates"]])
    assert rates.shape[1] == 3 and np.allclose(rates.sum(axis=1), 1.0, atol=1e-3)
    has_exit = ev["arch"].str.contains(r"_x\d*1")
    assert has_exit.any() and (~has_exit).any()  # both kinds were evaluated
    assert np.allclose(rates[~has_exit.to_numpy(), 2], 1.0)  # exits off: every input reaches the final classifier
    assert (ev["latency_ms"] <= ev["worst_latency_ms"] + 1e-12).all()  # expected ≤ worst case
    assert (ev["accuracy"] <= ev["static_accuracy"] + 1e-12).all()
    assert (ev["static_accuracy"] - ev["accuracy"] <= 0.02 + 1e-9).all()
    # without exits the expected latency is the static one, and the worst case equals it
    assert np.allclose(ev.loc[~has_exit, "latency_ms"], ev.loc[~has_exit, "worst_latency_ms"])
    w, f = run["exits"]["with_exits"], run["exits"]["exit_free"]
    assert w["hypervolume"] >= f["hypervolume"]  # the exit-free candidates are a subset of all
    pareto = pd.read_csv(exit_run / "pareto.csv", dtype={"exit_rates": str})
    assert {"static_accuracy", "worst_latency_ms", "exit_rates"} <= set(pareto.columns)
    assert run["predictors"]["exits"]["quality"]["max_drop"] == pytest.approx(0.02)


def test_worst_latency_constraint_is_respected(sn, tmp_path, exit_run):
    ev = pd.read_csv(exit_run / "evaluations.csv")
    cap = float(f"{np.quantile(ev['worst_latency_ms'], 0.5):.6f}")
    out = tmp_path / "capped"
    ok(search(sn, out, "--top", "0", "--algorithm", "random", "--max-accuracy-drop", "2",
              "--max-worst-latency", f"{cap:.6f}"))
    assert json.loads((out / "run.json").read_text())["constraints"][0]["name"] == "worst_latency_ms"
    capped = pd.read_csv(out / "evaluations.csv")
    assert ((capped["worst_latency_ms"] <= cap) == capped["feasible"].astype(bool)).all()
    assert capped["feasible"].astype(bool).any() and not capped["feasible"].astype(bool).all()
    front = pd.read_csv(out / "pareto.csv")
    assert (front["worst_latency_ms"] <= cap + 1e-9).all()
    F = np.column_stack([-front["accuracy"], front["latency_ms"]])
    for _alg, rows in front.groupby("algorithm"):
        assert len(non_dominated(F[rows.index])) == len(rows)


def test_exits_off_searches_widths_only(sn, tmp_path):
    out = tmp_path / "static"
    ok(search(sn, out, "--top", "1", "--algorithm", "random", "--exits", "off"))
    run = json.loads((out / "run.json").read_text())
    ev = pd.read_csv(out / "evaluations.csv", dtype={"arch": str})
    assert not run["exits"]["searched"] and not ev["arch"].str.contains("_x").any()
    assert np.allclose(ev["latency_ms"], ev["worst_latency_ms"])
    front = pd.read_csv(out / "pareto.csv", dtype={"arch": str, "subnet_id": str})
    (exported,) = sorted((out / "subnets").iterdir())  # named as the searched space names it, as in pareto.csv
    arch = json.loads((exported / "arch.json").read_text())
    assert exported.name == arch["subnet_id"] and "_x" not in arch["arch"]
    assert (arch["arch"], arch["subnet_id"]) in set(zip(front["arch"], front["subnet_id"], strict=True))


@pytest.fixture(scope="module")
def headless(tmp_path_factory) -> Path:
    """A supernet written before exits existed: no heads."""
    d = {k: v for k, v in PRESETS["tiny"].to_dict().items() if not k.startswith("exit_")}
    config = CNNConfig.from_dict(d)
    path = tmp_path_factory.mktemp("headless") / "supernet.safetensors"
    save_supernet(path, CNNSupernet(config), {"family": "cnn", "config": config.to_dict(), "mean": [0.5],
                                              "std": [0.25], "dataset": {"spec": "digits", "classes": list("0123456789")}})
    return path


@pytest.mark.parametrize("extra", [["--exits", "on"], ["--max-accuracy-drop", "1"], ["--max-worst-latency", "5"]])
def test_exits_asked_of_a_supernet_without_heads(headless, tmp_path, extra):
    out = tmp_path / "run"
    fails_cleanly(search(headless, out, "--top", "0", "--algorithm", "random", *extra),
                  "has no exit heads, so it cannot search exits")
    assert not out.exists()


@pytest.fixture(scope="module")
def exported(exit_run, tmp_path_factory) -> Path:
    import shutil

    out = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(exit_run, out)
    text = ok(["export", str(out), "--top", "3"])
    assert "exported" in text.lower() or "subnet" in text.lower()
    return out


def test_export_writes_a_verified_if_graph(sn, tmp_path, exported, digits):
    import onnx

    out = exported
    run = json.loads((out / "run.json").read_text())
    dynamic = 0
    for sid in run["exported"]:
        folder = out / "subnets" / sid
        arch, verify = json.loads((folder / "arch.json").read_text()), json.loads((folder / "verify.json").read_text())
        if not verify["dynamic"]:
            continue
        dynamic += 1
        assert "If" in {n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node}
        assert (folder / "model.all_exits.onnx").is_file()
        assert verify["same_exit_as_pytorch"] == 1.0 and verify["max_abs_logit_diff"] <= 1e-4
        assert verify["single_file"]["same_exit_as_pytorch"] == 1.0  # the If graph routes as the chain does
        assert verify["single_file"]["onnx_accuracy"] == verify["onnx_accuracy"]
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["format"] == "dynnas-segments" and manifest["format_version"] == 1
        assert [s["file"] for s in manifest["stages"]] == arch["stages"] and len(arch["stages"]) >= 2
        assert manifest["stages"][-1]["exit"]["name"] == "final" and (folder / "static.onnx").is_file()
        assert verify["max_abs_logit_diff_batch_vs_1"] <= 1e-5 and verify["batch_check"] == 32
        host = verify["predicted_host"]
        assert host["static_ms"] > 0 and len(host["exit_ms"]) == 3
        assert host["exit_ms"][-1] >= host["static_ms"]  # running to the end costs at least the static subnet
        rec = verify["recosted"]
        assert sum(rec["exit_rates"]) == pytest.approx(1.0) and rec["device"] == "jetson-orin"
        assert 0 < rec["latency_ms"] <= verify["predicted_worst_latency_ms"] * (1 + 1e-9)  # expected ≤ worst case
        assert sum(verify["exit_histogram"]) == verify["n_images"] == len(digits.y_test)
        assert verify["static_accuracy"] - verify["onnx_accuracy"] <= 0.15  # δ holds on val; test is another sample
        pol = arch["exit_policy"]
        assert len(pol["thresholds"]) == 2 and pol["val_static_accuracy"] - pol["val_accuracy"] <= 0.02 + 1e-9
        rel = verify["host_latency_relative"]
        assert rel["n_inputs"] > 0 and rel["at_calibration_speed_ms"] > 0 and rel["now_ms"] > 0
        assert verify["host_speed"]["drift"] > 0
    assert dynamic >= 1, "no exported subnet uses an exit"
    ok(["report", str(out), "--out", str(tmp_path / "r.html")])
    html = (tmp_path / "r.html").read_text()
    assert "id='exits'" in html and "exported subnets with exits" in html


def test_bench_measures_every_export_on_its_test_images(exported, tmp_path, digits):
    """`dynnas bench` on a run: accuracy and exit histogram equal verify.json's (same images, same runtime), the
    speed-up and throughput are measured for every dynamic export, and the prediction is anchored."""
    out = exported / "bench.json"
    text = ok(["bench", str(exported), "--images", "100000", "--batch", "1,16"])
    assert "exports on digits test" in text and "bench.json" in text
    doc = json.loads(out.read_text())
    assert doc["format"] == "dynnas-bench" and doc["batches"] == [1, 16] and doc["engine"] == "onnxruntime"
    run = json.loads((exported / "run.json").read_text())
    assert {r["subnet_id"] for r in doc["exports"]} == set(run["exported"])
    for r in doc["exports"]:
        verify = json.loads((Path(r["folder"]) / "verify.json").read_text())
        assert r["batch1"]["images"] == len(digits.y_test)
        assert r["accuracy"] == pytest.approx(verify["onnx_accuracy"], abs=1e-12)
        if r["dynamic"]:
            assert r["exit_histogram"] == verify["exit_histogram"]
            assert r["batch1"]["speedup"] > 0 and r["throughput"][0]["gain"] > 0
            assert r["static_accuracy"] == pytest.approx(verify["static_accuracy"], abs=1e-12)
            pred = r["predicted"]
            assert pred["anchored_expected_ms"] == pytest.approx(
                pred["host_expected_ms"] * r["batch1"]["static_ms"] / pred["host_static_ms"])
        else:
            assert r["stages"] == 1 and r["exit_rates"] == [1.0]
    assert doc["summary"]["exports"] == len(doc["exports"])
    ok(["report", str(exported), "--out", str(tmp_path / "r.html")])
    html = (tmp_path / "r.html").read_text()
    assert "id='bench'" in html and "Measured on this machine" in html
    assert html.count("<code>w") >= len(doc["exports"])  # every benchmarked arch in the table


@pytest.mark.parametrize("args, match", [
    (["--batch", "0"], "--batch takes batch sizes >= 1"),
    (["--batch", "1,x"], "--batch takes batch sizes >= 1"),
    (["--images", "0"], "--images must be >= 1"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--engine", "tensorrt"], "--engine must be one of onnxruntime, openvino"),
    (["--out", "/proc/bench.json"], "not writable"),
])
def test_bench_errors_are_one_line(exported, args, match):
    fails_cleanly(["bench", str(exported), *args], match)


def test_bench_on_a_folder_without_exports(exit_run, tmp_path):
    fails_cleanly(["bench", str(exit_run)], "holds no exported subnet; run `dynnas export")
    fails_cleanly(["bench", str(tmp_path / "nowhere")], "is not a folder")


@pytest.mark.parametrize("extra, match", [
    (["--exit-criterion", "margn"], "unknown exit criterion 'margn'"),
    (["--max-accuracy-drops", "half"], "--max-accuracy-drops must be comma-separated points"),
    (["--max-accuracy-drops", "100"], "--max-accuracy-drops must be points in [0, 100)"),
    (["--recal-seeds", "0"], "--recal-seeds must be >= 1"),
])
def test_calibrate_errors_are_one_line(sn, extra, match):
    fails_cleanly(["calibrate", "--supernet", str(sn), "--dataset", "digits", *extra], match)


@pytest.mark.parametrize("extra, match", [
    (["--exit-route", "both"], "--exit-route must be frozen or joint"),
    (["--init-from", "/no/such.safetensors", "--exit-epochs", "1"], "does not exist"),
    (["--exit-epochs", "-1"], "--exit-epochs must be >= 0"),
])
def test_train_exit_errors_are_one_line(tmp_path, extra, match):
    fails_cleanly(["train", "--dataset", "digits", "--out", str(tmp_path / "t"), *extra], match)
    assert not (tmp_path / "t").exists()
