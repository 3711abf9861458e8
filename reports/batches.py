"""Batch sizes side by side: on each device and supernet family searched at more than one ``--batch`` (e.g.
jetson-orin at batch 1 and batch 8), each batch's Pareto front in per-image latency and how the choice of
subnet changes with the batch.

A run's batch is ``run.json["settings"]["batch"]``; its ``latency_ms`` is per batch, so the fronts here are
compared in per-image latency ``image_ms = latency_ms / batch``. A batch's front is the non-dominated union
of the combined fronts of its runs (:func:`reports.families.merged_front`; dividing by the batch keeps the
order). The common accuracy level is the best accuracy every batch's front reaches, so "the fastest subnet
reaching it" compares like with like. On a launch-bound device the front moves with the batch: the share of
the smallest batch's front (by ``subnet_id``) still on a larger batch's front shows how much. No
hypervolume: the per-image boxes of the batches differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports.families import FRONT_COLUMNS, device_label, family_of, merged_front, run_front
from reports.view import RunView

BATCH_COLUMNS = [*FRONT_COLUMNS, "batch", "image_ms"]  # latency_ms per batch (as stored), image_ms per image


def batch_of(view: RunView) -> int:
    """The images per inference a run was searched at (``--batch``, 1 by default)."""
    return int(view.run.settings.batch)


def batch_front(view: RunView) -> pd.DataFrame:
    """One run's combined front (:data:`BATCH_COLUMNS`) with its batch and per-image latency, fastest first."""
    f = run_front(view)
    b = batch_of(view)
    return f.assign(batch=b, image_ms=f["latency_ms"] / b)[BATCH_COLUMNS]


@dataclass(frozen=True, eq=False)
class BatchGroup:
    """The runs of one device and family, at at least two batch sizes, and each batch's front there."""

    device: str
    family: str
    views: list[RunView]
    fronts: dict[int, pd.DataFrame]  # batch → its merged front (:data:`BATCH_COLUMNS`), smallest batch first

    @property
    def label(self) -> str:
        return f"{self.device} ({self.family})"

    @property
    def smallest(self) -> int:
        return min(self.fronts)

    @property
    def level(self) -> float:
        """The common accuracy level: the best accuracy every batch's front reaches."""
        return min(float(f["accuracy"].max()) for f in self.fronts.values())

    def at_level(self, batch: int) -> pd.Series:
        """The subnet of ``batch``'s front with the lowest per-image latency whose accuracy reaches :attr:`level`."""
        f = self.fronts[batch]
        ok = f[f["accuracy"].to_numpy(float) >= self.level - 1e-12]
        return ok.loc[ok["image_ms"].idxmin()]

    def kept(self, batch: int) -> int:
        """How many of the smallest batch's front subnets (by ``subnet_id``) are also on ``batch``'s front."""
        return len(set(self.fronts[self.smallest]["subnet_id"]) & set(self.fronts[batch]["subnet_id"]))

    def table(self) -> pd.DataFrame:
        """One row per batch: its runs, front size, best accuracy, the fastest per-image latency and its images/s,
        the fastest per-image latency at the common accuracy (and that subnet, and whether the smallest batch
        picks it too) and how much of the smallest batch's front stays on this one."""
        b0, base = self.smallest, self.at_level(self.smallest)["arch"]
        n0 = len(self.fronts[b0])
        rows = []
        for b, f in self.fronts.items():
            fast, at = f.loc[f["image_ms"].idxmin()], self.at_level(b)
            rows.append({
                "batch": b, "runs": ", ".join(v.title for v in self.views if batch_of(v) == b),
                "front size": len(f), "best accuracy": float(f["accuracy"].max()),
                "fastest (ms/image)": float(fast["image_ms"]),
                "images/s (fastest)": 1000.0 / max(float(fast["image_ms"]), 1e-12),
                f"ms/image at accuracy ≥ {self.level:.4g}": float(at["image_ms"]),
                "subnet at that accuracy": at["arch"],
                f"same subnet as batch {b0}": "yes" if at["arch"] == base else "no",
                f"batch-{b0} front kept": f"{self.kept(b)} of {n0}",
                "share kept": self.kept(b) / n0,
            })
        return pd.DataFrame(rows)

    def text(self) -> str:
        """One sentence: the fastest subnet at the common accuracy at the smallest and the largest batch, and how
        many of the smallest batch's front subnets stay on the largest batch's front."""
        b0, b1 = self.smallest, max(self.fronts)
        a0, a1 = str(self.at_level(b0)["arch"]), str(self.at_level(b1)["arch"])
        pick = (f"changes from {a0} at batch {b0} to {a1} at batch {b1}" if a0 != a1
                else f"stays {a0} from batch {b0} to batch {b1}")
        return (f"On {self.device} ({self.family}), the fastest subnet at accuracy ≥ {100 * self.level:.2f} % {pick}; "
                f"{self.kept(b1)} of {len(self.fronts[b0])} batch-{b0} front subnets stay on the batch-{b1} front.")


def batch_groups(views: list[RunView]) -> list[BatchGroup]:
    """One group per (device, family) searched at more than one batch size, in order of first appearance."""
    by_key: dict[tuple[str, str], list[RunView]] = {}
    for v in views:
        by_key.setdefault((device_label(v), family_of(v)), []).append(v)
    out = []
    for (device, family), members in by_key.items():
        run_fronts = [batch_front(v) for v in members]
        fronts = {b: merged_front([f for v, f in zip(members, run_fronts, strict=True) if batch_of(v) == b])
                  for b in sorted({batch_of(v) for v in members})}
        fronts = {b: f for b, f in fronts.items() if not f.empty}
        if len(fronts) < 2:
            continue
        out.append(BatchGroup(device=device, family=family, views=members, fronts=fronts))
    return out
