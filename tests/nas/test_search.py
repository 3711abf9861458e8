"""The search core on the tiny supernet with the real predictors: problem, algorithms, driver, Pareto."""

from __future__ import annotations

import shutil

import numpy as np
import optuna
import pytest

from nas.algorithms import ALGORITHMS, get_algorithm, resolve_algorithms
from nas.driver import EVAL_COLUMNS, run_search
from nas.pareto import HVBox, hypervolume, non_dominated, select_spread, spread_order
from nas.problem import InfeasibleConstraintError, SearchProblem
from predictors import latency_predictor, load_or_collect_accuracy
from supernet.checkpoint import load_supernet
from supernet.cnn import count_macs
from supernet.errors import ConfigError, UnknownNameError

BUDGETS = {"nsga2": 40, "nsga3": 40, "random": 40, "optuna": 14}  # optuna's SQLite storage costs ~0.1-0.5 s per trial


@pytest.fixture(scope="module")
def predictors_tiny(tmp_path_factory, tiny_supernet_path, digits):
    """Real predictors for the tiny supernet: measured accuracy data (switchable BN, small) + Jetson roofline."""
    folder = tmp_path_factory.mktemp("search_tiny")
    path = folder / "supernet.safetensors"
    shutil.copy(tiny_supernet_path, path)  # the accuracy cache is written beside it: keep it private
    model, meta = load_supernet(path)
    acc, _ = load_or_collect_accuracy(path, model, meta, digits, n_samples=32, bn="switchable", seed=0)
    lat = latency_predictor("jetson-orin", model.config)
    return model, acc, lat


def make_problem(predictors_tiny, budget_ms: float | None = None) -> SearchProblem:
    model, acc, lat = predictors_tiny
    return SearchProblem(space=model.space, accuracy=acc, latency=lat, latency_budget_ms=budget_ms,
                         macs=lambda subs: [count_macs(model.config, s) for s in subs])


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def objectives(df) -> np.ndarray:
    return np.column_stack([-df["accuracy"].to_numpy(float), df["latency_ms"].to_numpy(float)])


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_algorithm_returns_a_non_dominated_set(name, predictors_tiny, tmp_path):
    problem, budget = make_problem(predictors_tiny), BUDGETS[name]
    res = run_search(problem, name, budget, seed=0, run_dir=tmp_path)
    assert list(res.evaluations.columns) == list(EVAL_COLUMNS)
    assert res.n_evals == budget and res.stopped_early is None
    assert res.evaluations["eval_index"].tolist() == list(range(budget))
    front = res.pareto()
    assert 1 <= len(front) <= res.evaluations["subnet_id"].nunique()
    F, all_F = objectives(front), objectives(res.evaluations)
    for i in range(len(F)):  # nobody on the front is dominated, by the front or by any evaluation
        assert not any(dominates(g, F[i]) for g in all_F), front.iloc[i]
    # the recorded values are the predictors' values
    subs = [problem.space.parse(a) for a in front["arch"]]
    np.testing.assert_allclose(front["accuracy"], problem.accuracy.predict(subs))
    np.testing.assert_allclose(front["latency_ms"], problem.latency.predict_ms(subs))
    # hypervolume trace: non-decreasing, ends at the HV of the front
    hv = res.history["hypervolume"].to_numpy()
    assert np.all(np.diff(hv) >= -1e-12) and res.history["n_evals"].iloc[-1] == budget
    assert hv[-1] == pytest.approx(hypervolume(F, problem.hv_box))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_same_seed_same_pareto_set(name, predictors_tiny, tmp_path):
    problem, budget = make_problem(predictors_tiny), BUDGETS[name]
    a = run_search(problem, name, budget, seed=3, run_dir=tmp_path / "a")
    b = run_search(problem, name, budget, seed=3, run_dir=tmp_path / "b")
    c = run_search(problem, name, budget, seed=4, run_dir=tmp_path / "c")
    assert a.evaluations["arch"].tolist() == b.evaluations["arch"].tolist()
    assert set(a.pareto()["subnet_id"]) == set(b.pareto()["subnet_id"])
    assert a.evaluations["arch"].tolist() != c.evaluations["arch"].tolist()  # the seed matters


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_latency_budget_is_a_constraint(name, predictors_tiny, tmp_path):
    problem0 = make_problem(predictors_tiny)
    lat = np.sort(problem0.baselines.latency_ms)
    budget = float(lat[1])  # between the smallest and the largest uniform subnet
    problem = make_problem(predictors_tiny, budget)
    res = run_search(problem, name, BUDGETS[name], seed=0, run_dir=tmp_path)
    ev = res.evaluations
    np.testing.assert_array_equal(ev["feasible"].to_numpy(bool), ev["latency_ms"].to_numpy() <= budget)
    front = res.pareto()
    assert len(front) >= 1 and (front["latency_ms"] <= budget).all()


def test_unreachable_latency_budget_names_the_fastest(predictors_tiny):
    problem0 = make_problem(predictors_tiny)
    fastest = float(problem0.baselines.latency_ms.min())
    problem = make_problem(predictors_tiny, fastest * 0.5)
    with pytest.raises(InfeasibleConstraintError, match=f"{fastest:.4g} ms") as e:
        problem.check_feasible()
    assert "w0-0-0-0" in str(e.value) and "\n" not in str(e.value)
    make_problem(predictors_tiny, fastest * 1.0001).check_feasible()  # just reachable: fine


def test_bad_problem_and_driver_inputs(predictors_tiny, tmp_path):
    with pytest.raises(ConfigError, match="latency budget must be a positive"):
        make_problem(predictors_tiny, -1.0)
    with pytest.raises(ConfigError, match="budget must be >= 1"):
        run_search(make_problem(predictors_tiny), "random", 0, seed=0, run_dir=tmp_path)
    with pytest.raises(UnknownNameError, match="did you mean 'nsga2'"):
        get_algorithm("nsga-2")
    with pytest.raises(UnknownNameError, match="Known: all, nsga2, nsga3, optuna, random"):
        resolve_algorithms("nsga2,bayes")
    assert resolve_algorithms("all") == ["nsga2", "optuna", "random"]
    assert resolve_algorithms("random, nsga2,random") == ["random", "nsga2"]


def test_optuna_study_is_real_sqlite_and_resumes(predictors_tiny, tmp_path):
    problem = make_problem(predictors_tiny)
    first = run_search(problem, "optuna", 6, seed=0, run_dir=tmp_path)
    study = optuna.load_study(study_name="dynnas-jetson-orin-seed0", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 6
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    more = run_search(problem, "optuna", 9, seed=0, run_dir=tmp_path, resume=True)
    assert more.evaluations["arch"].tolist()[:6] == first.evaluations["arch"].tolist()  # reused, not redone
    study = optuna.load_study(study_name="dynnas-jetson-orin-seed0", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 9
    fresh = run_search(problem, "optuna", 3, seed=0, run_dir=tmp_path)  # no resume: the study starts over
    assert fresh.evaluations["arch"].tolist() == first.evaluations["arch"].tolist()[:3]


def test_small_space_exhaustion_stops_instead_of_looping(predictors_tiny, tmp_path):
    # 256 subnets, NSGA-II eliminates duplicates: a large budget must end (early, with a reason) or be spent.
    res = run_search(make_problem(predictors_tiny), "nsga2", 600, seed=0, run_dir=tmp_path)
    assert res.n_evals == 600 or (res.stopped_early and "proposed no new subnet" in res.stopped_early)


# ---- pure Pareto helpers (hand examples) -------------------------------------------------------
def test_non_dominated_hand_example():
    F = np.array([[-0.9, 3.0], [-0.8, 1.0], [-0.85, 2.0], [-0.8, 2.5], [-0.7, 1.0], [-0.9, 3.0]])
    idx = non_dominated(F)
    assert sorted(idx.tolist()) == [0, 1, 2, 5]  # 3 is dominated by 2, 4 by 1; duplicates both kept
    assert F[idx, 1].tolist() == sorted(F[idx, 1].tolist())


def test_spread_selection_is_nested_and_keeps_the_extremes():
    lat = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 1.5])
    order = spread_order(lat)
    assert order[:2].tolist() == [1, 0]  # fastest, then slowest (= most accurate on a front)
    assert order[2] == 2  # 3.0 is the farthest from {1, 5}
    assert sorted(order.tolist()) == list(range(6))
    for k in range(1, 7):
        pick = select_spread(lat, k)
        assert set(pick.tolist()) == set(order[:k].tolist())
        assert lat[pick].tolist() == sorted(lat[pick].tolist())
    F = np.column_stack([-np.linspace(0.5, 0.9, 6), lat])
    assert select_spread(F, 2).tolist() == [1, 0]


def test_hypervolume_hand_values():
    box = HVBox(acc_ideal=0.9, acc_nadir=0.5, lat_ideal=1.0, lat_nadir=3.0)
    assert hypervolume(np.array([[-0.9, 1.0]]), box) == pytest.approx(1.1 * 1.1)  # the ideal corner
    assert hypervolume(np.array([[-0.5, 3.0]]), box) == pytest.approx(0.1 * 0.1)  # the nadir corner
    two = np.array([[-0.9, 3.0], [-0.5, 1.0]])  # (0, 1) and (1, 0) normalised
    assert hypervolume(two, box) == pytest.approx(1.1 * 0.1 + 0.1 * 1.1 - 0.1 * 0.1)
    assert hypervolume(np.array([[-0.3, 5.0]]), box) == 0.0  # beyond the reference point
    assert hypervolume(np.zeros((0, 2)), box) == 0.0
    acc, lat = box.reference
    assert (acc, lat) == pytest.approx((0.9 - 1.1 * 0.4, 1.0 + 1.1 * 2.0))
    assert HVBox.from_dict(box.to_dict()) == box


def test_an_algorithm_registers_itself_with_its_capability() -> None:
    from nas.algorithms.random_search import RandomSearch as Random  # registered by its own module
    from nas.algorithms.registry import register_algorithm

    assert ALGORITHMS["random"] is Random and ALGORITHMS["nsga2"].max_objectives == 2

    @register_algorithm
    class Shuffled(Random):  # a new algorithm: one class, one decorator
        name = "shuffled-test"
        max_objectives = 2

    try:
        assert get_algorithm("shuffled-test") is Shuffled
        assert resolve_algorithms("shuffled-test,random") == ["shuffled-test", "random"]
        with pytest.raises(ConfigError, match="handles two objectives"):
            resolve_algorithms("shuffled-test", 3)
        with pytest.raises(ValueError, match="registered twice"):
            register_algorithm(type("Other", (Random,), {"name": "shuffled-test"}))
    finally:
        ALGORITHMS.pop("shuffled-test")
