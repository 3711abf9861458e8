"""Do the exported fronts run as predicted? `dynnas bench` over search runs, summarised against the targets.

For each run folder (made by ``dynnas search ... --out DIR``; a host run for the latency checks, any
device for the exit rates):

1. **exit rates**: the search's predicted exit rates of every exported dynamic subnet against the
   rates measured at export on validation images (``verify.json["recosted"]``, the thresholds' own
   calibration data): mean absolute error per export, then over the exports (target <= 0.03);
2. **per-image latency** (host runs): ``dynnas bench DIR --images N`` times every export image by
   image through the segment runtime. Predicted ms are in the host predictor's calibration-speed
   units, so they are put on this moment's scale by the *common* scale of the run's static exports
   (median of measured / predicted over the exports without exits, or over every export's static
   subnet when a run exported none). Target: every dynamic export within ±10 %;
3. **speed-up**: measured static / measured expected latency of every dynamic export on the front
   (target >= 1.0 each), and the batch-32 throughput gain with compaction.

    .venv/bin/python benchmarks/runtime_front.py runs/host1 runs/orin1 --images 300 \\
        --dataset cifar10:../shared/datasets/cifar10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from nas.bench import bench_document, bench_exports, find_exports, load_images
from supernet.checkpoint import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def rate_errors(exports: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for folder in exports:
        v = json.loads((folder / "verify.json").read_text())
        if not v.get("dynamic") or "recosted" not in v or v.get("predicted_exit_rates") is None:
            continue
        pred, val = np.asarray(v["predicted_exit_rates"]), np.asarray(v["recosted"]["exit_rates"])
        if len(pred) != len(val):
            continue
        rows.append({"arch": v["arch"], "predicted": pred.tolist(), "validation": val.tolist(),
                     "mae": float(np.mean(np.abs(pred - val)))})
    return rows


def latency_rows(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], float | None]:
    """Per export: predicted (common scale) against measured expected ms, and the scale itself."""
    rows = doc["exports"]
    static = [r["batch1"]["expected_ms"] / r["predicted"]["host_static_ms"] for r in rows
              if not r["dynamic"] and r["predicted"].get("host_static_ms")]
    if not static:  # no static export: every dynamic export's own static subnet
        static = [r["batch1"]["static_ms"] / r["predicted"]["host_static_ms"] for r in rows
                  if r["dynamic"] and r["predicted"].get("host_static_ms") and "static_ms" in r["batch1"]]
    scale = float(np.median(static)) if static else None
    out = []
    for r in rows:
        p = r["predicted"]
        if scale is None or p.get("host_expected_ms") is None:
            continue
        measured = r["batch1"]["expected_ms"]
        item = {"arch": r["arch"], "dynamic": r["dynamic"], "measured_ms": measured,
                "predicted_ms": p["host_expected_ms"] * scale,
                "error_pct": 100 * (p["host_expected_ms"] * scale / measured - 1),
                "speedup": r["batch1"].get("speedup"), "accuracy_drop_pp": r.get("accuracy_drop_pp"),
                "batch_gains": [t.get("gain") for t in r["throughput"]]}
        if p.get("host_expected_ms_measured_rates") is not None:
            item["error_pct_measured_rates"] = 100 * (p["host_expected_ms_measured_rates"] * scale / measured - 1)
        out.append(item)
    return out, scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", type=Path, default=RESULTS / "runtime_front.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "runtime_front", "images": args.images, "dataset": args.dataset,
                              "runs": []}
    all_rates, lat_all = [], []
    for run in args.runs:
        exports = find_exports(run)
        rates = rate_errors(exports)
        all_rates += [r["mae"] for r in rates]
        device = json.loads((run / "run.json").read_text()).get("device")
        entry: dict[str, Any] = {"run": str(run), "device": device, "exit_rates": rates,
                                 "exit_rate_mae": float(np.mean([r["mae"] for r in rates])) if rates else None}
        if device == "host":
            x, y, note = load_images(exports, args.dataset, args.images)
            rows = bench_exports(exports, x, y, batches=(1, args.batch))
            doc = bench_document(rows, dataset=note, engine="onnxruntime", threads=1, batches=(1, args.batch), seed=0)
            lat, scale = latency_rows(doc)
            lat_all += [r for r in lat if r["dynamic"]]
            entry |= {"bench": doc, "latency": lat, "common_scale": scale}
        report["runs"].append(entry)
        print(f"{run}: exit-rate MAE {entry['exit_rate_mae']}", file=sys.stderr)
    dyn_err = np.array([r["error_pct"] for r in lat_all])
    sp = [r["speedup"] for r in lat_all if r["speedup"] is not None]
    report["summary"] = {
        "exit_rate_mae_over_exports": float(np.mean(all_rates)) if all_rates else None,
        "n_exports_rates": len(all_rates),
        "dynamic_within_10pct": float(np.mean(np.abs(dyn_err) <= 10)) if len(dyn_err) else None,
        "dynamic_max_abs_err_pct": float(np.abs(dyn_err).max()) if len(dyn_err) else None,
        "n_dynamic_timed": len(lat_all),
        "speedup_min": min(sp) if sp else None, "speedup_max": max(sp) if sp else None,
        "seconds": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print(json.dumps(report["summary"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
