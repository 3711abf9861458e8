"""`dynnas search --device a,b`: one run folder for several devices, the shared accuracy predictor, per-device
fronts, the deployment table (what every CPU reproduces), determinism, --resume of a fleet, export of a fleet
and every bad-input error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nas.cli import app
from nas.fleet import deploy_choice
from nas.targets import parse_devices, parse_latency_budgets
from reports.run_folder import (
    DEPLOYMENT_COLUMNS,
    device_runs,
    is_fleet,
    load_fleet,
    load_run,
    read_deployment,
)
from tests.cli import fails_cleanly, ok

DEVICES = "jetson-orin,raspberry-pi-5"
BASE = ["--budget", "12", "--top", "0", "--seed", "0", "--algorithm", "nsga2,random"]


def search(sn: Path, out: Path, *extra: str, device: str = DEVICES) -> list[str]:
    return ["search", "--device", device, "--supernet", str(sn), "--bn", "switchable", "--accuracy-samples", "32",
            "--out", str(out), *BASE, *extra]


@pytest.fixture(scope="module")
def fleet(sn, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fleet") / "run"
    text = ok(search(sn, out, "--latency-budget", "raspberry-pi-5=20"))
    assert "deployment: which subnet on which device" in text
    for device in ("jetson-orin", "raspberry-pi-5"):  # the tiny subnets lie below both calibrated ranges
        assert text.count(f"warning: {device} is calibrated on networks of") == 1, device
    return out


def test_fleet_folder_holds_one_run_per_device(fleet):
    assert is_fleet(fleet) and not (fleet / "run.json").exists()
    rec = load_fleet(fleet)
    assert [d.device for d in rec.devices] == ["jetson-orin", "raspberry-pi-5"]
    assert [d.latency_budget_ms for d in rec.devices] == [None, 20.0]
    for part in (f"--device {DEVICES}", "--latency-budget raspberry-pi-5=20", "--bn switchable",
                 "--accuracy-samples 32", "--algorithm nsga2,random", "--budget 12", f"--out {fleet}"):
        assert part in rec.command, part  # the recorded command reproduces the run
    runs = device_runs(fleet)
    assert runs == [fleet / "devices" / "jetson-orin", fleet / "devices" / "raspberry-pi-5"]
    for d, name in zip(runs, ("jetson-orin", "raspberry-pi-5"), strict=True):
        run = load_run(d)  # each is a complete single-device run folder
        assert run.device == name and run.settings.out == str(d)
        for f in ("evaluations.csv", "history.csv", "pareto.csv", "report.html"):
            assert (d / f).is_file(), f
    a, b = (load_run(d) for d in runs)
    assert a.predictors.accuracy == b.predictors.accuracy  # one accuracy predictor, shared
    assert a.predictors.latency != b.predictors.latency  # each device its own latency predictor
    assert b.settings.latency_budget_ms == 20.0 and a.settings.latency_budget_ms is None
    page = (fleet / "report.html").read_text()
    assert "<h2 id='deployment'>" in page and "raspberry-pi-5" in page and "jetson-orin" in page
    assert not [p for p in fleet.parent.iterdir() if p.name.startswith(".run.")]


def test_deployment_table_matches_the_fronts(fleet):
    table = read_deployment(fleet)
    assert list(table.columns) == list(DEPLOYMENT_COLUMNS)
    assert table["device"].tolist() == ["jetson-orin", "raspberry-pi-5"]
    for row in table.itertuples(index=False):
        par = pd.read_csv(fleet / row.run / "pareto.csv", dtype={"subnet_id": str})
        front = par[par["combined"]].drop_duplicates("subnet_id")
        if not pd.isna(row.latency_budget_ms):
            front = front[front["latency_ms"] <= row.latency_budget_ms]
            assert row.latency_ms <= row.latency_budget_ms
        assert row.accuracy == pytest.approx(front["accuracy"].max())
        assert row.subnet_id in set(front["subnet_id"]) and row.memory_bytes > 0 and row.macs > 0


def test_deployment_table_golden(fleet, sn):
    """The tiny fixed run's deployment table (tiny supernet, seed 0, nsga2 + random, 12 evaluations each), as
    far as every CPU reproduces it. Training differs between CPUs (oneDNN kernels), and with it the predicted
    accuracy, the exit rates, the expected latency and what nsga2 visits: so neither the winner nor its floats
    are pinned, but the rows, the choice rule, the values that follow from the chosen arch, and invariants."""
    from predictors.memory import MemoryPredictor
    from supernet.checkpoint import load_supernet

    t = read_deployment(fleet)
    assert t[["device", "power_mode", "run"]].to_dict("records") == [
        {"device": "jetson-orin", "power_mode": "MAXN", "run": "devices/jetson-orin"},
        {"device": "raspberry-pi-5", "power_mode": "2400MHz", "run": "devices/raspberry-pi-5"},
    ]
    assert pd.isna(t["latency_budget_ms"][0]) and t["latency_budget_ms"][1] == 20.0
    model, _ = load_supernet(sn)
    evals = [pd.read_csv(fleet / r / "evaluations.csv", dtype={"subnet_id": str}) for r in t["run"]]
    for row, ev, precision in zip(t.itertuples(index=False), evals, ("fp16", "int8"), strict=True):
        # every tiny subnet runs in well under 1 ms, so the 20 ms budget binds nothing: each device deploys
        # the most accurate subnet it evaluated (always on the combined front), as evaluated
        assert ev["worst_latency_ms"].max() < 1.0
        assert row.accuracy == pytest.approx(ev["accuracy"].max(), rel=1e-9)
        same = ev[ev["subnet_id"] == row.subnet_id].iloc[0]
        assert (same["arch"], same["macs"]) == (row.arch, row.macs)
        assert row.latency_ms == pytest.approx(same["latency_ms"], rel=1e-9)
        assert 0 < row.latency_ms <= same["worst_latency_ms"]  # exits only ever save time
        assert 0.2 < row.accuracy < 1.0  # well above chance (10 digits); 0.37 to 0.39 on the CPUs seen
        # memory is the arch's at the device's default precision (Orin fp16, Pi int8; both portable rules)
        sub = model.space.parse(row.arch)
        assert row.memory_bytes == int(MemoryPredictor(model.config, precision).predict_bytes([sub])[0]) > 0
    # random draws depend on the seed alone, and the accuracy predictor is shared: the same archs, MACs and
    # accuracies on both devices, each device with its own latencies
    orin, pi = (ev[ev["algorithm"] == "random"].reset_index(drop=True) for ev in evals)
    cols = ["subnet_id", "arch", "macs", "accuracy", "static_accuracy", "exit_rates"]
    pd.testing.assert_frame_equal(orin[cols], pi[cols])
    assert len(orin) == 12 and (orin["latency_ms"] != pi["latency_ms"]).all()
    # tighter budgets on the Pi's front: the deployed accuracy never rises and the budget is always met
    par = pd.read_csv(fleet / t["run"][1] / "pareto.csv", dtype={"subnet_id": str})
    front = par[par["combined"]].drop_duplicates("subnet_id")
    budgets = sorted(front["latency_ms"], reverse=True)
    picks = [deploy_choice(front, b) for b in budgets]
    assert [p["accuracy"] for p in picks] == sorted((p["accuracy"] for p in picks), reverse=True)
    assert all(p["latency_ms"] <= b for p, b in zip(picks, budgets, strict=True)) and len(picks) > 1


def test_same_seed_same_fronts_on_every_device(sn, fleet, tmp_path):
    again = tmp_path / "again"
    ok(search(sn, again, "--latency-budget", "raspberry-pi-5=20"))
    for a, b in zip(device_runs(fleet), device_runs(again), strict=True):
        pa = pd.read_csv(a / "pareto.csv", dtype={"subnet_id": str})
        pb = pd.read_csv(b / "pareto.csv", dtype={"subnet_id": str})
        pd.testing.assert_frame_equal(pa, pb)
    pd.testing.assert_frame_equal(read_deployment(fleet).drop(columns="run"),
                                  read_deployment(again).drop(columns="run"))


def test_single_device_run_is_unchanged(sn, tmp_path):
    out = tmp_path / "one"
    ok(search(sn, out, "--latency-budget", "jetson-orin=5", device="jetson-orin"))
    assert not is_fleet(out) and device_runs(out) == [out]
    assert not (out / "deployment.csv").exists() and not (out / "devices").exists()
    assert load_run(out).settings.latency_budget_ms == 5.0
    assert json.loads((out / "run.json").read_text())["settings"]["device"] == "jetson-orin"


def test_report_of_a_fleet_folder(fleet, tmp_path):
    out = tmp_path / "r.html"
    ok(["report", str(fleet), "--out", str(out)])
    page = out.read_text()
    assert "<h2 id='deployment'>" in page and page.count("<h2 id='fronts'>") == 1


def test_deploy_choice_golden():
    front = pd.DataFrame({"subnet_id": ["a", "b", "c", "d"], "accuracy": [0.70, 0.80, 0.90, 0.90],
                          "latency_ms": [1.0, 2.0, 4.0, 3.0]})
    assert deploy_choice(front, None)["subnet_id"] == "d"  # most accurate, the faster of a tie
    assert deploy_choice(front, 3.0)["subnet_id"] == "d"
    assert deploy_choice(front, 2.5)["subnet_id"] == "b"
    assert deploy_choice(front, 1.0)["subnet_id"] == "a"


def test_parse_budgets():
    targets = parse_devices("jetson-orin, raspberry-pi-5")
    assert [t.key for t in targets] == ["jetson-orin", "raspberry-pi-5"]
    assert parse_latency_budgets("jetson-orin=0.15,raspberry-pi-5=20", targets) == {"jetson-orin": 0.15,
                                                                                     "raspberry-pi-5": 20.0}
    assert parse_latency_budgets(None, targets) == {"jetson-orin": None, "raspberry-pi-5": None}
    one = parse_devices("jetson-orin")
    assert parse_latency_budgets("1.5", one) == {"jetson-orin": 1.5}


@pytest.mark.parametrize(("device", "extra", "match"), [
    (",", [], "empty device list"),
    ("jetson-orin,", [], "empty device list"),
    ("jetson-orin,jetson-orin", [], "lists jetson-orin more than once"),
    (DEVICES, ["--latency-budget", "host=3"], "names device 'host', which is not in --device"),
    (DEVICES, ["--latency-budget", "3"], "does not say which of the 2 devices"),
    (DEVICES, ["--latency-budget", "jetson-orin=-1"], "must be a positive number of ms for jetson-orin"),
    ("jetson-orin", ["--latency-budget", "raspberry-pi-5=3"], "names device 'raspberry-pi-5'"),
])
def test_bad_device_lists_and_budgets(sn, tmp_path, device, extra, match):
    out = tmp_path / "bad"
    fails_cleanly(search(sn, out, *extra, device=device), match)
    assert not out.exists() and not list(tmp_path.iterdir())


# ---- --resume of a fleet run -------------------------------------------------------------------
def leftovers(out: Path) -> list[str]:
    """Staging or moved-aside folders left beside ``out``."""
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def assert_same_fleet(a: Path, b: Path) -> None:
    """Two fleet runs found the same: every device's tables, and the deployment table."""
    for da, db in zip(device_runs(a), device_runs(b), strict=True):
        assert da.relative_to(a) == db.relative_to(b)
        for name in ("evaluations.csv", "history.csv", "pareto.csv"):
            assert (da / name).read_bytes() == (db / name).read_bytes(), (da, name)
    pd.testing.assert_frame_equal(read_deployment(a), read_deployment(b))
    assert load_fleet(a).devices == load_fleet(b).devices


def test_resume_reruns_a_removed_device_and_reuses_the_finished_one(sn, fleet, tmp_path):
    out = tmp_path / "run"
    ok(search(sn, out, "--latency-budget", "raspberry-pi-5=20"))
    kept = out / "devices" / "raspberry-pi-5"
    before = {f: (kept / f).read_bytes() for f in ("evaluations.csv", "history.csv", "pareto.csv", "run.json")}
    shutil.rmtree(out / "devices" / "jetson-orin")
    text = ok(search(sn, out, "--latency-budget", "raspberry-pi-5=20", "--resume"))
    assert "reusing the finished search on raspberry-pi-5" in text
    for f, data in before.items():  # reused as it was, not rewritten
        assert (kept / f).read_bytes() == data, f
    assert load_run(out / "devices" / "jetson-orin").device == "jetson-orin"
    assert_same_fleet(out, fleet)  # the removed device searched again: what a fresh run with the seed finds
    assert (out / "report.html").is_file() and not leftovers(out) and not (out / "fleet.partial.json").exists()


def test_resume_continues_an_interrupted_fleet_search(sn, fleet, tmp_path, monkeypatch):
    """A Ctrl-C in raspberry-pi-5's `random` (jetson-orin done): the staging folder is kept, and --resume reuses
    jetson-orin and raspberry-pi-5's nsga2, runs the rest and ends where a fresh run ends."""
    import nas.driver
    from nas.runfolder import staging_path
    from tests.cli import runner

    real = nas.driver.run_search

    def interrupted(problem, name, *args, **kwargs):
        if problem.device == "raspberry-pi-5" and name == "random":
            raise KeyboardInterrupt
        return real(problem, name, *args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(nas.driver, "run_search", interrupted)
    res = runner.invoke(app, search(sn, out, "--latency-budget", "raspberry-pi-5=20"))
    monkeypatch.undo()
    assert res.exit_code == 130 and "--resume" in res.stderr and not out.exists()
    stage = staging_path(out)
    done = stage / "devices" / "jetson-orin"
    assert load_run(done).device == "jetson-orin"
    assert (stage / "devices" / ".raspberry-pi-5.partial" / "partial.json").is_file()
    before = (done / "evaluations.csv").read_bytes()
    fails_cleanly(search(sn, out, "--latency-budget", "raspberry-pi-5=20", "--resume", device="raspberry-pi-5,jetson-orin"),
                  "it searched --device jetson-orin,raspberry-pi-5 but this command has --device raspberry-pi-5,jetson-orin")
    text = ok(search(sn, out, "--latency-budget", "raspberry-pi-5=20", "--resume"))
    assert "reusing the finished search on jetson-orin" in text and "reusing nsga2" in text
    assert (out / "devices" / "jetson-orin" / "evaluations.csv").read_bytes() == before
    assert_same_fleet(out, fleet)
    assert not leftovers(out)


def test_resume_with_another_algorithm_resumes_each_device(sn, fleet, tmp_path):
    """Finished devices made with other settings than the resume's (here: one algorithm fewer) are not reused
    as they are but resumed: their finished algorithms kept, the new one run."""
    out = tmp_path / "run"
    ok(search(sn, out, "--latency-budget", "raspberry-pi-5=20", "--algorithm", "nsga2"))
    text = ok(search(sn, out, "--latency-budget", "raspberry-pi-5=20", "--resume"))
    assert text.count("reusing nsga2") == 2 and "reusing the finished search" not in text
    assert_same_fleet(out, fleet)
    assert load_run(out / "devices" / "jetson-orin").algorithms == ("nsga2", "random")


@pytest.mark.parametrize(("device", "extra", "match"), [
    ("jetson-orin,host", [], "it searched --device jetson-orin,raspberry-pi-5 but this command has --device "
                             "jetson-orin,host; pass --device jetson-orin,raspberry-pi-5 to continue it, or --overwrite"),
    ("jetson-orin", [], "it searched --device jetson-orin,raspberry-pi-5 but this command has --device jetson-orin;"),
    (DEVICES, ["--latency-budget", "raspberry-pi-5=30"], "devices/raspberry-pi-5': it was made with "
                                                         "latency_budget_ms=20.0 but this command has latency_budget_ms=30.0"),
    (DEVICES, ["--latency-budget", "raspberry-pi-5=20", "--seed", "1"], "it was made with seed=0 but this command has "
                                                                         "seed=1; use the same settings or pass --overwrite"),
])
def test_resume_with_other_devices_or_settings_fails_and_changes_nothing(sn, fleet, device, extra, match):
    files = {p: p.stat().st_mtime_ns for p in fleet.rglob("*")}
    fails_cleanly([*search(sn, fleet, *extra, device=device), "--resume"], match)
    assert {p: p.stat().st_mtime_ns for p in fleet.rglob("*")} == files and not leftovers(fleet)


def test_resume_of_a_single_device_run_over_several_devices_fails(sn, fleet, tmp_path):
    one = tmp_path / "one"
    shutil.copytree(fleet / "devices" / "jetson-orin", one)  # a complete single-device run folder
    fails_cleanly([*search(sn, one), "--resume"], "it searched --device jetson-orin but this command has --device "
                                                  "jetson-orin,raspberry-pi-5")
    assert not leftovers(one)


# ---- dynnas export of a fleet run --------------------------------------------------------------
def exported_ids(run_dir: Path) -> list[str]:
    return json.loads((run_dir / "run.json").read_text()).get("exported") or []


def test_export_of_a_fleet_exports_every_device(fleet, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fleet, run)
    text = ok(["export", str(run), "--top", "1"])
    assert "jetson-orin: exporting" in text and "raspberry-pi-5: exporting" in text
    for d in device_runs(run):
        ids = exported_ids(d)
        assert len(ids) == 1 and (d / "subnets" / ids[0] / "model.onnx").is_file()
    assert not (run / "subnets").exists()


def test_export_of_one_device_of_a_fleet(fleet, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fleet, run)
    ok(["export", str(run), "--top", "1", "--device", "raspberry-pi-5"])
    pi, orin = run / "devices" / "raspberry-pi-5", run / "devices" / "jetson-orin"
    assert len(exported_ids(pi)) == 1 and (pi / "subnets").is_dir()
    assert not exported_ids(orin) and not (orin / "subnets").exists()


def test_export_of_a_fleet_errors(fleet, tmp_path):
    fails_cleanly(["export", str(fleet), "--device", "jetson-orn"],
                  f"run '{fleet}' has no device 'jetson-orn'; did you mean 'jetson-orin'? Its devices: jetson-orin, "
                  "raspberry-pi-5")
    run = tmp_path / "run"
    shutil.copytree(fleet, run)
    shutil.rmtree(run / "devices" / "jetson-orin")
    fails_cleanly(["export", str(run)], "lacks the folder of device jetson-orin")
    assert not (run / "devices" / "raspberry-pi-5" / "subnets").exists()  # nothing exported before the error


def test_help_shows_the_fleet_examples():
    assert "dynnas search --device jetson-orin,host --out runs/fleet --resume" in ok(["search", "--help"])
    text = ok(["export", "--help"])
    assert "dynnas export runs/fleet" in text and "--device raspberry-pi-5" in text
