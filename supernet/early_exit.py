"""A subnet with its exit policy: the deployable early-exit network (one graph, nested ``torch.cond``).

:class:`EarlyExitCNN` wraps an extracted :class:`supernet.static.StaticCNN` with the subnet's exit
mask, one threshold per enabled exit, a criterion and per-exit temperatures. Its ``forward``
runs the backbone segment by segment; after each enabled exit it evaluates the head and, when
the criterion passes its threshold, returns that head's logits without running the rest. The
branch is a ``torch.cond``, so the ONNX export is a chain of nested ``If`` nodes.

Batch semantics: the branch condition is one boolean per call, taken over the *whole batch*
(the batch leaves at an exit only when every sample in it passes). At batch 1 that is the
per-sample policy; for batched throughput use :meth:`EarlyExitCNN.forward_all` (every head's
logits) and apply :meth:`EarlyExitCNN.per_sample` to route each sample, as the exported
``model.all_exits.onnx`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from supernet.errors import ConfigError, unknown
from supernet.static import StaticCNN

EXIT_CRITERIA = ("confidence", "entropy")


def exit_score(logits: torch.Tensor, criterion: str, temperature: float = 1.0) -> torch.Tensor:
    """Per-sample score, higher = more confident: max softmax probability, or minus the normalised
    entropy of the softmax (in [-1, 0]). The same formulas as :mod:`predictors.exit_policy`."""
    p = torch.softmax(logits / temperature, dim=1)
    if criterion == "confidence":
        return p.amax(dim=1)
    if criterion == "entropy":
        return (p * torch.log(p.clamp_min(1e-12))).sum(dim=1) / math.log(logits.shape[1])
    raise unknown("exit criterion", criterion, list(EXIT_CRITERIA))


class EarlyExitCNN(nn.Module):
    """A static subnet plus its exit policy; ``forward(x)`` → ``(logits, exit_index)``.

    ``exit_index`` is the position of the exit taken among *all* heads (``len(exits)`` = the final
    classifier). ``thresholds`` has one entry per head; ``math.inf`` (or a disabled head in
    ``mask``) means the head is never evaluated.
    """

    def __init__(self, model: StaticCNN, mask: Sequence[int], thresholds: Sequence[float], *,
                 criterion: str = "confidence", temperatures: Sequence[float] | None = None) -> None:
        super().__init__()
        n = len(model.exits)
        temperatures = tuple(temperatures) if temperatures is not None else (1.0,) * n
        if len(mask) != n or len(thresholds) != n or len(temperatures) != n:
            raise ConfigError(f"an early-exit model with {n} heads needs {n} mask bits, thresholds and temperatures, "
                              f"but got {len(mask)}, {len(thresholds)} and {len(temperatures)}.")
        if criterion not in EXIT_CRITERIA:
            raise unknown("exit criterion", criterion, list(EXIT_CRITERIA))
        if any(not (t > 0 and math.isfinite(t)) for t in temperatures):
            raise ConfigError(f"exit temperatures must be positive and finite, but got {temperatures}.")
        self.model = model.eval()
        self.criterion = criterion
        self.active = tuple(bool(m) and math.isfinite(float(t)) for m, t in zip(mask, thresholds, strict=True))
        self.thresholds = tuple(float(t) for t in thresholds)
        self.temperatures = tuple(float(t) for t in temperatures)
        self.eval()  # a deployment wrapper: a caller restoring "its" mode must not switch BN to batch statistics

    @property
    def n_exits(self) -> int:
        return len(self.model.exits)

    def _final(self, h: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.classifier(m.dropout(torch.flatten(m.pool(m.head(h)), 1)))

    def _from(self, seg: int, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run segment ``seg`` on ``h`` and everything after it."""
        segment, e = self.model.segments()[seg]
        h = segment(h)
        if e is None:
            return self._final(h), torch.full((1,), self.n_exits, dtype=torch.int64)
        if not self.active[e]:
            return self._from(seg + 1, h)
        logits = self.model.exits[e](h)
        passed = exit_score(logits, self.criterion, self.temperatures[e]).min() >= self.thresholds[e]

        def leave(h: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return logits.clone(), torch.full((1,), e, dtype=torch.int64)

        def go_on(h: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self._from(seg + 1, h)

        return torch.cond(passed, leave, go_on, (h, logits))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        return self._from(0, m.stem((x - m.mean) / m.std))

    @torch.no_grad()
    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every head's logits, then the final ones (no branching: for batched use and verification)."""
        return self.model.forward_all(x)

    @torch.no_grad()
    def per_sample(self, all_logits: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Route each sample by the policy: ``(logits, exit_index)`` from :meth:`forward_all`'s output."""
        final = all_logits[-1]
        logits = final.clone()
        taken = torch.full((final.shape[0],), self.n_exits, dtype=torch.int64)
        open_ = torch.ones(final.shape[0], dtype=torch.bool)
        for e in range(self.n_exits):
            if not self.active[e]:
                continue
            go = open_ & (exit_score(all_logits[e], self.criterion, self.temperatures[e]) >= self.thresholds[e])
            logits[go] = all_logits[e][go]
            taken[go] = e
            open_ &= ~go
        return logits, taken


class AllExits(nn.Module):
    """``forward(x)`` → a tuple of every head's logits then the final logits (batched deployment)."""

    def __init__(self, model: StaticCNN) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.forward_all(x))


class CascadeCNN(nn.Module):
    """A width cascade: ``scout`` (a narrow static subnet) first; when its final logits pass the
    threshold they are the answer, otherwise ``main`` (an :class:`EarlyExitCNN`) runs on the input.

    ``forward(x)`` → ``(logits, exit_index)``: index 0 is the scout, ``1 + i`` the main subnet's
    exit ``i`` (``n_exits`` = the main subnet's final classifier). One ``torch.cond``, so the
    ONNX export is an ``If`` whose else-branch holds the main subnet (with its own nested ``If``).
    Batch semantics as :class:`EarlyExitCNN`.
    """

    def __init__(self, scout: StaticCNN, main: EarlyExitCNN, threshold: float, *, temperature: float = 1.0) -> None:
        super().__init__()
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ConfigError(f"the scout's temperature must be positive and finite, but got {temperature}.")
        self.scout, self.main = scout.eval(), main.eval()
        self.criterion = main.criterion
        self.threshold, self.temperature = float(threshold), float(temperature)
        self.eval()

    @property
    def n_exits(self) -> int:
        return 1 + self.main.n_exits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.scout(x)
        if not math.isfinite(self.threshold):
            _, taken = out = self.main(x)
            return out[0], taken + 1
        passed = exit_score(logits, self.criterion, self.temperature).min() >= self.threshold

        def leave(x: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return logits.clone(), torch.zeros((1,), dtype=torch.int64)

        def escalate(x: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out, taken = self.main(x)
            return out, taken + 1

        return torch.cond(passed, leave, escalate, (x, logits))

    @torch.no_grad()
    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The scout's logits, then every head's of the main subnet, then its final ones."""
        return [self.scout(x), *self.main.forward_all(x)]

    @torch.no_grad()
    def per_sample(self, all_logits: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Route each sample: the scout when it passes, else the main subnet's policy."""
        logits, taken = self.main.per_sample(all_logits[1:])
        taken = taken + 1
        go = exit_score(all_logits[0], self.criterion, self.temperature) >= self.threshold
        logits[go] = all_logits[0][go]
        taken[go] = 0
        return logits, taken


class CascadeAllExits(nn.Module):
    """``forward(x)`` → the scout's logits, then every head's of the main subnet, then its final logits."""

    def __init__(self, cascade: CascadeCNN) -> None:
        super().__init__()
        self.cascade = cascade
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple([self.cascade.scout(x), *self.cascade.main.model.forward_all(x)])
