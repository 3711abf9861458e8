"""Algorithms compared over seeds: real tiny searches with two seeds, hypervolume curves recomputed in one box."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from nas.pareto import HVBox
from nas.pareto import hypervolume as nas_hypervolume
from reports.browser import check_report
from reports.compare import seed_groups
from reports.fronts import union_box
from reports.view import load_view
from tests.cli import ok
from tests.reports.chromium import HAVE_CHROMIUM
from tests.reports.runs import V2_RUNS

BUDGET = 12


@pytest.fixture(scope="module")
def seed_runs(sn: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("seeds")
    out = []
    for seed in (0, 1):
        d = root / f"orin-seed{seed}"
        ok(["search", "--device", "jetson-orin", "--supernet", str(sn), "--bn", "switchable", "--accuracy-samples",
            "32", "--budget", str(BUDGET), "--top", "0", "--algorithm", "random,nsga2", "--exits", "off",
            "--seed", str(seed), "--out", str(d)])
        out.append(d)
    return out


def _box(ref) -> HVBox:
    return HVBox(ref.ideal.accuracy, ref.nadir.accuracy, ref.ideal.latency_ms, ref.nadir.latency_ms)


def test_seeds_of_one_search_compare_in_the_union_of_their_boxes(seed_runs):
    views = [load_view(d) for d in seed_runs]
    (group,) = seed_groups(views)
    assert group.seeds == [0, 1] and group.label == f"jetson-orin, {BUDGET} evaluations"
    refs = [v.run.hv_reference for v in views]
    assert not refs[0].same_box(refs[1])  # each seed fitted its own predictors: the boxes differ a little
    assert not group.shared_box and group.box == union_box(refs)
    box = _box(group.box)
    finals: dict[str, list[float]] = {}
    for v in views:  # every point of every curve, recomputed independently with nas.pareto
        for alg, ev in v.evaluations.groupby("algorithm"):
            curve = group.curves[(group.curves["run"] == v.title) & (group.curves["algorithm"] == alg)]
            for n, hv in zip(curve["n_evals"], curve["hypervolume"], strict=True):
                first = ev.sort_values("eval_index").iloc[:n]
                first = first[first["feasible"]]
                F = np.column_stack([-first["accuracy"].to_numpy(float), first["latency_ms"].to_numpy(float)])
                assert hv == pytest.approx(nas_hypervolume(F, box), rel=1e-9, abs=1e-12)
            assert curve["n_evals"].max() == BUDGET
            finals.setdefault(alg, []).append(float(curve["hypervolume"].iloc[-1]))
    summary = group.summary().set_index("algorithm")
    assert list(summary.index) == ["nsga2", "random"] and set(summary["seeds"]) == {"0, 1"}
    for alg, x in finals.items():
        cell = (f"{np.mean(x):.4f} ± {np.std(x, ddof=1):.4f} [{min(x):.4f}, {max(x):.4f}] @{BUDGET}")
        assert summary.loc[alg, "HV at full budget"] == cell
    best = max(finals, key=lambda a: np.mean(finals[a]))
    assert group.ranking().startswith(f"jetson-orin, {BUDGET} evaluations: final hypervolume over seeds 0, 1 "
                                      f"(mean ± std): {best} {np.mean(finals[best]):.4f}")


def test_runs_of_other_problems_are_not_pooled(seed_runs):
    a, b = (load_view(d) for d in seed_runs)
    other = load_view(seed_runs[1], b.run.updated(settings={**b.run.settings.to_dict(), "latency_budget_ms": 1.0},
                                                  latency_budget_ms=1.0))
    assert seed_groups([a, other]) == [] and len(seed_groups([a, b, other])) == 1


def test_seeds_that_stored_one_box_keep_their_own_hypervolumes(tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(V2_RUNS[0], twin)
    views = [load_view(V2_RUNS[0]), load_view(twin)]
    (group,) = seed_groups(views)
    assert group.shared_box and group.box == views[0].run.hv_reference
    final = group.spread().sort_values("n_evals").groupby("algorithm").tail(1).set_index("algorithm")
    for alg, hv in views[0].run.hypervolume.items():  # the same run twice: no spread, its own final HV
        assert final.loc[alg, "mean"] == pytest.approx(hv, rel=1e-9) and final.loc[alg, "std"] == 0.0


def test_the_report_of_several_seeds_compares_the_algorithms(seed_runs, tmp_path):
    out = tmp_path / "seeds.html"
    ok(["report", *map(str, seed_runs), "--out", str(out)])
    page = out.read_text()
    group = seed_groups([load_view(d) for d in seed_runs])[0]
    assert html.escape(group.ranking()) in page
    for cell in group.summary()["HV at full budget"]:
        assert f"<td>{cell}</td>" in page
    assert "the union of the runs&#x27; boxes" in page
    assert re.search(r'<img alt="hypervolume over seeds" src="data:image/png;base64,', page)
    if HAVE_CHROMIUM:  # the browser check proper is tests/reports/test_html.py's
        check = check_report(out)
        assert check.ok, (check.errors, check.requests)
        assert [i["alt"] for i in check.images] == ["Pareto fronts", "hypervolume", "hypervolume over seeds"]


def test_seeds_of_a_three_objective_search_compare_in_3d(sn, tmp_path):
    """Two seeds of an accuracy, latency, memory search: one group, curves in the 3-D union box equal to
    nas.pareto's 3-D hypervolume, and the report of both builds."""
    runs = []
    for seed in (0, 1):
        d = tmp_path / f"mem-seed{seed}"
        ok(["search", "--device", "jetson-orin", "--supernet", str(sn), "--bn", "switchable", "--accuracy-samples",
            "32", "--budget", str(BUDGET), "--top", "0", "--algorithm", "random", "--exits", "off",
            "--objectives", "accuracy,latency,memory", "--seed", str(seed), "--out", str(d)])
        runs.append(d)
    views = [load_view(d) for d in runs]
    (group,) = seed_groups(views)
    b = group.box
    assert b.model_extra["third"] == "memory_bytes" and len(b.normalised_reference) == 3
    box = HVBox(b.ideal.accuracy, b.nadir.accuracy, b.ideal.latency_ms, b.nadir.latency_ms, "memory_bytes",
                b.ideal.memory_bytes, b.nadir.memory_bytes)
    for v in views:
        ev = v.evaluations[v.evaluations["feasible"]]
        F = np.column_stack([-ev["accuracy"], ev["latency_ms"], ev["memory_bytes"]]).astype(float)
        final = group.curves[group.curves["run"] == v.title].sort_values("n_evals")["hypervolume"].iloc[-1]
        assert final == pytest.approx(nas_hypervolume(F, box), rel=1e-9) and final > 0
    out = tmp_path / "mem.html"
    ok(["report", *map(str, runs), "--out", str(out)])
    assert html.escape(group.ranking()) in out.read_text()


def test_an_old_run_and_an_exits_off_run_with_exports_compare(sn, tmp_path):
    """The v2 host run (written before exits existed) beside a new ``--exits off`` host search that exported
    subnets: both search the same exit-free space, and the new exports' arch.json is in the supernet's own
    space (``_x0…``), which the comparison parses too."""
    new = tmp_path / "host-exits-off"
    ok(["search", "--device", "host", "--supernet", str(sn), "--bn", "switchable", "--accuracy-samples", "32",
        "--budget", str(BUDGET), "--top", "1", "--algorithm", "random", "--exits", "off", "--seed", "0",
        "--out", str(new)])
    views = [load_view(V2_RUNS[1]), load_view(new)]
    assert views[1].exported
    out = tmp_path / "both.html"
    ok(["report", str(V2_RUNS[1]), str(new), "--out", str(out)])
    text = out.read_text()
    assert "mean width per block" in html.unescape(text)
