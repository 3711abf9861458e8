"""How good the run's predictors are: their stored quality figures, and predictions against the
onnxruntime measurements of the exported subnets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from reports.tables import fmt
from reports.view import RunView

QUALITY_LABELS = {"model": "model", "heldout_tau": "held-out Kendall τ", "kendall_tau": "Kendall τ",
                  "heldout_rmse_points": "held-out RMSE (accuracy points)", "rmse": "RMSE",
                  "noise_ceiling_tau": "noise-ceiling τ (val vs test ranking)"}


def accuracy_quality(view: RunView) -> str:
    """The accuracy predictor's quality figures stored in run.json: τ, RMSE, noise ceiling."""
    acc = view.run.predictors.accuracy
    q = {**acc, **(acc.get("quality") if isinstance(acc.get("quality"), dict) else {})}
    return ", ".join(f"{label} = {fmt(float(q[k]) if isinstance(q[k], int | float) else q[k])}"
                     for k, label in QUALITY_LABELS.items() if k in q)


def predictor_line(desc: dict[str, Any]) -> str:
    """A predictor's ``describe()`` as one line: its scalar fields, then its quality figures."""
    quality = desc.get("quality") if isinstance(desc.get("quality"), dict) else {}
    flat = {**{k: v for k, v in desc.items() if not isinstance(v, dict | list)}, **quality}
    return "; ".join(f"{k}: {fmt(v)}" for k, v in flat.items() if v is not None and not isinstance(v, dict | list))


def latency_description(view: RunView) -> str:
    """The latency predictor's method and calibration quality, as one line."""
    return predictor_line(view.run.predictors.latency)


def host_predictor_description(view: RunView) -> str:
    """Method and calibration quality of the host predictor the exports were compared with ('' if none)."""
    how = next((e.verify.host_latency_predictor for e in view.exported
                if isinstance(e.verify.host_latency_predictor.get("quality"), dict)), None)
    return predictor_line(how) if how else ""


def measured_points(views: list[RunView]) -> pd.DataFrame:
    """One row per exported subnet: predicted and measured host latency (p10/p90) and accuracy."""
    rows = []
    for v in views:
        for e in v.exported:
            r = e.verify
            h, rel = r.host_latency_ms, r.host_latency_relative
            # The reference-relative figure is the one the predictor's calibration speaks for (see
            # predictors.host_latency.measure_relative); a plain median also carries the VM's momentary speed.
            host = ((rel.at_calibration_speed_ms, rel.at_calibration_speed_p10_ms, rel.at_calibration_speed_p90_ms)
                    if rel else (h.median_ms, h.p10_ms, h.p90_ms))
            rows.append({"run": v.title, "arch": e.arch.arch, "pred_host_ms": r.predicted_host_latency_ms,
                         "host_ms": host[0], "host_p10_ms": host[1], "host_p90_ms": host[2],
                         "host_measure": "relative to reference" if rel else "plain median",
                         "pred_acc": r.predicted_accuracy, "onnx_acc": r.onnx_accuracy,
                         "host_method": str(r.host_latency_predictor.get("method", "?"))})
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
