"""Comparisons across runs: the subnets each run chose, and algorithms by hypervolume over seeds.

Runs are seeds of one search problem when everything but the seed, the algorithms and the output
folder agrees (:meth:`reports.run_folder.RunRecord.problem_key`). Their hypervolume curves are
recomputed from ``evaluations.csv`` in one box: the runs' shared box when they all stored the
same one (then the curves are exactly those of ``history.csv``), else the union of their boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.fronts import hypervolume_trace, union_box
from reports.run_folder import HVReference, choose_subnets, combined_front, parse_arch_in
from reports.view import RunView

WIDTH_GAP = 0.15  # per-block mean width differences at least this large are named in the comparison


# ---- the chosen subnets ----------------------------------------------------------------------
def chosen(view: RunView) -> pd.DataFrame:
    """The subnets a run chose: its exported ones, else 5 spread along its combined front."""
    if view.exported:
        return pd.DataFrame([{"arch": e.arch.arch, "subnet_id": e.arch.subnet_id, "macs": e.arch.macs,
                              "accuracy": e.verify.predicted_accuracy, "latency_ms": e.verify.predicted_latency_ms}
                             for e in view.exported])
    return choose_subnets(combined_front(view.folder), 5)


def _mean_widths(view: RunView, archs: pd.Series) -> list[float]:
    space, config = view.space, view.run.supernet_config()
    fr = np.asarray([space.width_fractions(parse_arch_in(space, config, a)) for a in archs], dtype=float)
    return fr.mean(axis=0).tolist()


def compare_text(views: list[RunView]) -> list[str]:
    """Sentences on how the runs' chosen subnets differ: widths per block, MACs, latency, overlap."""
    picks = [chosen(v) for v in views]
    out = []
    for v, c in zip(views, picks, strict=True):
        best = c.loc[c["accuracy"].idxmax()]
        out.append(f"{v.title}: {len(c)} chosen subnets, {c['macs'].min() / 1e6:.3g}–{c['macs'].max() / 1e6:.3g} "
                   f"MMACs, predicted {c['latency_ms'].min():.4g}–{c['latency_ms'].max():.4g} ms on {v.device}; "
                   f"most accurate {best['arch']} (predicted {best['accuracy']:.3f}, {best['macs'] / 1e6:.3g} MMACs, "
                   f"{best['latency_ms']:.4g} ms).")
    spaces = [v.space for v in views]
    same_space = all(s is not None and s == spaces[0] for s in spaces)
    base, base_c = views[0], picks[0]
    for v, c in zip(views[1:], picks[1:], strict=True):
        if same_space:
            wa = _mean_widths(base, base_c["arch"])
            wb = _mean_widths(v, c["arch"])
            gaps = [(i, a, b) for i, (a, b) in enumerate(zip(wa, wb, strict=True)) if abs(a - b) >= WIDTH_GAP]
            profile = (f"mean width per block (block 1…{len(wa)}): {base.device} "
                       f"{'/'.join(f'{x:.2f}' for x in wa)}, {v.device} {'/'.join(f'{x:.2f}' for x in wb)}")
            if gaps:
                detail = "; ".join(f"block {i + 1} is {'wider' if b > a else 'narrower'} on {v.device} "
                                   f"({b:.2f} vs {a:.2f})" for i, a, b in gaps)
                out.append(f"{v.device} vs {base.device}: {profile}. {detail}.")
            else:
                out.append(f"{v.device} vs {base.device}: {profile}; no block differs by {WIDTH_GAP} or more.")
        else:
            out.append(f"{v.title} and {base.title} search different spaces; only MACs and latency compare.")
        shared = sorted(set(c["subnet_id"]) & set(base_c["subnet_id"]))
        ratio = c["macs"].median() / max(1.0, float(base_c["macs"].median()))
        out.append(f"{v.device} vs {base.device}: {len(shared)} of the chosen subnets are common"
                   f"{' (' + ', '.join(c.set_index('subnet_id').loc[shared, 'arch']) + ')' if shared else ''}; "
                   f"the median MACs of {v.device}'s choices are {ratio:.2f}× those of {base.device}'s.")
    return out


# ---- algorithms over seeds -------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SeedGroup:
    """Runs of one search problem with different seeds, and each algorithm's hypervolume over them."""

    label: str
    views: list[RunView]
    box: HVReference
    shared_box: bool  # every run stored this same box (else: the union of their boxes)
    curves: pd.DataFrame  # algorithm, seed, run, n_evals, hypervolume: one curve per (run, algorithm)

    @property
    def seeds(self) -> list[int]:
        return [v.run.seed for v in self.views]

    def spread(self) -> pd.DataFrame:
        """Per algorithm and checkpoint: mean, std, min, max of the hypervolume over the runs, and how many."""
        g = self.curves.groupby(["algorithm", "n_evals"])["hypervolume"]
        out = g.agg(["mean", "std", "min", "max", "count"]).reset_index()
        out["std"] = out["std"].fillna(0.0)
        return out

    def summary(self) -> pd.DataFrame:
        """One row per algorithm: seeds, and the hypervolume at a quarter, half and all of the budget
        (mean ± std over seeds, [min, max])."""
        budget = self.views[0].run.settings.budget
        spread = self.spread()
        rows = []
        for alg, s in spread.groupby("algorithm", sort=True):
            row: dict[str, object] = {"algorithm": alg, "seeds": ", ".join(
                str(x) for x in sorted(self.curves.loc[self.curves["algorithm"] == alg, "seed"].unique()))}
            for label, n in (("¼ budget", budget // 4), ("½ budget", budget // 2), ("full budget", budget)):
                at = s[s["n_evals"] <= max(n, 1)]
                if at.empty:
                    row[f"HV at {label}"] = "—"
                    continue
                r = at.iloc[-1]
                row[f"HV at {label}"] = (f"{r['mean']:.4f} ± {r['std']:.4f} [{r['min']:.4f}, {r['max']:.4f}] "
                                         f"@{int(r['n_evals'])}")
            rows.append(row)
        return pd.DataFrame(rows)

    def ranking(self) -> str:
        """The algorithms by mean final hypervolume, best first, as one sentence."""
        final = self.spread().sort_values("n_evals").groupby("algorithm").tail(1)
        final = final.sort_values("mean", ascending=False, kind="stable")
        parts = [f"{r.algorithm} {r.mean:.4f} ± {r.std:.4f}" for r in final.itertuples(index=False)]
        return (f"{self.label}: final hypervolume over seeds {', '.join(map(str, self.seeds))} (mean ± std): "
                + ", ".join(parts) + ".")


def _label(view: RunView) -> str:
    s = view.run.settings
    text = f"{s.device}{':' + s.power_mode if s.power_mode else ''}, {s.budget} evaluations"
    if s.latency_budget_ms is not None:
        text += f", latency ≤ {s.latency_budget_ms:g} ms"
    if s.batch != 1:
        text += f", batch {s.batch}"
    return text


def seed_groups(views: list[RunView], *, min_runs: int = 2) -> list[SeedGroup]:
    """The groups of at least ``min_runs`` runs that are seeds of one search problem, in order of first
    appearance, each with its hypervolume curves recomputed in one box."""
    groups: dict[tuple[object, ...], list[RunView]] = {}
    for v in views:
        groups.setdefault(v.run.problem_key(), []).append(v)
    out = []
    for members in groups.values():
        if len(members) < min_runs:
            continue
        refs = [v.run.hv_reference for v in members]
        shared = all(r.same_box(refs[0]) for r in refs)
        box = refs[0] if shared else union_box(refs)
        checkpoints = sorted({int(n) for v in members for n in v.history["n_evals"]})
        rows = []
        for v in members:
            for alg, ev in v.evaluations.groupby("algorithm", sort=True):
                hv = hypervolume_trace(ev, checkpoints, box)
                rows += [(str(alg), v.run.seed, v.title, n, h) for n, h in zip(checkpoints, hv, strict=True)
                         if n <= len(ev)]
        curves = pd.DataFrame(rows, columns=["algorithm", "seed", "run", "n_evals", "hypervolume"])
        out.append(SeedGroup(label=_label(members[0]), views=members, box=box, shared_box=shared, curves=curves))
    return out
