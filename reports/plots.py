"""The report's static figures: matplotlib ``Figure`` objects (Agg, no pyplot state) encoded as base64 PNG.

Each function takes plain tables (pandas frames and dicts), so the figures can be drawn for any
run folder without loading a supernet.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.compare import SeedGroup

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True, eq=False)
class FrontPanel:
    """What one run contributes to the accuracy-latency figure."""

    title: str
    device: str
    evaluations: pd.DataFrame  # algorithm, accuracy, latency_ms (every evaluation)
    pareto: pd.DataFrame  # algorithm, accuracy, latency_ms (each algorithm's front)
    baselines: pd.DataFrame  # width, accuracy, latency_ms (uniform-width subnets)
    exported: pd.DataFrame  # arch, accuracy, latency_ms (the exported subnets)
    exit_free: pd.DataFrame | None = None  # accuracy, latency_ms: the front of the candidates without exits
    full_tokens: pd.DataFrame | None = None  # accuracy, latency_ms: the front of those without token reduction


def to_base64_png(fig: Figure, dpi: int = 110) -> str:
    """Render ``fig`` with the Agg canvas and return its PNG as base64 text."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # layout="constrained" already fits the labels
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _color(algorithms: list[str], name: str) -> str:
    return COLORS[algorithms.index(name) % len(COLORS)] if name in algorithms else "#7f7f7f"


def fronts_figure(panels: list[FrontPanel]) -> Figure:
    """One panel per run: every candidate, each algorithm's front, baselines and exported subnets."""
    fig = Figure(figsize=(5.2 * len(panels), 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    algorithms = sorted({a for p in panels for a in p.evaluations["algorithm"].astype(str)})
    for ax, p in zip(axes, panels, strict=True):
        for alg in algorithms:
            ev = p.evaluations[p.evaluations["algorithm"].astype(str) == alg]
            if not ev.empty:
                ax.scatter(ev["latency_ms"], ev["accuracy"], s=7, alpha=0.25, color=_color(algorithms, alg),
                           linewidths=0)
            fr = p.pareto[p.pareto["algorithm"].astype(str) == alg].sort_values("latency_ms")
            if not fr.empty:
                ax.step(fr["latency_ms"], fr["accuracy"], where="post", marker="o", ms=3.5, lw=1.4,
                        color=_color(algorithms, alg), label=f"{alg} front ({len(ev)} evals)")
        if not p.baselines.empty:
            ax.scatter(p.baselines["latency_ms"], p.baselines["accuracy"], marker="D", s=36, color="black",
                       zorder=5, label="uniform width α")
            for b in p.baselines.itertuples(index=False):
                ax.annotate(f"α={b.width:g}", (b.latency_ms, b.accuracy), textcoords="offset points",
                            xytext=(5, -11), fontsize=8)
        if p.exit_free is not None and not p.exit_free.empty:
            fr = p.exit_free.sort_values("latency_ms")
            ax.step(fr["latency_ms"], fr["accuracy"], where="post", ls="--", lw=1.2, color="#555555",
                    label="front without exits")
        if p.full_tokens is not None and not p.full_tokens.empty:
            fr = p.full_tokens.sort_values("latency_ms")
            ax.step(fr["latency_ms"], fr["accuracy"], where="post", ls=":", lw=1.6, color="#8c564b", marker="s",
                    ms=4, mfc="none", label="front without token reduction")
        if not p.exported.empty:
            ax.scatter(p.exported["latency_ms"], p.exported["accuracy"], marker="*", s=170, facecolor="gold",
                       edgecolor="black", zorder=6, label="exported")
        ax.set_title(p.title, fontsize=10)
        ax.set_xlabel(f"predicted latency on {p.device} (ms)")
        ax.set_ylabel("predicted accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return fig


def families_figure(device: str, fronts: list[pd.DataFrame], level: float | None = None) -> Figure:
    """Every run's combined front on one device, one colour per family (line style per run within it), and
    the common accuracy ``level`` as a horizontal line. Each front has columns family, run, accuracy,
    latency_ms (:func:`reports.families.run_front`)."""
    fig = Figure(figsize=(7.2, 4.6), layout="constrained")
    ax = fig.subplots()
    families = list(dict.fromkeys(str(f["family"].iloc[0]) for f in fronts if not f.empty))
    styles, seen = ("-", "--", "-.", ":"), dict.fromkeys(families, 0)
    for f in fronts:
        if f.empty:
            continue
        fam = str(f["family"].iloc[0])
        fr = f.sort_values("latency_ms")
        ax.step(fr["latency_ms"], fr["accuracy"], where="post", marker="o", ms=3.5, lw=1.5,
                ls=styles[seen[fam] % len(styles)], color=COLORS[families.index(fam) % len(COLORS)],
                label=f"{fam}: {fr['run'].iloc[0]} ({len(fr)} on the front)")
        seen[fam] += 1
    if level is not None:
        ax.axhline(level, color="grey", lw=1, ls="--", label=f"common accuracy {100 * level:.2f} %")
    ax.set_title(f"supernet families on {device}", fontsize=10)
    ax.set_xlabel(f"predicted latency on {device} (ms)")
    ax.set_ylabel("predicted accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return fig


def batch_figure(label: str, fronts: dict[int, pd.DataFrame], level: float | None = None) -> Figure:
    """Each batch's front on one device and family in per-image latency (log axis), one colour per batch
    (smallest first), and the common accuracy ``level`` as a horizontal line. Each front has columns accuracy,
    image_ms (:func:`reports.batches.batch_front`)."""
    fig = Figure(figsize=(7.2, 4.6), layout="constrained")
    ax = fig.subplots()
    for i, (batch, f) in enumerate(sorted(fronts.items())):
        if f.empty:
            continue
        fr = f.sort_values("image_ms")
        ax.step(fr["image_ms"], fr["accuracy"], where="post", marker="o", ms=3.5, lw=1.5,
                color=COLORS[i % len(COLORS)], label=f"batch {batch} ({len(fr)} on the front)")
    if level is not None:
        ax.axhline(level, color="grey", lw=1, ls="--", label=f"common accuracy {100 * level:.2f} %")
    ax.set_xscale("log")  # batches differ by their factor in ms/image: a log axis keeps each front's shape visible
    ax.set_title(f"batch sizes on {label}", fontsize=10)
    ax.set_xlabel("predicted latency per image (ms/image, log scale)")
    ax.set_ylabel("predicted accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return fig


def hypervolume_figure(titles: list[str], histories: list[pd.DataFrame]) -> Figure:
    """Hypervolume against evaluations, one line per algorithm, one panel per run."""
    fig = Figure(figsize=(5.2 * len(titles), 3.6), layout="constrained")
    axes = fig.subplots(1, len(titles), squeeze=False)[0]
    algorithms = sorted({a for h in histories for a in h["algorithm"].astype(str)})
    for ax, title, hist in zip(axes, titles, histories, strict=True):
        for alg, h in hist.groupby(hist["algorithm"].astype(str), sort=True):
            h = h.sort_values("n_evals")
            ax.plot(h["n_evals"], h["hypervolume"], lw=1.6, color=_color(algorithms, alg),
                    label=f"{alg} (final {h['hypervolume'].iloc[-1]:.4f})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("hypervolume (normalised)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return fig


def predicted_vs_measured_figure(points: pd.DataFrame) -> Figure:
    """Host latency and accuracy of the exported subnets: predicted (x) against measured (y).

    ``points`` has columns run, pred_host_ms, host_ms, host_p10_ms, host_p90_ms, pred_acc, onnx_acc.
    """
    fig = Figure(figsize=(10.4, 4.4), layout="constrained")
    ax_lat, ax_acc = fig.subplots(1, 2)
    runs = list(dict.fromkeys(points["run"]))
    for i, run in enumerate(runs):
        d = points[points["run"] == run]
        c = COLORS[i % len(COLORS)]
        yerr = np.vstack([d["host_ms"] - d["host_p10_ms"], d["host_p90_ms"] - d["host_ms"]]).clip(min=0)
        ax_lat.errorbar(d["pred_host_ms"], d["host_ms"], yerr=yerr, fmt="o", color=c, capsize=3, label=run)
        ax_acc.scatter(d["pred_acc"], d["onnx_acc"], color=c, label=run)
    spans = ((ax_lat, ["pred_host_ms", "host_ms", "host_p10_ms", "host_p90_ms"]), (ax_acc, ["pred_acc", "onnx_acc"]))
    for ax, cols in spans:  # the same range on both axes, so y = x is the diagonal
        vals = points[cols].to_numpy(float).ravel()
        lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
        pad = 0.05 * (hi - lo or abs(hi) or 1.0)
        lim = (lo - pad, hi + pad)
        ax.plot(lim, lim, ls="--", color="grey", lw=1, label="y = x")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal", adjustable="box")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_lat.set_xlabel("predicted host latency (ms)")
    ax_lat.set_ylabel("measured host latency (ms)")
    ax_lat.set_title("host latency: onnxruntime median, bars p10-p90", fontsize=10)
    ax_acc.set_xlabel("predicted accuracy")
    ax_acc.set_ylabel("measured accuracy, onnxruntime")
    ax_acc.set_title("accuracy", fontsize=10)
    return fig


def seeds_figure(groups: list[SeedGroup]) -> Figure:
    """Hypervolume against evaluations per algorithm over seeds: the mean line and the min–max band, one panel
    per group of runs (see :func:`reports.compare.seed_groups`)."""
    fig = Figure(figsize=(5.2 * len(groups), 3.8), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    algorithms = sorted({a for g in groups for a in g.curves["algorithm"].astype(str)})
    for ax, g in zip(axes, groups, strict=True):
        for alg, s in g.spread().groupby("algorithm", sort=True):
            s = s.sort_values("n_evals")
            c = _color(algorithms, str(alg))
            n_runs = int(s["count"].max())
            ax.fill_between(s["n_evals"], s["min"], s["max"], color=c, alpha=0.18, linewidth=0, step="post")
            ax.step(s["n_evals"], s["mean"], where="post", lw=1.6, color=c,
                    label=f"{alg}: mean of {n_runs} (final {s['mean'].iloc[-1]:.4f})")
        ax.set_title(f"{g.label}\nseeds {', '.join(map(str, g.seeds))}; band: min–max", fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("hypervolume (normalised)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return fig
