"""One self-contained HTML report of one or more search runs (figures inline, opens offline).

``write_report([run_dir, ...], out)`` reads each run folder (:mod:`reports.run_folder`) and writes
ONE HTML file: inline CSS, figures as base64 PNG (matplotlib, Agg), interactive fronts as inline
SVG with a few lines of inline JS, tables from pandas; no external asset or link. Sections:
overview, accuracy-latency fronts with the uniform-width baselines (and, for a space with token
reduction, the front of the candidates that keep every token), for runs of several supernet
families on one device their fronts side by side, for runs of one device and family at several batch
sizes their fronts in per-image latency, the interactive fronts,
hypervolume against evaluations, for several runs the algorithms compared over seeds,
predicted against measured, early exits, the exported subnets with their deployment commands and,
for several runs, how the subnets each run chose differ.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from reports.batches import BatchGroup, batch_groups
from reports.bench import bench_note, bench_table, read_bench
from reports.compare import compare_text, seed_groups
from reports.exits import exits_table, exits_text
from reports.families import FamilyGroup, family_groups
from reports.fronts import exit_free_front
from reports.interactive import CSS as EXPLORE_CSS
from reports.interactive import JS as EXPLORE_JS
from reports.interactive import explore_section
from reports.plots import (
    FrontPanel,
    batch_figure,
    families_figure,
    fronts_figure,
    hypervolume_figure,
    predicted_vs_measured_figure,
    seeds_figure,
    to_base64_png,
)
from reports.quality import (
    accuracy_quality,
    agreement_text,
    host_predictor_description,
    latency_description,
    measured_points,
)
from reports.run_folder import device_runs, load_runs, read_deployment
from reports.tables import exported_table, overview_table, table_html
from reports.tokens import TokenSchedule, token_text
from reports.view import RunView, load_view
from supernet.checkpoint import atomic_write
from supernet.errors import ConfigError, OutputError

TITLE = "dynnas report"
SECTIONS = {"overview": "Overview", "deployment": "Deployment", "fronts": "Fronts", "families": "Families",
            "batches": "Batch size", "explore": "Explore", "hypervolume": "Hypervolume",
            "algorithms": "Algorithms over seeds", "predictors": "Predicted vs measured", "exits": "Early exits",
            "exported": "Exported subnets", "bench": "Measured", "comparison": "Comparison"}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;
line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right;vertical-align:top}th{background:#f3f3f3}td code{white-space:pre-wrap;word-break:break-all;
text-align:left;display:block;max-width:420px}img{max-width:100%;height:auto;border:1px solid #eee}
.note{color:#555;font-size:.9em}nav a{margin-right:1em;font-size:.9em}
""" + EXPLORE_CSS


def _img(fig: Any, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{to_base64_png(fig)}">'


def _h2(key: str, title: str) -> str:
    return f"<h2 id='{key}'>{html.escape(title)}</h2>"


def _panel(v: RunView) -> FrontPanel:
    ex = pd.DataFrame([{"arch": e.arch.arch, "accuracy": e.verify.predicted_accuracy,
                        "latency_ms": e.verify.predicted_latency_ms} for e in v.exported],
                      columns=["arch", "accuracy", "latency_ms"])
    tokens = TokenSchedule.of(v.run)
    return FrontPanel(v.title, v.device, v.evaluations, v.pareto, v.baselines, ex,
                      exit_free_front(v.evaluations) if v.run.exits.searched else None,
                      tokens.full_token_front(v.evaluations) if tokens is not None else None)


def _families_section(groups: list[FamilyGroup]) -> list[str]:
    """Each device's families: their fronts in one figure, a table and a sentence at the common accuracy."""
    parts = [_h2("families", "Supernet families side by side")
             + "<p class='note'>On each device searched with more than one supernet family: every run's combined "
             "front (one colour per family), and per family the non-dominated union of its runs' fronts. The "
             "common accuracy is the best accuracy the weakest family reaches; hypervolumes are taken in the "
             "union of the runs' boxes.</p>"]
    for g in groups:
        parts.append(f"<h3>{html.escape(g.device)}</h3>"
                     + _img(families_figure(g.device, g.run_fronts, g.level), f"families on {g.device}")
                     + f"<p>{html.escape(g.text())}</p>" + table_html(g.table(), code_cols=("subnet at that accuracy",)))
    return parts


def _batches_section(groups: list[BatchGroup]) -> list[str]:
    """Each device and family's batch sizes: their fronts in one figure, a table and a sentence at the common
    accuracy."""
    parts = [_h2("batches", "Batch size: how the front moves with --batch")
             + "<p class='note'>On each device and supernet family searched at more than one batch size: per "
             "batch, the non-dominated union of its runs' combined fronts. Latencies here are per image (the "
             "run's latency_ms, which is per batch, divided by its batch), so the batches compare on one scale. "
             "The common accuracy is the best accuracy every batch's front reaches; “kept” counts the subnets "
             "of the smallest batch's front that are also on this batch's front.</p>"]
    for g in groups:
        parts.append(f"<h3>{html.escape(g.label)}</h3>"
                     + _img(batch_figure(g.label, g.fronts, g.level), f"batch sizes on {g.label}")
                     + f"<p>{html.escape(g.text())}</p>" + table_html(g.table(), code_cols=("subnet at that accuracy",)))
    return parts


def _algorithms_section(views: list[RunView]) -> list[str]:
    parts = [_h2("algorithms", "Algorithms compared over seeds")]
    groups = seed_groups(views)
    if not groups:
        parts.append("<p class='note'>No two of these runs are seeds of the same search (same device, supernet, "
                     "budget and constraints, another --seed), so there is no spread to show; run e.g. "
                     "<code>dynnas search … --seed 1 --out DIR1</code> and pass both folders.</p>")
        return parts
    parts.append("<p class='note'>Hypervolume after each batch of evaluations, recomputed from evaluations.csv in "
                 "one box per group: line = mean over the seeds, band = min–max.</p>")
    parts.append(_img(seeds_figure(groups), "hypervolume over seeds"))
    for g in groups:
        box = ("the box all these runs stored" if g.shared_box else
               "the union of the runs' boxes (their predictors differ a little), so the values differ from each "
               "run's own")
        parts.append(f"<h3>{html.escape(g.label)}</h3><p>{html.escape(g.ranking())}</p>"
                     f"<p class='note'>Box: {html.escape(box)}; runs: "
                     f"{html.escape(', '.join(str(v.folder) for v in g.views))}.</p>" + table_html(g.summary()))
    return parts


def _deployment_section(deployments: list[tuple[Path, pd.DataFrame]]) -> list[str]:
    """Which subnet to deploy on which device under which budget (deployment.csv of each fleet run)."""
    parts = [_h2("deployment", "Deployment: which subnet on which device under which budget")
             + "<p class='note'>One row per (device, latency budget): the most accurate subnet of the device's "
             "combined front within the budget (no budget: the most accurate). Accuracy, latency and memory "
             "(weights + peak live activations) are predictions for that device.</p>"]
    for folder, df in deployments:
        t = df.copy()
        t["latency_budget_ms"] = [("none" if pd.isna(b) else f"{b:g}") for b in t["latency_budget_ms"]]
        t["MMACs"] = (t.pop("macs") / 1e6).round(2)
        t["memory_KiB"] = (t.pop("memory_bytes") / 1024).round(1)
        parts.append(f"<h3>{html.escape(str(folder))}</h3>" + table_html(t, code_cols=("arch",)))
    return parts


def render(views: list[RunView], deployments: list[tuple[Path, pd.DataFrame]] | None = None) -> str:
    """The whole HTML page of ``views`` (with the deployment tables of fleet runs, if any)."""
    esc = html.escape
    several = len(views) > 1
    deployments = deployments or []
    families, batches = family_groups(views), batch_groups(views)
    benches = [(v, doc) for v in views if (doc := read_bench(v.folder)) is not None]
    shown = [k for k in SECTIONS if (several or k not in ("algorithms", "comparison")) and (benches or k != "bench")
             and (deployments or k != "deployment") and (families or k != "families") and (batches or k != "batches")]
    parts = [f"<h1>dynnas search report</h1><p class='note'>{len(views)} run(s): "
             f"{esc(', '.join(str(v.folder) for v in views))}</p>",
             "<nav>" + "".join(f"<a href='#{k}'>{esc(SECTIONS[k])}</a>" for k in shown) + "</nav>"]
    parts.append(_h2("overview", "Overview") + table_html(overview_table(views)))
    if deployments:
        parts += _deployment_section(deployments)
    for v in views:
        if v.run.command:
            parts.append(f"<p class='note'>{esc(v.title)} was made by <code>{esc(v.run.command)}</code></p>")
    parts.append(_h2("fronts", "Accuracy–latency: candidates, Pareto fronts, baselines")
                 + "<p class='note'>Small dots: every evaluated candidate; lines: each algorithm's Pareto front; "
                 "black diamonds: the uniform-width subnets (every block at width α); stars: exported subnets. "
                 "Accuracy and latency are the run's predictions on its target device.</p>")
    parts.append(_img(fronts_figure([_panel(v) for v in views]), "Pareto fronts"))
    tokens = [t for v in views for t in token_text(v.run, v.title, v.evaluations)]
    if tokens:
        parts.append("<p class='note'>Token reduction: the dotted line is the front of the candidates whose keep "
                     "ratios are all 1.0 (every block keeps every token); hypervolumes in each run's own box.</p><ul>"
                     + "".join(f"<li>{esc(t)}</li>" for t in tokens) + "</ul>")
    for v in views:
        parts.append(f"<p class='note'>Uniform-width baselines of {esc(v.title)} ({esc(v.baselines_note)}):</p>")
        if not v.baselines.empty:
            parts.append(table_html(v.baselines))
    if families:
        parts += _families_section(families)
    if batches:
        parts += _batches_section(batches)
    parts.append(_h2("explore", "Explore the fronts")
                 + "<p class='note'>Hover a point to see its arch string and figures; the same subnet is marked in "
                 "every panel.</p>" + explore_section(views))
    parts.append(_h2("hypervolume", "Hypervolume against evaluations"))
    parts.append(_img(hypervolume_figure([v.title for v in views], [v.history for v in views]), "hypervolume"))
    for v in views:
        if v.run.hv_reference.transform:
            parts.append(f"<p class='note'>{esc(v.title)}: {esc(v.run.hv_reference.transform)}</p>")
    if several:
        parts += _algorithms_section(views)
    parts.append(_h2("predictors", "Predicted against measured"))
    for v in views:
        figures = accuracy_quality(v)
        host = host_predictor_description(v)
        parts.append(f"<p><b>{esc(v.title)}</b> — accuracy predictor: {esc(figures or 'no quality figures stored')}"
                     f"<br>latency predictor: {esc(latency_description(v) or 'not described')}"
                     + (f"<br>host latency predictor (for the measured comparison): {esc(host)}" if host else "")
                     + "</p>")
    points = measured_points(views)
    if points.empty:
        parts.append("<p class='note'>No exported subnets yet: run <code>dynnas export DIR</code> to measure "
                     "them with onnxruntime.</p>")
    else:
        parts.append(_img(predicted_vs_measured_figure(points), "predicted vs measured"))
        parts.append("<ul>" + "".join(f"<li>{esc(t)}</li>" for t in agreement_text(points)) + "</ul>")
    parts.append(_h2("exits", "Early exits") + "<p class='note'>The dashed line in the fronts above is the front "
                 "of the candidates with every exit off. Exit rates list each exit, then the final classifier.</p><ul>"
                 + "".join(f"<li>{esc(t)}</li>" for v in views for t in exits_text(v)) + "</ul>")
    for v in views:
        table = exits_table(v)
        if not table.empty:
            parts.append(f"<h3>{esc(v.title)}: exported subnets with exits</h3>" + table_html(table))
    for v in views:
        sp = v.run.export_host_speed or v.run.host_speed
        if sp is not None and sp.drift:
            parts.append(f"<p class='note'>{esc(v.title)}: the host reference subnet ran at "
                         f"{sp.reference_ms_now:.4g} ms now against {sp.reference_ms_at_calibration:.4g} ms when the "
                         f"host predictor was calibrated (drift ×{sp.drift:.3f}); host predictions are in "
                         "calibration-speed ms, the 'today's speed' column scales measurements to now.</p>")
    parts.append(_h2("exported", "Exported subnets"))
    for v in views:
        parts.append(f"<h3>{esc(v.title)}</h3>")
        if v.exported:
            parts.append(table_html(exported_table(v), code_cols=("deploy",)))
        else:
            parts.append("<p class='note'>none exported; run <code>dynnas export "
                         f"{esc(str(v.folder))}</code>.</p>")
    if benches:
        parts.append(_h2("bench", "Measured on this machine (dynnas bench)"))
        for v, doc in benches:
            parts.append(f"<h3>{esc(v.title)}</h3><p class='note'>{esc(bench_note(doc))}</p>"
                         + table_html(bench_table(doc), code_cols=("arch",)))
    if several:
        parts.append(_h2("comparison", "How the runs' choices differ") + "<ul>"
                     + "".join(f"<li>{esc(t)}</li>" for t in compare_text(views)) + "</ul>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{TITLE}</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<style>{CSS}</style></head><body>\n{body}\n<script>{EXPLORE_JS}</script>\n</body></html>\n")


def is_report(path: Path) -> bool:
    """Whether ``path`` is a report this module wrote (so it may be replaced)."""
    try:
        with open(path, "rb") as f:
            head = f.read(400)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and f"<title>{TITLE}</title>".encode() in head


def write_report(run_dirs: list[Path], out: Path) -> Path:
    """Write the report of ``run_dirs`` to ``out`` (one self-contained HTML file, atomically); returns ``out``."""
    if not run_dirs:
        raise ConfigError("the report needs at least one run folder, but got none; pass e.g. runs/demo-host.")
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"report path '{out}' is a folder; pass a file path such as '{out / 'report.html'}'.")
    if out.is_file() and not is_report(out):
        raise OutputError(f"report path '{out}' is an existing file that is not a dynnas report; dynnas only replaces "
                          "its own reports: pass a new --out path or delete the file.")
    # a search over several devices (fleet.json) stands for its device runs and adds its deployment table
    expanded = [r for d in run_dirs for r in device_runs(d)]
    deployments = [(Path(d), t) for d in run_dirs if (t := read_deployment(d)) is not None]
    views = [load_view(d, run) for d, run in load_runs(expanded)]
    page = render(views, deployments)
    try:
        atomic_write(out, lambda p: p.write_text(page, encoding="utf-8"))
    except OSError as e:
        raise OutputError(f"cannot write the report '{out}' ({e.strerror}); pass --out to a writable path.") from None
    return out
