"""Host latency from this machine's own onnxruntime measurements: a lookup table of blocks in context.

1. **Relative timing.** Every timing is taken against a reference model (the supernet's middle
   uniform-width subnet) interleaved a few milliseconds away (``onnx_io.measure_latencies``): a
   shared VM changes speed by up to 1.6x within a second, which moves plain medians but not the
   ratio to the reference. Latencies are stored as ratios, and as ms at the session's reference
   speed.
2. **Isolated LUT (the prior).** Every distinct *unit* of the search space (the stem, each block
   at each width choice, the tail; see :mod:`predictors.units`) becomes a small ONNX graph built
   with ``onnx.helper`` and is timed; the fixed cost of a session run (a one-``Identity`` graph)
   is subtracted. Units and not single kernels: onnxruntime fuses a block's residual add into
   its project conv and keeps a block's tensors in its blocked NCHWc layout, while a lone conv
   pays a layout reorder on each side.
3. **Fit to whole subnets.** ~60 seeded random subnets (plus the smallest and the largest) of a
   randomly initialised supernet (latency does not depend on weight values) are exported with
   the deployment exporter and timed whole. ``measured ≈ slope * lut_sum + intercept`` is fitted
   by robust least squares on relative error, then a per-(block, width) correction by ridge
   regression (penalty chosen by leave-one-out), so the table holds each block's cost *in
   context*. The result is still ``constant + sum_i table[i, width_i]``: one gather per subnet.

The measurements are cached as a versioned JSON file keyed by device and arch-config hash; the
fit is recomputed on load (deterministic), so a reloaded predictor predicts exactly what the
first one did.
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
from sklearn.linear_model import RidgeCV

from predictors.errors import CalibrationError, PredictorCacheError, check_header
from predictors.kernel_graphs import chain_graph, input_shape, null_graph
from predictors.kernels import exit_kernels, layer_kernels
from predictors.onnx_io import (
    measure_latencies,
    measure_latency,
    measure_optimisation_penalty,
    measure_over_inputs,
    onnx_bytes,
)
from predictors.units import UnitTable, arch_hash, unit_key
from supernet.checkpoint import read_json, write_json
from supernet.cost import CostedConfig
from supernet.errors import CheckpointError
from supernet.extract import extract
from supernet.registry import get_family
from supernet.space import SearchSpace, SubnetConfig

FORMAT = "dynnas-latency-lut"
FORMAT_VERSION = 3  # 2: timings relative to an interleaved reference model; 3: exit heads, branch penalty
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


def _lut_units(arch_config: CostedConfig) -> dict[str, list]:
    """Every distinct unit the search space can hold, by its LUT key: stem, tail, term variants, exit heads."""
    terms = arch_config.cost_terms()
    out: dict[str, list] = {}
    for layers in (terms.stem, terms.tail, *(v for variants in terms.variants for v in variants)):
        if layers:
            ks = layer_kernels(layers)
            out.setdefault(unit_key(ks), ks)
    for e in range(len(arch_config.exit_blocks)):  # exit heads: timed alone (pool, linears, decision)
        ks = exit_kernels(arch_config, e)
        out.setdefault(unit_key(ks), ks)
    return out


def reference_subnet(space: SearchSpace) -> SubnetConfig:
    """The model every host timing is relative to: the middle uniform-width subnet."""
    return space.uniform((len(space.width_choices) - 1) // 2)


def random_supernet(arch_config: CostedConfig, seed: int) -> torch.nn.Module:
    """A randomly initialised supernet of ``arch_config``'s family (latency does not depend on weight values)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_family(arch_config.family).build(arch_config)


def subnet_onnx(supernet: torch.nn.Module, subnet: SubnetConfig) -> tuple[bytes, tuple[int, ...]]:
    """A subnet as deployed (ONNX bytes) and its batch-1 input shape: what ``measure_latencies`` takes."""
    c = supernet.config
    example = torch.zeros(1, c.in_channels, c.resolution, c.resolution)
    return onnx_bytes(extract(supernet, subnet), example), tuple(example.shape)


def measure_host(device: str, arch_config: CostedConfig, *, seed: int = 0, n_calibration: int = 60, rounds: int = 5,
                 threads: int = 1, progress: Progress | None = None) -> dict[str, Any]:
    """Measure the LUT and the calibration subnets on this machine; return the cache document."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    lut_units = _lut_units(arch_config)
    models: dict[str, tuple[bytes, tuple[int, ...]]] = {"null": (null_graph(), (1, 1))}
    for key, ks in lut_units.items():
        models[f"unit:{key}"] = (chain_graph(ks, rng), input_shape(ks[0]))
    space = arch_config.space()
    subnets = calibration_subnets(space, n_calibration, seed)
    supernet = random_supernet(arch_config, seed)
    ref = reference_subnet(space)
    reference = subnet_onnx(supernet, ref)
    for i, s in enumerate(subnets):
        models[f"subnet:{space.format(s)}"] = subnet_onnx(supernet, s)
        if progress is not None:
            progress("exporting calibration subnets", i + 1, len(subnets))
    timed = measure_latencies(models, reference, rounds=rounds, threads=threads, seed=seed, progress=progress)
    branch_penalty = measure_optimisation_penalty(reference[0], reference[1], threads=threads, seed=seed)

    def entry(key: str) -> dict[str, float]:
        t = timed[key]
        return {"ratio": t.ratio, "ratio_p10": t.ratio_p10, "ratio_p90": t.ratio_p90, "median_ms": t.median_ms,
                "raw_median_ms": t.raw_median_ms}

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "device": device,
        "arch_hash": arch_hash(arch_config), "family": arch_config.family, "arch_config": arch_config.to_dict(),
        "host": host_info(threads),
        "protocol": {"batch": 1, "threads": threads, "warmup": 10, "repeats": 50, "block": 5, "rounds": rounds,
                     "statistic": "median over blocks of (model block median / preceding reference block median)",
                     "seed": seed},
        "reference": {"arch": space.format(ref), "ms": timed.reference_ms},
        "null": entry("null"),
        "lut": {key: entry(f"unit:{key}") for key in lut_units},
        "calibration": [{"arch": space.format(s), **entry(f"subnet:{space.format(s)}")} for s in subnets],
        "noise": {"machine_spread": timed.machine_spread, "load_average": list(os.getloadavg())},
        "branch_penalty": branch_penalty,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_s": time.perf_counter() - start,
    }


def check_document(doc: Any, path: Path, device: str, arch_config: CostedConfig) -> None:
    """Raise :class:`PredictorCacheError` unless ``doc`` is a complete LUT cache for this device and net."""
    def bad(why: str) -> PredictorCacheError:
        return PredictorCacheError(f"latency cache '{path}' {why}; delete it to re-measure.")

    check_header(doc, FORMAT, FORMAT_VERSION, "latency LUT", bad)
    if doc.get("device") != device or doc.get("arch_hash") != arch_hash(arch_config):
        raise bad(f"belongs to device {doc.get('device')!r} / arch {doc.get('arch_hash')!r}, not "
                  f"{device!r} / {arch_hash(arch_config)!r}")
    try:
        lut, cal = doc["lut"], doc["calibration"]
        missing = [k for k in _lut_units(arch_config) if k not in lut]
        values = [float(e["ratio"]) for e in lut.values()] + [float(r["ratio"]) for r in cal]
        values += [float(doc["null"]["ratio"]), float(doc["reference"]["ms"])]
        space = arch_config.space()
        for r in cal:
            space.parse(r["arch"])
        space.parse(doc["reference"]["arch"])
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"is corrupt ({e.__class__.__name__}: {str(e)[:60]})") from None
    if missing:
        raise bad(f"lacks {len(missing)} LUT entries, e.g. '{missing[0][:60]}'")
    if len(cal) < 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise bad("holds fewer than 2 calibration subnets or non-positive latencies")


def fit_correction(lut: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """Robust fit of ``measured ≈ slope * lut + intercept`` on relative error (slope >= 0)."""
    if len(lut) < 2:
        raise CalibrationError(f"the linear correction needs >= 2 calibration subnets, but got {len(lut)}.")

    def rel(theta: np.ndarray) -> np.ndarray:
        return (theta[0] * lut + theta[1]) / measured - 1.0

    res = least_squares(rel, x0=np.array([1.0, 0.0]), loss="huber", f_scale=0.05,
                        bounds=([0.0, -np.inf], [np.inf, np.inf]))
    return float(res.x[0]), float(res.x[1])


RIDGE_ALPHAS = np.logspace(-4, 2, 13)


def one_hot(widths: np.ndarray, n_choices: int) -> np.ndarray:
    """``(n, n_blocks)`` width indices → ``(n, n_blocks * n_choices)`` indicator columns."""
    n, n_blocks = widths.shape
    x = np.zeros((n, n_blocks * n_choices))
    x[np.repeat(np.arange(n), n_blocks), (np.arange(n_blocks) * n_choices + widths).ravel()] = 1.0
    return x


def fit_block_residual(widths: np.ndarray, residual: np.ndarray, weight: np.ndarray,
                       n_choices: int) -> tuple[np.ndarray, float, float]:
    """Per-(term, variant) correction of the scaled LUT by weighted ridge; returns (table, constant, alpha)."""
    x = one_hot(widths, n_choices)
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, residual, sample_weight=weight)
    return model.coef_.reshape(widths.shape[1], n_choices), float(model.intercept_), float(model.alpha_)


class HostLUTPredictor:
    """Latency on this machine: an in-context per-block table fitted to measured subnets (see module doc)."""

    def __init__(self, arch_config: CostedConfig, doc: dict[str, Any], *, cache_path: Path | None = None,
                 source: str = "measured"):
        self.device = str(doc["device"])
        self.doc = doc
        self.cache_path = cache_path
        self.source = source
        self.space = arch_config.space()
        self.reference = self.space.parse(doc["reference"]["arch"])
        self.reference_ms = float(doc["reference"]["ms"])
        null = float(doc["null"]["ratio"])
        self.lut = {k: max(float(e["ratio"]) - null, 0.0) for k, e in doc["lut"].items()}
        self.lut_table = UnitTable.build(arch_config, lambda ks: self.lut[unit_key(ks)])
        self.cal_subnets = [self.space.parse(r["arch"]) for r in doc["calibration"]]
        self.cal_ratio = np.array([float(r["ratio"]) for r in doc["calibration"]])
        self.slope, self.intercept = fit_correction(self.lut_table(self.cal_subnets), self.cal_ratio)
        self.table, self.alpha = self._fit(np.arange(len(self.cal_subnets)))
        self.branch_penalty = float(doc.get("branch_penalty", 1.0))

    def _fit(self, rows: np.ndarray) -> tuple[UnitTable, float]:
        lut = self.lut_table
        prior = lut.with_values(self.slope * lut.constant + self.intercept, self.slope * lut.table,
                                self.slope * lut.stem, tuple(self.slope * h for h in lut.heads))
        subnets = [self.cal_subnets[i] for i in rows]
        y = self.cal_ratio[rows]
        choices = prior.choice_matrix(subnets)
        delta, constant, alpha = fit_block_residual(choices, y - prior(subnets), 1.0 / y ** 2, lut.table.shape[1])
        return prior.with_values(prior.constant + constant, prior.table + delta, prior.stem, prior.heads), alpha

    def predict_ratio(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Predicted latency relative to the reference subnet (independent of the machine's momentary speed)."""
        return self.table(subnets)

    def predict_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Predicted batch-1, 1-thread onnxruntime latency of each subnet, in ms (at the calibration's speed)."""
        return self.reference_ms * self.table(subnets)

    decide_ms = 0.0  # a scout's exit test (softmax over the classes, a compare): not timed, ≪ 1 % of a subnet

    def predict_exit_ms(self, subnets: Sequence[SubnetConfig], *, in_branch: bool = False) -> np.ndarray:
        """``(n, E + 1)`` ms of leaving at each exit, then at the final classifier (see ``UnitTable.exit_costs``).

        The heads' cost is their isolated-unit timing scaled by the fitted slope: the calibration
        subnets are timed without heads. Work after the first enabled exit is scaled by
        ``branch_penalty`` (see :func:`predictors.onnx_io.measure_optimisation_penalty`); with
        ``in_branch`` (the subnet runs inside a cascade's ``If`` branch) all of its work is.
        """
        costs = self.table.exit_costs(subnets)
        if in_branch:
            return self.reference_ms * self.branch_penalty * costs
        # Everything after the first enabled exit runs inside an ONNX ``If`` branch, which onnxruntime does
        # not layout-optimise: scale that work by the measured branch penalty.
        for i, s in enumerate(subnets):
            on = [e for e, bit in enumerate(s.exits) if bit]
            if on:
                first = costs[i, on[0]]
                later = np.arange(costs.shape[1]) > on[0]
                costs[i, later] = first + self.branch_penalty * (costs[i, later] - first)
        return self.reference_ms * costs

    def speed_now(self, arch_config: CostedConfig, *, seconds: float = 1.5, threads: int = 1,
                  seed: int = 0) -> dict[str, Any]:
        """Time the reference subnet now (about ``seconds``) against its latency at calibration.

        ``drift`` = now / at calibration; ms at the machine's current speed are ``drift`` times the
        predictor's ms (which stay in calibration-speed units, so a search's figures do not depend on
        the moment it ran: same seed, same result).
        """
        model, shape = subnet_onnx(random_supernet(arch_config, seed), self.reference)
        probe = measure_latency(model, shape, threads=threads, warmup=10, repeats=20, seed=seed)
        repeats = int(min(2000, max(50, seconds * 1e3 / max(probe.median_ms, 1e-3))))
        repeats -= repeats % 5
        stats = measure_latency(model, shape, threads=threads, warmup=5, repeats=max(repeats, 5), seed=seed)
        return {"reference_arch": self.space.format(self.reference), "reference_ms_at_calibration": self.reference_ms,
                "reference_ms_now": stats.median_ms, "drift": stats.median_ms / self.reference_ms,
                "p10_ms": stats.p10_ms, "p90_ms": stats.p90_ms, "repeats": stats.repeats,
                "note": "predicted host ms are at the calibration's speed; multiply by drift for the speed now"}

    def loo_ratio(self) -> np.ndarray:
        """Leave-one-out predictions of the calibration subnets' ratios (the honest calibration error)."""
        n = len(self.cal_subnets)
        out = np.empty(n)
        for i in range(n):
            rows = np.delete(np.arange(n), i)
            table, _ = self._fit(rows)
            out[i] = table([self.cal_subnets[i]])[0]
        return out

    def describe(self) -> dict[str, Any]:
        err = self.loo_ratio() / self.cal_ratio - 1.0
        lut_err = (self.slope * self.lut_table(self.cal_subnets) + self.intercept) / self.cal_ratio - 1.0
        d = self.doc
        measured_ms = self.reference_ms * self.cal_ratio
        return {
            "method": "block-lut",
            "method_detail": "per-block table in context: isolated-unit LUT prior + ridge fit to measured subnets, "
                             "all timed relative to an interleaved reference subnet",
            "device": self.device,
            "source": self.source,
            "cache": str(self.cache_path) if self.cache_path else None,
            "host": d["host"],
            "protocol": d["protocol"],
            "params": {"slope": self.slope, "intercept_ratio": self.intercept, "ridge_alpha": self.alpha,
                       "reference_arch": d["reference"]["arch"], "reference_ms": self.reference_ms,
                       "null_ratio": float(d["null"]["ratio"]), "lut_entries": len(self.lut),
                       "branch_penalty": self.branch_penalty},
            "quality": {
                "n_calibration": len(err),
                "loo_within_10pct": float(np.mean(np.abs(err) <= 0.10)),
                "loo_within_5pct": float(np.mean(np.abs(err) <= 0.05)),
                "loo_rmse_pct": float(100 * np.sqrt(np.mean(err ** 2))),
                "loo_max_abs_pct": float(100 * np.abs(err).max()),
                "isolated_lut_rmse_pct": float(100 * np.sqrt(np.mean(lut_err ** 2))),
                "machine_spread": d["noise"]["machine_spread"],
                "load_average": d["noise"]["load_average"],
            },
            "measured_range_ms": [float(measured_ms.min()), float(measured_ms.max())],
            "build_s": d.get("build_s"),
            "created": d.get("created"),
        }


def measure_relative(pred: HostLUTPredictor, reference: tuple[bytes, tuple[int, ...]], model: Path | bytes, *,
                     rounds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Time one exported model with the host predictor's own protocol, against its reference subnet.

    ``reference`` is ``subnet_onnx(supernet, pred.reference)`` (built once for many models).
    ``at_calibration_speed_ms`` (ratio x the reference's latency when the predictor was built) is
    the figure to compare with ``pred.predict_ms``: a plain median also carries the machine's
    momentary speed, which on a shared VM moves it by tens of percent.
    """
    timed = measure_latencies({"model": (model, reference[1])}, reference, rounds=rounds, seed=seed)
    t = timed["model"]
    return {"ratio": t.ratio, "reference_arch": pred.space.format(pred.reference),
            "reference_ms_at_calibration": pred.reference_ms, "at_calibration_speed_ms": t.ratio * pred.reference_ms,
            "at_calibration_speed_p10_ms": t.ratio_p10 * pred.reference_ms,
            "at_calibration_speed_p90_ms": t.ratio_p90 * pred.reference_ms,
            "session_ms": t.median_ms, "machine_spread": timed.machine_spread, "rounds": rounds}


def measure_expected_relative(pred: HostLUTPredictor, reference: tuple[bytes, tuple[int, ...]], model: Path | bytes,
                              inputs: np.ndarray, *, passes: int = 1, seed: int = 0) -> dict[str, Any]:
    """Expected latency of an early-exit model over real inputs, relative to the predictor's reference
    (:func:`predictors.onnx_io.measure_over_inputs`); ms at the calibration's speed and at this session's."""
    t = measure_over_inputs(model, reference, inputs, passes=passes, seed=seed)
    return {**t, "reference_arch": pred.space.format(pred.reference), "reference_ms_at_calibration": pred.reference_ms,
            "at_calibration_speed_ms": t["ratio"] * pred.reference_ms,
            "at_calibration_speed_p10_ms": t["ratio_p10"] * pred.reference_ms,
            "at_calibration_speed_p90_ms": t["ratio_p90"] * pred.reference_ms,
            "statistic": "mean over inputs of (batch-1 time / preceding reference block median)"}


def cache_path(cache_dir: Path, device: str, arch_config: CostedConfig) -> Path:
    return Path(cache_dir) / f"{device}-{arch_config.family}-{arch_hash(arch_config)}.json"


def host_predictor(device: str, arch_config: CostedConfig, cache_dir: Path, *, seed: int = 0, n_calibration: int = 60,
                   rounds: int = 5, threads: int = 1, progress: Progress | None = None) -> HostLUTPredictor:
    """Load the cached measurements for (device, arch) or measure them now and cache them.

    A cache written on another CPU, onnxruntime version or thread count, or by an older dynnas
    (lower format version), is stale: it is re-measured and replaced. A corrupt cache, or one
    from a newer dynnas, raises :class:`PredictorCacheError`.
    """
    path = cache_path(cache_dir, device, arch_config)
    if path.exists():
        try:
            doc = read_json(path, "latency cache")
        except CheckpointError as e:
            raise PredictorCacheError(str(e)) from None
        older = (isinstance(doc, dict) and doc.get("format") == FORMAT and isinstance(doc.get("format_version"), int)
                 and doc["format_version"] < FORMAT_VERSION)
        if not older:
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
