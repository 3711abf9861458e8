"""Token reduction in the report: the token schedule of a ViT arch string, and what reduction bought a run.

A run's space has token reduction when it has token-schedule positions (``_t`` in its arch strings,
keep ratios per position, :mod:`supernet.space`). The tokens each block sees follow from the
supernet's config stored in run.json (``supernet.config``, rebuilt with
:func:`supernet.registry.config_from_dict`; :meth:`supernet.vit.ViTConfig.block_plan` does the
counting, CLS included), so no supernet weights are loaded. A run whose run.json lacks the config
shows the keep ratios instead.

Example::

    sched = TokenSchedule.of(run)           # None for a CNN run
    sched.text("w1-1_h1-1_x0_t1_m1")        # '17→13 (ToMe)'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reports.fronts import accuracy_latency_box, front_rows, hypervolume, objectives
from reports.run_folder import ExportedSubnet, RunRecord, parse_arch_in
from supernet.space import SearchSpace, SubnetConfig

METHOD_NAMES = {"tome": "ToMe", "topk": "top-k"}  # how the page names supernet.space.TOKEN_METHODS
NO_REDUCTION = "no reduction"


def method_label(method: str | None) -> str:
    """``"ToMe"``, ``"top-k"`` or ``"no reduction"`` (None: no block reduces)."""
    return NO_REDUCTION if method is None else METHOD_NAMES.get(method, method)


def schedule_text(tokens_in: list[int], method: str | None) -> str:
    """``"65→65→46→33 (ToMe)"``: the tokens entering each block (CLS included) and the method."""
    return "→".join(str(t) for t in tokens_in) + f" ({method_label(method)})"


@dataclass(frozen=True, eq=False)
class TokenSchedule:
    """How one run's arch strings reduce tokens: the searched space and, when run.json has it, the config."""

    space: SearchSpace
    config: Any = None  # supernet.vit.ViTConfig, or None when run.json stores no config
    _texts: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # arch → text (tips ask often)

    @classmethod
    def of(cls, run: RunRecord) -> TokenSchedule | None:
        """The run's schedule reader, or None when its space has no token reduction (every CNN run)."""
        space = run.search_space()
        if space is None or not space.n_token_positions:
            return None
        config = run.supernet_config()  # None for an unknown or older config: the keep ratios still read
        if config is not None and not hasattr(config, "block_plan"):
            config = None
        return cls(space=space, config=config)

    def parse(self, arch: str) -> SubnetConfig:
        """``arch`` in the searched space, or else in the supernet's own space (:func:`parse_arch_in`)."""
        return parse_arch_in(self.space, self.config, arch)

    def keep_ratios(self, arch: str) -> tuple[float, ...]:
        """Keep ratio per token-schedule position (1.0: that block keeps every token)."""
        return self.space.keep_ratios(self.parse(arch))

    def reduces(self, arch: str) -> bool:
        """Whether any position keeps less than every token."""
        return any(r < 1.0 for r in self.keep_ratios(arch))

    def method(self, arch: str) -> str | None:
        """The reduction method (``"topk"``/``"tome"``), or None when no position reduces."""
        return self.space.token_method(self.parse(arch)) if self.reduces(arch) else None

    def tokens_in(self, arch: str) -> list[int] | None:
        """Tokens entering each block, CLS included (None without the run's config)."""
        if self.config is None:
            return None
        sub = self.parse(arch)
        # the config's own space: its exit genes (a --exits off search drops them) and no cascade scout;
        # neither changes a token count
        own = self.config.space()
        sub = dataclasses.replace(sub, exits=(0,) * len(own.exit_positions), cascade=0)
        return [p.tokens_in for p in self.config.block_plan(sub)]

    def text(self, arch: str) -> str:
        """``"17→13 (ToMe)"``, or ``"keep 1→0.75 (ToMe)"`` without the run's config."""
        arch = str(arch)
        if arch not in self._texts:
            tokens = self.tokens_in(arch)
            if tokens is None:
                ratios = "→".join(f"{r:g}" for r in self.keep_ratios(arch))
                self._texts[arch] = f"keep {ratios} ({method_label(self.method(arch))})"
            else:
                self._texts[arch] = schedule_text(tokens, self.method(arch))
        return self._texts[arch]

    def exported_text(self, e: ExportedSubnet) -> str:
        """The text of an exported subnet, from its arch.json (``widths.tokens_per_block``) when it has one."""
        summary = (e.arch.model_extra or {}).get("widths") or {}
        pairs = summary.get("tokens_per_block")
        if pairs:
            return schedule_text([int(p[0]) for p in pairs], summary.get("token_method"))
        return self.text(e.arch.arch)

    def full_token_rows(self, evaluations: pd.DataFrame) -> pd.DataFrame:
        """The evaluations whose keep ratios are all 1.0: the subset of the space without token reduction."""
        if evaluations.empty:
            return evaluations
        keep = np.asarray([not self.reduces(a) for a in evaluations["arch"].astype(str)], dtype=bool)
        return evaluations[keep]

    def full_token_front(self, evaluations: pd.DataFrame) -> pd.DataFrame:
        """The Pareto front of the candidates without token reduction (feasible, distinct), fastest first."""
        rows = self.full_token_rows(evaluations)
        return front_rows(rows) if len(rows) else rows


def fastest_at(front: pd.DataFrame, accuracy: float) -> pd.Series | None:
    """The fastest row of ``front`` whose accuracy reaches ``accuracy`` (None when none does)."""
    ok = front[front["accuracy"].to_numpy(float) >= accuracy - 1e-12]
    return None if ok.empty else ok.loc[ok["latency_ms"].idxmin()]


def token_text(run: RunRecord, title: str, evaluations: pd.DataFrame) -> list[str]:
    """What token reduction bought one run: both fronts' hypervolume (the run's box) and the fastest latency
    at the best accuracy the front without reduction reaches. Empty for a run without token reduction."""
    sched = TokenSchedule.of(run)
    if sched is None:
        return []
    full, plain = front_rows(evaluations), sched.full_token_front(evaluations)
    n_plain = len(sched.full_token_rows(evaluations).drop_duplicates("subnet_id"))
    n_all = len(evaluations.drop_duplicates("subnet_id"))
    if plain.empty:
        return [f"{title}: none of the {n_all} evaluated candidates keeps every token, so there is no front "
                "without token reduction to compare with."]
    box = accuracy_latency_box(run.hv_reference)
    hv_all, hv_plain = hypervolume(objectives(full), box), hypervolume(objectives(plain), box)
    level = float(plain["accuracy"].max())
    a, b = fastest_at(full, level), fastest_at(plain, level)
    if a is None or b is None:  # cannot happen while ``full`` holds every feasible candidate ``plain`` holds
        return [f"{title}: hypervolume {hv_all:.4f} with token reduction against {hv_plain:.4f} without."]
    speed = float(b["latency_ms"]) / max(float(a["latency_ms"]), 1e-12)
    return [f"{title}: hypervolume {hv_all:.4f} for all candidates (token reduction allowed) against "
            f"{hv_plain:.4f} for the {n_plain} of {n_all} that keep every token (fronts of {len(full)} and "
            f"{len(plain)} subnets). At accuracy ≥ {100 * level:.2f} % (the best without reduction) the fastest "
            f"candidate takes {float(a['latency_ms']):.4g} ms ({a['arch']}, tokens {sched.text(a['arch'])}) and "
            f"the fastest that keeps every token {float(b['latency_ms']):.4g} ms ({b['arch']}): a speed-up of "
            f"×{speed:.2f} from token reduction."]
