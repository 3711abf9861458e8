"""The HTML report of hand-built runs (exported for real): one offline file, sections, comparison."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nas.cli import app
from nas.export import export_subnets
from nas.report import load_view, write_report
from nas.runfolder import NoRunError
from predictors import latency_predictor, load_or_collect_accuracy
from supernet.checkpoint import load_supernet
from supernet.cnn import count_macs
from supernet.errors import OutputError
from tests.nas.test_export import make_run  # the run-folder builder shared with the export tests

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def test_report_is_one_offline_html_file_with_every_section(two_runs, report):
    host, orin, _sn = two_runs
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html"]
    page = report.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(b).startswith(PNG_MAGIC) for b in images)
    links = re.findall(r'(?:src|href)\s*=\s*["\']?([^"\' >]+)', page, flags=re.I)
    assert all(link.startswith("data:") for link in links), links
    assert "<link" not in page and "<script" not in page and "@import" not in page
    for section in ("overview", "fronts", "hypervolume", "predictors", "exported", "comparison"):
        assert f"id='{section}'" in page
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
        v = e["verify"]
        assert v["device"] == "jetson-orin" and v["host_latency_predictor"]["method"] == "block-lut"
        assert v["predicted_host_latency_ms"] != pytest.approx(v["predicted_latency_ms"])
        assert v["predicted_host_latency_ms"] > 0


def test_single_run_report_has_no_comparison(two_runs, tmp_path):
    _host, orin, _sn = two_runs
    page = write_report([orin], tmp_path / "one.html").read_text()
    assert "id='fronts'" in page and "id='comparison'" not in page


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
