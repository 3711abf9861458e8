"""The report's own fronts and hypervolume agree with the search's (nas.pareto, nas.driver, history.csv)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nas.driver import exit_free_rows as driver_exit_free_rows
from nas.driver import pareto_rows
from nas.pareto import HVBox
from nas.pareto import hypervolume as nas_hypervolume
from nas.pareto import non_dominated as nas_non_dominated
from reports.fronts import (
    exit_free_rows,
    front_rows,
    hypervolume,
    hypervolume_trace,
    non_dominated,
    union_box,
)
from reports.run_folder import HVReference, load_run, read_table
from tests.reports.runs import V2_RUNS


@pytest.mark.parametrize("seed", range(20))
def test_non_dominated_matches_pymoo(seed):
    rng = np.random.default_rng(seed)
    F = rng.integers(0, 6, size=(int(rng.integers(1, 40)), 2)).astype(float)  # coarse: ties and duplicates
    assert non_dominated(F).tolist() == nas_non_dominated(F).tolist()


@pytest.mark.parametrize("seed", range(10))
def test_hypervolume_matches_nas_pareto(seed):
    rng = np.random.default_rng(seed)
    acc, lat = rng.uniform(0.6, 0.8, 4), rng.uniform(1.0, 2.0, 4)
    box = HVBox.from_points(acc, lat, latency_budget_ms=None if seed % 2 else 1.8)
    ref = HVReference.model_validate(box.to_dict())
    F = np.column_stack([-rng.uniform(0.55, 0.85, 30), rng.uniform(0.9, 2.1, 30)])
    assert hypervolume(F, ref) == pytest.approx(nas_hypervolume(F, box), rel=1e-12, abs=1e-15)
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0


def test_hypervolume_of_one_point_is_its_box():
    ref = HVReference(accuracy=0.0, latency_ms=0.0, ideal={"accuracy": 1.0, "latency_ms": 0.0},
                      nadir={"accuracy": 0.0, "latency_ms": 1.0})
    # (acc 0.5, 0.25 ms) → normalised (0.5, 0.25); the box to (1.1, 1.1) is 0.6 × 0.85
    assert hypervolume(np.array([[-0.5, 0.25]]), ref) == pytest.approx(0.6 * 0.85)


@pytest.mark.parametrize("run_dir", V2_RUNS, ids=lambda p: p.name)
def test_recomputed_hypervolume_curves_are_the_runs_history(run_dir):
    run, ev, hist = load_run(run_dir), read_table(run_dir, "evaluations.csv"), read_table(run_dir, "history.csv")
    for alg, h in hist.groupby("algorithm"):
        got = hypervolume_trace(ev[ev["algorithm"] == alg], h["n_evals"].tolist(), run.hv_reference)
        np.testing.assert_allclose(got, h["hypervolume"].to_numpy(), rtol=1e-8)  # history.csv keeps 10 digits
        assert got[-1] == pytest.approx(run.hypervolume[alg], rel=1e-8)


@pytest.mark.parametrize("run_dir", V2_RUNS, ids=lambda p: p.name)
def test_fronts_are_the_drivers(run_dir):
    ev = read_table(run_dir, "evaluations.csv")
    for _alg, e in ev.groupby("algorithm"):
        assert front_rows(e)["subnet_id"].tolist() == pareto_rows(e)["subnet_id"].tolist()
    assert exit_free_rows is driver_exit_free_rows  # one definition of "exit-free"
    archs = pd.DataFrame({"arch": ["w0-1_x00", "w0-1_x01", "w0-1_x10_c0", "w0-1_x00_c1", "w0-1"]})
    assert exit_free_rows(archs)["arch"].tolist() == ["w0-1_x00", "w0-1"]


def test_union_box_holds_every_box():
    a = HVReference.model_validate(HVBox(0.8, 0.6, 1.0, 2.0).to_dict())
    b = HVReference.model_validate(HVBox(0.82, 0.61, 1.1, 1.9).to_dict())
    u = union_box([a, b])
    assert (u.ideal.accuracy, u.nadir.accuracy, u.ideal.latency_ms, u.nadir.latency_ms) == (0.82, 0.6, 1.0, 2.0)
    assert HVReference.model_validate(HVBox(0.82, 0.6, 1.0, 2.0).to_dict()).same_box(u)
    assert (u.accuracy, u.latency_ms) == pytest.approx(HVBox(0.82, 0.6, 1.0, 2.0).reference)
    assert not a.same_box(b) and a.same_box(a)


def test_a_three_objective_box_is_cut_to_accuracy_and_latency():
    from reports.fronts import accuracy_latency_box

    box = HVBox.from_points(np.array([0.6, 0.8]), np.array([1.0, 2.0]), third=np.array([3.0, 5.0]),
                            third_name="energy_mj")
    ref3 = HVReference.model_validate(box.to_dict())
    ref2 = HVReference.model_validate(HVBox.from_points(np.array([0.6, 0.8]), np.array([1.0, 2.0])).to_dict())
    cut = accuracy_latency_box(ref3)
    assert cut.normalised_reference == (1.1, 1.1) and accuracy_latency_box(ref2) is ref2
    F = np.array([[-0.7, 1.5], [-0.75, 1.8]])
    assert hypervolume(F, cut) == pytest.approx(hypervolume(F, ref2), rel=1e-12)


def test_three_objective_hypervolume_matches_the_search():
    """The report's 3-D hypervolume equals nas.pareto's (pymoo) on the same box, and the union of two 3-D boxes
    keeps the third axis."""
    from nas.pareto import hypervolume as search_hv
    from reports.fronts import third_objective

    rng = np.random.default_rng(0)
    box = HVBox.from_points(np.array([0.6, 0.8]), np.array([1.0, 2.0]), third=np.array([3.0, 5.0]),
                            third_name="memory_bytes")
    ref = HVReference.model_validate(box.to_dict())
    assert third_objective(ref) == "memory_bytes"
    F = np.column_stack([-rng.uniform(0.55, 0.85, 40), rng.uniform(0.9, 2.3, 40), rng.uniform(2.5, 5.5, 40)])
    assert hypervolume(F, ref) == pytest.approx(search_hv(F, box), rel=1e-12)
    assert hypervolume(F, ref) > 0 and hypervolume(F[:1], ref) < hypervolume(F, ref)
    wider = HVReference.model_validate(HVBox(0.8, 0.6, 1.0, 2.0, "memory_bytes", 2.0, 6.0).to_dict())
    u = union_box([ref, wider])
    assert (u.ideal.memory_bytes, u.nadir.memory_bytes) == (2.0, 6.0) and third_objective(u) == "memory_bytes"
    assert u.same_box(wider) and not u.same_box(ref)
    assert hypervolume(F, u) == pytest.approx(search_hv(F, HVBox(0.8, 0.6, 1.0, 2.0, "memory_bytes", 2.0, 6.0)),
                                              rel=1e-12)
