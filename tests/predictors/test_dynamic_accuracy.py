"""Accuracy data v2 (k recalibration seeds, exit policies) and the dynamic-accuracy predictor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from predictors.accuracy import AccuracyData, AccuracyPredictor, collect_accuracy_data, exit_masks
from predictors.dynamic_accuracy import DynamicAccuracyPredictor, _with_final, available_drops, check_drop
from predictors.units import UnitTable
from supernet.checkpoint import load_supernet
from supernet.errors import ConfigError


@pytest.fixture(scope="module")
def data_v2(tiny_supernet_path, digits) -> AccuracyData:
    model, _ = load_supernet(tiny_supernet_path)
    return collect_accuracy_data(model, digits, n_samples=30, n_ceiling=8, bn="recal", seed=0, recal_seeds=2,
                                 max_drops=(0.01, 0.05))


def test_records_average_two_recalibrations_and_hold_policies(data_v2, tmp_path):
    assert data_v2.meta["n_recal_seeds"] == 2 and data_v2.meta["exits"]["max_drops"] == [0.01, 0.05]
    for r in data_v2.records:
        assert len(r["val_acc_seeds"]) == 2
        assert r["val_acc"] == pytest.approx(np.mean(r["val_acc_seeds"]))
        assert r["arch"].endswith("_x00")  # measured subnets are width configs; masks live in the policies
        assert set(r["policies"]["masks"]) == {"01", "10", "11"}
        for mask, per_drop in r["policies"]["masks"].items():
            for key, p in per_drop.items():
                assert p["static_accuracy"] - p["accuracy"] <= float(key) + 1e-9  # δ is met on the data
                assert sum(p["exit_rates"]) == pytest.approx(1.0)
                for bit, rate, t in zip(mask, p["exit_rates"][:-1], p["thresholds"], strict=True):
                    if bit == "0":
                        assert rate == 0.0 and t is None  # a disabled exit is never taken
    # the two seeds are different recalibrations: their accuracies differ on some subnet
    assert any(r["val_acc_seeds"][0] != r["val_acc_seeds"][1] for r in data_v2.records)
    data_v2.save(tmp_path / "a.json")
    assert AccuracyData.load(tmp_path / "a.json").records == data_v2.records


def test_larger_drop_never_costs_more(data_v2):
    for r in data_v2.records:
        for per_drop in r["policies"]["masks"].values():
            assert per_drop["0.05"]["c_avg_macs"] <= per_drop["0.01"]["c_avg_macs"] + 1e-6


def test_dynamic_predictor(data_v2, tiny_supernet_path):
    model, _ = load_supernet(tiny_supernet_path)
    static = AccuracyPredictor(model.config, seed=0).fit(data_v2.space, data_v2.records)
    dyn = DynamicAccuracyPredictor(static, data_v2, max_drop=0.05, seed=0)
    space = data_v2.space
    subs = space.sample_unique(np.random.default_rng(3), 40)
    rates = dyn.predict_exit_rates(subs)
    assert rates.shape == (40, 3) and (rates >= 0).all() and np.abs(rates.sum(axis=1) - 1.0).max() <= 1e-12
    for s, r in zip(subs, rates, strict=True):
        for e, bit in enumerate(s.exits):
            if not bit:
                assert r[e] == 0.0
    acc, st = dyn.predict(subs), dyn.predict_static(subs)
    both = dyn.predict_with_static(subs)  # what the search calls: the same two, the static part once
    assert both[0].tolist() == acc.tolist() and both[1].tolist() == st.tolist()
    assert np.all(acc <= st + 1e-12) and np.all(st - acc <= 0.05 + 1e-12)
    off = [dataclasses.replace(s, exits=(0, 0)) for s in subs]
    assert np.allclose(dyn.predict(off), dyn.predict_static(off))  # no exit: no drop
    assert dyn.predict_static(subs).tolist() == static.predict(off).tolist()
    q = dyn.quality["exit_rate_heldout_mae"]
    assert set(q) == {"exit0", "exit1"} and all(0 <= v["heldout_mae"] < 0.5 for v in q.values())


def test_exit_rates_are_a_distribution_after_rounding():
    """Early shares adding up to more than 1 are scaled to 1 and leave the final classifier 0, never -1 ulp
    (the scaled sum can round to 1 + ulp); out-of-range predictions are clipped first."""
    raw = np.array([[0.7, 0.6, 0.0], [-0.2, 1.3, 0.0], [0.25, 0.5, 0.0], [0.0, 0.0, 0.0]])
    rates = _with_final(raw.copy())
    assert rates[0].tolist() == pytest.approx([0.7 / 1.3, 0.6 / 1.3, 0.0], abs=1e-15) and rates[0, 2] == 0.0
    assert rates[1:].tolist() == [[0.0, 1.0, 0.0], [0.25, 0.5, 0.25], [0.0, 0.0, 1.0]]
    rng = np.random.default_rng(0)
    many = _with_final(np.column_stack([1.5 * rng.dirichlet([1.0, 1.0, 1.0], 10_000)[:, :2], np.zeros(10_000)]))
    assert (many >= 0).all() and (many <= 1).all() and np.abs(many.sum(axis=1) - 1.0).max() <= 1e-12


def test_drops_must_be_calibrated(data_v2):
    assert available_drops(data_v2) == [0.01, 0.05]
    assert check_drop(data_v2, 0.05) == "0.05"
    with pytest.raises(ConfigError, match="1, 5 pp"):
        check_drop(data_v2, 0.005)


def test_expected_cost_formula():
    """C_avg = sum_i p_i C_i with the unit table's exit costs: a hand-made example."""
    from supernet.cnn import PRESETS

    config = PRESETS["tiny"]
    table = UnitTable.build(config, lambda ks: float(sum(k.macs for k in ks)))
    sub = config.space().make((3, 3, 3, 3), (1, 1))
    costs = table.exit_costs([sub])[0]
    p = np.array([0.5, 0.3, 0.2])
    assert float(p @ costs) == pytest.approx(0.5 * costs[0] + 0.3 * costs[1] + 0.2 * costs[2])
    assert costs[0] < costs[1] < costs[2] and len(exit_masks(2)) == 3
