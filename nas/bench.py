"""Measure exported subnets on real images, on this machine: what ``dynnas bench`` runs.

For every export (a folder with ``manifest.json``) under the given path (one export, a run's
``subnets/``, or every device of a fleet), it runs the segment chain through
:class:`supernet.runtime.DynamicSession` and, for a dynamic subnet, the same subnet with its exits
off (``static.onnx``), on the same engine and threads:

* **batch 1**: image by image, in interleaved blocks (``block`` images through the static subnet,
  then the same images through the chain), so a shared machine's speed swings hit both alike;
  expected latency = mean per-image time; speed-up = static mean / chain mean;
* **batch B** (each of ``batches`` > 1): throughput in images/s with batch compaction, interleaved
  batch by batch with the static subnet;
* accuracy and the exit histogram, from the batch-1 outputs.

Predicted against measured: ``verify.json`` holds the host predictor's expected latency, static
latency and per-exit latencies in calibration-speed ms. The machine's speed now differs, so the
prediction is also given *anchored* on the measured static subnet: predicted expected x (measured
static / predicted static), once with the predicted exit rates and once with the measured ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reports.run_folder import (
    ARCH_FILE,
    MANIFEST_FILE,
    RUN_FILE,
    STATIC_FILE,
    SUBNETS_DIR,
    VERIFY_FILE,
)
from supernet.errors import ConfigError, DatasetError
from supernet.runtime import DynamicSession, open_graph

BENCH_FORMAT = "dynnas-bench"
BENCH_FORMAT_VERSION = 1
Progress = Callable[[int, int, str], None]


def find_exports(path: Path) -> list[Path]:
    """Export folders under ``path``: itself, ``subnets/*`` of a run, or ``devices/*/subnets/*`` of a fleet."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"'{path}' is not a folder; pass a run folder, a fleet folder or one exported subnet.")
    if (path / MANIFEST_FILE).is_file():
        return [path]
    candidates = sorted(p for p in path.glob(f"{SUBNETS_DIR}/*") if p.is_dir() and not p.name.startswith("."))
    candidates += sorted(p for p in path.glob(f"devices/*/{SUBNETS_DIR}/*") if p.is_dir() and not p.name.startswith("."))
    found = [p for p in candidates if (p / MANIFEST_FILE).is_file()]
    if not found:
        old = [p for p in candidates if (p / ARCH_FILE).is_file()]
        if old:
            raise ConfigError(f"the exports under '{path}' have no {MANIFEST_FILE} (exported by an older dynnas); "
                              f"re-export them with `dynnas export {path}`.")
        raise ConfigError(f"'{path}' holds no exported subnet; run `dynnas export {path}` first (or pass a run "
                          "folder, a fleet folder or one export folder).")
    return found


def _run_dir(export: Path) -> Path | None:
    run = export.parent.parent
    return run if (run / RUN_FILE).is_file() and export.parent.name == SUBNETS_DIR else None


def load_images(exports: Sequence[Path], spec: str | None, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` test images (float32 NCHW in [0, 1]) and labels: ``spec``, else the run's dataset, else the sample
    shipped beside the exports' supernet."""
    from supernet.checkpoint import load_tensors
    from supernet.data import load_dataset, to_tensor
    from supernet.pretrained import load_default_data

    manifest = json.loads((exports[0] / MANIFEST_FILE).read_text())
    res = int(manifest["input"]["shape"][-1])
    data, note = None, ""
    if spec is not None:
        data, note = load_dataset(spec, resolution=res), spec
    else:
        run = _run_dir(exports[0])
        run_spec = json.loads((run / RUN_FILE).read_text()).get("settings", {}).get("dataset") if run else None
        if run_spec:
            try:
                data, note = load_dataset(run_spec, resolution=res), run_spec
            except DatasetError:
                data = None
        if data is None:  # the supernet's own dataset, else its shipped sample (as the export verified on)
            arch = json.loads((exports[0] / ARCH_FILE).read_text()) if (exports[0] / ARCH_FILE).is_file() else {}
            supernet = Path((arch.get("supernet") or {}).get("path") or "")
            if not str(supernet) or not supernet.is_file():
                raise DatasetError(f"no dataset for the exports under '{exports[0].parent}': their supernet "
                                   f"'{supernet}' is not here to say which; pass --dataset SPEC.")
            data, note = load_default_data(load_tensors(supernet, "supernet")[1] or {}, None, supernet)
    if n < 1:
        raise ConfigError(f"--images must be >= 1, but got {n}.")
    x = np.ascontiguousarray(to_tensor(data.x_test[:n]).numpy())
    if tuple(x.shape[1:]) != tuple(manifest["input"]["shape"][1:]):
        raise ConfigError(f"dataset '{note}' gives images of shape {tuple(x.shape[1:])}, but the exports take "
                          f"{tuple(manifest['input']['shape'][1:])}; pass the dataset they were trained on.")
    name = "shipped sample" if note.endswith("shipped sample") else note.partition(":")[0]
    return x, data.y_test[:n], f"{name} test ({len(x)})"


class _Static:
    """The same subnet with its exits off, as a batch runner (one graph on the bench's engine)."""

    def __init__(self, path: Path, engine: str, threads: int) -> None:
        self.graph = open_graph(path, engine=engine, threads=threads)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.graph(["logits"], {"image": x})[0]


def _time_batch1(dyn: DynamicSession, static: _Static | None, x: np.ndarray, block: int,
                 warmup: int = 10) -> dict[str, Any]:
    clock = time.perf_counter
    for i in range(min(warmup, len(x))):
        dyn.run(x[i: i + 1])
        if static is not None:
            static.run(x[i: i + 1])
    t_dyn = np.empty(len(x))
    t_static = np.empty(len(x))
    logits, taken = [], []
    for start in range(0, len(x), block):
        stop = min(start + block, len(x))
        if static is not None:
            for i in range(start, stop):
                xi = x[i: i + 1]
                t0 = clock()
                static.run(xi)
                t_static[i] = clock() - t0
        for i in range(start, stop):
            xi = x[i: i + 1]
            t0 = clock()
            out = dyn.run(xi)
            t_dyn[i] = clock() - t0
            logits.append(out[0])
            taken.append(out[1])
    expected = 1e3 * float(t_dyn.mean())
    out = {"expected_ms": expected, "p10_ms": 1e3 * float(np.percentile(t_dyn, 10)),
           "p90_ms": 1e3 * float(np.percentile(t_dyn, 90)), "images": int(len(x)), "block": block,
           "logits": np.concatenate(logits), "exit_index": np.concatenate(taken)}
    if static is not None:
        out |= {"static_ms": 1e3 * float(t_static.mean()), "speedup": float(t_static.mean() / t_dyn.mean())}
    return out


def _throughput(dyn: DynamicSession, static: _Static | None, x: np.ndarray, batch: int) -> dict[str, Any]:
    clock = time.perf_counter
    dyn.run(x[:batch])
    if static is not None:
        static.run(x[:batch])
    t_dyn = t_static = 0.0
    for start in range(0, len(x), batch):
        xb = x[start: start + batch]
        if static is not None:
            t0 = clock()
            static.run(xb)
            t_static += clock() - t0
        t0 = clock()
        dyn.run(xb)
        t_dyn += clock() - t0
    out = {"batch": batch, "images_per_s": len(x) / t_dyn}
    if static is not None:
        out |= {"static_images_per_s": len(x) / t_static, "gain": t_static / t_dyn}
    return out


def _predicted(verify: dict[str, Any], measured_rates: np.ndarray, static_ms: float | None) -> dict[str, Any]:
    """What the export predicted for this machine (host predictor, calibration-speed ms), raw and anchored."""
    out: dict[str, Any] = {"device": verify.get("device"), "device_latency_ms": verify.get("predicted_latency_ms"),
                           "exit_rates": verify.get("predicted_exit_rates")}
    host = verify.get("predicted_host") or {}
    expected, static = host.get("expected_ms"), host.get("static_ms")
    per_exit = host.get("exit_ms")
    out |= {"host_expected_ms": expected, "host_static_ms": static}
    if per_exit is not None and len(per_exit) == len(measured_rates) + 1:  # a cascade space, no scout: share 0
        measured_rates = np.concatenate([[0.0], measured_rates])
    if per_exit is not None and len(per_exit) == len(measured_rates):
        out["host_expected_ms_measured_rates"] = float(np.dot(per_exit, measured_rates))
    if static_ms is not None and static:
        scale = static_ms / static  # the machine's speed now against the calibration's, on the static subnet
        out["anchor_scale"] = scale
        if expected is not None:
            out["anchored_expected_ms"] = expected * scale
        if "host_expected_ms_measured_rates" in out:
            out["anchored_expected_ms_measured_rates"] = out["host_expected_ms_measured_rates"] * scale
        out["speedup"] = static / expected if expected else None
    return out


def bench_exports(exports: Sequence[Path], x: np.ndarray, y: np.ndarray, *, batches: Sequence[int] = (1, 32),
                  engine: str = "onnxruntime", threads: int = 1, block: int = 5,
                  progress: Progress | None = None) -> list[dict[str, Any]]:
    """Measure every export on ``(x, y)``; one record per export (see module doc)."""
    rows = []
    for k, folder in enumerate(exports):
        arch = json.loads((folder / ARCH_FILE).read_text()) if (folder / ARCH_FILE).is_file() else {}
        verify = json.loads((folder / VERIFY_FILE).read_text()) if (folder / VERIFY_FILE).is_file() else {}
        label = str(arch.get("arch") or folder.name)
        if progress is not None:
            progress(k, len(exports), label)
        dyn = DynamicSession(folder, engine=engine, threads=threads)
        dynamic = dyn.n_stages > 1
        static = _Static(folder / STATIC_FILE, engine, threads) if dynamic and (folder / STATIC_FILE).is_file() else None
        b1 = _time_batch1(dyn, static, x, block)
        taken, logits = b1.pop("exit_index"), b1.pop("logits")
        names = dyn.exit_names or [str(i) for i in range(int(taken.max()) + 1)]
        hist = np.bincount(taken, minlength=len(names))
        row: dict[str, Any] = {
            "folder": str(folder), "arch": label, "subnet_id": arch.get("subnet_id", folder.name),
            "dynamic": dynamic, "stages": dyn.n_stages, "macs": arch.get("macs"),
            "accuracy": float((logits.argmax(1) == y).mean()),
            "exit_names": names, "exit_histogram": hist.tolist(), "exit_rates": (hist / len(taken)).tolist(),
            "batch1": b1,
            "throughput": [_throughput(dyn, static, x, b) for b in batches if b > 1],
        }
        if static is not None:
            row["static_accuracy"] = float((static.run(x).argmax(1) == y).mean())
            row["accuracy_drop_pp"] = 100 * (row["static_accuracy"] - row["accuracy"])
        row["predicted"] = _predicted(verify, hist / len(taken), b1.get("static_ms") if dynamic else b1["expected_ms"])
        rows.append(row)
    return rows


def bench_document(rows: list[dict[str, Any]], *, dataset: str, engine: str, threads: int, batches: Sequence[int],
                   seed: int) -> dict[str, Any]:
    """The ``bench.json`` document: settings, machine, per-export records and a summary."""
    import platform

    import onnxruntime as ort

    from predictors.host_latency import host_info

    dyn = [r for r in rows if r["dynamic"]]
    errs = [r["predicted"]["anchored_expected_ms"] / r["batch1"]["expected_ms"] - 1 for r in dyn
            if r["predicted"].get("anchored_expected_ms")]
    summary = {
        "exports": len(rows), "dynamic": len(dyn),
        "speedup_min": min((r["batch1"]["speedup"] for r in dyn), default=None),
        "speedup_max": max((r["batch1"]["speedup"] for r in dyn), default=None),
        "anchored_within_10pct": float(np.mean(np.abs(errs) <= 0.10)) if errs else None,
        "anchored_max_abs_err_pct": float(100 * np.max(np.abs(errs))) if errs else None,
    }
    return {"format": BENCH_FORMAT, "format_version": BENCH_FORMAT_VERSION, "dataset": dataset, "engine": engine,
            "threads": threads, "batches": list(batches), "seed": seed, "host": host_info(threads),
            "python": platform.python_version(), "onnxruntime": ort.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "summary": summary, "exports": rows}
