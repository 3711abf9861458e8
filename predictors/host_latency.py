"""Host latency from this machine's own onnxruntime measurements: a lookup table plus a linear fit.

1. **LUT.** Every distinct *unit* of the search space (the stem, each block at each width
   choice, the tail; see :mod:`predictors.units`) becomes a small ONNX graph built with
   ``onnx.helper`` and is timed with the protocol of :mod:`predictors.onnx_io` (1 thread,
   batch 1); the fixed cost of a session run (a one-``Identity`` graph) is subtracted.
   Why units and not single kernels: onnxruntime fuses a block's residual add into its project
   conv and keeps the block's hidden tensors in its blocked NCHWc layout, while a lone conv pays
   a layout reorder on each side; on the dev VM per-kernel sums overshot whole subnets by 1.5x,
   block units by 6 %.
2. **Linear correction.** ~30 seeded random subnets (plus the smallest and the largest) of a
   randomly initialised supernet (latency does not depend on weight values) are exported with
   the deployment exporter and timed whole; ``measured = slope * lut_sum + intercept`` is fitted
   by robust (Huber) least squares on *relative* error.

All timings are taken in interleaved rounds (``onnx_io.measure_latencies``) so a burst of load
from other processes does not bias one entry. The measurements are cached as a versioned JSON
file keyed by device and arch-config hash; the fit is recomputed on load (deterministic), so a
reloaded predictor predicts exactly what the first one did.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from scipy.optimize import least_squares

from predictors.errors import CalibrationError, PredictorCacheError, check_header
from predictors.kernel_graphs import chain_graph, input_shape, null_graph
from predictors.kernels import subnet_kernels
from predictors.onnx_io import measure_latencies, onnx_bytes
from predictors.units import UnitTable, arch_hash, unit_key, units
from supernet.checkpoint import read_json, write_json
from supernet.cnn import CNNConfig, CNNSupernet
from supernet.errors import CheckpointError
from supernet.extract import extract
from supernet.space import SearchSpace, SubnetConfig

FORMAT = "dynnas-latency-lut"
FORMAT_VERSION = 1
Progress = Callable[[str, int, int], None]


def host_info(threads: int) -> dict[str, Any]:
    """What makes measurements of this machine comparable: CPU model, onnxruntime, threads."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": cpu, "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "onnxruntime": ort.__version__, "threads": threads}


def calibration_subnets(space: SearchSpace, n: int, seed: int) -> list[SubnetConfig]:
    """The smallest and largest subnets, then seeded unique random ones, ``n`` in all (fewer if the
    space is smaller)."""
    return space.sample_unique(np.random.default_rng(seed), n, [space.smallest(), space.largest()])


def _lut_units(arch_config: CNNConfig) -> dict[str, list]:
    space = arch_config.space()
    out: dict[str, list] = {}
    for j in range(len(space.width_choices)):
        for ks in units(subnet_kernels(arch_config, space.uniform(j))).values():
            out.setdefault(unit_key(ks), ks)
    return out


def measure_host(device: str, arch_config: CNNConfig, *, seed: int = 0, n_calibration: int = 30, rounds: int = 5,
                 threads: int = 1, progress: Progress | None = None) -> dict[str, Any]:
    """Measure the LUT and the calibration subnets on this machine; return the cache document."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    lut_units = _lut_units(arch_config)
    models: dict[str, tuple[bytes, tuple[int, ...]]] = {"null": (null_graph(), (1, 1))}
    for key, ks in lut_units.items():
        models[f"unit:{key}"] = (chain_graph(ks, rng), input_shape(ks[0]))
    subnets = calibration_subnets(arch_config.space(), n_calibration, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        supernet = CNNSupernet(arch_config)
    c = arch_config
    example = torch.zeros(1, c.in_channels, c.resolution, c.resolution)
    space = c.space()
    for i, s in enumerate(subnets):
        models[f"subnet:{space.format(s)}"] = (onnx_bytes(extract(supernet, s), example), tuple(example.shape))
        if progress is not None:
            progress("exporting calibration subnets", i + 1, len(subnets))
    stats, spread = measure_latencies(models, rounds=rounds, threads=threads, seed=seed, progress=progress)
    null_ms = stats["null"].median_ms
    lut = {key: {"median_ms": stats[f"unit:{key}"].median_ms, "p10_ms": stats[f"unit:{key}"].p10_ms,
                 "p90_ms": stats[f"unit:{key}"].p90_ms} for key in lut_units}
    calibration = [{"arch": space.format(s), "measured_ms": stats[f"subnet:{space.format(s)}"].median_ms,
                    "p10_ms": stats[f"subnet:{space.format(s)}"].p10_ms,
                    "p90_ms": stats[f"subnet:{space.format(s)}"].p90_ms} for s in subnets]
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "device": device,
        "arch_hash": arch_hash(arch_config), "family": arch_config.family, "arch_config": arch_config.to_dict(),
        "host": host_info(threads),
        "protocol": {"batch": 1, "threads": threads, "warmup": 10, "repeats": 50, "rounds": rounds,
                     "statistic": "median of the least-disturbed round", "seed": seed},
        "null_ms": null_ms, "lut": lut, "calibration": calibration,
        "noise": {"round_spread": spread, "load_average": list(os.getloadavg())},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_s": time.perf_counter() - start,
    }


def check_document(doc: Any, path: Path, device: str, arch_config: CNNConfig) -> None:
    """Raise :class:`PredictorCacheError` unless ``doc`` is a complete LUT cache for this device and net."""
    def bad(why: str) -> PredictorCacheError:
        return PredictorCacheError(f"latency cache '{path}' {why}; delete it to re-measure.")

    check_header(doc, FORMAT, FORMAT_VERSION, "latency LUT", bad)
    if doc.get("device") != device or doc.get("arch_hash") != arch_hash(arch_config):
        raise bad(f"belongs to device {doc.get('device')!r} / arch {doc.get('arch_hash')!r}, not "
                  f"{device!r} / {arch_hash(arch_config)!r}")
    try:
        lut, cal, null = doc["lut"], doc["calibration"], float(doc["null_ms"])
        missing = [k for k in _lut_units(arch_config) if k not in lut]
        values = [float(e["median_ms"]) for e in lut.values()] + [float(r["measured_ms"]) for r in cal] + [null]
        space = arch_config.space()
        for r in cal:
            space.parse(r["arch"])
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"is corrupt ({e.__class__.__name__}: {str(e)[:60]})") from None
    if missing:
        raise bad(f"lacks {len(missing)} LUT entries, e.g. '{missing[0][:60]}'")
    if len(cal) < 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise bad("holds fewer than 2 calibration subnets or non-positive latencies")


def fit_correction(lut_ms: np.ndarray, measured_ms: np.ndarray) -> tuple[float, float]:
    """Robust fit of ``measured ≈ slope * lut + intercept`` on relative error (slope >= 0)."""
    if len(lut_ms) < 2:
        raise CalibrationError(f"the linear correction needs >= 2 calibration subnets, but got {len(lut_ms)}.")

    def rel(theta: np.ndarray) -> np.ndarray:
        return (theta[0] * lut_ms + theta[1]) / measured_ms - 1.0

    res = least_squares(rel, x0=np.array([1.0, 0.0]), loss="huber", f_scale=0.05,
                        bounds=([0.0, -np.inf], [np.inf, np.inf]))
    return float(res.x[0]), float(res.x[1])


class HostLUTPredictor:
    """Latency on this machine: LUT sum of a subnet's units, linearly corrected (see module doc)."""

    def __init__(self, arch_config: CNNConfig, doc: dict[str, Any], *, cache_path: Path | None = None,
                 source: str = "measured"):
        self.device = str(doc["device"])
        self.doc = doc
        self.cache_path = cache_path
        self.source = source
        self.space = arch_config.space()
        null = float(doc["null_ms"])
        self.lut = {k: max(float(e["median_ms"]) - null, 0.0) for k, e in doc["lut"].items()}
        self.lut_table = UnitTable.build(arch_config, lambda ks: self.lut[unit_key(ks)])
        cal_subnets = [self.space.parse(r["arch"]) for r in doc["calibration"]]
        self.cal_lut = self.lut_table(cal_subnets)
        self.cal_measured = np.array([float(r["measured_ms"]) for r in doc["calibration"]])
        self.slope, self.intercept = fit_correction(self.cal_lut, self.cal_measured)

    def lut_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Uncorrected LUT sums (ms)."""
        return self.lut_table(subnets)

    def predict_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Predicted batch-1, 1-thread onnxruntime latency of each subnet, in ms."""
        return self.slope * self.lut_table(subnets) + self.intercept

    def describe(self) -> dict[str, Any]:
        pred = self.slope * self.cal_lut + self.intercept
        err = pred / self.cal_measured - 1.0
        d = self.doc
        return {
            "method": "lut+linear",
            "device": self.device,
            "source": self.source,
            "cache": str(self.cache_path) if self.cache_path else None,
            "host": d["host"],
            "protocol": d["protocol"],
            "params": {"slope": self.slope, "intercept_ms": self.intercept, "null_ms": float(d["null_ms"]),
                       "lut_entries": len(self.lut)},
            "quality": {
                "n_calibration": len(err),
                "calibration_within_10pct": float(np.mean(np.abs(err) <= 0.10)),
                "calibration_within_5pct": float(np.mean(np.abs(err) <= 0.05)),
                "calibration_rmse_pct": float(100 * np.sqrt(np.mean(err ** 2))),
                "calibration_max_abs_pct": float(100 * np.abs(err).max()),
                "round_spread": d["noise"]["round_spread"],
                "load_average": d["noise"]["load_average"],
            },
            "measured_range_ms": [float(self.cal_measured.min()), float(self.cal_measured.max())],
            "build_s": d.get("build_s"),
            "created": d.get("created"),
        }


def cache_path(cache_dir: Path, device: str, arch_config: CNNConfig) -> Path:
    return Path(cache_dir) / f"{device}-{arch_config.family}-{arch_hash(arch_config)}.json"


def host_predictor(device: str, arch_config: CNNConfig, cache_dir: Path, *, seed: int = 0, n_calibration: int = 30,
                   rounds: int = 5, threads: int = 1, progress: Progress | None = None) -> HostLUTPredictor:
    """Load the cached measurements for (device, arch) or measure them now and cache them.

    A cache written on another CPU, onnxruntime version or thread count is stale: it is
    re-measured and replaced. A corrupt cache raises :class:`PredictorCacheError`.
    """
    path = cache_path(cache_dir, device, arch_config)
    if path.exists():
        try:
            doc = read_json(path, "latency cache")
        except CheckpointError as e:
            raise PredictorCacheError(str(e)) from None
        check_document(doc, path, device, arch_config)
        if doc["host"] == host_info(threads):
            return HostLUTPredictor(arch_config, doc, cache_path=path, source="cache")
    doc = measure_host(device, arch_config, seed=seed, n_calibration=n_calibration, rounds=rounds, threads=threads,
                       progress=progress)
    predictor = HostLUTPredictor(arch_config, doc, cache_path=path, source="measured")
    try:
        write_json(path, doc)
    except OSError as e:
        predictor.cache_path = None
        predictor.source = f"measured (not cached: {e.strerror})"
    return predictor
