"""What ``dynnas profile`` is asked for and what it measured: the settings and result value objects.

Below the orchestration (:mod:`hw_profiles.measure`), so :mod:`hw_profiles.machine` and
:mod:`hw_profiles.profile_doc` use them without importing the module that runs the measurement.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import onnxruntime as ort

from hw_profiles.errors import ProfileError
from hw_profiles.schema import DeviceProfile
from hw_profiles.timing import FULL, QUICK, Protocol, Timing

# --provider names and the onnxruntime execution providers they stand for (first = the one asked for).
PROVIDERS: Mapping[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


class MeasurementError(ProfileError):
    """A profile cannot be measured or written as asked (bad provider, threads or output path)."""


@dataclass(frozen=True, kw_only=True)
class ProfileSettings:
    """What ``dynnas profile`` was asked for; validated on construction."""

    name: str
    provider: str = "cpu"
    threads: int = 1
    quick: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.threads, int) or self.threads < 1:
            raise MeasurementError(f"--threads must be >= 1, but got {self.threads}; pass e.g. --threads "
                                   f"{default_threads()} (this machine's CPUs).")
        check_provider(self.provider)

    @property
    def protocol(self) -> Protocol:
        return QUICK if self.quick else FULL

    @property
    def providers(self) -> tuple[str, ...]:
        return PROVIDERS[self.provider]


def default_threads() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_provider(provider: str) -> tuple[str, ...]:
    """The execution providers for ``--provider``; an error naming the known names or those this build has."""
    if provider not in PROVIDERS:
        import difflib

        match = difflib.get_close_matches(provider, list(PROVIDERS), n=1, cutoff=0.5)
        hint = f"; did you mean '{match[0]}'?" if match else "."
        raise MeasurementError(f"unknown provider '{provider}'{hint} Known: {', '.join(PROVIDERS)}.")
    wanted = PROVIDERS[provider][0]
    available = ort.get_available_providers()
    if wanted not in available:
        ours = [k for k, v in PROVIDERS.items() if v[0] in available]
        others = [p for p in available if p not in {v[0] for v in PROVIDERS.values()}]
        names = ", ".join([f"{k} ({PROVIDERS[k][0]})" for k in ours] + others)
        raise MeasurementError(
            f"provider '{provider}' needs {wanted}, which this onnxruntime {ort.__version__} build does not have; "
            f"available: {names}. Pass --provider {ours[0] if ours else 'cpu'}, or install an onnxruntime build "
            f"with {wanted} (e.g. onnxruntime-gpu).")
    return PROVIDERS[provider]


@dataclass(frozen=True)
class MicroFit:
    """What the micro-benchmarks give: the session's fixed cost, per-class overheads and rates."""

    session_us: float  # fixed cost of one session run (a)
    overhead_us: dict[str, float]  # per-kernel cost of a tiny op of each class (o_class); "if": per If node
    kernel_overhead_us: float  # median of overhead_us over SINGLE_KERNEL_CLASSES
    best: dict[str, dict[str, Any]]  # class -> best rate (FLOP/s or B/s) with the bench that reached it
    # "class" and "class-k<size>" -> median rate over the sized benches of that group, with their labels
    rates: dict[str, dict[str, Any]]
    peak_flops: float  # max over compute classes
    peak_class: str
    bandwidth: float  # elementwise bytes/s beyond the caches
    bandwidth_sizes: list[str]
    rows: list[dict[str, Any]]  # one per bench


@dataclass(frozen=True)
class ReferenceResult:
    model: str
    resolution: int
    ms: float
    timing: Timing
    finite: bool
    seconds: float


@dataclass(frozen=True)
class MeasuredProfile:
    """Everything one ``measure_profile`` call measured, and the profile document made from it."""

    settings: ProfileSettings
    machine: dict[str, Any]
    micro: MicroFit
    references: list[ReferenceResult]
    skipped: dict[str, str]  # reference model -> why it was not timed
    reference_ms: float
    spread: float
    seconds: float
    document: dict[str, Any]

    @property
    def profile(self) -> DeviceProfile:
        return DeviceProfile.model_validate(self.document)


