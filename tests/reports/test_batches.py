"""Batch sizes side by side: the "Batch size" section appears when one device and supernet family was searched
at two batch sizes, with each batch's front in per-image latency and its values, and not otherwise."""

from __future__ import annotations

import base64
import html as html_lib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from reports.batches import batch_groups
from reports.html import SECTIONS, write_report
from reports.view import load_view
from supernet.pretrained import SHIPPED
from tests.cli import ok
from tests.reports.runs import V2_RUNS

ORIN, HOST = V2_RUNS  # CNN runs at batch 1 on jetson-orin and host
DEVICE = "jetson-orin"  # launch-bound at these CIFAR-10 subnets: the front moves with the batch


def _front(folder: Path) -> pd.DataFrame:
    """A run's combined front from pareto.csv, with its per-image latency."""
    p = pd.read_csv(folder / "pareto.csv", dtype={"subnet_id": str})
    batch = json.loads((folder / "run.json").read_text())["settings"]["batch"]
    fr = p[p["combined"]].drop_duplicates("subnet_id")
    return fr.assign(image_ms=fr["latency_ms"] / batch)


def _table(section: str) -> pd.DataFrame:
    """The first HTML table of ``section``, every cell as its text."""
    t = section[section.index("<table"): section.index("</table>")]
    head = [html_lib.unescape(h) for h in re.findall(r"<th>(.*?)</th>", t)]
    cells = [html_lib.unescape(re.sub(r"</?code>", "", c)) for c in re.findall(r"<td>(.*?)</td>", t, flags=re.S)]
    return pd.DataFrame([cells[i: i + len(head)] for i in range(0, len(cells), len(head))], columns=head)


def _sections(page: str) -> list[str]:
    return re.findall(r"<h2 id='(\w+)'>", page)


def _search(supernet: Path, out: Path, *extra: str, device: str = DEVICE, budget: int = 30,
            algorithm: str = "nsga2,random") -> Path:
    ok(["search", "--device", device, "--supernet", str(supernet), "--budget", str(budget), "--algorithm", algorithm,
        "--seed", "0", "--top", "0", "--exits", "off", "--out", str(out), *extra])
    return out


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Private copies of the shipped CIFAR-10 supernets with their accuracy data (nothing is written beside the
    shipped files); their fronts are wide enough that batch 8 reorders them on jetson-orin."""
    root = tmp_path_factory.mktemp("shipped")
    for f in SHIPPED["cnn"].parent.glob("cifar10-*"):
        shutil.copy(f, root / f.name)
    return {fam: root / p.name for fam, p in SHIPPED.items()}


@pytest.fixture(scope="module")
def batch_runs(shipped: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real searches of the shipped CNN on jetson-orin, widths only, at batch 1 and batch 8 (same seed)."""
    root = tmp_path_factory.mktemp("batches")
    return (_search(shipped["cnn"], root / "orin-b1"),
            _search(shipped["cnn"], root / "orin-b8", "--batch", "8"))


@pytest.fixture(scope="module")
def others(shipped: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Small real searches at batch 1: the shipped CNN on jetson-orin in its 15 W mode (another device label) and
    the shipped ViT on jetson-orin (another family)."""
    root = tmp_path_factory.mktemp("batches-others")
    return (_search(shipped["cnn"], root / "orin15w-b1", device=f"{DEVICE}:15W", budget=12, algorithm="random"),
            _search(shipped["vit"], root / "vit-b1", budget=12, algorithm="random"))


@pytest.fixture(scope="module")
def batch_page(batch_runs, tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_report(list(batch_runs), tmp_path_factory.mktemp("batch-report") / "r.html").read_text()


def test_two_batches_of_one_device_get_a_section_in_per_image_latency(batch_runs, batch_page):
    b1, b8 = batch_runs
    page = batch_page
    assert _sections(page)[:3] == ["overview", "fronts", "batches"]  # one family: no families section before it
    assert "<a href='#batches'>Batch size</a>" in page
    section = page[page.index("<h2 id='batches'>"): page.index("<h2 id='explore'>")]
    assert "<h3>jetson-orin (cnn)</h3>" in section and "per image" in section
    (png,) = re.findall(r'alt="batch sizes on jetson-orin \(cnn\)" src="data:image/png;base64,([^"]+)"', section)
    assert base64.b64decode(png).startswith(b"\x89PNG")
    # the table, against pareto.csv of each run
    f1, f8 = _front(b1), _front(b8)
    # pareto.csv stores ms per batch: a batch of 8 costs more than one image, each of its images less
    assert f8["latency_ms"].min() > f1["latency_ms"].min() > f8["image_ms"].min()
    level = min(f1["accuracy"].max(), f8["accuracy"].max())  # the best accuracy both fronts reach
    rows = _table(section).set_index("batch")
    assert list(rows.index) == ["1", "8"]
    at = {b: fr[fr["accuracy"] >= level - 1e-9].sort_values("image_ms").iloc[0] for b, fr in ((1, f1), (8, f8))}
    kept = len(set(f1["subnet_id"]) & set(f8["subnet_id"]))
    assert 0 < kept < len(f1)  # launch-bound at batch 1: part of its front is no longer Pareto-optimal at batch 8
    for b, fr, folder in ((1, f1, b1), (8, f8, b8)):
        r = rows.loc[str(b)]
        assert r["runs"] == f"jetson-orin — {folder.name}"
        assert int(r["front size"]) == len(fr)  # one run per batch: the batch's front is the run's combined front
        assert float(r["best accuracy"]) == pytest.approx(fr["accuracy"].max(), rel=1e-3)
        assert float(r["fastest (ms/image)"]) == pytest.approx(fr["image_ms"].min(), rel=1e-3)
        assert float(r["images/s (fastest)"]) == pytest.approx(1000 / fr["image_ms"].min(), rel=1e-3)
        assert float(r[f"ms/image at accuracy ≥ {level:.4g}"]) == pytest.approx(at[b]["image_ms"], rel=1e-3)
        assert r["subnet at that accuracy"] == at[b]["arch"]
        assert r["same subnet as batch 1"] == ("yes" if at[b]["arch"] == at[1]["arch"] else "no")
        n_kept = len(f1) if b == 1 else kept
        assert r["batch-1 front kept"] == f"{n_kept} of {len(f1)}"
        assert float(r["share kept"]) == pytest.approx(n_kept / len(f1), rel=1e-3)
    pick = (f"changes from {at[1]['arch']} at batch 1 to {at[8]['arch']} at batch 8"
            if at[1]["arch"] != at[8]["arch"] else f"stays {at[1]['arch']} from batch 1 to batch 8")
    assert (f"On jetson-orin (cnn), the fastest subnet at accuracy ≥ {100 * level:.2f} % {pick}; {kept} of "
            f"{len(f1)} batch-1 front subnets stay on the batch-8 front.") in html_lib.unescape(section)


def test_per_image_fronts_merge_runs_of_one_batch(batch_runs, tmp_path):
    b1, b8 = batch_runs
    twin = tmp_path / "orin-b8-copy"
    shutil.copytree(b8, twin)
    (group,) = batch_groups([load_view(b1), load_view(b8), load_view(twin)])
    assert (group.device, group.family, list(group.fronts)) == ("jetson-orin", "cnn", [1, 8])
    f8 = group.fronts[8]
    # the copy holds the same subnets with the same predictions: each counts once, with the first run
    assert sorted(f8["subnet_id"]) == sorted(_front(b8)["subnet_id"]) and set(f8["run"]) == {group.views[1].title}
    assert f8["image_ms"].to_numpy() == pytest.approx(f8["latency_ms"].to_numpy() / 8)
    assert f8["image_ms"].is_monotonic_increasing and f8["accuracy"].is_monotonic_increasing  # a front
    assert group.table().set_index("batch").loc[8, "runs"] == f"jetson-orin — {b8.name}, jetson-orin — {twin.name}"
    assert list(SECTIONS).index("batches") == list(SECTIONS).index("families") + 1


def test_one_batch_two_devices_or_two_families_get_no_section(batch_runs, others, tmp_path):
    b1, b8 = batch_runs
    orin_15w, vit = others
    # batch 1 twice (two CNN runs on jetson-orin), batch 8 against the 15 W mode at batch 1, ViT at 1 against CNN
    # at 8
    for i, runs in enumerate(([b1, ORIN], [orin_15w, b8], [vit, b8])):
        assert batch_groups([load_view(r) for r in runs]) == []
        page = write_report(runs, tmp_path / f"r{i}.html").read_text()
        assert "batches" not in _sections(page) and "href='#batches'" not in page
        assert "batch sizes on" not in page
    assert batch_groups([load_view(HOST), load_view(b8)]) == []  # host at batch 1, jetson-orin at batch 8
    # the ViT and CNN pair with a second CNN run at batch 1: one group, and only the CNN runs in it
    (group,) = batch_groups([load_view(r) for r in (vit, b8, ORIN)])
    assert group.family == "cnn" and [v.folder for v in group.views] == [b8, ORIN] and list(group.fronts) == [1, 8]
    # the 15 W run stays out of the jetson-orin group of the two batches
    (group,) = batch_groups([load_view(r) for r in (b1, orin_15w, b8)])
    assert group.device == "jetson-orin" and [v.folder for v in group.views] == [b1, b8]
