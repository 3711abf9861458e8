"""benchmarks/search_quality.py and `dynnas search` compute the same hypervolume for the same search.

The benchmark's run of (algorithm, budget, seed) must be the CLI's search with ``--algorithm``,
``--budget`` and ``--seed``: same predictors, same hypervolume box, same population sizing, same
driver. A README once quoted demo hypervolumes that disagreed with the benchmark (they came from
an older accuracy-data file); this test catches a real divergence of the two code paths.

Also: three objectives (the algorithms the registry allows, the problem's 3-D box, ratios in (0, 1]) and the
chunked exact 2-D front (equal to :func:`nas.pareto.non_dominated` on the whole tiny space).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nas.algorithms import DEFAULT_2
from nas.cli import app
from nas.pareto import non_dominated

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


def test_three_objectives_use_the_registry_algorithms_and_the_3d_box(sn, tmp_path):
    from nas.algorithms import resolve_algorithms

    bench = load_benchmark().main(["--supernet", str(sn), "--device", "jetson-orin", "--bn", "switchable",
                                   "--accuracy-samples", "32", "--objectives", "accuracy,latency,energy",
                                   "--budgets", str(BUDGET), "--seeds", "0,1", "--reference-budget", "20",
                                   "--reference-seeds", "7", "--out", str(tmp_path / "sq3.json")])

    assert list(bench["results"]) == resolve_algorithms("all", 3)
    assert "nsga2" not in bench["results"]
    assert bench["hv_reference"]["third"] == "energy_mj"
    assert bench["hv_reference"]["normalised_reference"] == [1.1, 1.1, 1.1]
    assert bench["settings"]["objective_names"] == ["accuracy", "latency_ms", "energy_mj"]
    assert bench["reference_front"]["exact"] is False and "not exact" in bench["reference_front"]["method"]
    assert "--objectives accuracy,latency,energy" in bench["cli_equivalent"]
    for alg, cells in bench["results"].items():
        for ratio in cells[str(BUDGET)]["hv_relative"]["per_seed"]:
            assert 0.0 < ratio <= 1.0 + 1e-9, alg
    assert json.loads((tmp_path / "sq3.json").read_text())["results"].keys() == bench["results"].keys()


def test_three_objectives_refuse_a_two_objective_algorithm(sn, tmp_path):
    from supernet.errors import ConfigError

    with pytest.raises(ConfigError, match="nsga2"):
        load_benchmark().main(["--supernet", str(sn), "--objectives", "accuracy,latency,energy", "--algorithms",
                               "nsga2", "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


@pytest.fixture(scope="module")
def tiny_problem(sn):
    from hw_profiles import load_profile
    from nas.problem import setup_problem
    from supernet.checkpoint import load_supernet

    model, meta = load_supernet(sn)
    return setup_problem(sn, model, meta, load_profile("jetson-orin"), bn="switchable", seed=0,
                         accuracy_samples=32).problem


def sorted_rows(F: np.ndarray) -> np.ndarray:
    return F[np.lexsort(F.T[::-1])]


def test_chunked_exact_front_equals_the_full_enumeration(tiny_problem):
    bench = load_benchmark()
    space = tiny_problem.space
    every = [space.decode(c) for c in itertools.product(*[range(c) for c in space.cardinalities])]
    ev = tiny_problem.evaluate(every)
    F = ev.F[ev.feasible]
    expected = F[non_dominated(F)]

    # chunks far smaller than the space, so the running merge is exercised many times
    front, info = bench.exact_front_2d(tiny_problem, limit=0, seconds=1e9, chunk=7, probe=5, progress_s=0)

    assert info["done"] and info["candidates"] == space.size == len(every)
    assert info["candidates_per_s"] > 0 and info["estimated_s"] > 0
    # the same points; a batch's composition can move a prediction by one ulp (vectorised sums)
    assert front.shape == expected.shape
    np.testing.assert_allclose(sorted_rows(front), sorted_rows(expected), rtol=1e-12, atol=0)


def test_exact_front_is_skipped_when_estimated_too_slow(tiny_problem):
    front, info = load_benchmark().exact_front_2d(tiny_problem, limit=0, seconds=0.0, chunk=7, probe=5)
    assert front is None and info["done"] is False and "--exhaustive-seconds" in info["reason"]


def test_front_2d_matches_non_dominated_with_ties_and_duplicates():
    front_2d = load_benchmark().front_2d
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 50, 2000):
        F = rng.integers(0, 12, size=(n, 2)).astype(float)  # a coarse grid: many ties and exact duplicates
        np.testing.assert_array_equal(sorted_rows(F[front_2d(F)]), sorted_rows(F[non_dominated(F)]))
