"""The report's tables as pandas frames, and how a frame becomes escaped HTML."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from reports.run_folder import combined_front
from reports.tokens import TokenSchedule, method_label
from reports.view import RunView, deploy_command


def fmt(v: Any, digits: int = 4) -> str:
    """A cell: ``—`` for None/NaN, floats to ``digits`` significant digits, anything else as text."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.{digits}g}"
    return str(v)


def table_html(df: pd.DataFrame, code_cols: tuple[str, ...] = ()) -> str:
    """``df`` as an HTML table, every cell escaped; ``code_cols`` in ``<code>``."""
    df = df.copy()
    for c in df.columns:
        df[c] = [f"<code>{html.escape(str(x))}</code>" if c in code_cols else html.escape(fmt(x)) for x in df[c]]
    return df.to_html(index=False, escape=False, border=0)


def latency_confidence(view: RunView) -> str:
    """``"ok (4 published points), MAXN"``, ``"low (…)"`` or ``"measured"``: what the device's latency rests on."""
    lat = view.run.predictors.latency
    conf = lat.get("confidence")
    if conf is None:
        return "—"
    mode = lat.get("power_mode")
    text = f"{conf} ({lat.get('n_calibration_points', 0)} published points)" if conf != "measured" else conf
    if lat.get("extrapolated"):
        lo, hi = lat["calibrated_macs"]
        text += f", extrapolated (calibrated on {lo / 1e6:,.0f}–{hi / 1e6:,.0f} M MACs)"
    return f"{text}, {mode}" if mode else text


def overview_table(views: list[RunView]) -> pd.DataFrame:
    """One row per run: device, supernet, seed, evaluations, hypervolumes, front size."""
    rows = []
    for v in views:
        r = v.run
        counts = v.evaluations.groupby("algorithm").size()
        rows.append({
            "run": v.title, "device": v.device, "latency model": latency_confidence(v),
            "supernet": Path(r.supernet.path).name,
            "supernet sha256": r.supernet.sha256[:12], "seed": r.seed,
            "evaluations": ", ".join(f"{a}: {n}" for a, n in counts.items()),
            "hypervolume": ", ".join(f"{a}: {fmt(x)}" for a, x in sorted(r.hypervolume.items())),
            "combined HV": fmt(r.hypervolume_combined),
            "front size": int(combined_front(v.folder).shape[0]),
            "created": r.created,
        })
    return pd.DataFrame(rows)


def exported_table(view: RunView) -> pd.DataFrame:
    """One row per exported subnet: size, predicted and measured accuracy and latency, the deploy command; for a
    run with token reduction also the tokens entering each block, the method and the keep ratios."""
    rows = []
    tokens = TokenSchedule.of(view.run)
    for e in view.exported:
        a, r = e.arch, e.verify
        h, rel = r.host_latency_ms, r.host_latency_relative
        schedule = {} if tokens is None else {
            "tokens per block": tokens.exported_text(e), "token method": method_label(tokens.method(a.arch)),
            "keep ratios": ", ".join(f"{k:g}" for k in tokens.keep_ratios(a.arch))}
        rows.append({
            "arch": a.arch, "subnet_id": a.subnet_id, "algorithm": r.algorithm,
            "MMACs": f"{a.macs / 1e6:.3f}", "params": a.params, **schedule,
            "pred. accuracy": fmt(r.predicted_accuracy), "ONNX accuracy": fmt(r.onnx_accuracy),
            "eval set": r.eval_set,
            f"pred. latency {view.device} (ms)": fmt(r.predicted_latency_ms),
            # re-costed with the exit rates measured at export (validation images) instead of the predicted ones
            f"{view.device} (ms) at measured exit rates": fmt(((r.model_extra or {}).get("recosted") or {})
                                                              .get("latency_ms")),
            "host latency (ms) median [p10, p90]": f"{h.median_ms:.4g} [{h.p10_ms:.4g}, {h.p90_ms:.4g}]",
            "pred. host latency (ms)": fmt(r.predicted_host_latency_ms),
            "host latency at calibration speed (ms)": fmt(rel.at_calibration_speed_ms if rel else None),
            "host latency at today's speed (ms)": fmt(rel.now_ms if rel else None),
            "max |Δ logit|": f"{r.max_abs_logit_diff:.2g}",
            "deploy": deploy_command(view.run, e.onnx, (a.model_extra or {}).get("stages")),
        })
    return pd.DataFrame(rows)
