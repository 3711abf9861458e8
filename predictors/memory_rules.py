"""What both memory models share: the liveness rules, the estimate they return, and precision sizes.

:class:`LivenessRules` says which runtime behaviours the liveness count models (the rules of
:mod:`predictors.memory`'s module doc); :func:`onnxruntime_cpu_rules` and :func:`rules_for_device` pick
them for this machine or a device profile. :class:`MemoryEstimate` is what both
:func:`predictors.memory_onnx.onnx_memory` and :func:`predictors.memory.subnet_memory` return.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from predictors.roofline import BYTES_PER_ELEMENT
from supernet.errors import ConfigError

__all__ = ["LivenessRules", "MemoryEstimate", "mlas_channel_block", "onnxruntime_cpu_rules",
           "rules_for_device"]


@dataclass(frozen=True, slots=True)
class LivenessRules:
    """Which runtime behaviours the liveness count models (see :mod:`predictors.memory`, rules 2, 3 and 5)."""

    inplace_activations: bool = True
    fuse_conv_add: bool = True
    channel_block: int = 1  # 1: no blocked layout

    def __post_init__(self) -> None:
        if not (isinstance(self.channel_block, int) and self.channel_block >= 1):
            raise ConfigError(f"`channel_block` must be an integer >= 1 (1: no blocked layout), but got "
                              f"{self.channel_block!r}.")


def mlas_channel_block() -> int:
    """onnxruntime CPU's NCHWc channel block on this machine, as MLAS picks it (``platform.cpp``): 16 with
    AVX-512F, 8 on other x86-64 CPUs, 1 (no blocked layout) elsewhere."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return 1
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return 16 if "avx512f" in flags.split() else 8


def onnxruntime_cpu_rules() -> LivenessRules:
    """The rules as onnxruntime's CPU execution provider runs a model on this machine (rule 5 included)."""
    return LivenessRules(channel_block=mlas_channel_block())


def rules_for_device(profile: Any) -> LivenessRules:
    """The rules for a device profile: this machine's onnxruntime layout for a measured onnxruntime CPU
    profile (``host``: it runs here), the portable rules for every other device (whose CPU's NCHWc block,
    or whose runtime's layout, is not in its profile)."""
    runtime = str(getattr(profile, "runtime", ""))
    if getattr(profile, "measured", False) and runtime.startswith("onnxruntime") and profile.kind == "cpu":
        return onnxruntime_cpu_rules()
    return LivenessRules()


def _up(channels: int, block: int) -> int:
    return -(-channels // block) * block


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Memory of one model or subnet, in bytes."""

    weight_bytes: int
    input_bytes: int  # graph inputs: the caller's buffers, live for the whole run
    arena_bytes: int  # peak of live intermediate and output tensors (what the runtime allocates)
    peak_at: str  # the node (ONNX) or layer (layer table) where the arena peak occurs

    @property
    def activation_bytes(self) -> int:
        """Peak of live activations, graph inputs included."""
        return self.input_bytes + self.arena_bytes

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes

    def to_dict(self) -> dict[str, int | str]:
        return {**asdict(self), "activation_bytes": self.activation_bytes, "total_bytes": self.total_bytes}


def _precision_bytes(precision: str | None) -> int | None:
    if precision is None:
        return None
    if precision not in BYTES_PER_ELEMENT:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(BYTES_PER_ELEMENT)}.")
    return BYTES_PER_ELEMENT[precision]
