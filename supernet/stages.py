"""A dynamic subnet as a chain of stages: what the segment runtime runs, one graph per stage.

A subnet with early exits (and/or a width-cascade scout) is cut where its *active* exits sit
(an enabled exit with a finite threshold). Each stage is a plain module returning a tuple:

* ``scout`` (a cascade only): image → ``(logits_scout, score_scout)``;
* ``segment<k>``: the image (first stage: normalisation and stem included) or the previous
  stage's hidden tensor → the blocks up to the next active exit → ``(hidden<k>, logits_exit<e>,
  score_exit<e>)``: the exit head runs in the same graph as the blocks it follows, so an exit
  costs no extra call;
* ``final``: the last hidden tensor (or the image, when no exit is active) → ``(logits,)``.

``score`` is :func:`supernet.early_exit.exit_score` of the stage's logits (higher = more
confident), computed inside the graph; a sample leaves at the first stage whose score reaches
that stage's threshold. Both families work through the same interface (``stem``, ``segments()``,
``exits``, ``head``/``pool``/``dropout``/``classifier``, ``mean``/``std``): a ViT's token
reduction stays inside its segments, its exits read the CLS token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from supernet.early_exit import EXIT_CRITERIA, exit_score
from supernet.errors import ConfigError, unknown

IMAGE = "image"
LOGITS = "logits"


@dataclass(frozen=True)
class ExitRule:
    """When a sample leaves at a stage: ``score >= threshold`` (``threshold`` None: always, the last stage)."""

    index: int  # the exit index reported for samples that leave here (numbering of ``exit_index``)
    logits: str
    score: str | None = None
    criterion: str | None = None
    temperature: float = 1.0
    threshold: float | None = None


@dataclass(frozen=True)
class Stage:
    """One graph of the chain: its module, the tensor names it reads and writes, and its exit rule."""

    name: str
    module: nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    exit: ExitRule
    blocks: tuple[int, ...] = field(default=())  # backbone blocks it runs (for costing)
    head: int | None = None  # the exit head it runs, if any


def _normalise(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (x - net.mean) / net.std


class _Scout(nn.Module):
    def __init__(self, scout: nn.Module, criterion: str, temperature: float) -> None:
        super().__init__()
        self.scout, self.criterion, self.temperature = scout.eval(), criterion, temperature
        self.eval()  # a deployment wrapper: a caller restoring "its" mode must not switch BN to batch statistics

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.scout(x)
        return logits, exit_score(logits, self.criterion, self.temperature)


class _Segment(nn.Module):
    """Blocks between two active exits; the first one normalises and runs the stem, an exiting one its head."""

    def __init__(self, net: nn.Module, parts: Sequence[nn.Module], *, first: bool, head: nn.Module | None,
                 criterion: str, temperature: float) -> None:
        super().__init__()
        self.net = net  # for the stem, normalisation and the final layers; only what runs is exported
        self.parts = nn.ModuleList(parts)
        self.first, self.exit_head = first, head
        self.criterion, self.temperature = criterion, temperature
        self.eval()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net.stem(_normalise(self.net, x)) if self.first else x
        for part in self.parts:
            h = part(h)
        return h

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self._run(x)
        if self.exit_head is None:  # the final stage
            n = self.net
            return (n.classifier(n.dropout(torch.flatten(n.pool(n.head(h)), 1))),)
        logits = self.exit_head(h)
        return h, logits, exit_score(logits, self.criterion, self.temperature)


def active_exits(mask: Sequence[int], thresholds: Sequence[float | None]) -> list[int]:
    """The exits a chain cuts at: enabled in ``mask`` with a finite threshold."""
    return [e for e, (m, t) in enumerate(zip(mask, thresholds, strict=True))
            if m and t is not None and math.isfinite(float(t))]


def build_stages(net: nn.Module, mask: Sequence[int], thresholds: Sequence[float | None], *,
                 criterion: str = "confidence", temperatures: Sequence[float] | None = None,
                 scout: nn.Module | None = None, scout_threshold: float | None = None,
                 scout_temperature: float = 1.0) -> list[Stage]:
    """The stage chain of a static subnet ``net`` with its exit policy (and optional cascade ``scout``).

    ``mask``, ``thresholds`` and ``temperatures`` have one entry per exit head of ``net``; exits that
    are off or have no finite threshold are not cut at. With a scout, exit indices are shifted by
    one (0 = the scout), as in :class:`supernet.early_exit.CascadeCNN`.
    """
    n = len(net.exits)
    temps = tuple(float(t) for t in (temperatures if temperatures is not None else (1.0,) * n))
    if len(mask) != n or len(thresholds) != n or len(temps) != n:
        raise ConfigError(f"a subnet with {n} exit heads needs {n} mask bits, thresholds and temperatures, but got "
                          f"{len(mask)}, {len(thresholds)} and {len(temps)}.")
    if criterion not in EXIT_CRITERIA:
        raise unknown("exit criterion", criterion, list(EXIT_CRITERIA))
    if any(not (t > 0 and math.isfinite(t)) for t in (*temps, scout_temperature)):
        raise ConfigError(f"exit temperatures must be positive and finite, but got {temps} / {scout_temperature}.")
    net = net.eval()
    shift = 0
    stages: list[Stage] = []
    if scout is not None and scout_threshold is not None and math.isfinite(float(scout_threshold)):
        stages.append(Stage("scout", _Scout(scout, criterion, scout_temperature), (IMAGE,),
                            ("logits_scout", "score_scout"),
                            ExitRule(0, "logits_scout", "score_scout", criterion, scout_temperature,
                                     float(scout_threshold))))
    if scout is not None:
        shift = 1
    on = set(active_exits(mask, thresholds))
    segments = net.segments()
    parts: list[nn.Module] = []
    blocks: list[int] = []
    start, source, k = 0, IMAGE, 0
    for module, e in segments:
        parts.append(module)
        end = start + len(_blocks_of(module))
        blocks.extend(range(start, end))
        start = end
        if e is not None and e in on:
            hidden = f"hidden{k}"
            seg = _Segment(net, parts, first=source == IMAGE, head=net.exits[e], criterion=criterion,
                           temperature=temps[e])
            rule = ExitRule(shift + e, f"logits_exit{e}", f"score_exit{e}", criterion, temps[e], float(thresholds[e]))
            stages.append(Stage(f"segment{k}", seg, (source,), (hidden, rule.logits, rule.score), rule,
                                tuple(blocks), e))
            parts, blocks, source, k = [], [], hidden, k + 1
    final = _Segment(net, parts, first=source == IMAGE, head=None, criterion=criterion, temperature=1.0)
    stages.append(Stage("final", final, (source,), (LOGITS,), ExitRule(shift + n, LOGITS), tuple(blocks)))
    return stages


def _blocks_of(segment: nn.Module) -> list[nn.Module]:
    """The backbone blocks a family's segment module holds (a CNN's ``Sequential``, a ViT's ``Segment``)."""
    inner = getattr(segment, "blocks", segment)
    return list(inner)


@torch.no_grad()
def run_stages(stages: Sequence[Stage], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the chain in PyTorch, per sample: ``(logits, exit_index)`` (the reference the runtime must match)."""
    n = x.shape[0]
    env: dict[str, torch.Tensor] = {IMAGE: x}
    alive = torch.arange(n)
    logits_out: torch.Tensor | None = None
    taken = torch.full((n,), -1, dtype=torch.int64)
    for stage in stages:
        outs = stage.module(*(env[name] for name in stage.inputs))
        env.update(zip(stage.outputs, outs, strict=True))
        rule = stage.exit
        logits = env[rule.logits]
        if logits_out is None:
            logits_out = torch.zeros(n, logits.shape[1], dtype=logits.dtype)
        go = torch.ones(len(alive), dtype=torch.bool) if rule.threshold is None else env[rule.score] >= rule.threshold
        logits_out[alive[go]] = logits[go]
        taken[alive[go]] = rule.index
        keep = ~go
        alive = alive[keep]
        env = {name: t[keep] for name, t in env.items()}
        if len(alive) == 0:
            break
    assert logits_out is not None
    return logits_out, taken
