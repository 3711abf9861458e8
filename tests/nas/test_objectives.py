"""`dynnas search --objectives accuracy,latency,energy|memory`, `--max-memory`, `--max-energy`: three objectives
(NSGA-III, optuna, random), 3-D hypervolume, constraints and every bad-input error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.cmd_search import parse_bytes
from nas.pareto import non_dominated
from predictors.memory import MemoryPredictor
from reports.run_folder import load_run
from supernet.checkpoint import load_supernet
from tests.cli import fails_cleanly, ok


def search(sn: Path, out: Path, *extra: str, device: str = "jetson-orin") -> list[str]:
    return ["search", "--device", device, "--supernet", str(sn), "--bn", "switchable", "--accuracy-samples", "32",
            "--out", str(out), "--budget", "20", "--top", "0", "--seed", "0", *extra]


@pytest.mark.parametrize("third", ["energy_mj", "memory_bytes"])
def test_three_objective_front_is_non_dominated_in_3d(sn, tmp_path, third):
    out = tmp_path / "run"
    name = third.split("_")[0]
    ok(search(sn, out, "--objectives", f"accuracy,latency,{name}"))
    run = load_run(out)
    assert [o.name for o in run.objectives] == ["accuracy", "latency_ms", third]
    assert sorted(run.results) == ["nsga3", "optuna", "random"]
    assert run.results["nsga3"].settings["library"] == "pymoo NSGA3"
    assert run.results["optuna"].settings["directions"] == ["maximize", "minimize", "minimize"]
    assert json.loads((out / "run.json").read_text())["hv_reference"]["third"] == third
    ev = pd.read_csv(out / "evaluations.csv", dtype={"subnet_id": str})
    assert third in ev.columns and (ev[third] > 0).all()
    par = pd.read_csv(out / "pareto.csv", dtype={"subnet_id": str})
    for alg, rows in par.groupby("algorithm"):
        F = np.column_stack([-rows["accuracy"], rows["latency_ms"], rows[third]]).astype(float)
        assert len(non_dominated(F)) == len(F), alg  # mutually non-dominated in 3-D
        e = ev[ev["algorithm"] == alg].drop_duplicates("subnet_id")
        E = np.column_stack([-e["accuracy"], e["latency_ms"], e[third]]).astype(float)
        for f in F:  # and no evaluated candidate dominates a front point
            assert not np.any(np.all(E <= f, axis=1) & np.any(E < f, axis=1)), alg
    assert all(0 < run.hypervolume[a] for a in run.results)


def test_two_objectives_stay_as_before(sn, tmp_path):
    out = tmp_path / "two"
    ok(search(sn, out, "--objectives", "accuracy,latency", "--algorithm", "random"))
    doc = json.loads((out / "run.json").read_text())
    assert "objectives" not in doc["settings"] and "third" not in doc["hv_reference"]
    assert "energy_mj" not in pd.read_csv(out / "evaluations.csv").columns


def test_max_memory_is_a_constraint(sn, tmp_path):
    model, _ = load_supernet(sn)
    least, _ = MemoryPredictor(model.config, "fp32").minimum_bytes()
    largest = float(MemoryPredictor(model.config, "fp32").predict_bytes([model.space.largest()])[0])
    cap = (least + largest) / 2
    out = tmp_path / "mem"
    ok(search(sn, out, "--max-memory", f"{cap:.0f}", "--algorithm", "random"))
    ev = pd.read_csv(out / "evaluations.csv")
    assert (ev["feasible"] == (ev["memory_bytes"] <= cap)).all()
    assert load_run(out).constraints[-1]["name"] == "memory_bytes"


def test_three_objectives_on_several_devices(sn, tmp_path):
    out = tmp_path / "fleet3"
    ok(search(sn, out, "--objectives", "accuracy,latency,memory", "--algorithm", "nsga3,random",
              device="jetson-orin,raspberry-pi-5"))
    for d in ("jetson-orin", "raspberry-pi-5"):
        run = load_run(out / "devices" / d)
        assert [o.name for o in run.objectives] == ["accuracy", "latency_ms", "memory_bytes"]
    table = pd.read_csv(out / "deployment.csv")
    assert table["device"].tolist() == ["jetson-orin", "raspberry-pi-5"] and (table["memory_bytes"] > 0).all()


def test_parse_bytes():
    assert parse_bytes("2MB") == 2e6 and parse_bytes("512KiB") == 512 * 1024 and parse_bytes("1000") == 1000


@pytest.mark.parametrize(("extra", "device", "match"), [
    (["--objectives", "accuracy,latency,power"], "jetson-orin", "unknown objective 'power'"),
    (["--objectives", "accuracy,latency,energy", "--algorithm", "nsga2"], "jetson-orin",
     "--algorithm nsga2 handles two objectives, but --objectives gives 3; use nsga3, optuna, random"),
    (["--max-memory", "10"], "jetson-orin", "is below the smallest subnet (w0-0-0-0"),
    (["--max-memory", "2XB"], "jetson-orin", "--max-memory must be a positive number of bytes"),
    (["--max-energy", "-1"], "jetson-orin", "--max-energy must be a positive number of mJ"),
    (["--objectives", "accuracy,latency,energy"], "xeon-8481c", "publishes no power figure"),
    (["--max-energy", "1"], "xeon-8481c", "publishes no power figure"),
])
def test_bad_objectives_and_constraints(sn, tmp_path, extra, device, match):
    out = tmp_path / "bad"
    fails_cleanly(search(sn, out, *extra, device=device), match)
    assert not out.exists()


def test_resume_checks_objectives_and_constraints(sn, tmp_path):
    """--resume of a run made with other objectives or constraints names the differing setting, and the
    recorded command reproduces them."""
    out = tmp_path / "run"
    ok(search(sn, out, "--objectives", "accuracy,latency,memory", "--algorithm", "random", "--max-energy", "50"))
    run = load_run(out)
    assert run.settings.objectives == ("accuracy", "latency", "memory")
    command = run.settings.command()
    assert "--objectives accuracy,latency,memory" in command and "--max-energy 50" in command
    fails_cleanly(search(sn, out, "--algorithm", "random", "--max-energy", "50", "--resume"),
                  "objectives=('accuracy', 'latency', 'memory') but this command has objectives=None")
    fails_cleanly(search(sn, out, "--objectives", "accuracy,latency,memory", "--algorithm", "random",
                         "--max-energy", "40", "--resume"), "max_energy_mj=50.0 but this command has max_energy_mj=40.0")
