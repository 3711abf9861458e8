"""The width cascade: scout policies in the accuracy data, their prediction and latency, search and `If` export."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.export import _export_early_exit, arch_record, calibrate_exit_policy
from nas.verify import verify_early_exit
from predictors import latency_predictor
from predictors.accuracy import AccuracyData, AccuracyPredictor, data_cascade
from predictors.cascade import CascadeLatency
from predictors.dynamic_accuracy import DynamicAccuracyPredictor
from supernet.checkpoint import load_supernet
from supernet.cnn import exit_macs
from supernet.evaluate import subnet_model
from tests.cli import ok


@pytest.fixture(scope="module")
def cascaded(sn: Path) -> Path:
    """The module's supernet copy with its accuracy data completed by one scout (the narrowest subnet)."""
    ok(["calibrate", "--supernet", str(sn), "--dataset", "digits", "--bn", "switchable", "--samples", "32",
        "--cascade", "1", "--sample-val", "200"])
    return sn


def _data(sn: Path) -> AccuracyData:
    return AccuracyData.load(sn.with_name("supernet.accuracy.json"))


def test_calibrate_adds_scout_policies_to_existing_data(cascaded):
    data = _data(cascaded)
    assert data_cascade(data) == 1 and len(data.records) == 32
    model, _ = load_supernet(cascaded)
    scout_macs = exit_macs(model.config, model.space.uniform(0))[-1]
    for r in data.records:
        masks = r["policies"]["masks"]
        assert {"01", "10", "11", "c1:00", "c1:01", "c1:10", "c1:11"} <= set(masks)
        for key, p in masks["c1:00"].items():
            assert p["static_accuracy"] - p["accuracy"] <= float(key) + 1e-9  # δ holds with the scout too
            assert p["scout_rate"] + p["exit_rates"][-1] == pytest.approx(1.0)
            # C_avg = p_scout * C_scout + (1 - p_scout) * (C_scout + C_subnet)
            sub = dataclasses.replace(data.space.parse(r["arch"]), exits=(0, 0))
            c_sub = exit_macs(model.config, sub)[-1]
            want = p["scout_rate"] * scout_macs + (1 - p["scout_rate"]) * (scout_macs + c_sub)
            assert p["c_avg_macs"] == pytest.approx(want, rel=1e-9)


def test_dynamic_predictor_and_latency_know_the_scout(cascaded):
    data = _data(cascaded)
    model, _ = load_supernet(cascaded)
    static = AccuracyPredictor(model.config, seed=0).fit(data.space, data.records)
    dyn = DynamicAccuracyPredictor(static, data, max_drop=0.02, seed=0)
    space = dyn.space
    assert space.n_cascade == 1 and dyn.n_stages == 4 and "scout" in dyn.quality["exit_rate_heldout_mae"]
    subs = [space.parse("w3-3-3-3_x00_c1"), space.parse("w3-3-3-3_x00_c0"), space.parse("w3-3-3-3_x11_c1")]
    rates = dyn.predict_exit_rates(subs)
    assert rates.shape == (3, 4) and np.allclose(rates.sum(axis=1), 1.0)
    assert rates[1, 0] == 0.0 and rates[1, 3] == 1.0  # no scout, no exits: all at the final classifier
    lat = CascadeLatency(latency_predictor("jetson-orin", model.config), space)
    per = lat.predict_exit_ms(subs)
    scout_ms = lat.inner.predict_ms([space.uniform(0)])[0] + lat.inner.decide_ms
    plain = lat.inner.predict_exit_ms([space.without_cascade(s) for s in subs])
    assert per.shape == (3, 4) and per[0, 0] == pytest.approx(scout_ms)
    assert np.allclose(per[0, 1:], scout_ms + plain[0]) and np.allclose(per[1, 1:], plain[1])
    assert dyn.predict(subs[:1])[0] <= dyn.predict_static(subs[:1])[0]  # the scout costs accuracy, at most δ


def test_search_evaluates_cascades(cascaded, tmp_path):
    out = tmp_path / "run"
    ok(["search", "--device", "jetson-orin", "--supernet", str(cascaded), "--bn", "switchable",
        "--accuracy-samples", "32", "--out", str(out), "--budget", "40", "--seed", "0", "--top", "0",
        "--algorithm", "random", "--max-accuracy-drop", "2"])
    run = json.loads((out / "run.json").read_text())
    assert run["supernet"]["space"]["n_cascade"] == 1
    ev = pd.read_csv(out / "evaluations.csv", dtype={"exit_rates": str, "arch": str})
    scout = ev["arch"].str.endswith("_c1")
    assert scout.any() and (~scout).any()
    rates = np.array([[float(v) for v in r.split(";")] for r in ev["exit_rates"]])
    assert rates.shape[1] == 4 and np.all(rates[~scout.to_numpy(), 0] == 0.0)
    ok(["search", "--device", "jetson-orin", "--supernet", str(cascaded), "--bn", "switchable",
        "--accuracy-samples", "32", "--out", str(tmp_path / "off"), "--budget", "10", "--seed", "0", "--top", "0",
        "--algorithm", "random", "--cascade", "off"])
    assert "n_cascade" not in json.loads((tmp_path / "off" / "run.json").read_text())["supernet"]["space"]


def test_cascade_export_is_one_if_graph_verified_per_sample(cascaded, digits, tmp_path):
    import onnx

    model, meta = load_supernet(cascaded)
    space = dataclasses.replace(model.space, n_cascade=1)
    sub = space.parse("w3-3-3-3_x01_c1")
    main = subnet_model(model, space.without_cascade(sub), digits, "switchable")
    scout = subnet_model(model, space.scout(sub), digits, "switchable")
    record = arch_record(model, meta, cascaded, "0" * 64, sub, main, "switchable", space=space)
    assert record["arch"] == "w3-3-3-3_x01_c1" and record["cascade"]["scout"] == "w0-0-0-0_x00"
    policy = calibrate_exit_policy(main, model.config, space.without_cascade(sub), digits.x_val, digits.y_val,
                                   max_drop=0.05, scout=(scout, record["cascade"]["scout_macs"]))
    assert policy["stages"] == ["scout", "exit0", "exit1", "final"] and len(policy["val_exit_rates"]) == 4
    assert policy["val_static_accuracy"] - policy["val_accuracy"] <= 0.05 + 1e-9
    assert policy["val_exit_rates"][0] > 0  # on digits the narrow scout answers a share of the inputs itself
    ee, chain = _export_early_exit(main, space.without_cascade(sub), policy, record, tmp_path, scout=scout)
    assert [st["name"] for st in chain["stages"]][0] == "scout"
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert "If" in {n.op_type for n in graph.node}
    v = verify_early_exit(ee, tmp_path / "model.onnx", tmp_path / "model.all_exits.onnx", digits.x_test,
                          digits.y_test, "digits test")
    assert v["same_exit_as_pytorch"] == 1.0 and v["max_abs_logit_diff"] <= 1e-4
    assert len(v["exit_histogram"]) == 4 and v["exit_histogram"][0] > 0
