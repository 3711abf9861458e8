"""Per-kernel roofline latency of any kernel list (e.g. from :mod:`predictors.onnx_graph`) on a device.

Published profiles (``measured: false``) use the roofline fitted on their calibration points
(:func:`predictors.roofline.fit_roofline`); a profile without calibration points (the nominal ``host``)
uses the fit's priors (:func:`predictors.profile_quality.prior_params`: the profile's cited overheads:
an uncalibrated estimate, flagged ``calibrated: false``). A profile made by ``dynnas profile`` gives
measured rates per op class and kernel size (``op_rates``), which replace the one peak and bandwidth
kernel by kernel (:func:`predictors.roofline.kernel_rates`). Every kernel is one launch
and pays the overhead; a kernel is ``compute``-, ``memory``- or ``overhead``-bound by whichever of
its three times is largest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_profiles import DeviceProfile
from predictors.errors import CalibrationError
from predictors.kernels import Kernel
from predictors.profile_quality import prior_params
from predictors.roofline import BYTES_PER_ELEMENT, RooflineParams, fit_roofline, kernel_rates


@dataclass(frozen=True, slots=True)
class KernelTime:
    kernel: Kernel
    us: float
    bound: str  # compute | memory | overhead


@dataclass(frozen=True)
class GraphLatency:
    """Predicted time of each kernel and the total, with the roofline that produced them."""

    kernels: tuple[KernelTime, ...]
    params: RooflineParams
    calibrated: bool
    precision: str
    power_mode: str | None
    peak_ops_per_s: float
    bandwidth_bytes_per_s: float

    @property
    def invoke_ms(self) -> float:
        """The runtime's fixed cost of one inference (not a kernel)."""
        return self.params.invoke_s * 1e3

    @property
    def total_ms(self) -> float:
        return sum(k.us for k in self.kernels) / 1e3 + self.invoke_ms

    def branch_ms(self) -> dict[str, float]:
        """ms per ``If`` branch label ("" is the unconditional part)."""
        out: dict[str, float] = {}
        for k in self.kernels:
            out[k.kernel.branch] = out.get(k.kernel.branch, 0.0) + k.us / 1e3
        return out


def device_params(profile: DeviceProfile) -> tuple[RooflineParams, bool]:
    """The profile's roofline parameters and whether they were fitted (``False``: priors only)."""
    if profile.calibration:
        return fit_roofline(profile)[0], True
    return prior_params(profile), False


def check_precision(profile: DeviceProfile, precision: str | None) -> str:
    """``precision`` (default: the profile's), checked against the device's peaks."""
    p = precision or profile.default_precision
    if p not in profile.peak_compute or p not in BYTES_PER_ELEMENT:
        raise CalibrationError(f"device '{profile.name}' has no peak for precision {p!r}; use one of: "
                               f"{', '.join(sorted(profile.peak_compute))}.")
    return p


def predict_graph(kernels: Sequence[Kernel], profile: DeviceProfile, *, precision: str | None = None,
                  power_mode: str | None = None, params: tuple[RooflineParams, bool] | None = None) -> GraphLatency:
    """Per-kernel µs of ``kernels`` on ``profile`` (``power_mode`` scales peak compute)."""
    precision = check_precision(profile, precision)
    mode = power_mode or profile.default_power_mode
    p, calibrated = params or device_params(profile)
    peak = profile.peak_ops_per_s(precision) * profile.compute_scale(mode)
    bw = profile.memory_bandwidth.value * 1e9
    peaks, bws = (np.broadcast_to(r, (len(kernels),)) for r in kernel_rates(profile, kernels, precision, mode))
    times = []
    for k, k_peak, k_bw in zip(kernels, peaks.tolist(), bws.tolist(), strict=True):  # plain floats, as before
        parts = {"compute": k.flops / (p.eta_c * k_peak), "memory": k.bytes / (p.eta_m * k_bw),
                 "overhead": p.overhead_s}
        roof = max(parts["compute"], parts["memory"])
        bound = "overhead" if p.overhead_s > roof else max(("compute", "memory"), key=parts.__getitem__)
        times.append(KernelTime(k, 1e6 * (roof + p.overhead_s), bound))
    return GraphLatency(tuple(times), p, calibrated, precision, mode, peak, bw)


def to_json(lat: GraphLatency, **meta: Any) -> dict[str, Any]:
    """A JSON-ready document: meta, totals, roofline and one row per kernel."""
    return {
        **meta,
        "precision": lat.precision, "power_mode": lat.power_mode, "total_ms": lat.total_ms,
        "branches_ms": lat.branch_ms(), "calibrated": lat.calibrated,
        "invoke_ms": lat.invoke_ms,
        "roofline": {"eta_c": lat.params.eta_c, "eta_m": lat.params.eta_m, "overhead_us": lat.params.overhead_s * 1e6,
                     "invoke_us": lat.params.invoke_s * 1e6,
                     "peak_ops_per_s": lat.peak_ops_per_s, "bandwidth_bytes_per_s": lat.bandwidth_bytes_per_s},
        "total_flops": sum(t.kernel.flops for t in lat.kernels), "total_bytes": sum(t.kernel.bytes for t in lat.kernels),
        "kernels": [{"name": t.kernel.name, "op": t.kernel.op, "out_shape": list(t.kernel.out_shape),
                     "flops": t.kernel.flops, "bytes": t.kernel.bytes, "macs": t.kernel.macs, "bound": t.bound,
                     "us": t.us, "branch": t.kernel.branch, "onnx_nodes": list(t.kernel.onnx_nodes)}
                    for t in lat.kernels],
    }
