"""The run-folder contract: run folders written before reports/ existed still load, typed and exact; broken or
foreign ones give one line naming the fix."""

from __future__ import annotations

import json
import re
import shutil
import typing
from pathlib import Path

import pandas as pd
import pytest

from reports.run_folder import (
    EVAL_COLUMNS,
    PARETO_COLUMNS,
    IncompatibleRunsError,
    NoRunError,
    RunRecord,
    SearchSettings,
    choose_subnets,
    combined_front,
    exported_subnets,
    load_run,
    load_runs,
    read_table,
    save_run,
)
from supernet.evaluate import BN_MODES
from tests.cli import fails_cleanly
from tests.reports.runs import V2_RUNS

ORIN, HOST = V2_RUNS


def _copy(src: Path, tmp_path: Path, name: str | None = None) -> Path:
    dst = tmp_path / (name or src.name)
    shutil.copytree(src, dst)
    return dst


def _edit(run_dir: Path, change) -> None:
    doc = json.loads((run_dir / "run.json").read_text())
    change(doc)
    (run_dir / "run.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("run_dir", V2_RUNS, ids=lambda p: p.name)
def test_runs_written_before_the_move_load_into_the_typed_record(run_dir):
    raw = json.loads((run_dir / "run.json").read_text())
    run = load_run(run_dir)
    assert isinstance(run, RunRecord) and run.format_version == 2
    s = raw["settings"]
    assert (run.device, run.seed, run.bn, run.algorithms) == (s["device"], s["seed"], s["bn"], tuple(s["algorithms"]))
    assert run.settings.command() == raw["command"]  # the settings reproduce the command that made the run
    assert run.hv_reference.ideal.accuracy == raw["hv_reference"]["ideal"]["accuracy"]
    assert run.hv_reference.nadir.latency_ms == raw["hv_reference"]["nadir"]["latency_ms"]
    assert {a: r.n_evals for a, r in run.results.items()} == {a: r["n_evals"] for a, r in raw["results"].items()}
    assert [b.arch for b in run.baselines] == [b["arch"] for b in raw["baselines"]]
    assert run.exported == raw["exported"] and run.export_host_speed.drift == raw["export_host_speed"]["drift"]
    assert run.search_space().n_blocks == raw["supernet"]["space"]["n_blocks"]
    assert run.profile.deploy == raw["profile"]["deploy"] and run.profile.peak_compute == raw["profile"]["peak_compute"]


@pytest.mark.parametrize("run_dir", V2_RUNS, ids=lambda p: p.name)
def test_saving_a_loaded_record_rewrites_the_same_document(run_dir, tmp_path):
    save_run(tmp_path, load_run(run_dir))
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads((run_dir / "run.json").read_text())


def test_keys_a_newer_writer_added_survive_a_rewrite(tmp_path):
    run_dir = _copy(ORIN, tmp_path)
    _edit(run_dir, lambda d: d.update(energy={"method": "power x latency"}))
    run = load_run(run_dir)
    save_run(run_dir, run.updated(exported=[]))
    doc = json.loads((run_dir / "run.json").read_text())
    assert doc["energy"] == {"method": "power x latency"} and doc["exported"] == []


def test_exported_subnet_packages_are_typed(tmp_path):
    run = load_run(ORIN)
    subnets = exported_subnets(ORIN, run)
    assert [e.arch.subnet_id for e in subnets] == run.exported
    for e in subnets:
        raw = json.loads((e.folder / "verify.json").read_text())
        assert e.verify.onnx_accuracy == raw["onnx_accuracy"] and e.verify.dynamic is raw["dynamic"]
        assert e.verify.host_latency_relative.now_ms == raw["host_latency_relative"]["now_ms"]
        assert e.onnx == e.folder / "model.onnx" and e.arch.macs > 0
    broken = _copy(ORIN, tmp_path)
    verify = broken / "subnets" / run.exported[0] / "verify.json"
    doc = json.loads(verify.read_text())
    del doc["onnx_accuracy"]
    verify.write_text(json.dumps(doc))
    with pytest.raises(NoRunError, match=r"breaks the dynnas-subnet format \(onnx_accuracy: Field required\); "
                                         r"re-export with `dynnas export"):
        exported_subnets(broken, run)


def test_tables_follow_their_columns():
    ev = read_table(ORIN, "evaluations.csv")
    assert list(ev.columns) == list(EVAL_COLUMNS) and ev["feasible"].dtype == bool
    assert ev.groupby("algorithm").size().to_dict() == {"nsga2": 12, "optuna": 12, "random": 12}
    pareto = read_table(ORIN, "pareto.csv")
    assert list(pareto.columns) == list(PARETO_COLUMNS)
    front = combined_front(ORIN)
    assert front["latency_ms"].is_monotonic_increasing and sorted(front["spread_rank"]) == list(range(len(front)))
    picks = choose_subnets(front, 2)
    assert set(picks["spread_rank"]) == {0, 1}  # the fastest and the most accurate
    assert set(picks["subnet_id"]) == set(load_run(ORIN).exported)  # what the search exported with --top 2


def test_settings_literals_match_the_registries():
    assert set(typing.get_args(SearchSettings.model_fields["bn"].annotation)) == set(BN_MODES)


def test_resume_keys_name_the_first_difference():
    a = load_run(ORIN).settings
    b = a.model_copy(update={"seed": 5, "budget": 3})
    assert a.differences(b) == [("budget", 12, 3), ("seed", 0, 5)]


@pytest.mark.parametrize("case, match", [
    ("truncated", r"is corrupt or truncated \(JSONDecodeError at line \d+ column \d+\); restore it from a copy or rerun "
                  r"the search with --overwrite --out "),
    ("other-format", r"is not a dynnas search run file \(format 'dynnas-profile-run', expected 'dynnas-search-run'\)"),
    ("old-version", r"has format version 1, this dynnas reads 2; rerun `dynnas search --device jetson-orin "),
    ("bad-type", r"breaks the dynnas-search-run format 2 \(settings\.seed: Input should be a valid integer.*got "
                 r"\"zero\"\); it was edited or written by another tool: rerun `dynnas search"),
    ("missing", r"breaks the dynnas-search-run format 2 \(hv_reference: Field required\)"),
    ("disagree", r"top-level seed=3 disagrees with settings.seed=0"),
    ("running", r"is not complete \(status 'running'\); rerun it with --resume"),
])
def test_broken_run_json_is_one_line_naming_the_fix(case, match, tmp_path):
    run_dir = _copy(ORIN, tmp_path)
    path = run_dir / "run.json"
    edits = {"other-format": lambda d: d.update(format="dynnas-profile-run"),
             "old-version": lambda d: d.update(format_version=1),
             "bad-type": lambda d: (d.update(seed="zero"), d["settings"].update(seed="zero")),
             "missing": lambda d: d.pop("hv_reference"),
             "disagree": lambda d: d.update(seed=3),
             "running": lambda d: d.update(status="running")}
    if case == "truncated":
        path.write_text(path.read_text()[:500])
    else:
        _edit(run_dir, edits[case])
    with pytest.raises(NoRunError, match=match):
        load_run(run_dir)
    for command in (["report", str(run_dir), "--out", str(tmp_path / "r.html")], ["export", str(run_dir)]):
        line = fails_cleanly(command, "")
        assert re.search(match, line), line
    assert not (tmp_path / "r.html").exists()


def test_several_runs_must_be_distinct_and_of_one_format(tmp_path):
    assert [r.device for _, r in load_runs([ORIN, HOST])] == ["jetson-orin", "host"]
    with pytest.raises(IncompatibleRunsError, match="is given twice"):
        load_runs([ORIN, HOST, ORIN])
    energy = _copy(HOST, tmp_path, "energy")
    _edit(energy, lambda d: d["objectives"].append({"name": "energy_mj", "direction": "minimize", "unit": "mJ"}))
    with pytest.raises(IncompatibleRunsError, match=r"\(objectives accuracy, latency_ms\) and '.*energy' \(objectives "
                                                    r"accuracy, latency_ms, energy_mj\) optimise different objectives; "
                                                    "report them separately"):
        load_runs([ORIN, energy])
    fails_cleanly(["report", str(ORIN), str(energy), "--out", str(tmp_path / "r.html")], "optimise different objectives")
    old = _copy(HOST, tmp_path, "old")
    _edit(old, lambda d: d.update(format_version=1))
    fails_cleanly(["report", str(ORIN), str(old), "--out", str(tmp_path / "r.html")], "has format version 1")
    assert not (tmp_path / "r.html").exists()


def test_tables_with_missing_columns_name_the_fix(tmp_path):
    run_dir = _copy(ORIN, tmp_path)
    pd.read_csv(run_dir / "pareto.csv").drop(columns=["spread_rank"]).to_csv(run_dir / "pareto.csv", index=False)
    with pytest.raises(NoRunError, match=r"lacks columns \['spread_rank'\]; rerun the search with --overwrite"):
        read_table(run_dir, "pareto.csv")
