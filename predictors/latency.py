"""Latency predictors: one protocol, one factory, one method per kind of device profile.

* published profiles (``measured: false``, e.g. ``jetson-orin``): a roofline fitted to the
  profile's calibration points (:mod:`predictors.roofline`);
* measured profiles (``measured: true``, e.g. ``host``): a per-block lookup table timed on this
  machine and fitted to whole measured subnets (:mod:`predictors.host_latency`), cached on disk.

Example::

    pred = latency_predictor("jetson-orin", PRESETS["cifar-default"])
    pred.predict_ms([space.smallest(), space.largest()])   # -> array([0.205, 0.210])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hw_profiles import DeviceProfile, load_profile
from predictors.errors import CalibrationError
from predictors.host_latency import host_predictor
from predictors.roofline import roofline_predictor
from predictors.units import cache_root, check_costed
from supernet.space import SubnetConfig


@runtime_checkable
class LatencyPredictor(Protocol):
    """What the search needs from a latency model."""

    device: str

    def predict_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Predicted batch-1 latency of each subnet on ``device`` with its exits off, in milliseconds."""
        ...

    def predict_exit_ms(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, E + 1)`` ms of leaving at each exit, then at the final classifier (one column without exits)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Method, fitted parameters and calibration quality (JSON-serialisable)."""
        ...


def latency_predictor(device: str | Path | DeviceProfile, arch_config: Any, *, cache_dir: Path | None = None,
                      seed: int = 0, progress: Callable[[str, int, int], None] | None = None,
                      n_calibration: int = 60, rounds: int = 5, power_mode: str | None = None,
                      batch: int = 1) -> LatencyPredictor:
    """The latency predictor for ``device`` (profile name, YAML path or profile) and ``arch_config``.

    A measured device is timed here once (≲ 60 s for ``cifar-default``, a few seconds for
    ``tiny``) and cached under ``cache_dir`` (default ``$DYNNAS_CACHE/latency`` or
    ``~/.cache/dynnas/latency``); later calls load the cache. ``n_calibration`` and ``rounds``
    size that measurement. ``power_mode`` picks a published device's mode (``--device jetson-orin:15W``);
    a measured device runs as it was measured. ``batch`` > 1 predicts ms per batch of that many images
    (published devices only: the host table is timed at batch 1).
    """
    profile = device if isinstance(device, DeviceProfile) else load_profile(device)
    config = check_costed(arch_config)
    if profile.measured:
        if batch != 1:
            raise CalibrationError(f"device '{profile.name}' is measured at batch 1 only; drop --batch, or search a "
                                   f"published device (see `dynnas devices`) at --batch {batch}.")
        folder = Path(cache_dir) if cache_dir is not None else cache_root() / "latency"
        return host_predictor(profile.name, config, folder, seed=seed, n_calibration=n_calibration, rounds=rounds,
                              progress=progress)
    return roofline_predictor(profile, config, power_mode=power_mode, batch=batch)
