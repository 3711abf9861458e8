"""benchmarks/search_quality.py and `dynnas search` compute the same hypervolume for the same search.

The benchmark's run of (algorithm, budget, seed) must be the CLI's search with ``--algorithm``,
``--budget`` and ``--seed``: same predictors, same hypervolume box, same population sizing, same
driver. A README once quoted demo hypervolumes that disagreed with the benchmark (they came from
an older accuracy-data file); this test catches a real divergence of the two code paths.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nas.algorithms import DEFAULT_2
from nas.cli import app

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 12  # NSGA-II population 10: one generation plus two offspring


def load_benchmark():
    spec = importlib.util.spec_from_file_location("search_quality", ROOT / "benchmarks" / "search_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_and_cli_report_the_same_hypervolume(sn, tmp_path):
    seed = 1  # not 0: a default must not hide a seed that reaches only one side
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["search", "--device", "jetson-orin", "--supernet", str(sn), "--bn", "switchable",
                                   "--accuracy-samples", "32", "--budget", str(BUDGET), "--top", "0",
                                   "--seed", str(seed), "--out", str(out)])
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())

    bench = load_benchmark().main(["--supernet", str(sn), "--device", "jetson-orin", "--bn", "switchable",
                                   "--accuracy-samples", "32", "--seed", str(seed), "--budgets", str(BUDGET),
                                   "--seeds", str(seed), "--reference-budget", "20", "--reference-seeds", "7",
                                   "--out", str(tmp_path / "sq.json")])

    for key in ("ideal", "nadir"):
        for k in ("accuracy", "latency_ms"):
            assert bench["hv_reference"][key][k] == pytest.approx(run["hv_reference"][key][k], rel=1e-12)
    assert set(bench["results"]) == set(run["hypervolume"]) == set(DEFAULT_2)
    for alg, hv in run["hypervolume"].items():
        cell = bench["results"][alg][str(BUDGET)]
        assert cell["hypervolume"]["per_seed"] == [pytest.approx(hv, rel=1e-9, abs=1e-12)], alg
        assert cell["n_evals"]["per_seed"] == [run["results"][alg]["n_evals"]], alg
        assert 0.0 < cell["hv_relative"]["mean"] <= 1.0 + 1e-9, alg
    assert "--algorithm A --budget B --seed S --top 0" in bench["cli_equivalent"]
