"""Energy per inference from a device's power mode and the predicted latency, or from per-op energies.

Two methods; :meth:`EnergyPredictor.describe` names the one in use and its inputs.

* ``power_x_latency`` (every shipped profile): ``E [mJ] = P [W] × t [ms]``, with ``P`` the power
  mode's ``power_w`` and ``t`` the predicted latency. In the shipped profiles ``power_w`` is a
  *budget or rating*, not a measured draw (nvpmodel's budget on Jetson, a TDP share on the host, the
  USB-C supply rating on a Raspberry Pi), so these energies are upper bounds that rank subnets by
  latency within one mode and compare modes by their budgets. ``E`` is linear in ``t``, so with
  early exits the expected energy is ``P × Σ p_i·L_i``.

  *Static / idle split*: when an idle (static) power ``P_idle`` is known (``idle_power_w=`` here;
  a profile's power mode may carry an ``idle_power_w`` field, none of the shipped ones does),
  ``baseline="above_idle"`` gives the energy an inference adds over an idling device,
  ``(P - P_idle) × t``; ``baseline="total"`` (the default) keeps ``P × t``.
* ``per_op``: ``E = Σ_kernels (MACs × e_MAC + bytes moved × e_byte) + P_idle × t``: dynamic energy
  per multiply-accumulate and per byte of memory traffic (:class:`OpEnergy`, at one precision),
  plus the static power over the latency when ``P_idle`` is known. Used when an :class:`OpEnergy`
  is passed or the profile carries one (``op_energy``); it needs the subnets, and is vectorised
  through :class:`predictors.units.UnitTable` (the same kernels and bytes as the latency roofline).

Example::

    energy = EnergyPredictor(load_profile("jetson-orin"), "15W")
    energy.predict_mj(latency.predict_ms(subnets))     # mJ per inference
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from hw_profiles import DeviceProfile, load_profile, parse_device
from predictors.errors import CalibrationError
from predictors.roofline import BYTES_PER_ELEMENT
from predictors.units import UnitTable
from supernet.cost import CostedConfig, check_costed
from supernet.space import SubnetConfig

__all__ = ["EnergyPredictor", "OpEnergy"]

Baseline = Literal["total", "above_idle"]


@dataclass(frozen=True, slots=True)
class OpEnergy:
    """Dynamic energy per operation at one precision: picojoules per MAC and per byte of memory traffic."""

    pj_per_mac: float
    pj_per_byte: float
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("pj_per_mac", "pj_per_byte"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise CalibrationError(f"`{name}` must be a finite number >= 0 (picojoules), but got {v!r}.")


def _number(q: object) -> float:
    """A profile figure (a ``Quantity`` or a plain number) as a float."""
    return float(getattr(q, "value", q))  # type: ignore[arg-type]


def _profile_op_energy(profile: DeviceProfile) -> OpEnergy | None:
    op = getattr(profile, "op_energy", None)
    if op is None:
        return None
    return OpEnergy(_number(op.pj_per_mac), _number(op.pj_per_byte), str(getattr(op, "source", "profile")))


class EnergyPredictor:
    """Energy per inference on one device in one power mode (see the module doc for the methods).

    ``arch_config`` is needed for ``per_op`` only. ``batch``: latencies given are per call of
    ``batch`` images (as a batched latency predictor returns them); energies are per image.
    ``power_w`` overrides the mode's figure (a measured draw); a mode whose profile publishes none
    (``power_w`` left out, e.g. ``xeon-8481c``) needs it, see :meth:`supports`.
    """

    def __init__(self, profile: DeviceProfile, power_mode: str | None = None, *,
                 arch_config: CostedConfig | None = None, op_energy: OpEnergy | None = None,
                 idle_power_w: float | None = None, baseline: Baseline = "total", precision: str | None = None,
                 batch: int = 1, power_w: float | None = None) -> None:
        self.profile = profile
        self.mode = profile.power_mode(power_mode)  # ProfileError naming the known modes
        self.power_mode = self.mode.name
        if power_w is not None:
            if not (math.isfinite(power_w) and power_w > 0):
                raise CalibrationError(f"power_w must be a finite number of watts > 0, but got {power_w!r}.")
            self.power_w, self.power_source = float(power_w), "given (power_w=)"
        elif self.mode.power_w is not None:
            self.power_w, self.power_source = float(self.mode.power_w.value), self.mode.power_w.source
        else:
            with_power = [m.name for m in profile.power_modes if m.power_w is not None]
            hint = f"use a mode with one ({', '.join(with_power)}), " if with_power else ""
            raise CalibrationError(f"device '{profile.name}' publishes no power figure for mode '{self.power_mode}', "
                                   f"so its energy cannot be predicted; {hint}pass power_w=<measured watts>, or drop "
                                   "the energy objective.")
        idle = idle_power_w if idle_power_w is not None else getattr(self.mode, "idle_power_w", None)
        self.idle_power_w = None if idle is None else _number(idle)
        if self.idle_power_w is not None and not (0 <= self.idle_power_w <= self.power_w):
            raise CalibrationError(f"idle power must be in [0, {self.power_w}] W (the mode's power), but got "
                                   f"{self.idle_power_w} W for {profile.name}:{self.power_mode}.")
        if baseline not in ("total", "above_idle"):
            raise CalibrationError(f"baseline must be 'total' or 'above_idle', but got {baseline!r}.")
        if baseline == "above_idle" and self.idle_power_w is None:
            raise CalibrationError(f"baseline 'above_idle' needs the idle power of {profile.name}:{self.power_mode}, "
                                   "which its profile does not give; pass idle_power_w=<watts> or use 'total'.")
        if batch < 1:
            raise CalibrationError(f"batch must be >= 1 image, but got {batch}.")
        self.baseline, self.batch = baseline, batch
        self.precision = precision or profile.default_precision
        if self.precision not in BYTES_PER_ELEMENT:
            raise CalibrationError(f"unknown precision {self.precision!r}; use one of {', '.join(BYTES_PER_ELEMENT)}.")
        self.op_energy = op_energy if op_energy is not None else _profile_op_energy(profile)
        self.method = "per_op" if self.op_energy is not None else "power_x_latency"
        self.table: UnitTable | None = None
        if self.op_energy is not None:
            if arch_config is None:
                raise CalibrationError("per-op energy needs the supernet's architecture config; pass arch_config=.")
            e = self.op_energy
            self.table = UnitTable.build(  # picojoules → millijoules: 1e-9
                check_costed(arch_config), lambda ks: 1e-9 * sum(k.macs * e.pj_per_mac + k.bytes * e.pj_per_byte
                                                                 for k in ks),
                bytes_per_element=BYTES_PER_ELEMENT[self.precision], batch=batch)

    @classmethod
    def from_device(cls, device: str | DeviceProfile, **kwargs: Any) -> EnergyPredictor:
        """From a ``--device`` value ``NAME[:MODE]`` (or a profile, a YAML path)."""
        if isinstance(device, DeviceProfile):
            return cls(device, kwargs.pop("power_mode", None), **kwargs)
        if ":" in str(device):
            profile, mode = parse_device(device)
            return cls(profile, mode, **kwargs)
        return cls(load_profile(device), kwargs.pop("power_mode", None), **kwargs)

    @staticmethod
    def supports(profile: DeviceProfile, power_mode: str | None = None) -> bool:
        """Whether ``power_mode`` (default: the profile's) has a power figure to cost energy with."""
        return profile.power_mode(power_mode).power_w is not None

    @property
    def static_w(self) -> float:
        """Power that runs during the latency on top of any per-op energy (W)."""
        if self.method == "per_op":
            return self.idle_power_w or 0.0
        return self.power_w - (self.idle_power_w or 0.0) if self.baseline == "above_idle" else self.power_w

    def _latency(self, latency_ms: np.ndarray | Sequence[float] | float) -> np.ndarray:
        t = np.asarray(latency_ms, dtype=float)
        if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
            bad = t[~np.isfinite(t) | (t < 0)].ravel()[0]
            raise CalibrationError(f"latencies must be finite and >= 0 ms, but got {bad}; pass the latency "
                                   "predictor's milliseconds.")
        return t

    def _dynamic(self, subnets: Sequence[SubnetConfig] | None, n: int, exits: bool) -> np.ndarray | float:
        if self.table is None:
            return 0.0
        if subnets is None or len(subnets) != n:
            raise CalibrationError(f"per-op energy needs the subnets the latencies are for: got "
                                   f"{'none' if subnets is None else len(subnets)} subnets for {n} latencies.")
        return self.table.exit_costs(subnets) if exits else self.table(subnets)

    def predict_mj(self, latency_ms: np.ndarray | Sequence[float] | float,
                   subnets: Sequence[SubnetConfig] | None = None) -> np.ndarray:
        """Energy per inference in millijoules for each predicted latency (ms per call of ``batch`` images).

        ``subnets`` (the ones the latencies belong to) are needed by the ``per_op`` method only.
        """
        t = self._latency(latency_ms)
        n = int(t.shape[0]) if t.ndim else 1
        return (self.static_w * t + self._dynamic(subnets, n, exits=False)) / self.batch

    def predict_exit_mj(self, latency_exit_ms: np.ndarray, subnets: Sequence[SubnetConfig] | None = None) -> np.ndarray:
        """``(n, E + 1)`` mJ of leaving at each exit, then at the final classifier, from the latency
        predictor's ``predict_exit_ms``; the expected energy is ``Σ p_i · E_i``."""
        t = self._latency(latency_exit_ms)
        if t.ndim != 2:
            raise CalibrationError(f"exit latencies must be an (n, E + 1) array, but got shape {t.shape}.")
        return (self.static_w * t + self._dynamic(subnets, t.shape[0], exits=True)) / self.batch

    def describe(self) -> dict[str, Any]:
        """The method, its formula and every input with its source (JSON-serialisable)."""
        formula = {"power_x_latency": "E_mJ = P_W * t_ms" if self.baseline == "total"
                   else "E_mJ = (P_W - P_idle_W) * t_ms",
                   "per_op": "E_mJ = 1e-9 * sum_kernels(MACs * pJ_per_MAC + bytes * pJ_per_byte)"
                             + (" + P_idle_W * t_ms" if self.idle_power_w else "")}[self.method]
        if self.batch > 1:
            formula += f" / {self.batch} (per image of a batch)"
        return {
            "method": self.method,
            "formula": formula,
            "device": self.profile.name,
            "power_mode": self.power_mode,
            "power_w": self.power_w,
            "power_source": self.power_source,
            "power_derived": self.mode.power_w.derived if self.mode.power_w is not None else None,
            "idle_power_w": self.idle_power_w,
            "baseline": self.baseline,
            "precision": self.precision,
            "batch": self.batch,
            "op_energy": asdict(self.op_energy) if self.op_energy is not None else None,
            "caveat": ("power_w is the mode's budget or rating, not a measured draw: the energies are upper "
                       "bounds, proportional to latency within a mode" if self.method == "power_x_latency"
                       else "per-op energies at one precision; memory traffic as the roofline counts it "
                            "(inputs, outputs and weights of every kernel)"),
        }
