"""One self-contained HTML report of one or more search runs (figures inline, opens offline).

``write_report([run_dir, ...], out)`` reads each run folder (run.json, evaluations.csv,
history.csv, pareto.csv and the exported ``subnets/``) and writes ONE HTML file: inline CSS,
figures as base64 PNG (matplotlib, Agg), tables from pandas, no external asset or link.
Sections: overview, accuracy-latency fronts with the uniform-width baselines, hypervolume against
evaluations, predicted against measured (host latency and accuracy of the exported subnets, with
the predictor quality figures), the exported subnets with their deployment commands and, for
several runs, a generated comparison of the subnets each run chose.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from nas.errors import one_line
from nas.export import choose_subnets, combined_front, exported_subnets, run_setting
from nas.report_exits import _fmt, exit_free_front, exits_table, exits_text
from nas.report_plots import (
    FrontPanel,
    fronts_figure,
    hypervolume_figure,
    predicted_vs_measured_figure,
    to_base64_png,
)
from nas.runfolder import EVALUATIONS_FILE, HISTORY_FILE, PARETO_FILE, load_run, read_table
from supernet.checkpoint import atomic_write
from supernet.errors import CheckpointError, ConfigError, DatasetError, OutputError
from supernet.space import SearchSpace

BASELINE_COLUMNS = ["width", "arch", "accuracy", "latency_ms", "macs"]
WIDTH_GAP = 0.15  # per-block mean width differences at least this large are named in the comparison

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;
line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right;vertical-align:top}th{background:#f3f3f3}td code{white-space:pre-wrap;word-break:break-all;
text-align:left;display:block;max-width:420px}img{max-width:100%;height:auto;border:1px solid #eee}
.note{color:#555;font-size:.9em}.quality{display:inline-block;margin-right:2em}
"""


@dataclass(frozen=True, eq=False)
class RunView:
    """Everything the report shows about one run folder."""

    folder: Path
    run: dict[str, Any]
    title: str
    device: str
    space: SearchSpace | None
    evaluations: pd.DataFrame
    history: pd.DataFrame
    pareto: pd.DataFrame
    baselines: pd.DataFrame
    baselines_note: str
    exported: list[dict[str, Any]]


# ---- reading ---------------------------------------------------------------------------------
def _space(run: dict[str, Any]) -> SearchSpace | None:
    d = (run.get("supernet") or {}).get("space")
    return SearchSpace.from_dict(d) if isinstance(d, dict) else None


def _baselines(run: dict[str, Any], space: SearchSpace | None) -> pd.DataFrame | None:
    """The uniform-width subnets from ``run.json["baselines"]`` (a list of rows or a dict by width), or None."""
    raw = run.get("baselines")
    if raw is None:
        return None
    rows = [{"width": k, **v} for k, v in raw.items()] if isinstance(raw, dict) else list(raw)
    out = []
    for r in rows:
        width = r.get("width", r.get("alpha"))
        if width is None and space is not None and "arch" in r:
            width = space.width_choices[space.parse(str(r["arch"])).widths[0]]
        out.append({"width": float(width) if width is not None else float("nan"), "arch": r.get("arch", ""),
                    "accuracy": float(r["accuracy"]), "latency_ms": float(r["latency_ms"]),
                    "macs": r.get("macs", np.nan)})
    return pd.DataFrame(out, columns=BASELINE_COLUMNS).sort_values("width").reset_index(drop=True)


def predict_baselines(run_dir: Path, run: dict[str, Any]) -> pd.DataFrame:
    """Predict the uniform-width subnets with the run's predictors (cached accuracy data, device profile).

    Used when run.json stores no baselines. Measures nothing new for accuracy: it needs the accuracy
    data cached beside the supernet (written by the search); a host latency predictor is loaded from
    its cache or measured once.
    """
    from nas.export import resolve_run_supernet
    from predictors import latency_predictor, load_or_collect_accuracy
    from supernet.cnn import count_macs

    supernet, meta, path, _ = resolve_run_supernet(run_dir, run, None)
    seed = int(run_setting(run, "seed", 0) or 0)
    acc, _ = load_or_collect_accuracy(path, supernet, meta, None, bn=str(run_setting(run, "bn", "recal")), seed=seed)
    profile = (run.get("profile") or {}).get("path") or run_setting(run, "device")
    lat = latency_predictor(str(profile), supernet.config, seed=seed)
    space = supernet.space
    subs = [space.uniform(i) for i in range(len(space.width_choices))]
    return pd.DataFrame({"width": list(space.width_choices), "arch": [space.format(s) for s in subs],
                         "accuracy": acc.predict(subs), "latency_ms": lat.predict_ms(subs),
                         "macs": [count_macs(supernet.config, s) for s in subs]}, columns=BASELINE_COLUMNS)


def load_view(run_dir: Path) -> RunView:
    """Read one run folder for the report (raises :class:`nas.runfolder.NoRunError` for a folder with no run)."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    device = str(run_setting(run, "device", "") or (run.get("profile") or {}).get("name", "?"))
    space = _space(run)
    baselines, note = _baselines(run, space), "stored in run.json"
    if baselines is None:
        try:
            baselines, note = predict_baselines(run_dir, run), "predicted now with the run's predictors"
        except (DatasetError, CheckpointError) as e:  # shown in the report, not hidden
            baselines, note = pd.DataFrame(columns=BASELINE_COLUMNS), f"not available: {one_line(e)}"
    return RunView(
        folder=run_dir, run=run, title=f"{device} — {run_dir.name}", device=device, space=space,
        evaluations=read_table(run_dir, EVALUATIONS_FILE),
        history=read_table(run_dir, HISTORY_FILE),
        pareto=read_table(run_dir, PARETO_FILE),
        baselines=baselines, baselines_note=note,
        exported=exported_subnets(run_dir, run),
    )


def deploy_command(run: dict[str, Any], onnx_path: Path) -> str:
    """The profile's deployment command with the ONNX path filled in."""
    template = (run.get("profile") or {}).get("deploy")
    if not template:
        from hw_profiles import load_profile

        name = (run.get("profile") or {}).get("name") or run_setting(run, "device")
        template = load_profile(str(name)).deploy
    return str(template).format(onnx=str(onnx_path))


# ---- tables ----------------------------------------------------------------------------------
def overview_table(views: list[RunView]) -> pd.DataFrame:
    rows = []
    for v in views:
        sn = v.run.get("supernet") or {}
        hv = v.run.get("hypervolume") or {
            a: h.sort_values("n_evals")["hypervolume"].iloc[-1] for a, h in v.history.groupby("algorithm")}
        counts = v.evaluations.groupby("algorithm").size()
        rows.append({
            "run": v.title, "device": v.device,
            "latency model": _latency_confidence(v.run), "supernet": Path(str(sn.get("path", "?"))).name,
            "supernet sha256": str(sn.get("sha256", ""))[:12], "seed": run_setting(v.run, "seed", ""),
            "evaluations": ", ".join(f"{a}: {n}" for a, n in counts.items()),
            "hypervolume": ", ".join(f"{a}: {float(x):.4f}" for a, x in sorted(hv.items())) if isinstance(hv, dict)
            else _fmt(hv),
            "combined HV": _fmt(v.run.get("hypervolume_combined", float("nan"))),
            "front size": int(combined_front(v.folder).shape[0]),
            "created": str(v.run.get("created", "")),
        })
    return pd.DataFrame(rows)


def _latency_confidence(run: dict[str, Any]) -> str:
    """``"ok"``, ``"low confidence (…)"`` or ``"measured"``: how much the device's latency predictions rest on."""
    lat = (run.get("predictors") or {}).get("latency") or {}
    conf = lat.get("confidence")
    if conf is None:
        return "—"
    mode = lat.get("power_mode")
    text = f"{conf} ({lat.get('n_calibration_points', 0)} published points)" if conf != "measured" else conf
    return f"{text}, {mode}" if mode else text


def exported_table(view: RunView) -> pd.DataFrame:
    rows = []
    for e in view.exported:
        a, r = e["arch"], e["verify"]
        h = r["host_latency_ms"]
        rows.append({
            "arch": a["arch"], "subnet_id": a["subnet_id"], "algorithm": r.get("algorithm", ""),
            "MMACs": f"{a['macs'] / 1e6:.3f}", "params": a["params"],
            "pred. accuracy": _fmt(r["predicted_accuracy"]), "ONNX accuracy": _fmt(r["onnx_accuracy"]),
            "eval set": r["eval_set"],
            f"pred. latency {view.device} (ms)": _fmt(r["predicted_latency_ms"]),
            "host latency (ms) median [p10, p90]": f"{h['median_ms']:.4g} [{h['p10_ms']:.4g}, {h['p90_ms']:.4g}]",
            "pred. host latency (ms)": _fmt(r["predicted_host_latency_ms"]),
            "host latency at calibration speed (ms)": _fmt((r.get("host_latency_relative") or {}).get(
                "at_calibration_speed_ms", float("nan"))),
            "host latency at today's speed (ms)": _fmt((r.get("host_latency_relative") or {}).get(
                "now_ms", float("nan"))),
            "max |Δ logit|": f"{r['max_abs_logit_diff']:.2g}",
            "deploy": deploy_command(view.run, Path(e["folder"]) / "model.onnx"),
        })
    return pd.DataFrame(rows)


def _table_html(df: pd.DataFrame, code_cols: tuple[str, ...] = ()) -> str:
    df = df.copy()
    for c in code_cols:
        if c in df:
            df[c] = [f"<code>{html.escape(str(x))}</code>" for x in df[c]]
    for c in df.columns:
        if c not in code_cols:
            df[c] = [html.escape(_fmt(x)) for x in df[c]]
    return df.to_html(index=False, escape=False, border=0)


# ---- predictors --------------------------------------------------------------------------------
QUALITY_LABELS = {"model": "model", "heldout_tau": "held-out Kendall τ", "kendall_tau": "Kendall τ",
                  "heldout_rmse_points": "held-out RMSE (accuracy points)", "rmse": "RMSE",
                  "noise_ceiling_tau": "noise-ceiling τ (val vs test ranking)"}


def accuracy_quality(run: dict[str, Any]) -> str:
    """The accuracy predictor's quality figures stored in run.json: τ, RMSE, noise ceiling."""
    acc = (run.get("predictors") or {}).get("accuracy") or {}
    if not isinstance(acc, dict):
        return str(acc)
    q = {**acc, **(acc.get("quality") if isinstance(acc.get("quality"), dict) else {})}
    return ", ".join(f"{label} = {_fmt(float(q[k]) if isinstance(q[k], int | float) else q[k])}"
                     for k, label in QUALITY_LABELS.items() if k in q)


def predictor_line(desc: dict[str, Any]) -> str:
    """A predictor's ``describe()`` as one line: its scalar fields, then its quality figures."""
    quality = desc.get("quality") if isinstance(desc.get("quality"), dict) else {}
    flat = {**{k: v for k, v in desc.items() if not isinstance(v, dict | list)}, **quality}
    return "; ".join(f"{k}: {_fmt(v)}" for k, v in flat.items() if v is not None and not isinstance(v, dict | list))


def latency_description(run: dict[str, Any]) -> str:
    """The latency predictor's method and calibration quality, as one line."""
    lat = (run.get("predictors") or {}).get("latency", "")
    return predictor_line(lat) if isinstance(lat, dict) else str(lat)


def host_predictor_description(view: RunView) -> str:
    """Method and calibration quality of the host predictor the exports were compared with ('' if none)."""
    how = next((e["verify"].get("host_latency_predictor") for e in view.exported
                if isinstance(e["verify"].get("host_latency_predictor"), dict)), None)
    return predictor_line(how) if how and isinstance(how.get("quality"), dict) else ""


def measured_points(views: list[RunView]) -> pd.DataFrame:
    rows = []
    for v in views:
        for e in v.exported:
            r = e["verify"]
            h = r["host_latency_ms"]
            rel = r.get("host_latency_relative")
            # The reference-relative figure is the one the predictor's calibration speaks for (see
            # predictors.host_latency.measure_relative); a plain median also carries the VM's momentary speed.
            host = ((rel["at_calibration_speed_ms"], rel["at_calibration_speed_p10_ms"],
                     rel["at_calibration_speed_p90_ms"]) if rel else (h["median_ms"], h["p10_ms"], h["p90_ms"]))
            rows.append({"run": v.title, "arch": e["arch"]["arch"], "pred_host_ms": r["predicted_host_latency_ms"],
                         "host_ms": host[0], "host_p10_ms": host[1], "host_p90_ms": host[2],
                         "host_measure": "relative to reference" if rel else "plain median",
                         "pred_acc": r["predicted_accuracy"], "onnx_acc": r["onnx_accuracy"],
                         "host_method": str((r.get("host_latency_predictor") or {}).get("method", "?"))})
    return pd.DataFrame(rows)


def agreement_text(points: pd.DataFrame) -> list[str]:
    """Per run: how far predictions sit from the onnxruntime measurements of the exported subnets."""
    out = []
    for run, d in points.groupby("run", sort=False):
        mape = float(np.mean(np.abs(d["pred_host_ms"] - d["host_ms"]) / d["host_ms"])) * 100
        acc_err = float(np.mean(np.abs(d["pred_acc"] - d["onnx_acc"])))
        methods = ", ".join(dict.fromkeys(d["host_method"]))
        measures = ", ".join(dict.fromkeys(d["host_measure"]))
        text = (f"{run}: {len(d)} exported subnets; host latency predicted by {methods}, mean |error| "
                f"{mape:.1f} % of measured ({measures}); "
                f"accuracy mean |predicted − measured| {acc_err:.4f}")
        if len(d) >= 3:
            t_lat = kendalltau(d["pred_host_ms"], d["host_ms"]).statistic
            t_acc = kendalltau(d["pred_acc"], d["onnx_acc"]).statistic
            text += f"; Kendall τ (predicted vs measured) latency {t_lat:.3f}, accuracy {t_acc:.3f}"
        out.append(text + ".")
    return out


# ---- comparison of runs ------------------------------------------------------------------------
def _chosen(view: RunView) -> pd.DataFrame:
    """The subnets a run chose: its exported ones, else 5 spread along its combined front."""
    if view.exported:
        return pd.DataFrame([{"arch": e["arch"]["arch"], "subnet_id": e["arch"]["subnet_id"],
                              "macs": e["arch"]["macs"], "accuracy": e["verify"]["predicted_accuracy"],
                              "latency_ms": e["verify"]["predicted_latency_ms"]} for e in view.exported])
    return choose_subnets(combined_front(view.folder), 5)


def compare_text(views: list[RunView]) -> list[str]:
    """Sentences on how the runs' chosen subnets differ: widths per block, MACs, latency, overlap."""
    chosen = [_chosen(v) for v in views]
    out = []
    for v, c in zip(views, chosen, strict=True):
        best = c.loc[c["accuracy"].idxmax()]
        out.append(f"{v.title}: {len(c)} chosen subnets, {c['macs'].min() / 1e6:.3g}–{c['macs'].max() / 1e6:.3g} "
                   f"MMACs, predicted {c['latency_ms'].min():.4g}–{c['latency_ms'].max():.4g} ms on {v.device}; "
                   f"most accurate {best['arch']} (predicted {best['accuracy']:.3f}, {best['macs'] / 1e6:.3g} MMACs, "
                   f"{best['latency_ms']:.4g} ms).")
    spaces = [v.space for v in views]
    same_space = all(s is not None and s == spaces[0] for s in spaces)
    base, base_c = views[0], chosen[0]
    for v, c in zip(views[1:], chosen[1:], strict=True):
        if same_space:
            wa = _mean_widths(spaces[0], base_c["arch"])
            wb = _mean_widths(spaces[0], c["arch"])
            gaps = [(i, a, b) for i, (a, b) in enumerate(zip(wa, wb, strict=True)) if abs(a - b) >= WIDTH_GAP]
            profile = (f"mean width per block (block 1…{len(wa)}): {base.device} "
                       f"{'/'.join(f'{x:.2f}' for x in wa)}, {v.device} {'/'.join(f'{x:.2f}' for x in wb)}")
            if gaps:
                detail = "; ".join(f"block {i + 1} is {'wider' if b > a else 'narrower'} on {v.device} "
                                   f"({b:.2f} vs {a:.2f})" for i, a, b in gaps)
                out.append(f"{v.device} vs {base.device}: {profile}. {detail}.")
            else:
                out.append(f"{v.device} vs {base.device}: {profile}; no block differs by {WIDTH_GAP} or more.")
        else:
            out.append(f"{v.title} and {base.title} search different spaces; only MACs and latency compare.")
        shared = sorted(set(c["subnet_id"]) & set(base_c["subnet_id"]))
        ratio = c["macs"].median() / max(1.0, float(base_c["macs"].median()))
        out.append(f"{v.device} vs {base.device}: {len(shared)} of the chosen subnets are common"
                   f"{' (' + ', '.join(c.set_index('subnet_id').loc[shared, 'arch']) + ')' if shared else ''}; "
                   f"the median MACs of {v.device}'s choices are {ratio:.2f}× those of {base.device}'s.")
    return out


def _mean_widths(space: SearchSpace, archs: pd.Series) -> list[float]:
    fr = np.asarray([space.width_fractions(space.parse(str(a))) for a in archs], dtype=float)
    return fr.mean(axis=0).tolist()


# ---- the page ----------------------------------------------------------------------------------
def _img(fig: Any, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{to_base64_png(fig)}">'


def _panel(v: RunView) -> FrontPanel:
    ex = pd.DataFrame([{"arch": e["arch"]["arch"], "accuracy": e["verify"]["predicted_accuracy"],
                        "latency_ms": e["verify"]["predicted_latency_ms"]} for e in v.exported],
                      columns=["arch", "accuracy", "latency_ms"])
    searched = bool((v.run.get("exits") or {}).get("searched"))
    return FrontPanel(v.title, v.device, v.evaluations, v.pareto, v.baselines, ex,
                      exit_free_front(v.evaluations) if searched else None)


def render(views: list[RunView]) -> str:
    """The whole HTML page of ``views``."""
    esc = html.escape
    parts = [f"<h1>dynnas search report</h1><p class='note'>{len(views)} run(s): "
             f"{esc(', '.join(str(v.folder) for v in views))}</p>"]
    parts.append("<h2 id='overview'>Overview</h2>" + _table_html(overview_table(views)))
    for v in views:
        if v.run.get("command"):
            parts.append(f"<p class='note'>{esc(v.title)} was made by <code>{esc(str(v.run['command']))}</code></p>")
    parts.append("<h2 id='fronts'>Accuracy–latency: candidates, Pareto fronts, baselines</h2>"
                 "<p class='note'>Small dots: every evaluated candidate; lines: each algorithm's Pareto front; "
                 "black diamonds: the uniform-width subnets (every block at width α); stars: exported subnets. "
                 "Accuracy and latency are the run's predictions on its target device.</p>")
    parts.append(_img(fronts_figure([_panel(v) for v in views]), "Pareto fronts"))
    for v in views:
        parts.append(f"<p class='note'>Uniform-width baselines of {esc(v.title)} ({esc(v.baselines_note)}):</p>")
        if not v.baselines.empty:
            parts.append(_table_html(v.baselines))
    parts.append("<h2 id='hypervolume'>Hypervolume against evaluations</h2>")
    parts.append(_img(hypervolume_figure([v.title for v in views], [v.history for v in views]), "hypervolume"))
    for v in views:
        ref = v.run.get("hv_reference")
        if isinstance(ref, dict) and ref.get("transform"):
            parts.append(f"<p class='note'>{esc(v.title)}: {esc(str(ref['transform']))}</p>")
    parts.append("<h2 id='predictors'>Predicted against measured</h2>")
    for v in views:
        figures = accuracy_quality(v.run)
        host = host_predictor_description(v)
        parts.append(f"<p><b>{esc(v.title)}</b> — accuracy predictor: {esc(figures or 'no quality figures stored')}"
                     f"<br>latency predictor: {esc(latency_description(v.run) or 'not described')}"
                     + (f"<br>host latency predictor (for the measured comparison): {esc(host)}" if host else "")
                     + "</p>")
    points = measured_points(views)
    if points.empty:
        parts.append("<p class='note'>No exported subnets yet: run <code>dynnas export DIR</code> to measure "
                     "them with onnxruntime.</p>")
    else:
        parts.append(_img(predicted_vs_measured_figure(points), "predicted vs measured"))
        parts.append("<ul>" + "".join(f"<li>{esc(t)}</li>" for t in agreement_text(points)) + "</ul>")
    parts.append("<h2 id='exits'>Early exits</h2><p class='note'>The dashed line in the fronts above is the front of "
                 "the candidates with every exit off. Exit rates list each exit, then the final classifier.</p><ul>"
                 + "".join(f"<li>{esc(t)}</li>" for v in views for t in exits_text(v)) + "</ul>")
    for v in views:
        table = exits_table(v)
        if not table.empty:
            parts.append(f"<h3>{esc(v.title)}: exported subnets with exits</h3>" + _table_html(table))
    for v in views:
        sp = v.run.get("export_host_speed") or v.run.get("host_speed")
        if isinstance(sp, dict) and sp.get("drift"):
            parts.append(f"<p class='note'>{esc(v.title)}: the host reference subnet ran at "
                         f"{sp['reference_ms_now']:.4g} ms now against {sp['reference_ms_at_calibration']:.4g} ms when the "
                         f"host predictor was calibrated (drift ×{sp['drift']:.3f}); host predictions are in "
                         "calibration-speed ms, the 'today's speed' column scales measurements to now.</p>")
    parts.append("<h2 id='exported'>Exported subnets</h2>")
    for v in views:
        parts.append(f"<h3>{esc(v.title)}</h3>")
        if v.exported:
            parts.append(_table_html(exported_table(v), code_cols=("deploy",)))
        else:
            parts.append("<p class='note'>none exported; run <code>dynnas export "
                         f"{esc(str(v.folder))}</code>.</p>")
    if len(views) > 1:
        parts.append("<h2 id='comparison'>How the runs' choices differ</h2><ul>"
                     + "".join(f"<li>{esc(t)}</li>" for t in compare_text(views)) + "</ul>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>dynnas report</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def _is_report(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(400)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and b"<title>dynnas report</title>" in head


def write_report(run_dirs: list[Path], out: Path) -> Path:
    """Write the report of ``run_dirs`` to ``out`` (one self-contained HTML file, atomically); returns ``out``."""
    if not run_dirs:
        raise ConfigError("the report needs at least one run folder, but got none; pass e.g. runs/demo-host.")
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"report path '{out}' is a folder; pass a file path such as '{out / 'report.html'}'.")
    if out.is_file() and not _is_report(out):
        raise OutputError(f"report path '{out}' is an existing file that is not a dynnas report; dynnas only replaces "
                          "its own reports: pass a new --out path or delete the file.")
    views = [load_view(Path(d)) for d in run_dirs]
    page = render(views)
    try:
        atomic_write(out, lambda p: p.write_text(page, encoding="utf-8"))
    except OSError as e:
        raise OutputError(f"cannot write the report '{out}' ({e.strerror}); pass --out to a writable path.") from None
    return out


__all__ = ["RunView", "compare_text", "load_view", "predict_baselines", "render", "write_report"]
