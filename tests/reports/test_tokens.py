"""Token reduction in the report: each ViT subnet's tokens per block (exported table, hover tips) and the front of
the candidates that keep every token, checked against hand counts, arch.json and nas.pareto (pymoo)."""

from __future__ import annotations

import html as html_lib
import math
import re
from pathlib import Path

import numpy as np
import pytest

from nas.pareto import HVBox
from nas.pareto import hypervolume as nas_hypervolume
from nas.pareto import non_dominated as nas_non_dominated
from reports.html import _panel, write_report
from reports.run_folder import load_run, read_table
from reports.tables import exported_table
from reports.tokens import TokenSchedule
from reports.view import load_view
from supernet.vit import PRESETS
from tests.reports.runs import V2_RUNS

ORIN = V2_RUNS[0]  # a CNN run


@pytest.mark.parametrize(("preset", "arch", "text", "ratios"), [
    # tiny: 16 patches + CLS into block 0, which may reduce; ceil(ρ·16) tokens stay (+ CLS) whatever the method
    ("tiny", "w1-1_h1-1_x0_t1_m1", "17→13 (ToMe)", "keep 0.75 (ToMe)"),
    ("tiny", "w0-1_h0-1_x1_t0_m0", "17→9 (top-k)", "keep 0.5 (top-k)"),
    ("tiny", "w1-1_h1-1_x0_t2_m1", "17→17 (no reduction)", "keep 1 (no reduction)"),
    # cifar-vit: 64 patches + CLS, blocks 1-4 reduce: 1.0, 0.7 (64→45), 0.7 (45→32), 0.5 (32→16)
    ("cifar-vit", "w3-3-3-3-3-3_h3-3-3-3-3-3_x00_t2-1-1-0_m1", "65→65→65→46→33→17 (ToMe)",
     "keep 1→0.7→0.7→0.5 (ToMe)"),
    ("cifar-vit", "w0-1-2-3-0-1_h3-2-1-0-3-2_x10_t1-1-0-0_m0", "65→65→46→33→17→9 (top-k)",
     "keep 0.7→0.7→0.5→0.5 (top-k)"),
])
def test_tokens_per_block_of_known_archs(preset, arch, text, ratios):
    config = PRESETS[preset]
    assert TokenSchedule(config.space(), config).text(arch) == text
    assert TokenSchedule(config.space()).text(arch) == ratios  # a run.json without the config: the keep ratios


def test_a_cnn_run_shows_no_token_schedule(tmp_path):
    assert TokenSchedule.of(load_run(ORIN)) is None
    assert "tokens per block" not in exported_table(load_view(ORIN)).columns
    page = write_report([ORIN], tmp_path / "r.html").read_text()
    assert "tokens per block" not in page and "without token reduction" not in page


@pytest.fixture(scope="module")
def vit_page(vit_search: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_report([vit_search], tmp_path_factory.mktemp("vit_report") / "r.html").read_text(encoding="utf-8")


def _hand_count(arch: str) -> str:
    """The tiny ViT's schedule counted from the arch string alone: 17 tokens in, ceil(ρ·16) + CLS into block 1."""
    t, m = int(re.search(r"_t(\d)", arch)[1]), int(re.search(r"_m(\d)", arch)[1])
    rho = (0.5, 0.75, 1.0)[t]
    method = "no reduction" if rho == 1.0 else ("top-k", "ToMe")[m]
    return f"17→{1 + math.ceil(rho * 16)} ({method})"


def test_exported_table_and_tips_carry_each_subnets_tokens(vit_search, vit_page):
    view = load_view(vit_search)
    table = exported_table(view)
    assert len(table) == 2 and list(table.columns[5:8]) == ["tokens per block", "token method", "keep ratios"]
    methods = sorted(table["token method"])  # seed 0: one export keeps every token, the other reduces them
    assert methods[0] == "no reduction" and methods[1] in ("top-k", "ToMe")
    for e, row in zip(view.exported, table.itertuples(index=False), strict=True):
        pairs = e.arch.model_extra["widths"]["tokens_per_block"]  # written by the export from the real subnet
        text = row[5]
        assert text == _hand_count(e.arch.arch)
        assert text.split(" ")[0] == "→".join(str(p[0]) for p in pairs)
        assert TokenSchedule.of(view.run).text(e.arch.arch) == text  # derived from the arch string: the same
        assert row[6] == text.split("(")[1].rstrip(")")
        assert f"<td>{html_lib.escape(text)}</td>" in vit_page
    tips = [html_lib.unescape(t) for t in re.findall(r'data-tip="([^"]*)"', vit_page)]
    candidates = [t for t in tips if "candidate · " in t or "on the front · " in t]
    assert len(candidates) >= len(view.evaluations.drop_duplicates("subnet_id"))
    config, space = PRESETS["tiny"], view.space
    for tip in candidates:
        arch = tip.split("\n")[0]
        assert f"tokens per block {_hand_count(arch)}" in tip.split("\n")
        # what the export writes into arch.json for that subnet (supernet.vit.ViTConfig.subnet_summary)
        sub = space.parse(arch)
        summary = config.subnet_summary(config.space().make(sub.widths, (0,), sub.tokens, heads=sub.heads,
                                                            method=sub.method))
        assert _hand_count(arch).split(" ")[0] == "→".join(str(p[0]) for p in summary["tokens_per_block"])
    stars = [t for t in tips if "\nexported · id " in t]
    assert len(stars) == 2 and all(f"tokens per block {_hand_count(t.split(chr(10))[0])}" in t for t in stars)


def test_front_without_token_reduction_is_the_front_of_the_full_token_candidates(vit_search, vit_page):
    view = load_view(vit_search)
    ev = read_table(vit_search, "evaluations.csv")
    sched = TokenSchedule.of(view.run)
    full_tokens = ev["arch"].str.contains("_t2_")  # the one position at index 2: keep ratio 1.0
    assert 0 < full_tokens.sum() < len(ev)  # the search tried both
    assert sched.full_token_rows(ev).index.tolist() == ev.index[full_tokens].tolist()
    # the same front from nas.pareto (pymoo) over the feasible, distinct full-token candidates
    plain = ev[full_tokens & ev["feasible"]].drop_duplicates("subnet_id")
    F = np.column_stack([-plain["accuracy"], plain["latency_ms"]])
    want = plain.iloc[nas_non_dominated(F)]
    got = sched.full_token_front(ev)
    assert sorted(got["subnet_id"]) == sorted(want["subnet_id"]) and len(got) >= 1
    assert all(set(sched.keep_ratios(a)) == {1.0} for a in got["arch"])
    assert list(_panel(view).full_tokens["subnet_id"]) == list(got["subnet_id"])  # what the figure draws
    # the sentence: both hypervolumes in the run's box, and the latencies at the best full-token accuracy
    box = HVBox.from_dict(view.run.hv_reference.model_dump())
    every = ev[ev["feasible"]].drop_duplicates("subnet_id")
    hv_all = nas_hypervolume(np.column_stack([-every["accuracy"], every["latency_ms"]]), box)
    hv_plain = nas_hypervolume(F, box)
    level = float(want["accuracy"].max())
    fastest = every[every["accuracy"] >= level]["latency_ms"].min()
    fastest_plain = plain[plain["accuracy"] >= level]["latency_ms"].min()
    page = html_lib.unescape(vit_page)
    sentence = re.search(r"<li>([^<]*keep every token \(fronts of[^<]*)</li>", page)[1]
    assert f"hypervolume {hv_all:.4f} for all candidates" in sentence and f"against {hv_plain:.4f}" in sentence
    assert f"accuracy ≥ {100 * level:.2f} %" in sentence
    assert f"takes {fastest:.4g} ms" in sentence and f"every token {fastest_plain:.4g} ms" in sentence
    assert f"a speed-up of ×{fastest_plain / fastest:.2f} from token reduction" in sentence
