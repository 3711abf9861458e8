"""The report's "Measured on this machine" section: ``bench.json`` written by ``dynnas bench`` beside a run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from reports.run_folder import BENCH_FILE


def read_bench(folder: Path) -> dict | None:
    """``folder/bench.json`` as a dict, or None when there is none (or it cannot be read)."""
    path = Path(folder) / BENCH_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == "dynnas-bench" else None


def bench_table(doc: dict) -> pd.DataFrame:
    """One row per benchmarked export: accuracy, exits, measured and predicted latency, speed-ups."""
    rows = []
    for r in doc.get("exports", []):
        b1, pred = r.get("batch1", {}), r.get("predicted", {})
        anchored = pred.get("anchored_expected_ms")
        row = {"arch": r.get("arch"), "accuracy": round(float(r.get("accuracy", float("nan"))), 4),
               "drop_pp": round(r["accuracy_drop_pp"], 2) if "accuracy_drop_pp" in r else None,
               "exit_rates": "/".join(f"{v:.2f}" for v in r.get("exit_rates", [])),
               "measured_ms": round(b1.get("expected_ms", float("nan")), 4),
               "static_ms": round(b1["static_ms"], 4) if "static_ms" in b1 else None,
               "speedup_b1": round(b1["speedup"], 2) if "speedup" in b1 else None,
               "predicted_ms": round(anchored, 4) if anchored else None,
               "error_pct": round(100 * (anchored / b1["expected_ms"] - 1), 1) if anchored and b1.get("expected_ms")
               else None}
        for t in r.get("throughput", []):
            row[f"gain_b{t['batch']}"] = round(t["gain"], 2) if "gain" in t else None
        rows.append(row)
    return pd.DataFrame(rows)


def bench_note(doc: dict) -> str:
    """Where and how the figures were measured."""
    host = doc.get("host", {})
    return (f"dynnas bench on {doc.get('dataset')}, {doc.get('engine')} with {doc.get('threads')} thread(s), "
            f"{host.get('cpu_model', 'unknown CPU')}, {doc.get('created', '')}. Measured ms: mean per image at "
            "batch 1 through the segment runtime; static: the same subnet with its exits off, interleaved; "
            "predicted: the export's host prediction scaled by this machine's speed on the static subnet.")
