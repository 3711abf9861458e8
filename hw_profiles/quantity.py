"""A cited number: value, unit, source and (when computed) the formula behind it."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

# Every unit a profile may use. "TFLOP/s" and "TOP/s" both mean 1e12 operations per second.
UNITS: frozenset[str] = frozenset(
    {"TFLOP/s", "TOP/s", "GB/s", "GB", "W", "MHz", "us", "ms", "GMAC", "M", "count"}
)


class Frozen(BaseModel):
    """Base for every profile model: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def nonempty(value: str, field: str, fix: str) -> str:
    """``value`` stripped; a ``ValueError`` naming ``field`` and the fix when it is blank."""
    value = value.strip()
    if not value:
        raise ValueError(f"{field} must not be empty; {fix}")
    return value


class Quantity(Frozen):
    """A positive number with its unit and where it comes from.

    ``derived`` holds the formula when the number is computed from others, e.g.
    ``"peak_int8_dense = 170 sparse TOPS / 2"``; ``source`` still names where the inputs come from.

    Example:
        >>> Quantity(value=204.8, unit="GB/s", source="Jetson AGX Orin technical brief").value
        204.8
    """

    value: float = Field(strict=True)
    unit: str
    source: str
    derived: str | None = None

    @field_validator("value")
    @classmethod
    def _finite_positive(cls, v: float) -> float:
        if not math.isfinite(v) or v <= 0:
            raise ValueError(
                f"value must be finite and > 0, got {v!r}; give the number in the stated unit "
                "(e.g. 204.8 with unit GB/s)"
            )
        return v

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, v: str) -> str:
        if v not in UNITS:
            raise ValueError(f"unit {v!r} is not a known unit; use one of: {', '.join(sorted(UNITS))}")
        return v

    @field_validator("source")
    @classmethod
    def _has_source(cls, v: str) -> str:
        return nonempty(v, "source", "cite a URL or a document title with its page/table/section")

    @field_validator("derived")
    @classmethod
    def _is_formula(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = nonempty(v, "derived", "write the formula, e.g. 'peak = cores * clock * flops_per_cycle'")
        if "=" not in v:
            raise ValueError(
                f"derived must be a formula containing '=', got {v!r}; "
                "write it as 'name = expression', e.g. 'latency = 1000 / throughput'"
            )
        return v


def expect_unit(q: Quantity, allowed: tuple[str, ...], field: str) -> Quantity:
    """Raise a ``ValueError`` naming ``field`` unless ``q.unit`` is one of ``allowed``."""
    if q.unit not in allowed:
        want = " or ".join(repr(u) for u in allowed)
        raise ValueError(f"{field}.unit must be {want}, got {q.unit!r}; convert the value to {allowed[0]}")
    return q
