"""`dynnas search` / `dynnas devices` end to end on the tiny supernet: the run-folder contract and every error."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nas.cli import app
from nas.driver import EVAL_COLUMNS, HISTORY_COLUMNS
from nas.pareto import non_dominated
from reports.run_folder import PARETO_COLUMNS, NoRunError, load_run
from supernet.checkpoint import sha256
from supernet.errors import CheckpointError
from tests.cli import fails_cleanly, ok

runner = CliRunner()


def search(sn: Path, out: Path, *extra: str) -> list[str]:
    return ["search", "--device", "jetson-orin", "--supernet", str(sn), "--bn", "switchable",
            "--accuracy-samples", "32", "--out", str(out), *extra]


def leftovers(out: Path) -> list[str]:
    """Staging or moved-aside folders left beside ``out``."""
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def mutually_non_dominated(df: pd.DataFrame) -> bool:
    F = np.column_stack([-df["accuracy"].to_numpy(float), df["latency_ms"].to_numpy(float)])
    return len(non_dominated(F)) == len(F)


BASE = ["--budget", "12", "--top", "0", "--seed", "0"]  # --top 0: export (ONNX + host timing) is tested in test_export


@pytest.fixture(scope="module")
def first_run(sn, tmp_path_factory) -> Path:
    """One full search (all algorithms) shared by the contract, determinism and resume tests."""
    out = tmp_path_factory.mktemp("first") / "run"
    text = ok(search(sn, out, *BASE))
    assert "chosen subnets" in text and "hypervolume: nsga2" in text
    return out


def test_search_writes_the_run_folder_contract(sn, first_run):
    out = first_run
    assert not leftovers(out)
    for name in ("run.json", "evaluations.csv", "history.csv", "pareto.csv", "study.db", "report.html"):
        assert (out / name).is_file(), name
    assert not (out / "subnets").exists()  # --top 0

    ev = pd.read_csv(out / "evaluations.csv", dtype={"subnet_id": str})
    assert list(ev.columns) == list(EVAL_COLUMNS)
    assert ev.groupby("algorithm").size().to_dict() == {"nsga2": 12, "optuna": 12, "random": 12}
    assert ev["feasible"].all() and ev["accuracy"].between(0, 1).all() and (ev["latency_ms"] > 0).all()
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns) == list(HISTORY_COLUMNS)
    assert hist.groupby("algorithm")["n_evals"].max().to_dict() == {"nsga2": 12, "optuna": 12, "random": 12}

    par = pd.read_csv(out / "pareto.csv", dtype={"subnet_id": str})
    assert list(par.columns) == list(PARETO_COLUMNS)
    for alg, rows in par.groupby("algorithm"):
        assert mutually_non_dominated(rows), alg
        best = ev[ev["algorithm"] == alg]
        assert rows["accuracy"].max() == pytest.approx(best["accuracy"].max())  # the most accurate is kept
        assert rows["latency_ms"].min() == pytest.approx(best["latency_ms"].min())  # and the fastest
    combined = par[par["combined"]].drop_duplicates("subnet_id")
    assert mutually_non_dominated(combined) and len(combined) >= 1
    assert sorted(combined["spread_rank"]) == list(range(len(combined)))
    assert (par.loc[~par["combined"], "spread_rank"] == -1).all()
    union = par.drop_duplicates("subnet_id")  # nothing outside the combined set beats it
    assert set(union.iloc[non_dominated(np.column_stack([-union["accuracy"], union["latency_ms"]]))]["subnet_id"]) \
        == set(combined["subnet_id"])

    run = load_run(out)  # the typed record of reports.run_folder
    assert run.status == "complete" and run.format_version == 2 and run.seed == 0
    assert run.command.startswith("dynnas search --device jetson-orin")
    assert run.settings.budget == 12 and run.algorithms == ("nsga2", "optuna", "random")
    assert {"dynnas", "torch", "optuna", "pymoo", "onnxruntime"} <= set(run.versions)
    assert run.profile.name == "jetson-orin" and "{onnx}" in run.profile.deploy
    assert run.supernet.sha256 == sha256(sn) and run.supernet.family == "cnn"
    assert run.supernet.space["n_blocks"] == 4 and run.search_space().n_blocks == 4
    assert "heldout_tau" in run.predictors.accuracy["quality"] and run.predictors.latency
    assert run.hv_reference.ideal.accuracy > run.hv_reference.nadir.accuracy > run.hv_reference.accuracy
    for alg, h in hist.groupby("algorithm"):
        assert run.hypervolume[alg] == pytest.approx(h["hypervolume"].iloc[-1])
    assert run.hypervolume_combined >= max(run.hypervolume.values()) - 1e-12
    assert [b.width for b in run.baselines] == [0.25, 0.5, 0.75, 1.0]
    raw = json.loads((out / "run.json").read_text())  # the convenience copies of settings stay at the top level
    assert raw["seed"] == 0 and raw["device"] == "jetson-orin" and raw["algorithms"] == ["nsga2", "optuna", "random"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and ".partial" not in html  # written at its final path


def test_existing_run_needs_overwrite_and_overwrite_reproduces_it(sn, first_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(first_run, out)
    (out / "pareto.csv").write_text("tampered\n")
    fails_cleanly(search(sn, out, *BASE), "already holds a run")
    fails_cleanly(search(sn, out, *BASE, "--overwrite", "--resume"), "exclude each other")
    fails_cleanly(search(sn, out, *BASE, "--budget", "11", "--resume"), "budget=12 but this command has budget=11")
    assert (out / "pareto.csv").read_text() == "tampered\n" and not leftovers(out)  # untouched
    ok(search(sn, out, *BASE, "--overwrite"))
    for name in ("evaluations.csv", "pareto.csv", "history.csv"):  # same seed, same files
        assert (out / name).read_bytes() == (first_run / name).read_bytes(), name
    assert not leftovers(out)


def test_resume_an_interrupted_search(sn, first_run, tmp_path):
    """A Ctrl-C after `random` finished: --resume reuses it, runs the rest, and ends where a clean run ends."""
    from nas.runfolder import staging_path
    from reports.run_folder import PARTIAL_FILE

    out = tmp_path / "run"
    stage = staging_path(out)
    stage.mkdir()
    run = load_run(first_run)
    ev = pd.read_csv(first_run / "evaluations.csv", dtype={"subnet_id": str})
    hist = pd.read_csv(first_run / "history.csv")
    ev[ev["algorithm"] == "random"].to_csv(stage / "evaluations.csv", index=False)
    hist[hist["algorithm"] == "random"].to_csv(stage / "history.csv", index=False)
    settings = {**run.settings.to_dict(), "out": str(out)}

    def partial(**change: object) -> None:
        doc = {"settings": {**settings, **change}, "done": {"random": run.results["random"].model_dump()}}
        (stage / PARTIAL_FILE).write_text(json.dumps(doc))

    partial(seed=1)
    fails_cleanly(search(sn, out, *BASE, "--resume"), "seed=1 but this command has seed=0")
    partial()
    text = ok(search(sn, out, *BASE, "--resume"))
    assert "reusing random" in text
    for name in ("evaluations.csv", "pareto.csv", "history.csv"):
        assert (out / name).read_bytes() == (first_run / name).read_bytes(), name
    assert load_run(out).results["random"].seconds == run.results["random"].seconds  # not rerun
    assert not leftovers(out) and not (out / PARTIAL_FILE).exists()


def test_an_interrupted_search_keeps_its_staging_folder_for_resume(sn, tmp_path):
    from nas.runfolder import staging, staging_path
    from reports.run_folder import PARTIAL_FILE, SearchSettings

    out = tmp_path / "run"
    settings = SearchSettings(device="d", profile_sha="p", supernet="s", supernet_sha256="x", algorithms=("random",),
                              budget=1, latency_budget_ms=None, top_k=0, bn="recal", seed=0, device_type="cpu",
                              accuracy_samples=10, out=str(out))
    with pytest.raises(RuntimeError), staging(out, settings) as st:
        (st.path / "evaluations.csv").write_text("x")
        raise RuntimeError("boom")
    assert not out.exists() and not leftovers(out)  # an error leaves nothing
    with pytest.raises(KeyboardInterrupt), staging(out, settings) as st:
        st.save_progress([])
        raise KeyboardInterrupt
    assert (staging_path(out) / PARTIAL_FILE).is_file() and not out.exists()  # Ctrl-C: kept for --resume
    with staging(out, settings, resume=True) as st:
        assert st.resumed_from == "interrupted session"
    assert out.is_dir() and not leftovers(out) and not (out / PARTIAL_FILE).exists()


def _bad_profile(tmp_path: Path) -> Path:
    doc = yaml.safe_load(resources.files("hw_profiles").joinpath("jetson-orin.yaml").read_text())
    doc["memory_bandwidth"]["value"] = "fast"
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _corrupt_supernet(tmp_path: Path) -> Path:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00not a safetensors file at all" * 10)
    return path


@pytest.mark.parametrize("case, match", [
    (["--device", "jetson-orn"], "did you mean 'jetson-orin'"),
    (["--algorithm", "nsga-2"], "did you mean 'nsga2'"),
    (["--budget", "0"], "--budget must be >= 1"),
    (["--top", "-1"], "--top must be >= 0"),
    (["--bn", "frozen"], "--bn must be one of"),
    (["--latency-budget", "-2"], "--latency-budget must be a positive"),
    (["--latency-budget", "1e-6"], "is unreachable on jetson-orin: the fastest subnet (w0-0-0-0_x"),
    (["--max-worst-latency", "1e-6"], "worst-case latency budget 1e-06 ms is unreachable on jetson-orin: the fastest "
                                      "worst case (w0-0-0-0_x00, exits off)"),
    (["--max-worst-latency", "-1"], "--max-worst-latency must be a positive"),
    (["--max-accuracy-drop", "-1"], "--max-accuracy-drop is in accuracy points and must be in [0, 100)"),
    (["--max-accuracy-drop", "100"], "--max-accuracy-drop is in accuracy points and must be in [0, 100)"),
    (["--max-accuracy-drop", "0.3"], "--max-accuracy-drop 0.3 pp was not calibrated for this supernet; choose one of "
                                     "0.25, 0.5, 1, 2 pp"),
    (["--exits", "maybe"], "--exits must be auto, on or off"),
    (["--supernet", "/no/such/supernet.safetensors"], "does not exist"),
    ("corrupt-supernet", "corrupt"),
    ("bad-profile", "memory_bandwidth"),
    ("out-not-a-run", "holds no dynnas run"),
])
def test_search_errors_are_one_line_and_leave_nothing(sn, tmp_path, case, match):
    out = tmp_path / "run"
    if case == "corrupt-supernet":
        case = ["--supernet", str(_corrupt_supernet(tmp_path))]
    elif case == "bad-profile":
        case = ["--device", str(_bad_profile(tmp_path))]
    elif case == "out-not-a-run":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        case = []
    args = search(sn, out, "--budget", "5", "--top", "0", "--algorithm", "random")
    # later options win in click, so appending overrides the defaults above
    fails_cleanly([*args, *case], match)
    if out.exists():  # only the pre-existing non-run folder, untouched
        assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert not leftovers(out)


def test_load_run_errors(tmp_path):
    with pytest.raises(NoRunError, match="holds no dynnas search run"):
        load_run(tmp_path)
    with pytest.raises(NoRunError, match="does not exist"):
        load_run(tmp_path / "missing")
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(NoRunError, match="not a dynnas search run file"):
        load_run(tmp_path)
    res = runner.invoke(app, ["export", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.startswith("error: ")


def test_devices_lists_every_profile(tmp_path):
    res = runner.invoke(app, ["devices"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for name in ("jetson-orin", "host", "tensorrt", "42.5 TFLOP/s", "204.8 GB/s", "MAXN", "4 points"):
        assert name in res.stdout, name
    fails_cleanly(["devices", "--profile", str(_bad_profile(tmp_path))], "memory_bandwidth")


def test_power_mode_slows_the_device_and_is_kept_for_resume(sn, tmp_path):
    runs = {}
    for spec in ("jetson-orin", "jetson-orin:15W"):
        out = tmp_path / spec.replace(":", "_")
        ok(["search", "--device", spec, "--supernet", str(sn), "--bn", "switchable", "--accuracy-samples", "32",
            "--out", str(out), "--budget", "8", "--seed", "0", "--top", "0", "--algorithm", "random"])
        runs[spec] = json.loads((out / "run.json").read_text())
    fast = [b["latency_ms"] for b in runs["jetson-orin"]["baselines"]]
    slow = [b["latency_ms"] for b in runs["jetson-orin:15W"]["baselines"]]
    assert all(s >= f for s, f in zip(slow, fast, strict=True))  # tiny nets are launch-bound: barely slower
    from predictors import latency_predictor, reference_kernels
    from supernet.cnn import PRESETS

    resnet = reference_kernels("resnet50")
    at = {m: latency_predictor("jetson-orin", PRESETS["tiny"], power_mode=m).kernels_ms(resnet) for m in ("MAXN", "15W")}
    assert at["15W"] > 1.3 * at["MAXN"]  # a compute-bound net: 15 W runs the GPU at lower clocks on fewer TPCs
    assert runs["jetson-orin:15W"]["settings"]["power_mode"] == "15W"
    lat = runs["jetson-orin:15W"]["predictors"]["latency"]
    assert lat["confidence"] == "ok" and lat["power_mode"] == "15W" and lat["n_calibration_points"] == 4
    out = tmp_path / "nx"  # four ResNet-50 points only: the run and its report say the latency is low-confidence
    text = ok(["search", "--device", "jetson-orin-nx", "--supernet", str(sn), "--bn", "switchable",
               "--accuracy-samples", "32", "--out", str(out), "--budget", "8", "--seed", "0", "--top", "0",
               "--algorithm", "random"])
    nx = json.loads((out / "run.json").read_text())["predictors"]["latency"]
    assert nx["confidence"] == "low"
    # the tiny subnets (well under 1 M MACs) lie far below the NX's ResNet-50 points: said once, kept, reported
    assert text.count("warning: jetson-orin-nx is calibrated on networks of 4.09 G–4.09 G MACs") == 1
    assert nx["extrapolated"] is True and nx["calibrated_macs"] == pytest.approx([4.089e9, 4.089e9], rel=1e-3)
    assert nx["subnet_macs"][0] <= nx["subnet_macs"][1] < 1e6
    report = (out / "report.html").read_text()
    assert "low (4 published points), extrapolated (calibrated on 4,089–4,089 M MACs)" in report
    assert runs["jetson-orin"]["settings"]["power_mode"] is None
    assert "--device jetson-orin:15W" in runs["jetson-orin:15W"]["command"]
    fails_cleanly(["search", "--device", "jetson-orin:15w", "--supernet", str(sn), "--out", str(tmp_path / "x")],
                  "15W")


def test_batch_costs_a_batch_and_needs_static_networks(sn, tmp_path):
    out = tmp_path / "b16"
    text = ok(["search", "--device", "jetson-orin", "--supernet", str(sn), "--bn", "switchable", "--accuracy-samples",
               "32", "--out", str(out), "--budget", "8", "--seed", "0", "--top", "0", "--algorithm", "random",
               "--batch", "16"])
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["batch"] == 16 and "--batch 16" in run["command"] and not run["exits"]["searched"]
    from predictors import latency_predictor
    from supernet.checkpoint import load_supernet

    model, _ = load_supernet(sn)
    one = latency_predictor("jetson-orin", model.config).predict_ms([model.space.largest()])[0]
    b16 = run["baselines"][-1]["latency_ms"]
    assert one < b16 < 16 * one  # a batch costs more than one image, less than 16 launches of one
    assert "batch" in text or out.is_dir()
    for extra, match in ((["--batch", "0"], "--batch must be >= 1"),
                         (["--batch", "4", "--exits", "on"], "cannot search exits"),
                         (["--batch", "4", "--device", "host"], "measured at batch 1 only")):
        args = ["search", "--device", "jetson-orin", "--supernet", str(sn), "--out", str(tmp_path / "bad"), *extra]
        fails_cleanly(args, match)
        assert not (tmp_path / "bad").exists()
