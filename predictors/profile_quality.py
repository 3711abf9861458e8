"""How well a published profile's roofline predicts latencies it has not seen: leave-one-out.

For each calibration point, the roofline of :mod:`predictors.roofline` is refitted on the other
points (same priors, same optimiser) and predicts the held-out one; the report gives the number
of points and the median and maximum absolute error in percent. With a single point the refit
has no data and falls back to the priors alone (``PRIOR_ETA_C``, ``PRIOR_ETA_M`` and the
profile's ``kernel_overhead``), which is what the regularised least squares returns without data.

Example::

    q = profile_quality(load_profile("jetson-orin"))
    q.n_points, q.loo_median_abs_pct, q.confidence     # -> 4, 6.2, 'ok'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hw_profiles import CalibrationPoint, DeviceProfile
from predictors.roofline import (
    RooflineParams,
    fit_roofline,
    inference_seconds,
    invoke_prior_s,
    kernel_rates,
    point_kernels,
    prior_etas,
)

# Fewer published points than the roofline fits parameters (eta_c, eta_m, overhead, and invoke when the
# profile cites one: n_fitted) and they are not all pinned by data: the priors decide at least one of them,
# so the profile is reported "low" confidence whatever its leave-one-out error.
LOW_CONFIDENCE_MIN_POINTS = 3
# Points of a single network (e.g. ResNet-50 at batch 1 and 8) cannot tell compute-bound from
# launch-bound layers across network shapes, however many there are: also "low" below this many
# distinct reference models.
LOW_CONFIDENCE_MIN_MODELS = 2


@dataclass(frozen=True)
class ProfileQuality:
    """Leave-one-out quality of one profile's calibration (errors in percent, signed per point)."""

    device: str
    measured: bool
    n_points: int
    loo_median_abs_pct: float | None
    loo_max_abs_pct: float | None
    fit_max_abs_pct: float | None
    confidence: str  # "measured" | "low" | "ok"
    loss: str = "linear"
    points: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def point_ms(profile: DeviceProfile, point: CalibrationPoint, params: RooflineParams) -> float:
    """The roofline's latency (ms) for one calibration point with ``params``."""
    kernels = point_kernels(profile, point)
    return 1e3 * inference_seconds(kernels, *kernel_rates(profile, kernels, point.precision, point.power_mode), params)


def prior_params(profile: DeviceProfile) -> RooflineParams:
    """The roofline parameters the priors alone give (the fit of an empty calibration set)."""
    return RooflineParams(*prior_etas(profile), profile.kernel_overhead.value * 1e-6, invoke_prior_s(profile) or 0.0)


def fit_params(profile: DeviceProfile, points: tuple[CalibrationPoint, ...], *, loss: str = "linear") -> RooflineParams:
    """Roofline parameters fitted to ``points`` only (the priors when ``points`` is empty)."""
    if not points:
        return prior_params(profile)
    params, _ = fit_roofline(profile.model_copy(update={"calibration": tuple(points)}), loss=loss)
    return params


def calibrated_macs(profile: DeviceProfile) -> tuple[float, float] | None:
    """The smallest and largest network of the profile's calibration points, in MACs per image (``None``
    without points): the range in which its roofline is fitted rather than extrapolated."""
    if not profile.calibration:
        return None
    macs = [sum(k.macs for k in point_kernels(profile, pt)) / pt.batch for pt in profile.calibration]
    return float(min(macs)), float(max(macs))


def format_macs(macs: float) -> str:
    """``9.96 M``, ``1.82 G``: MACs in the unit that reads best."""
    return f"{macs / 1e9:.3g} G" if macs >= 1e9 else f"{macs / 1e6:.3g} M"


def range_warning(profile: DeviceProfile, lo_macs: float, hi_macs: float | None = None) -> str | None:
    """A one-line warning when networks of ``lo_macs``..``hi_macs`` MACs per image lie outside the profile's
    calibrated range (:func:`calibrated_macs`), else ``None``; self-measured profiles never warn."""
    rng = calibrated_macs(profile)
    hi_macs = lo_macs if hi_macs is None else hi_macs
    if rng is None or (lo_macs >= rng[0] and hi_macs <= rng[1]):
        return None
    these = format_macs(lo_macs) if lo_macs == hi_macs else f"{format_macs(lo_macs)}–{format_macs(hi_macs)}"
    return (f"warning: {profile.name} is calibrated on networks of {format_macs(rng[0])}–{format_macs(rng[1])} MACs; "
            f"{these} MACs lies outside, so its latency is extrapolated (see `dynnas devices`).")


def n_fitted(profile: DeviceProfile) -> int:
    """How many roofline parameters the profile's fit determines: 3, or 4 when it cites an invoke overhead."""
    return LOW_CONFIDENCE_MIN_POINTS + (profile.invoke_overhead is not None)


def confidence_of(profile: DeviceProfile) -> str:
    """``"measured"`` for self-measured profiles; ``"low"`` with fewer points than fitted parameters
    (:func:`n_fitted`) or under LOW_CONFIDENCE_MIN_MODELS distinct models; else ``"ok"``."""
    if profile.measured and not profile.calibration:
        return "measured"
    points = profile.calibration
    few = len(points) < n_fitted(profile) or len({p.model for p in points}) < LOW_CONFIDENCE_MIN_MODELS
    return "low" if few else "ok"


def profile_quality(profile: DeviceProfile, *, loss: str = "linear") -> ProfileQuality:
    """Leave-one-out errors of ``profile``'s roofline on its calibration points (see module doc)."""
    points = tuple(profile.calibration)
    if not points:
        return ProfileQuality(profile.name, profile.measured, 0, None, None, None, confidence_of(profile), loss)
    full = fit_params(profile, points, loss=loss)
    rows = []
    for i, pt in enumerate(points):
        held_out = fit_params(profile, points[:i] + points[i + 1:], loss=loss)
        measured = pt.latency_ms.value
        loo_ms, fit_ms = point_ms(profile, pt, held_out), point_ms(profile, pt, full)
        rows.append({"model": pt.model, "resolution": pt.resolution, "batch": pt.batch, "precision": pt.precision,
                     "power_mode": pt.power_mode, "runtime": pt.runtime, "measured_ms": measured,
                     "loo_predicted_ms": loo_ms, "loo_error_pct": 100 * (loo_ms / measured - 1),
                     "fit_predicted_ms": fit_ms, "fit_error_pct": 100 * (fit_ms / measured - 1)})
    loo = np.abs([r["loo_error_pct"] for r in rows])
    fit = np.abs([r["fit_error_pct"] for r in rows])
    return ProfileQuality(profile.name, profile.measured, len(points), float(np.median(loo)), float(loo.max()),
                          float(fit.max()), confidence_of(profile), loss, rows)
