"""Early-exit policy: criteria, temperature scaling, simulation on hand-computed cases, and
calibration checked against a brute-force search over the same candidate grid."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictors.exit_policy import (
    CRITERIA,
    PolicyResult,
    calibrate,
    candidate_thresholds,
    exit_costs,
    exit_scores,
    fit_temperature,
    get_criterion,
    register_criterion,
    simulate,
)
from supernet.errors import ConfigError, UnknownNameError

# E = 2, n = 6: exit 0 takes samples 0 and 2 (0.8 >= 0.8), exit 1 takes 1, 4, 5, the final gets 3
SCORES = np.array([[0.9, 0.2, 0.8, 0.1, 0.5, 0.3], [0.1, 0.9, 0.2, 0.3, 0.7, 0.95]])
CORRECT = np.array(
    [
        [True, False, False, True, True, True],
        [False, True, True, False, False, True],
        [True, True, True, False, True, True],
    ]
)
COSTS = np.array([1.0, 2.0, 4.0])


def _data(n_exits: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores in [0, 1); an exit is right more often when its score is high; the final at ~85 %."""
    rng = np.random.default_rng(seed)
    scores = rng.random((n_exits, n))
    correct = np.vstack([rng.random((n_exits, n)) < 0.3 + 0.6 * scores, rng.random((1, n)) < 0.85])
    costs = np.cumsum(rng.uniform(1.0, 3.0, n_exits + 1))
    return scores, correct, costs


def _brute_force_c_avg(
    scores: np.ndarray, correct: np.ndarray, costs: np.ndarray, max_drop: float, grid: int
) -> float:
    cands = [candidate_thresholds(s, grid) for s in scores]
    best = math.inf
    for thresholds in itertools.product(*cands):
        r = simulate(scores, correct, costs, thresholds)
        if r.static_accuracy - r.accuracy <= max_drop + 1e-12:
            best = min(best, r.c_avg)
    return best


# ----------------------------------------------------------------------------- criteria


def test_confidence_and_entropy_on_hand_made_logits() -> None:
    uniform = np.zeros((2, 4))
    assert exit_scores(uniform, "confidence") == pytest.approx([0.25, 0.25])
    assert exit_scores(uniform, "entropy") == pytest.approx([-1.0, -1.0])
    peaked = np.array([[50.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1000.0, 0.0]])  # 1000: stable softmax, no overflow
    assert exit_scores(peaked, "confidence") == pytest.approx([1.0, 1.0], abs=1e-12)
    assert exit_scores(peaked, "entropy") == pytest.approx([0.0, 0.0], abs=1e-12)
    # two classes, p = (e / (1 + e), 1 / (1 + e)) for logits (1, 0)
    p = math.e / (1 + math.e)
    h = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert exit_scores([[1.0, 0.0]], "confidence")[0] == pytest.approx(p)
    assert exit_scores([[1.0, 0.0]], "entropy")[0] == pytest.approx(-h / math.log(2))


def test_temperature_divides_the_logits() -> None:
    logits = np.array([[2.0, 1.0, 0.0], [0.5, 3.0, -1.0]])
    for criterion in CRITERIA:
        hot = exit_scores(logits, criterion, temperature=2.0)
        assert hot == pytest.approx(exit_scores(logits / 2.0, criterion))
        # a higher temperature flattens the softmax: lower confidence, higher entropy (lower score)
        assert (hot < exit_scores(logits, criterion)).all()
        assert (exit_scores(logits, criterion, temperature=0.5) > exit_scores(logits, criterion)).all()


def test_unknown_criterion_names_known_ones_and_closest_match() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'entropy'") as info:
        exit_scores(np.zeros((1, 3)), "entropi")
    assert "confidence" in str(info.value)
    with pytest.raises(UnknownNameError, match="confidence"):
        get_criterion("margin")


def test_register_criterion_adds_and_refuses_duplicates() -> None:
    @register_criterion("top_logit")
    def top_logit(logits: np.ndarray) -> np.ndarray:
        return logits.max(axis=1)

    try:
        assert get_criterion("top_logit") is top_logit
        assert exit_scores([[1.0, 3.0]], "top_logit", temperature=2.0) == pytest.approx([1.5])
    finally:
        CRITERIA.pop("top_logit")
    with pytest.raises(ConfigError, match="already registered"):
        register_criterion("confidence")(top_logit)


# ----------------------------------------------------------------------------- temperature


def test_fit_temperature_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(0.0, 4.0, size=(20000, 10))
    p = np.exp(z / 2.5 - (z / 2.5).max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = np.minimum((p.cumsum(axis=1) < rng.random((20000, 1))).sum(axis=1), 9)
    t = fit_temperature(z, labels)
    assert t == pytest.approx(2.5, abs=0.15)
    assert fit_temperature(z, labels) == t  # deterministic
    with pytest.raises(ConfigError, match="labels must lie in"):
        fit_temperature(z[:2], [0, 10])


# ----------------------------------------------------------------------------- simulation


def test_simulate_hand_computed_case() -> None:
    r = simulate(SCORES, CORRECT, COSTS, [0.8, 0.7])
    assert r.thresholds == (0.8, 0.7)
    assert r.exit_rates == pytest.approx((2 / 6, 3 / 6, 1 / 6))
    assert r.exit_accuracy == pytest.approx((1 / 2, 2 / 3, 0.0))
    assert r.accuracy == pytest.approx(3 / 6)
    assert r.static_accuracy == pytest.approx(5 / 6)
    assert r.c_avg == pytest.approx((2 * 1.0 + 3 * 2.0 + 1 * 4.0) / 6)  # = 2.0
    assert r.c_static == 4.0 and r.speedup == pytest.approx(2.0) and r.worst_cost == 4.0
    assert simulate(SCORES, CORRECT, COSTS, [0.8, 0.7], c_static=3.5).speedup == pytest.approx(1.75)


def test_simulate_all_inf_is_the_static_subnet() -> None:
    r = simulate(SCORES, CORRECT, COSTS, [math.inf, math.inf])
    assert r.accuracy == r.static_accuracy == pytest.approx(5 / 6)
    assert r.exit_rates == (0.0, 0.0, 1.0)
    assert r.c_avg == 4.0 and r.speedup == 1.0
    assert math.isnan(r.exit_accuracy[0]) and math.isnan(r.exit_accuracy[1])
    d = r.to_dict()
    assert d["thresholds"] == [None, None] and d["exit_accuracy"][:2] == [None, None]
    json.dumps(d, allow_nan=False)  # JSON-safe


def test_exit_costs_convention() -> None:
    # exit 0: backbone 10 + head 0; exit 1: backbone 20 + heads 0, 1; final: 30 + every head
    assert exit_costs([10.0, 20.0], [1.0, 2.0], 30.0).tolist() == [11.0, 23.0, 33.0]
    assert exit_costs([], [], 5.0).tolist() == [5.0]
    with pytest.raises(ConfigError, match="one entry per exit"):
        exit_costs([10.0], [1.0, 2.0], 30.0)
    with pytest.raises(ConfigError, match="non-decreasing"):
        exit_costs([20.0, 10.0], [1.0, 1.0], 30.0)


# ----------------------------------------------------------------------------- calibration


@pytest.mark.parametrize("max_drop", [0.0, 0.01, 0.03, 0.1, 0.3])
def test_calibrate_matches_brute_force_and_meets_the_constraint(max_drop: float) -> None:
    scores, correct, costs = _data(2, 200, seed=1)
    r = calibrate(scores, correct, costs, max_drop, grid=10)
    assert r.static_accuracy - r.accuracy <= max_drop + 1e-12
    assert r.c_avg == pytest.approx(_brute_force_c_avg(scores, correct, costs, max_drop, grid=10), rel=1e-12)
    # the returned thresholds reproduce the result when simulated
    assert simulate(scores, correct, costs, r.thresholds).to_dict() == r.to_dict()  # NaN-safe compare


def test_calibrate_three_exits_matches_brute_force() -> None:
    scores, correct, costs = _data(3, 150, seed=2)
    for max_drop in (0.0, 0.05, 0.2):
        r = calibrate(scores, correct, costs, max_drop, grid=5)
        assert r.c_avg == pytest.approx(
            _brute_force_c_avg(scores, correct, costs, max_drop, grid=5), rel=1e-12
        )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_exits=st.integers(1, 2),
    n=st.integers(3, 40),
    grid=st.integers(1, 6),
    max_drop=st.sampled_from([0.0, 0.02, 0.1, 0.5]),
)
def test_calibrate_is_optimal_on_random_data(
    seed: int, n_exits: int, n: int, grid: int, max_drop: float
) -> None:
    scores, correct, costs = _data(n_exits, n, seed)
    scores = np.round(scores, 1)  # ties in the scores
    r = calibrate(scores, correct, costs, max_drop, grid=grid)
    assert r.static_accuracy - r.accuracy <= max_drop + 1e-12
    assert r.c_avg == pytest.approx(_brute_force_c_avg(scores, correct, costs, max_drop, grid), rel=1e-12)
    assert sum(r.exit_rates) == pytest.approx(1.0)


def test_larger_drop_never_costs_more() -> None:
    scores, correct, costs = _data(2, 300, seed=3)
    c_avgs = [
        calibrate(scores, correct, costs, d, grid=12).c_avg for d in (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)
    ]
    assert all(a >= b for a, b in itertools.pairwise(c_avgs))
    assert c_avgs[0] <= costs[-1] and c_avgs[-1] < c_avgs[0]


def test_coordinate_descent_is_feasible_and_no_worse_than_no_exit() -> None:
    scores, correct, costs = _data(3, 400, seed=4)
    for max_drop in (0.0, 0.02, 0.1):
        cd = calibrate(scores, correct, costs, max_drop, grid=12, exhaustive_limit=1)
        full = calibrate(scores, correct, costs, max_drop, grid=12)
        assert cd.static_accuracy - cd.accuracy <= max_drop + 1e-12
        assert full.c_avg <= cd.c_avg <= costs[-1]
        again = calibrate(scores, correct, costs, max_drop, grid=12, exhaustive_limit=1)
        assert again.to_dict() == cd.to_dict()  # deterministic


def test_calibrate_ties_prefer_fewer_exits() -> None:
    # every exit is always wrong and the final always right: with no drop allowed, nothing may exit
    scores = np.tile(np.linspace(0.0, 1.0, 8), (2, 1))
    correct = np.vstack([np.zeros((2, 8), dtype=bool), np.ones((1, 8), dtype=bool)])
    r = calibrate(scores, correct, [1.0, 2.0, 3.0], 0.0)
    assert r.thresholds == (math.inf, math.inf) and r.c_avg == 3.0
    # equal costs everywhere: exiting never helps, so the tie goes to no exit
    correct = np.ones((3, 8), dtype=bool)
    assert calibrate(scores, correct, [2.0, 2.0, 2.0], 0.1).thresholds == (math.inf, math.inf)


def test_calibrate_without_exits_returns_the_static_result() -> None:
    correct = np.array([[True, False, True, True]])
    r = calibrate(np.empty((0, 4)), correct, [3.0], 0.01)
    assert r.thresholds == () and r.exit_rates == (1.0,)
    assert r.c_avg == 3.0 and r.accuracy == r.static_accuracy == 0.75


def test_calibrate_at_search_size_returns() -> None:
    scores, correct, costs = _data(2, 5000, seed=5)
    r = calibrate(scores, correct, costs, 0.005, grid=48)
    assert isinstance(r, PolicyResult) and len(r.thresholds) == 2
    assert r.static_accuracy - r.accuracy <= 0.005 + 1e-12 and r.c_avg < costs[-1]


# ----------------------------------------------------------------------------- errors


def test_bad_shapes_and_values_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"scores must have shape \(E, n\) = \(2, 6\).*\(2, 5\)"):
        simulate(SCORES[:, :5], CORRECT, COSTS, [0.5, 0.5])
    with pytest.raises(ConfigError, match=r"costs must have shape \(E \+ 1,\) = \(3,\)"):
        simulate(SCORES, CORRECT, COSTS[:2], [0.5, 0.5])
    with pytest.raises(ConfigError, match=r"thresholds must have shape \(E,\) = \(2,\)"):
        simulate(SCORES, CORRECT, COSTS, [0.5])
    with pytest.raises(ConfigError, match="non-decreasing"):
        simulate(SCORES, CORRECT, [2.0, 1.0, 4.0], [0.5, 0.5])
    with pytest.raises(ConfigError, match="positive"):
        simulate(SCORES, CORRECT, [0.0, 1.0, 4.0], [0.5, 0.5])
    with pytest.raises(ConfigError, match="boolean"):
        simulate(SCORES, CORRECT * 2, COSTS, [0.5, 0.5])
    with pytest.raises(ConfigError, match=r"logits must have shape \(n, C\)"):
        exit_scores(np.zeros(3))


@pytest.mark.parametrize("max_drop", [-0.01, 1.0, 1.5, math.nan])
def test_max_drop_out_of_range(max_drop: float) -> None:
    with pytest.raises(ConfigError, match=r"`max_drop` must be in \[0, 1\)"):
        calibrate(SCORES, CORRECT, COSTS, max_drop)


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.inf, math.nan])
def test_non_positive_temperature(temperature: float) -> None:
    with pytest.raises(ConfigError, match="`temperature` must be finite and > 0"):
        exit_scores(np.zeros((1, 3)), temperature=temperature)
