"""Supernet families side by side: on each device searched with more than one family (e.g. a CNN and a ViT
run on jetson-orin), each family's Pareto front and how the families compare at a common accuracy.

A run's family is ``run.json["supernet"]["family"]`` (the search space's ``family`` when that is
missing). A family's front on a device is the non-dominated union of the combined fronts of its runs
there. The common accuracy level is the best accuracy the weakest family reaches: every family has a
subnet at least that accurate, so "the fastest subnet reaching it" compares like with like.
Hypervolumes are taken in the union of the runs' boxes (:func:`reports.fronts.union_box`), so they
compare on one scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports.fronts import accuracy_latency_box, hypervolume, non_dominated, objectives, union_box
from reports.run_folder import HVReference
from reports.view import RunView

FRONT_COLUMNS = ["family", "run", "subnet_id", "arch", "accuracy", "latency_ms"]


def family_of(view: RunView) -> str:
    """The supernet family a run searched (``"cnn"``, ``"vit"``, …)."""
    if view.run.supernet.family:
        return str(view.run.supernet.family)
    return str(view.space.family) if view.space is not None else "cnn"


def device_label(view: RunView) -> str:
    """The device a run was searched for, with its power mode when one was given (``jetson-orin:15W``)."""
    mode = view.run.settings.power_mode
    return f"{view.device}:{mode}" if mode else view.device


def run_front(view: RunView) -> pd.DataFrame:
    """One run's combined front (:data:`FRONT_COLUMNS`), fastest first."""
    p = view.pareto[view.pareto["combined"].astype(bool)].drop_duplicates("subnet_id")
    out = pd.DataFrame({"family": family_of(view), "run": view.title, "subnet_id": p["subnet_id"].astype(str),
                        "arch": p["arch"].astype(str), "accuracy": p["accuracy"].astype(float),
                        "latency_ms": p["latency_ms"].astype(float)}, columns=FRONT_COLUMNS)
    return out.sort_values(["latency_ms", "accuracy"], ascending=[True, False], kind="stable").reset_index(drop=True)


def merged_front(fronts: list[pd.DataFrame]) -> pd.DataFrame:
    """The non-dominated union of several fronts, fastest first; a subnet two runs predict alike counts once
    (with the first run)."""
    rows = pd.concat(fronts, ignore_index=True).drop_duplicates(["subnet_id", "accuracy", "latency_ms"])
    return rows.iloc[non_dominated(objectives(rows))].reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class FamilyGroup:
    """The runs of one device, of at least two families, and each family's front there."""

    device: str
    views: list[RunView]
    run_fronts: list[pd.DataFrame]  # one per view, in order (:func:`run_front`)
    fronts: dict[str, pd.DataFrame]  # family → its merged front, families in order of first appearance
    box: HVReference

    @property
    def level(self) -> float:
        """The common accuracy level: the best accuracy the weakest family reaches."""
        return min(float(f["accuracy"].max()) for f in self.fronts.values())

    @property
    def weakest(self) -> str:
        return min(self.fronts, key=lambda k: float(self.fronts[k]["accuracy"].max()))

    def at_level(self, family: str) -> pd.Series:
        """The fastest subnet of ``family``'s front whose accuracy reaches :attr:`level`."""
        f = self.fronts[family]
        ok = f[f["accuracy"].to_numpy(float) >= self.level - 1e-12]
        return ok.loc[ok["latency_ms"].idxmin()]

    def table(self) -> pd.DataFrame:
        """One row per family: its runs, front size, best accuracy, fastest latency, the fastest latency at the
        common accuracy (and that subnet) and the hypervolume in the device's union box."""
        rows = []
        for fam, f in self.fronts.items():
            best, fast, at = f.loc[f["accuracy"].idxmax()], f.loc[f["latency_ms"].idxmin()], self.at_level(fam)
            rows.append({
                "family": fam, "runs": ", ".join(v.title for v in self.views if family_of(v) == fam),
                "front size": len(f), "best accuracy": float(best["accuracy"]),
                "fastest latency (ms)": float(fast["latency_ms"]),
                f"latency at accuracy ≥ {self.level:.4g} (ms)": float(at["latency_ms"]),
                "subnet at that accuracy": at["arch"],
                "hypervolume (union box)": hypervolume(objectives(f), self.box),
            })
        return pd.DataFrame(rows)

    def text(self) -> str:
        """One sentence: the families by their fastest latency at the common accuracy."""
        at = sorted(((fam, float(self.at_level(fam)["latency_ms"])) for fam in self.fronts), key=lambda t: t[1])
        (fast, lf), rest = at[0], at[1:]
        others = ", ".join(f"{fam} {lat:.4g} ms (×{lat / max(lf, 1e-12):.2f})" for fam, lat in rest)
        return (f"On {self.device}, at accuracy ≥ {100 * self.level:.2f} % (the best {self.weakest} reaches), "
                f"the fastest {fast} subnet takes {lf:.4g} ms; {others}.")


def family_groups(views: list[RunView]) -> list[FamilyGroup]:
    """One group per device that more than one family was searched on, in order of first appearance."""
    by_device: dict[str, list[RunView]] = {}
    for v in views:
        by_device.setdefault(device_label(v), []).append(v)
    out = []
    for device, members in by_device.items():
        if len({family_of(v) for v in members}) < 2:
            continue
        run_fronts = [run_front(v) for v in members]
        fronts = {fam: merged_front([f for v, f in zip(members, run_fronts, strict=True) if family_of(v) == fam])
                  for fam in dict.fromkeys(family_of(v) for v in members)}
        fronts = {fam: f for fam, f in fronts.items() if not f.empty}
        if len(fronts) < 2:
            continue
        refs = [accuracy_latency_box(v.run.hv_reference) for v in members]  # a third objective's axis dropped
        out.append(FamilyGroup(device=device, views=members, run_fronts=run_fronts, fronts=fronts,
                               box=union_box(refs)))
    return out
