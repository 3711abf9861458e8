"""The ``--device`` list and the ``--latency-budget`` of a search, as typed targets.

Example::

    targets = parse_devices("jetson-orin:15W,raspberry-pi-5")
    budgets = parse_latency_budgets("raspberry-pi-5=20", targets)  # {"jetson-orin:15W": None, "raspberry-pi-5": 20.0}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """One ``--device`` entry: what was written, its profile and power mode (None: the default)."""

    arg: str
    profile: Any
    power_mode: str | None

    @property
    def key(self) -> str:
        """``name`` or ``name:MODE``: how budgets and the deployment table name the device."""
        return self.profile.name + (f":{self.power_mode}" if self.power_mode else "")

    @property
    def folder(self) -> str:
        """The device's folder under ``devices/`` in a run over several devices."""
        return self.key.replace(":", "-")


def parse_devices(spec: str) -> list[Target]:
    """``--device``: one ``NAME[:MODE]`` (or profile file), or a comma list of distinct ones."""
    from hw_profiles import parse_device
    from supernet.errors import ConfigError

    items = [s.strip() for s in spec.split(",")] if "," in spec else [spec.strip()]
    if not any(items) or not all(items):
        raise ConfigError(f"--device got an empty device list or an empty entry ({spec!r}); pass one device or a "
                          "comma list of distinct ones, e.g. --device jetson-orin,raspberry-pi-5.")
    targets = []
    for item in items:
        profile, mode = parse_device(item)
        targets.append(Target(item, profile, None if mode == profile.default_power_mode else mode))
    keys = [t.key for t in targets]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ConfigError(f"--device lists {', '.join(dups)} more than once ({spec!r}); pass each device once.")
    return targets


def parse_latency_budgets(spec: str | None, targets: list[Target]) -> dict[str, float | None]:
    """``--latency-budget``: a number (the one device) or ``DEVICE=MS,…`` → ms per device key (None: no budget)."""
    from supernet.errors import ConfigError

    budgets: dict[str, float | None] = {t.key: None for t in targets}
    if spec is None:
        return budgets
    names = ", ".join(budgets)

    def ms(text: str, what: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise ConfigError(f"--latency-budget must be a positive number of ms{what}, but got {text.strip()!r}; "
                              "e.g. --latency-budget 1.5 or --latency-budget jetson-orin=0.15,raspberry-pi-5=20.")
        return value

    if "=" not in spec:
        if len(targets) > 1:
            raise ConfigError(f"--latency-budget {spec} does not say which of the {len(targets)} devices it is for; "
                              f"give one per device: --latency-budget {targets[0].key}={spec.strip()},…")
        budgets[targets[0].key] = ms(spec, "")
        return budgets
    by_name = {t.profile.name: t.key for t in targets}
    by_arg = {t.arg: t.key for t in targets}
    seen: set[str] = set()
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        key = name if name in budgets else by_arg.get(name) or by_name.get(name)
        if not sep or key is None:
            raise ConfigError(f"--latency-budget names device {name!r}, which is not in --device ({names}); give "
                              "budgets as DEVICE=MS for the listed devices, e.g. "
                              f"--latency-budget {targets[0].key}=1.5.")
        if key in seen:
            raise ConfigError(f"--latency-budget gives {key} more than one budget; pass one per device.")
        seen.add(key)
        budgets[key] = ms(value, f" for {key}")
    return budgets

