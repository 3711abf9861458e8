"""Roofline latency for devices known only from published numbers (e.g. ``jetson-orin``).

Per kernel ``t = max(flops / (eta_c * peak), bytes / (eta_m * bandwidth)) + overhead``; a
network's latency is the sum over its kernels plus one ``invoke`` (the runtime's fixed cost of one
inference: the call, waking the thread pool, input and output copies, a GPU's final synchronise).
``peak`` and ``bandwidth`` come from the device profile; the efficiencies ``eta_c``, ``eta_m``, the
per-kernel ``overhead`` and ``invoke`` are fitted by least squares on log latency to the profile's
published calibration points (reference models at their precision and batch), with a weak prior
that keeps ``overhead`` and ``invoke`` near the profile's cited values and the efficiencies near
typical values when the points cannot pin them down. Small networks (a few to a few hundred M MACs)
are what pins the two overheads: on them, dispatch and synchronisation are most of the time. A
profile without ``invoke_overhead`` has ``invoke = 0`` (not fitted).

The calibration points' kernels are their reference models' ONNX graphs as the profile's runtime
fuses them (:func:`point_kernels`), the same kernels ``dynnas latency`` costs, so the roofline is
fitted on what it is applied to. In the layer tables of supernet families, residual adds are fused
into the conv before them (TensorRT and onnxruntime both do): they move bytes but pay no ``overhead``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from hw_profiles import CalibrationPoint, DeviceProfile
from predictors.errors import CalibrationError
from predictors.kernels import Kernel
from predictors.onnx_graph import runtime_fusion
from predictors.reference_graphs import reference_kernels
from predictors.units import UnitTable
from supernet.cost import CostedConfig
from supernet.errors import DynnasError
from supernet.space import SubnetConfig

BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}
FUSED_OPS = frozenset({"add"})
# Weak priors (in log units): the overhead stays near the profile's value; the efficiencies only
# matter when the calibration points cannot determine them.
PRIOR_WEIGHT_OVERHEAD = 0.3
PRIOR_WEIGHT_ETA = 0.05
PRIOR_ETA_C, PRIOR_ETA_M = 0.5, 0.7
# Losses fit_roofline accepts: plain least squares (the default) or scipy's robust soft-L1, whose
# quadratic-to-linear knee sits at ROBUST_F_SCALE log units (about a 10 % latency error).
FIT_LOSSES = ("linear", "soft_l1")
# The fit may move each overhead this factor either way from its cited prior.
OVERHEAD_RANGE = 10.0
ROBUST_F_SCALE = 0.1


@dataclass(frozen=True)
class RooflineParams:
    """Fitted efficiencies (fractions of peak), per-kernel overhead and per-inference (invoke) cost, in seconds."""

    eta_c: float
    eta_m: float
    overhead_s: float
    invoke_s: float = 0.0


# Kernel.op -> the op class of a profile's measured ``op_rates`` (hw_profiles.schema.OP_RATE_UNITS)
OP_RATE_CLASS = {"conv": "conv", "dwconv": "dwconv", "linear": "gemm", "matmul": "gemm", "attention": "attention",
                 "norm": "norm", "add": "elementwise", "mul": "elementwise", "act": "elementwise",
                 "elementwise": "elementwise", "decide": "elementwise", "pool": "pool", "maxpool": "pool",
                 "data": "data", "reduce": "data"}
Rate = float | np.ndarray


def kernel_rates(profile: DeviceProfile, kernels: Sequence[Kernel], precision: str,
                 power_mode: str | None) -> tuple[Rate, Rate]:
    """Peak compute (FLOP/s) and bandwidth (B/s) each kernel runs at on ``profile``.

    The profile's peak and memory bandwidth (scalars) unless it gives measured ``op_rates`` (``dynnas profile``
    does) and ``precision`` is its default one: then per kernel, the rate of its op class at its kernel size
    (else of the class), compute rates scaled to ``power_mode``'s clocks. The efficiencies ``eta_c``/``eta_m``
    multiply these rates either way.
    """
    peak = _peak(profile, precision, power_mode)
    bw = profile.memory_bandwidth.value * 1e9
    if not profile.op_rates or precision != profile.default_precision:
        return peak, bw
    scale = profile.compute_scale(power_mode)
    comp, mem = np.full(len(kernels), peak), np.full(len(kernels), bw)
    for i, k in enumerate(kernels):
        q = profile.op_rate(OP_RATE_CLASS.get(k.op, "elementwise"), k.kernel)
        if q is None:
            continue
        if q.unit == "GB/s":
            mem[i] = q.value * 1e9
        else:
            comp[i] = q.value * 1e12 * scale
    return comp, mem


def prior_etas(profile: DeviceProfile) -> tuple[float, float]:
    """Prior efficiencies: fractions of a published peak (``PRIOR_ETA_C``, ``PRIOR_ETA_M``), or 1 of measured rates."""
    return (1.0, 1.0) if profile.op_rates else (PRIOR_ETA_C, PRIOR_ETA_M)


def _arrays(kernels: Sequence[Kernel]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flops = np.array([k.flops for k in kernels], dtype=float)
    nbytes = np.array([k.bytes for k in kernels], dtype=float)
    launches = np.array([k.op not in FUSED_OPS for k in kernels], dtype=float)
    return flops, nbytes, launches


def network_seconds(kernels: Sequence[Kernel], peak_ops: Rate, bandwidth: Rate, p: RooflineParams) -> float:
    """Roofline latency of a kernel list, in seconds (rates: scalars, or one per kernel from :func:`kernel_rates`),
    without the invoke cost (a part of a network: see :func:`inference_seconds` for a whole one)."""
    flops, nbytes, launches = _arrays(kernels)
    t = np.maximum(flops / (p.eta_c * peak_ops), nbytes / (p.eta_m * bandwidth))
    return float(t.sum() + p.overhead_s * launches.sum())


def inference_seconds(kernels: Sequence[Kernel], peak_ops: Rate, bandwidth: Rate, p: RooflineParams) -> float:
    """Latency of one inference of a whole network: :func:`network_seconds` plus one invoke."""
    return network_seconds(kernels, peak_ops, bandwidth, p) + p.invoke_s


def floor_seconds(kernels: Sequence[Kernel], p: RooflineParams) -> float:
    """The per-inference floor: one invoke plus the launch overhead of every launched kernel (no work at all)."""
    return float(p.overhead_s * _arrays(kernels)[2].sum() + p.invoke_s)


def invoke_prior_s(profile: DeviceProfile) -> float | None:
    """The profile's cited invoke cost in seconds, or ``None`` when it gives none (then it is 0, not fitted)."""
    q = profile.invoke_overhead
    return None if q is None else q.value * 1e-6


def point_kernels(profile: DeviceProfile, point: CalibrationPoint) -> list[Kernel]:
    """The kernels of a calibration point: its reference model's graph at the point's resolution, batch
    and precision, fused as the profile's runtime fuses (``fusion_rules.yaml``)."""
    try:
        return reference_kernels(point.model, point.resolution, BYTES_PER_ELEMENT[point.precision], batch=point.batch,
                                 fusion=runtime_fusion(profile.runtime))
    except DynnasError as e:
        raise CalibrationError(f"device '{profile.name}': the calibration point {point.model} at {point.resolution} px, "
                               f"batch {point.batch} cannot be built ({e}); fix or drop that row.") from None


def _peak(profile: DeviceProfile, precision: str, power_mode: str | None) -> float:
    return profile.peak_ops_per_s(precision) * profile.compute_scale(power_mode)


def fit_roofline(profile: DeviceProfile, *, loss: str = "linear",
                 free_overheads: bool = False) -> tuple[RooflineParams, list[dict[str, Any]]]:
    """Fit ``eta_c``, ``eta_m`` and ``overhead`` to the profile's calibration points.

    Returns the parameters and one row per point: measured and predicted latency and the
    residual in percent. Deterministic: a fixed grid of starting points, best cost kept.
    ``loss="soft_l1"`` makes the fit robust to an outlying point (residuals beyond
    ``ROBUST_F_SCALE`` in log units count linearly, not squared); the default is plain least squares.
    ``free_overheads=True`` drops the overheads' prior (weight 0, range x1e4): what the points alone say,
    the figure a profile with enough small-network points cites as its overhead prior.
    """
    if loss not in FIT_LOSSES:
        raise CalibrationError(f"loss must be one of {', '.join(FIT_LOSSES)}, but got {loss!r}.")
    points = profile.calibration
    if not points:
        raise CalibrationError(
            f"device '{profile.name}' has measured: false but no calibration points, so its roofline cannot be "
            "fitted; add published latencies under `calibration:` or set `measured: true` to time it here.")
    overhead0 = profile.kernel_overhead.value * 1e-6
    invoke0 = invoke_prior_s(profile)
    cases = []
    for pt in points:
        ks = point_kernels(profile, pt)
        cases.append((*_arrays(ks), *kernel_rates(profile, ks, pt.precision, pt.power_mode),
                      pt.latency_ms.value * 1e-3))

    def unpack(theta: np.ndarray) -> RooflineParams:
        v = np.exp(theta)
        return RooflineParams(float(v[0]), float(v[1]), float(v[2]), float(v[3]) if invoke0 is not None else 0.0)

    def predict(theta: np.ndarray) -> np.ndarray:
        p = unpack(theta)
        return np.array([np.maximum(f / (p.eta_c * peak), b / (p.eta_m * bw)).sum() + p.overhead_s * n.sum()
                         + p.invoke_s for f, b, n, peak, bw, _ in cases])

    measured = np.array([c[-1] for c in cases])
    prior_list = [*prior_etas(profile), overhead0] + ([invoke0] if invoke0 is not None else [])
    prior = np.log(prior_list)
    w_over = 0.0 if free_overheads else PRIOR_WEIGHT_OVERHEAD
    weights = np.array([PRIOR_WEIGHT_ETA, PRIOR_WEIGHT_ETA, w_over, w_over][:len(prior)])

    def residuals(theta: np.ndarray) -> np.ndarray:
        return np.concatenate([np.log(predict(theta)) - np.log(measured), weights * (theta - prior)])

    # a published peak cannot be beaten (eta <= 1); a measured rate can, a little, inside a whole network
    eta_max = 3.0 if profile.op_rates else 1.0
    span = 1e4 if free_overheads else OVERHEAD_RANGE
    lower = np.log([1e-3, 1e-3, *(v / span for v in prior_list[2:])])
    upper = np.log([eta_max, eta_max, *(v * span for v in prior_list[2:])])
    best = None
    for ec, em in itertools.product((0.05, 0.2, 0.6), (0.1, 0.4, 0.9)):
        x0 = np.log([ec, em, *prior_list[2:]])
        robust = {} if loss == "linear" else {"loss": loss, "f_scale": ROBUST_F_SCALE}
        res = least_squares(residuals, x0, bounds=(lower, upper), method="trf", x_scale=1.0, **robust)
        if best is None or res.cost < best.cost:
            best = res
    pred = predict(best.x)
    rows = [{"model": pt.model, "resolution": pt.resolution, "batch": pt.batch, "precision": pt.precision,
             "power_mode": pt.power_mode, "measured_ms": float(m * 1e3), "predicted_ms": float(p * 1e3),
             "residual_pct": float(100 * (p / m - 1))} for pt, m, p in zip(points, measured, pred, strict=True)]
    return unpack(best.x), rows


class RooflinePredictor:
    """Latency of subnets on a published device, from a fitted roofline (see module doc)."""

    def __init__(self, profile: DeviceProfile, arch_config: CostedConfig, params: RooflineParams,
                 fit_rows: list[dict[str, Any]], *, precision: str | None = None, power_mode: str | None = None,
                 batch: int = 1):
        self.device = profile.name
        self.profile = profile
        self.params = params
        self.fit_rows = fit_rows
        self.precision = precision or profile.default_precision
        self.power_mode = power_mode or profile.default_power_mode
        self.peak_ops = _peak(profile, self.precision, self.power_mode)
        self.bandwidth = profile.memory_bandwidth.value * 1e9
        self.bytes_per_element = BYTES_PER_ELEMENT[self.precision]
        self.arch_num_classes = int(arch_config.num_classes)
        table = UnitTable.build(arch_config, self._ms, bytes_per_element=self.bytes_per_element, batch=batch)
        # A data-dependent exit on a GPU: the host reads the score back before it launches the next stage (a
        # device-to-host copy and a stream synchronise: two driver round trips, each costed as one launch).
        self.sync_ms = 2e3 * params.overhead_s if profile.kind == "gpu" else 0.0
        # Every stage of an exported chain is one invoke of the runtime: the static network pays one, and each
        # exit a sample passes costs the invoke of the next stage (UnitTable.exit_refund: not paid on leaving).
        self.invoke_ms = 1e3 * params.invoke_s
        self.table = table.with_values(table.constant + self.invoke_ms, table.table, table.stem + self.invoke_ms,
                                       tuple(h + self.sync_ms + self.invoke_ms for h in table.heads),
                                       exit_refund=self.invoke_ms)
        self.batch = batch

    def _ms(self, kernels: Sequence[Kernel]) -> float:
        return 1e3 * network_seconds(kernels, *kernel_rates(self.profile, kernels, self.precision, self.power_mode),
                                     self.params)

    def predict_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Predicted batch-1 latency of each subnet (exits off), in ms."""
        return self.table(subnets)

    def predict_exit_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, E + 1)`` ms of leaving at each exit, then at the final classifier (heads on the way included).

        A head's exit test (``decide``) is one more launched kernel; on a GPU each exit reached also costs
        the host's read of its score (``sync_ms``: a device-to-host copy and a synchronise, two launch
        overheads), since the next stage is launched only once the host knows the sample goes on.
        """
        return self.table.exit_costs(subnets)

    @property
    def decide_ms(self) -> float:
        """ms of one exit test on the final logits (a cascade scout's decision): one more launched kernel."""
        from predictors.kernels import to_kernel

        n = self.arch_num_classes
        k = to_kernel({"name": "scout.decide", "op": "decide", "cin": n, "cout": n, "kernel": 1, "stride": 1,
                       "groups": 1, "h_in": 1, "h_out": 1, "macs": 0}, bytes_per_element=self.bytes_per_element)
        return self._ms([k]) + self.sync_ms + self.invoke_ms

    def kernels_ms(self, kernels: Sequence[Kernel]) -> float:
        """Latency of one inference of any whole network's kernels on this device (e.g. a reference model), in ms."""
        return self._ms(kernels) + self.invoke_ms

    def describe(self) -> dict[str, Any]:
        res = np.array([r["residual_pct"] for r in self.fit_rows])
        return {
            "method": "roofline",
            "device": self.device,
            "precision": self.precision,
            "power_mode": self.power_mode,
            "peak_ops_per_s": self.peak_ops,
            "bandwidth_bytes_per_s": self.bandwidth,
            "params": {**asdict(self.params), "overhead_us": self.params.overhead_s * 1e6,
                       "invoke_us": self.params.invoke_s * 1e6, "exit_sync_us": self.sync_ms * 1e3},
            "overhead_prior_us": self.profile.kernel_overhead.value,
            "invoke_prior_us": None if self.profile.invoke_overhead is None else self.profile.invoke_overhead.value,
            "calibration": self.fit_rows,
            "quality": {"n_points": len(self.fit_rows), "max_abs_residual_pct": float(np.abs(res).max()),
                        "rms_residual_pct": float(np.sqrt(np.mean(res ** 2)))},
        }


def roofline_predictor(profile: DeviceProfile, arch_config: CostedConfig, *,
                       power_mode: str | None = None, batch: int = 1) -> RooflinePredictor:
    """Fit the profile's roofline (on all its points, whatever their mode) and bind it to ``arch_config``
    at ``power_mode`` (default: the profile's default mode; peak compute scales with its clocks and units),
    for ``batch`` images a call (ms are per batch)."""
    params, rows = fit_roofline(profile)
    if batch < 1:
        raise CalibrationError(f"batch must be >= 1 image, but got {batch}; pass e.g. --batch 8.")
    return RooflinePredictor(profile, arch_config, params, rows, power_mode=power_mode, batch=batch)
