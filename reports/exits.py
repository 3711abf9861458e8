"""The early-exit part of the report: exported exit subnets and what exits bought the search."""

from __future__ import annotations

import pandas as pd

from reports.tables import fmt
from reports.view import RunView


def exits_table(view: RunView) -> pd.DataFrame:
    """One row per exported subnet with exits or a scout: thresholds, exit rates predicted and measured (the
    scout's share first when it has one), latencies."""
    rows = []
    for e in view.exported:
        r = e.verify
        if not r.dynamic:
            continue
        pol = r.exit_policy or {}
        rel = r.host_latency_relative
        scout = (e.arch.cascade or {}).get("scout")
        st = pol.get("scout_threshold")
        rows.append({
            "arch": e.arch.arch,
            "scout (threshold)": "—" if scout is None else f"{scout} ({'off' if st is None else f'{st:.3f}'})",
            "thresholds": ", ".join("off" if t is None else f"{t:.3f}" for t in pol.get("thresholds", [])),
            "criterion": pol.get("criterion", ""),
            "pred. exit rates": ", ".join(f"{p:.2f}" for p in r.predicted_exit_rates or []),
            "ONNX exit rates (test)": ", ".join(f"{p:.2f}" for p in r.exit_rates or []),
            "pred. static acc.": fmt(r.predicted_static_accuracy),
            "ONNX acc. (dynamic / static)": f"{fmt(r.onnx_accuracy)} / {fmt(r.static_accuracy)}",
            "MAC speed-up (val)": fmt(pol.get("speedup_macs"), 3),
            f"pred. expected / worst {view.device} (ms)": f"{fmt(r.predicted_latency_ms)} / "
                                                           f"{fmt(r.predicted_worst_latency_ms)}",
            "host expected (ms): pred. / measured": f"{fmt(r.predicted_host_latency_ms)} / "
                                                    f"{fmt(rel.at_calibration_speed_ms if rel else None)}",
            "same exit as PyTorch": fmt(r.same_exit_as_pytorch),
        })
    return pd.DataFrame(rows)


def _hv(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def _span(front: object) -> str:
    span = getattr(front, "latency_span_ms", None)
    return "—" if not span else f"{span[0]:.4g}–{span[1]:.4g} ms"


def exits_text(view: RunView) -> list[str]:
    """What exits bought this run: hypervolume and the front's expected-latency span, with and without."""
    ex = view.run.exits
    if not ex.searched:
        return [f"{view.title}: exits not searched ({ex.objectives})."]
    out = []
    w, f = ex.with_exits, ex.exit_free
    if w is not None and f is not None:
        out.append(f"{view.title}: hypervolume {_hv(w.hypervolume)} with exits against {_hv(f.hypervolume)} for "
                   f"the exit-free candidates of the same search; expected latency on the front spans {_span(w)} "
                   f"({_span(f)} without exits); accuracy drop per subnet at most "
                   f"{100 * float(ex.max_accuracy_drop or 0):g} pt.")
    q = (view.run.predictors.exits or {}).get("quality") or {}
    if q:
        mae = ", ".join(f"{k} {v['heldout_mae']:.3f}" for k, v in (q.get("exit_rate_heldout_mae") or {}).items())
        out.append(f"exit-rate predictor held-out MAE: {mae}; accuracy-drop predictor held-out MAE "
                   f"{q.get('drop_heldout_mae_points', float('nan')):.3f} pt; mean MAC speed-up of the calibrated "
                   f"policies {q.get('mean_speedup_macs', float('nan')):.2f}x.")
    return out
