"""The early-exit part of the report: the exit-free front, exported exit subnets, what exits bought."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from nas.driver import exit_free_rows, pareto_rows


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.{digits}g}"
    return str(v)


def exit_free_front(evaluations: pd.DataFrame) -> pd.DataFrame:
    """The Pareto front of the candidates whose exits are all off (the exit-free subset of the space)."""
    static = exit_free_rows(evaluations)
    return pareto_rows(static) if len(static) else static


def exits_table(view: Any) -> pd.DataFrame:
    """One row per exported subnet with exits or a scout: thresholds, exit rates predicted and measured (the
    scout's share first when it has one), latencies."""
    rows = []
    for e in view.exported:
        r = e["verify"]
        if not r.get("dynamic"):
            continue
        pol = r.get("exit_policy") or {}
        rel = r.get("host_latency_relative") or {}
        scout = (e["arch"].get("cascade") or {}).get("scout")
        st = pol.get("scout_threshold")
        rows.append({
            "arch": e["arch"]["arch"],
            "scout (threshold)": "—" if scout is None else f"{scout} ({'off' if st is None else f'{st:.3f}'})",
            "thresholds": ", ".join("off" if t is None else f"{t:.3f}" for t in pol.get("thresholds", [])),
            "criterion": pol.get("criterion", ""),
            "pred. exit rates": ", ".join(f"{p:.2f}" for p in r.get("predicted_exit_rates", [])),
            "ONNX exit rates (test)": ", ".join(f"{p:.2f}" for p in r.get("exit_rates", [])),
            "pred. static acc.": _fmt(r.get("predicted_static_accuracy")),
            "ONNX acc. (dynamic / static)": f"{_fmt(r.get('onnx_accuracy'))} / {_fmt(r.get('static_accuracy'))}",
            "MAC speed-up (val)": _fmt(pol.get("speedup_macs"), 3),
            f"pred. expected / worst {view.device} (ms)": f"{_fmt(r.get('predicted_latency_ms'))} / "
                                                           f"{_fmt(r.get('predicted_worst_latency_ms'))}",
            "host expected (ms): pred. / measured": f"{_fmt(r.get('predicted_host_latency_ms'))} / "
                                                    f"{_fmt(rel.get('at_calibration_speed_ms'))}",
            "same exit as PyTorch": _fmt(r.get("same_exit_as_pytorch")),
        })
    return pd.DataFrame(rows)


def exits_text(view: Any) -> list[str]:
    """What exits bought this run: hypervolume and the front's expected-latency span, with and without."""
    ex = view.run.get("exits") or {}
    if not ex.get("searched"):
        return [f"{view.title}: exits not searched ({ex.get('objectives', 'static accuracy and latency')})."]
    out = []
    w, f = ex.get("with_exits") or {}, ex.get("exit_free") or {}
    if w and f:
        span = lambda d: "—" if not d.get("latency_span_ms") else "{:.4g}–{:.4g} ms".format(*d["latency_span_ms"])  # noqa: E731
        out.append(f"{view.title}: hypervolume {w['hypervolume']:.4f} with exits against {f['hypervolume']:.4f} for "
                   f"the exit-free candidates of the same search; expected latency on the front spans {span(w)} "
                   f"({span(f)} without exits); accuracy drop per subnet at most "
                   f"{100 * float(ex.get('max_accuracy_drop') or 0):g} pt.")
    q = ((view.run.get("predictors") or {}).get("exits") or {}).get("quality") or {}
    if q:
        mae = ", ".join(f"{k} {v['heldout_mae']:.3f}" for k, v in (q.get("exit_rate_heldout_mae") or {}).items())
        out.append(f"exit-rate predictor held-out MAE: {mae}; accuracy-drop predictor held-out MAE "
                   f"{q.get('drop_heldout_mae_points', float('nan')):.3f} pt; mean MAC speed-up of the calibrated "
                   f"policies {q.get('mean_speedup_macs', float('nan')):.2f}x.")
    return out
