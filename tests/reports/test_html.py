"""The HTML report of hand-built runs (exported for real) and of runs written before reports/ existed: one
offline file, its sections and values, and the page as headless Chromium shows it."""

from __future__ import annotations

import base64
import html as html_lib
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from nas.cli import app
from nas.export import export_subnets
from predictors import latency_predictor, load_or_collect_accuracy
from reports.browser import check_report, open_page
from reports.html import write_report
from reports.run_folder import NoRunError, combined_front, load_run
from reports.view import load_view
from supernet.checkpoint import load_supernet
from supernet.cnn import count_macs
from supernet.errors import OutputError
from tests.reports.chromium import needs_chromium
from tests.reports.runs import V2_RUNS, make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ORIN, HOST = V2_RUNS
SECTIONS = ["overview", "fronts", "explore", "hypervolume", "algorithms", "predictors", "exits", "exported",
            "comparison"]


@pytest.fixture(scope="module")
def two_runs(tiny_supernet_path: Path, digits, tmp_path_factory: pytest.TempPathFactory):
    """A host run without stored baselines and a jetson-orin run with them, 2 subnets exported from each."""
    root = tmp_path_factory.mktemp("report")
    mp = pytest.MonkeyPatch()
    mp.setenv("DYNNAS_CACHE", str(root / "cache"))  # host latency tables and accuracy data stay in tmp
    try:
        sn = root / "sn" / "supernet.safetensors"  # a private copy: its accuracy cache is written beside it
        sn.parent.mkdir()
        shutil.copy(tiny_supernet_path, sn)
        model, meta = load_supernet(sn)
        load_or_collect_accuracy(sn, model, meta, digits, n_samples=12, bn="recal", seed=0)
        latency_predictor("host", model.config, n_calibration=6, rounds=2)  # a small host table, cached for export
        host = make_run(root / "host", sn, device="host", seed=0)
        orin = make_run(root / "orin", sn, device="jetson-orin", seed=1, baselines=True,
                        deploy="trtexec --onnx={onnx} --fp16")
        export_subnets(host, 2)
        export_subnets(orin, 2)
        yield host, orin, sn
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def report(two_runs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    host, orin, _sn = two_runs
    return write_report([host, orin], tmp_path_factory.mktemp("out") / "sub" / "report.html")


@pytest.fixture(scope="module")
def twin_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a run written before reports/ existed next to a copy of itself (same subnets on both fronts)."""
    root = tmp_path_factory.mktemp("twin")
    twin = root / "orin-copy"
    shutil.copytree(ORIN, twin)
    return write_report([ORIN, twin], root / "report.html")


def test_report_is_one_offline_html_file_with_every_section(two_runs, report):
    host, orin, _sn = two_runs
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html"]
    page = report.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(b).startswith(PNG_MAGIC) for b in images)
    links = re.findall(r'(?:src|href)\s*=\s*["\']?([^"\' >]+)', page, flags=re.I)
    assert all(link.startswith(("data:", "#")) for link in links), links  # nothing outside the file
    assert re.findall(r"<script[^>]*>", page) == ["<script>"]  # one inline script, no src
    assert "<link" not in page and "@import" not in page and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", "")
    assert re.findall(r"<h2 id='(\w+)'>", page) == SECTIONS
    for text in ("Uniform-width baselines", "noise-ceiling τ (val vs test ranking) = 0.83",
                 "held-out Kendall τ = 0.71", "held-out RMSE (accuracy points) = 1.2", "block-lut", "digits test (",
                 "host latency predictor (for the measured comparison): method: block-lut;", "loo_within_10pct: ",
                 "n_calibration: 6</p>"):
        assert text in page, text
    # the deployment command of every exported subnet, with its ONNX path filled in
    for sid in (p.name for p in (orin / "subnets").iterdir() if p.is_dir()):
        assert f"trtexec --onnx={orin / 'subnets' / sid / 'model.onnx'} --fp16" in page
    assert "onnxruntime_check " + str(host / "subnets") in page
    assert "block 1" in page and "MACs" in page  # the generated comparison of the two runs
    assert "No two of these runs are seeds of the same search" in page  # host and jetson-orin: no spread


def test_baselines_are_stored_or_predicted_with_the_runs_predictors(two_runs, report):
    host, orin, sn = two_runs
    stored = load_view(orin)
    assert stored.baselines_note == "stored in run.json" and list(stored.baselines["width"]) == [0.25, 0.5, 0.75, 1.0]
    page = report.read_text(encoding="utf-8")
    assert "(stored in run.json)" in page
    # the host run stores none: the report predicted them with the run's predictors; check its table
    start = page.index(f"Uniform-width baselines of host — {host.name} (predicted now with the run&#x27;s predictors)")
    table = page[start: page.index("</table>", start)]
    cells = re.findall(r"<td>(.*?)</td>", table)
    rows = [cells[i: i + 5] for i in range(0, len(cells), 5)]  # width, arch, accuracy, latency_ms, macs
    model, meta = load_supernet(sn)
    acc, _ = load_or_collect_accuracy(sn, model, meta, None, bn="recal", seed=0)
    subs = [model.space.uniform(i) for i in range(4)]
    assert [r[1] for r in rows] == [model.space.format(s) for s in subs]
    assert [float(r[2]) for r in rows] == pytest.approx(acc.predict(subs).tolist(), rel=1e-3)
    lat = latency_predictor("host", model.config).predict_ms(subs)
    assert [float(r[3]) for r in rows] == pytest.approx(lat.tolist(), rel=1e-3)
    assert [int(r[4]) for r in rows] == [count_macs(model.config, s) for s in subs]


def test_exported_subnets_of_another_device_get_host_predictions(two_runs):
    _host, orin, _sn = two_runs
    view = load_view(orin)
    assert len(view.exported) == 2
    for e in view.exported:
        v = e.verify
        assert v.device == "jetson-orin" and v.host_latency_predictor["method"] == "block-lut"
        assert v.predicted_host_latency_ms != pytest.approx(v.predicted_latency_ms)
        assert v.predicted_host_latency_ms > 0


def test_single_run_report_has_no_comparison(two_runs, tmp_path):
    _host, orin, _sn = two_runs
    page = write_report([orin], tmp_path / "one.html").read_text()
    assert re.findall(r"<h2 id='(\w+)'>", page) == [s for s in SECTIONS if s not in ("algorithms", "comparison")]


def test_a_run_written_before_the_move_reports_its_values(tmp_path):
    page = write_report([ORIN], tmp_path / "r.html").read_text()
    run = load_run(ORIN)
    for e in (ORIN / "subnets").iterdir():  # every exported subnet, with its measured ONNX accuracy
        verify = pd.read_json(e / "verify.json", typ="series")
        assert f"<td>{verify['onnx_accuracy']:.4g}</td>" in page
    assert f"nsga2: {run.hypervolume['nsga2']:.4g}" in page and run.command in html_lib.unescape(page)


def _tips(page: str) -> list[tuple[str, str, str]]:
    """(class, subnet id, tooltip) of every hoverable point."""
    return [(c, html_lib.unescape(s), html_lib.unescape(t)) for c, s, t in
            re.findall(r'class="([^"]+)" data-sid="([^"]*)" data-tip="([^"]*)"', page)]


def test_every_front_point_carries_its_arch_and_figures(tmp_path):
    page = write_report([ORIN], tmp_path / "r.html").read_text()
    points = {(s, t.split("\n")[1].split(" · ")[1]): t for c, s, t in _tips(page) if c.startswith("fr")}
    pareto = pd.read_csv(ORIN / "pareto.csv", dtype={"subnet_id": str})
    assert len(points) == len(pareto)  # one point per (algorithm, front subnet)
    for r in pareto.itertuples(index=False):
        tip = points[(r.subnet_id, r.algorithm)]
        lines = tip.split("\n")
        assert lines[0] == r.arch and lines[2] == f"accuracy {100 * r.accuracy:.2f} %"
        assert lines[3] == f"latency {r.latency_ms:.5g} ms on jetson-orin" and lines[4] == f"MACs {r.macs / 1e6:.4g} M"
        if "1" in r.arch.split("_x")[1]:  # a subnet with exits: its worst case and exit rates too
            rates = ", ".join(f"{float(p):.2f}" for p in r.exit_rates.split(";"))
            assert f"worst case {r.worst_latency_ms:.5g} ms" in tip and f"exit rates {rates}" in tip
    candidates = [t for c, _s, t in _tips(page) if c == "ev"]
    ev = pd.read_csv(ORIN / "evaluations.csv")
    assert len(candidates) == len(ev.drop_duplicates(["algorithm", "subnet_id"]))


def test_the_same_subnet_is_marked_in_every_runs_panel(twin_report):
    page = twin_report.read_text()
    front = set(combined_front(ORIN)["subnet_id"])
    shared = {s for c, s, _t in _tips(page) if c == "fr shared"}
    assert shared == front  # each panel marks the subnets also on the other run's front
    assert "final hypervolume over seeds 0, 0 (mean ± std)" in page  # a copy is a seed of the same search


def test_report_errors(two_runs, tmp_path):
    _host, orin, _sn = two_runs
    with pytest.raises(NoRunError, match="no run.json"):
        write_report([orin, tmp_path], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(OutputError, match="is a folder"):
        write_report([orin], tmp_path)
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "x.html")])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["report", str(orin), "--out", str(tmp_path / "cli.html")])
    assert res.exit_code == 0 and (tmp_path / "cli.html").is_file()
    res = CliRunner().invoke(app, ["report", str(orin), "--out", str(tmp_path / "cli.html")])
    assert res.exit_code == 0  # its own report is replaced
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(OutputError, match="not a dynnas report"):
        write_report([orin], notes)
    assert notes.read_text() == "mine"


# ---- in a real browser -------------------------------------------------------------------------
@needs_chromium
def test_report_works_in_chromium(report):
    check = check_report(report)
    assert check.errors == [] and check.requests == []  # no console error, nothing fetched
    assert check.title == "dynnas report" and check.sections == SECTIONS
    assert [i["alt"] for i in check.images] == ["Pareto fronts", "hypervolume", "predicted vs measured"]
    assert all(i["decoded"] and i["width"] > 0 and i["height"] > 0 for i in check.images), check.images
    assert check.ok


@needs_chromium
def test_hovering_a_front_point_shows_its_arch_and_marks_it_in_every_panel(twin_report):
    with open_page(twin_report) as page:
        # a front point of the first panel that no exported star covers
        sid = page.evaluate("(() => {const stars = new Set(Array.from(document.querySelectorAll('.exp'))"
                            ".map(e => e.getAttribute('data-sid')));"
                            "const e = Array.from(document.querySelectorAll('.explore figure:first-child circle.fr'))"
                            ".find(e => !stars.has(e.getAttribute('data-sid'))); e.id = 'target';"
                            "return e.getAttribute('data-sid');})()")
        tips = page.evaluate(f"Array.from(document.querySelectorAll('[data-sid=\"{sid}\"]'))"
                             ".map(e => e.getAttribute('data-tip'))")
        page.hover("#target")
        shown, text, marked = page.evaluate(
            "[getComputedStyle(document.getElementById('tip')).display, document.getElementById('tip').textContent,"
            "Array.from(document.querySelectorAll('.hl')).map(e => e.getAttribute('data-sid'))]")
        front = pd.read_csv(ORIN / "pareto.csv", dtype={"subnet_id": str}).drop_duplicates("subnet_id").set_index(
            "subnet_id")
        assert shown == "block" and text in tips and text.split("\n")[0] == front.loc[sid, "arch"]
        assert f"accuracy {100 * front.loc[sid, 'accuracy']:.2f} %" in text
        assert marked == [sid] * len(tips) and len(tips) >= 2  # every point of that subnet, in both panels
        page.hover("h1")
        assert page.evaluate("[getComputedStyle(document.getElementById('tip')).display, "
                             "document.querySelectorAll('.hl').length]") == ["none", 0]
    assert page.errors == [] and all(u.startswith(("file:", "data:")) for u in page.requests)
