"""CNN and ViT side by side: the "Families" section appears when one device was searched with two supernet
families, with each family's front and its values, and not otherwise."""

from __future__ import annotations

import base64
import html as html_lib
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from reports.browser import check_report
from reports.families import family_groups
from reports.html import SECTIONS, write_report
from reports.view import load_view
from tests.reports.chromium import needs_chromium
from tests.reports.runs import V2_RUNS

ORIN, HOST = V2_RUNS  # CNN runs on jetson-orin and host


def _front(folder: Path) -> pd.DataFrame:
    p = pd.read_csv(folder / "pareto.csv", dtype={"subnet_id": str})
    return p[p["combined"]].drop_duplicates("subnet_id")


def _table(section: str) -> pd.DataFrame:
    """The first HTML table of ``section``, every cell as its text."""
    t = section[section.index("<table"): section.index("</table>")]
    head = [html_lib.unescape(h) for h in re.findall(r"<th>(.*?)</th>", t)]
    cells = [html_lib.unescape(re.sub(r"</?code>", "", c)) for c in re.findall(r"<td>(.*?)</td>", t, flags=re.S)]
    return pd.DataFrame([cells[i: i + len(head)] for i in range(0, len(cells), len(head))], columns=head)


def _sections(page: str) -> list[str]:
    return re.findall(r"<h2 id='(\w+)'>", page)


@pytest.fixture(scope="module")
def families_report(vit_search: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report([ORIN, vit_search], tmp_path_factory.mktemp("families") / "r.html")


@pytest.fixture(scope="module")
def families_page(families_report: Path) -> str:
    return families_report.read_text(encoding="utf-8")


def test_two_families_on_one_device_get_a_section_with_their_fronts(vit_search, families_page):
    page = families_page
    assert _sections(page)[:4] == ["overview", "fronts", "families", "explore"]
    assert "<a href='#families'>Families</a>" in page
    section = page[page.index("<h2 id='families'>"): page.index("<h2 id='explore'>")]
    assert "<h3>jetson-orin</h3>" in section
    (png,) = re.findall(r'alt="families on jetson-orin" src="data:image/png;base64,([^"]+)"', section)
    assert base64.b64decode(png).startswith(b"\x89PNG")
    # the table, against pareto.csv of each run
    cnn, vit = _front(ORIN), _front(vit_search)
    level = min(cnn["accuracy"].max(), vit["accuracy"].max())  # the best accuracy the weaker family reaches
    rows = _table(section).set_index("family")
    assert set(rows.index) == {"cnn", "vit"}
    for fam, fr in (("cnn", cnn), ("vit", vit)):
        r = rows.loc[fam]
        assert int(r["front size"]) == len(fr)  # one run per family: the family's front is the run's combined front
        assert float(r["best accuracy"]) == pytest.approx(fr["accuracy"].max(), rel=1e-3)
        assert float(r["fastest latency (ms)"]) == pytest.approx(fr["latency_ms"].min(), rel=1e-3)
        at = fr[fr["accuracy"] >= level].sort_values("latency_ms").iloc[0]
        assert float(r[f"latency at accuracy ≥ {level:.4g} (ms)"]) == pytest.approx(at["latency_ms"], rel=1e-3)
        assert r["subnet at that accuracy"] == at["arch"]
    weaker = "cnn" if cnn["accuracy"].max() < vit["accuracy"].max() else "vit"
    assert f"at accuracy ≥ {100 * level:.2f} % (the best {weaker} reaches)" in html_lib.unescape(section)
    (group,) = family_groups([load_view(ORIN), load_view(vit_search)])
    assert group.device == "jetson-orin" and list(group.fronts) == ["cnn", "vit"]
    assert [list(f["run"].unique()) for f in group.run_fronts] == [[f"jetson-orin — {ORIN.name}"],
                                                                 [f"jetson-orin — {vit_search.name}"]]


def test_one_family_or_two_devices_get_no_section(vit_search, tmp_path):
    for i, runs in enumerate(([ORIN, HOST], [vit_search], [HOST, vit_search])):  # cnn+cnn, vit, cnn/host+vit/orin
        page = write_report(runs, tmp_path / f"r{i}.html").read_text()
        assert "families" not in _sections(page) and "href='#families'" not in page
        assert "families on" not in page


def test_two_runs_of_a_family_merge_into_one_front(vit_search, tmp_path):
    twin = tmp_path / "orin-copy"
    shutil.copytree(ORIN, twin)
    (group,) = family_groups([load_view(ORIN), load_view(twin), load_view(vit_search)])
    assert list(group.fronts) == ["cnn", "vit"] and len(group.run_fronts) == 3
    cnn = group.fronts["cnn"]
    # the copy holds the same subnets with the same predictions: each counts once, with the first run
    assert sorted(cnn["subnet_id"]) == sorted(_front(ORIN)["subnet_id"]) and set(cnn["run"]) == {group.views[0].title}
    table = group.table().set_index("family")
    assert table.loc["cnn", "runs"] == f"jetson-orin — {ORIN.name}, jetson-orin — {twin.name}"
    assert "families" in SECTIONS


@needs_chromium
def test_the_families_page_works_in_chromium(families_report):
    check = check_report(families_report)
    assert check.errors == [] and check.requests == [] and check.ok
    assert check.sections[:4] == ["overview", "fronts", "families", "explore"]
    assert [i["alt"] for i in check.images][:2] == ["Pareto fronts", "families on jetson-orin"]
