"""Pydantic models of a device profile (schema version 1), validated on load."""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hw_profiles.errors import ProfileError
from hw_profiles.quantity import PRECISIONS, Frozen, Precision, Quantity, expect_unit, nonempty
from hw_profiles.reference import MIN_RESOLUTION, REFERENCE_MODELS

SCHEMA_VERSION = 1
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_PEAK_UNITS = ("TFLOP/s", "TOP/s")
# Op classes a profile may give a measured rate for (``op_rates``), and the unit of each: compute classes in
# FLOP/s, memory-bound ones in bytes/s. A key is the class (``dwconv``) or the class and a kernel size
# (``dwconv-k5``).
OP_RATE_UNITS = {"conv": _PEAK_UNITS, "dwconv": _PEAK_UNITS, "gemm": _PEAK_UNITS, "attention": _PEAK_UNITS,
                 "norm": ("GB/s",), "elementwise": ("GB/s",), "pool": ("GB/s",), "data": ("GB/s",)}
_OP_RATE_KEY = re.compile(r"^([a-z]+)(-k([1-9][0-9]?))?$")


class PowerMode(Frozen):
    """One power/clock setting of the device (an nvpmodel mode on Jetson).

    ``gpu_clock_mhz`` is the clock of the compute engine: the GPU for ``kind="gpu"``, the core
    clock for ``kind="cpu"``, the accelerator clock for ``kind="npu"``. ``compute_units`` is how many
    units are powered in this mode (GPU TPCs, CPU cores); peak compute scales with clock x units, see
    ``DeviceProfile.compute_scale``.

    ``power_w`` and ``gpu_clock_mhz`` may be left out where the vendor publishes no figure (say so in
    ``notes``; never guess one): a mode without a clock cannot be scaled against another, so only a
    profile with a single power mode may omit it.
    """

    name: str
    power_w: Quantity | None = None
    gpu_clock_mhz: Quantity | None = None
    cpu_clock_mhz: Quantity | None = None
    compute_units: Quantity | None = None
    notes: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return nonempty(v, "name", "name the mode as the device does, e.g. 'MAXN' or '30W'")

    @field_validator("power_w")
    @classmethod
    def _power_unit(cls, q: Quantity | None) -> Quantity | None:
        return None if q is None else expect_unit(q, ("W",), "power_w")

    @field_validator("gpu_clock_mhz", "cpu_clock_mhz")
    @classmethod
    def _clock_unit(cls, q: Quantity | None, info: ValidationInfo) -> Quantity | None:
        return None if q is None else expect_unit(q, ("MHz",), str(info.field_name))

    @field_validator("compute_units")
    @classmethod
    def _units_unit(cls, q: Quantity | None) -> Quantity | None:
        return None if q is None else expect_unit(q, ("count",), "compute_units")


class CalibrationPoint(Frozen):
    """A published, measured latency of a reference model on this device."""

    model: str
    resolution: int = Field(strict=True, gt=0)
    batch: int = Field(strict=True, ge=1)
    precision: Precision
    latency_ms: Quantity
    # "unstated": the source gives one latency figure without saying which statistic it is.
    statistic: Literal["median", "mean", "p10", "p90", "p99", "min", "unstated"] = "median"
    throughput: str | None = None
    runtime: str
    power_mode: str
    source: str
    notes: str = ""

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in REFERENCE_MODELS:
            known = ", ".join(sorted(REFERENCE_MODELS))
            raise ValueError(
                f"model {v!r} is not a reference model; use one of: {known} "
                "(or add it to hw_profiles.reference.REFERENCE_MODELS with its MACs and a source)"
            )
        return v

    @field_validator("resolution")
    @classmethod
    def _buildable(cls, v: int) -> int:
        if v < MIN_RESOLUTION:
            raise ValueError(f"resolution {v} is below {MIN_RESOLUTION}, the smallest input dynnas builds a reference "
                             f"network at; give the published input size (e.g. 224)")
        return v

    @field_validator("latency_ms")
    @classmethod
    def _latency_unit(cls, q: Quantity) -> Quantity:
        return expect_unit(q, ("ms",), "latency_ms")

    @field_validator("runtime", "power_mode")
    @classmethod
    def _text(cls, v: str, info: ValidationInfo) -> str:
        return nonempty(v, str(info.field_name), "fill it in")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        return nonempty(v, "source", "cite a URL or a document title with its page/table/section")


class DeviceProfile(Frozen):
    """Everything the latency predictors and the search need to know about one target device.

    ``peak_compute`` holds dense (no structured sparsity) peaks at the fastest power mode;
    ``measured=True`` marks profiles whose latency comes from the tool's own measurements.
    """

    schema_version: int = Field(strict=True)
    name: str
    display_name: str
    kind: Literal["gpu", "cpu", "npu"]
    runtime: str
    default_precision: Precision
    peak_compute: dict[Precision, Quantity]
    memory_bandwidth: Quantity
    memory_size: Quantity
    power_modes: tuple[PowerMode, ...] = Field(min_length=1)
    default_power_mode: str
    kernel_overhead: Quantity
    # The runtime's fixed cost of one inference (invoke, thread-pool wake, I/O copies), a prior the roofline fits;
    # absent: 0 and not fitted.
    invoke_overhead: Quantity | None = None
    calibration: tuple[CalibrationPoint, ...] = ()
    measured: bool = Field(strict=True)
    deploy: str
    notes: str = ""
    # Measured rates per op class (and kernel size) at ``default_precision`` (``dynnas profile`` writes them):
    # the roofline uses them in place of the one peak and bandwidth (see predictors.roofline.kernel_rates).
    op_rates: dict[str, Quantity] = Field(default_factory=dict)

    @field_validator("op_rates")
    @classmethod
    def _op_rates(cls, v: dict[str, Quantity]) -> dict[str, Quantity]:
        for key, q in v.items():
            m = _OP_RATE_KEY.match(key)
            if m is None or m.group(1) not in OP_RATE_UNITS:
                raise ValueError(f"op_rates key {key!r} must be an op class or class-k<size> (e.g. dwconv-k5) of: "
                                 f"{', '.join(OP_RATE_UNITS)}")
            expect_unit(q, OP_RATE_UNITS[m.group(1)], f"op_rates.{key}")
        return v

    def op_rate(self, op_class: str, kernel: int = 0) -> Quantity | None:
        """The measured rate of ``op_class`` at kernel size ``kernel`` (else of the class), or ``None``."""
        return self.op_rates.get(f"{op_class}-k{kernel}") or self.op_rates.get(op_class)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {v} is not supported; this dynnas reads schema_version "
                f"{SCHEMA_VERSION}: rewrite the file for version {SCHEMA_VERSION} or upgrade dynnas"
            )
        return v

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(f"name must be a lowercase slug like 'jetson-orin', got {v!r}")
        return v

    @field_validator("display_name", "runtime")
    @classmethod
    def _text(cls, v: str, info: ValidationInfo) -> str:
        return nonempty(v, str(info.field_name), "fill it in")

    @field_validator("peak_compute")
    @classmethod
    def _peaks(cls, v: dict[str, Quantity]) -> dict[str, Quantity]:
        if not v:
            raise ValueError(f"peak_compute must list at least one of {', '.join(PRECISIONS)}")
        for precision, q in v.items():
            expect_unit(q, _PEAK_UNITS, f"peak_compute.{precision}")
        return v

    @field_validator("memory_bandwidth")
    @classmethod
    def _bw_unit(cls, q: Quantity) -> Quantity:
        return expect_unit(q, ("GB/s",), "memory_bandwidth")

    @field_validator("memory_size")
    @classmethod
    def _size_unit(cls, q: Quantity) -> Quantity:
        return expect_unit(q, ("GB",), "memory_size")

    @field_validator("kernel_overhead")
    @classmethod
    def _overhead_unit(cls, q: Quantity) -> Quantity:
        return expect_unit(q, ("us",), "kernel_overhead")

    @field_validator("invoke_overhead")
    @classmethod
    def _invoke_unit(cls, q: Quantity | None) -> Quantity | None:
        return None if q is None else expect_unit(q, ("us",), "invoke_overhead")

    @field_validator("deploy")
    @classmethod
    def _deploy_template(cls, v: str) -> str:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as exc:
            raise ValueError(
                f"deploy is not a valid template ({exc}); escape literal braces as {{{{ }}}}"
            ) from None
        if fields != {"onnx"}:
            raise ValueError(
                f"deploy must use exactly the placeholder {{onnx}}, found {sorted(fields) or 'none'}; "
                "e.g. 'trtexec --onnx={onnx} --fp16'"
            )
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> DeviceProfile:
        modes = [m.name for m in self.power_modes]
        if len(set(modes)) != len(modes):
            raise ValueError(f"power_modes names must be unique, got {modes}; rename the duplicates")
        if self.default_precision not in self.peak_compute:
            raise ValueError(
                f"default_precision {self.default_precision!r} has no entry in peak_compute "
                f"({', '.join(self.peak_compute)}); add peak_compute.{self.default_precision} or change it"
            )
        unclocked = [m.name for m in self.power_modes if m.gpu_clock_mhz is None]
        if unclocked and len(modes) > 1:
            raise ValueError(
                f"power mode(s) {', '.join(unclocked)} have no gpu_clock_mhz, but the profile has {len(modes)} "
                "power modes and peak compute scales between modes by clock; cite each mode's clock or keep "
                "a single mode"
            )
        if self.default_power_mode not in modes:
            raise ValueError(
                f"default_power_mode {self.default_power_mode!r} names no power mode; use one of: "
                f"{', '.join(modes)}"
            )
        if not self.calibration and not self.measured:
            raise ValueError(
                "calibration is empty but measured is false; add at least one published "
                "calibration point or set measured: true for a self-measured device"
            )
        for i, point in enumerate(self.calibration):
            if point.precision not in self.peak_compute:
                raise ValueError(
                    f"calibration[{i}].precision {point.precision!r} has no entry in peak_compute "
                    f"({', '.join(self.peak_compute)}); add its peak or drop the point"
                )
            if point.power_mode not in modes:
                raise ValueError(
                    f"calibration[{i}].power_mode {point.power_mode!r} names no power mode; "
                    f"use one of: {', '.join(modes)}"
                )
        return self

    def __hash__(self) -> int:
        return hash(self.model_dump_json())

    def power_mode(self, name: str | None = None) -> PowerMode:
        """The power mode called ``name``, or the default mode when ``name`` is None."""
        name = self.default_power_mode if name is None else name
        for mode in self.power_modes:
            if mode.name == name:
                return mode
        known = ", ".join(m.name for m in self.power_modes)
        raise ProfileError(f"device {self.name!r} has no power mode {name!r}; use one of: {known}")

    def peak_ops_per_s(self, precision: str | None = None) -> float:
        """Dense peak in operations per second (1 MAC = 2 ops) at the fastest power mode."""
        precision = self.default_precision if precision is None else precision
        if precision not in self.peak_compute:
            known = ", ".join(self.peak_compute)
            raise ProfileError(
                f"device {self.name!r} has no peak for precision {precision!r}; use one of: {known}"
            )
        return self.peak_compute[precision].value * 1e12  # both TFLOP/s and TOP/s are 1e12 ops/s

    def compute_scale(self, mode: str | None = None) -> float:
        """Peak compute of ``mode`` relative to the fastest mode: clock x units over the maximum.

        A mode without ``compute_units`` counts as having as many as the fastest mode; a mode without
        ``gpu_clock_mhz`` (allowed only in a single-mode profile) has scale 1.
        """

        def capacity(m: PowerMode, units_max: float) -> float:
            units = m.compute_units.value if m.compute_units is not None else units_max
            clock = m.gpu_clock_mhz.value if m.gpu_clock_mhz is not None else 1.0
            return clock * units

        units_max = max((m.compute_units.value for m in self.power_modes if m.compute_units), default=1.0)
        best = max(capacity(m, units_max) for m in self.power_modes)
        return capacity(self.power_mode(mode), units_max) / best
