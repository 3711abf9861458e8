"""Early-exit policy: exit criteria, temperature scaling, simulation and threshold calibration.

A subnet with ``E`` early-exit heads (plus the final classifier) lets a sample leave at the first
exit ``i`` whose score passes its threshold, ``score_i >= t_i``; a sample that passes none goes to
the final classifier. Every criterion is oriented so that "exit iff score >= threshold" holds
(``confidence``: max softmax probability; ``entropy``: ``-H(p) / log C`` in [-1, 0]).

Costs follow BranchyNet/MSDNet: ``C_i`` is the cost of running the backbone up to exit ``i`` plus
every head evaluated on the way (heads ``0..i``), ``C_final`` is the full backbone plus all ``E``
heads (:func:`exit_costs` builds them), and the expected cost is ``C_avg = sum_i p_i * C_i``. The
speedup is ``C_L / C_avg`` where ``C_L`` is the same subnet with exits off (``c_static``; default
``costs[-1]``). :func:`calibrate` picks, per subnet on validation data, the thresholds minimising
``C_avg`` subject to ``static_accuracy - accuracy <= max_drop`` (static accuracy: the final
classifier on every sample). Only numpy and scipy are used.

Example::

    T = [fit_temperature(val_logits[i], labels) for i in range(E)]
    scores = np.stack([exit_scores(val_logits[i], "entropy", T[i]) for i in range(E)])  # (E, n)
    correct = np.stack([lg.argmax(1) == labels for lg in (*val_logits[:E], final_logits)])
    costs = exit_costs(prefix_macs, head_macs, total_macs)                            # (E + 1,)
    policy = calibrate(scores, correct, costs, max_drop=0.005)   # at most 0.5 pp below static
    policy.thresholds, policy.speedup, policy.to_dict()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from supernet.errors import ConfigError, unknown

Criterion = Callable[[np.ndarray], np.ndarray]
CRITERIA: dict[str, Criterion] = {}

# The accuracy an exit policy may give up against the static subnet by default: 0.5 pp (search, export, predictors).
DEFAULT_MAX_DROP = 0.005
_ACC_TOL = 1e-12  # slack on the accuracy-drop constraint, so a drop of exactly max_drop passes
_MAX_SWEEPS = 10  # coordinate-descent sweeps; each sweep never worsens the objective


# ----------------------------------------------------------------------------- criteria


def register_criterion(name: str) -> Callable[[Criterion], Criterion]:
    """Register an exit criterion: ``fn(logits (n, C)) -> scores (n,)``, exit iff score >= t."""

    def deco(fn: Criterion) -> Criterion:
        if name in CRITERIA:
            raise ConfigError(f"exit criterion '{name}' is already registered; pick another name.")
        CRITERIA[name] = fn
        return fn

    return deco


def get_criterion(name: str) -> Criterion:
    """The registered criterion ``name``; an unknown name lists the known ones."""
    try:
        return CRITERIA[name]
    except KeyError:
        raise unknown("exit criterion", name, tuple(CRITERIA)) from None


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)  # stable: the largest logit becomes 0
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@register_criterion("confidence")
def confidence(logits: np.ndarray) -> np.ndarray:
    """Max softmax probability, in [1/C, 1]."""
    return np.exp(_log_softmax(logits).max(axis=1))


@register_criterion("entropy")
def neg_entropy(logits: np.ndarray) -> np.ndarray:
    """Negative normalised entropy ``-H(p) / log C``, in [-1 (uniform), 0 (one-hot)]."""
    logp = _log_softmax(logits)
    h = -(np.exp(logp) * logp).sum(axis=1)  # p underflows to 0 while logp stays finite: 0 * x = 0
    return np.minimum(-h / math.log(logits.shape[1]), 0.0)


def _check_logits(logits: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    z = np.asarray(logits, dtype=float)
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 2:
        raise ConfigError(
            f"logits must have shape (n, C) with n >= 1 and C >= 2, but got shape {z.shape}; "
            "pass one row of class logits per sample."
        )
    if not np.isfinite(z).all():
        raise ConfigError(f"logits must be finite, but got {int((~np.isfinite(z)).sum())} NaN/inf values.")
    return z


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ConfigError(f"`temperature` must be finite and > 0, but got {temperature}; pass e.g. 1.0.")
    return t


def exit_scores(
    logits: np.ndarray | Sequence[Sequence[float]], criterion: str = "confidence", temperature: float = 1.0
) -> np.ndarray:
    """Scores ``(n,)`` of ``criterion`` on ``logits / temperature``; exit iff score >= threshold."""
    fn = get_criterion(criterion)
    return np.asarray(fn(_check_logits(logits) / _check_temperature(temperature)), dtype=float)


def fit_temperature(
    logits: np.ndarray | Sequence[Sequence[float]], labels: np.ndarray | Sequence[int]
) -> float:
    """Temperature scaling (Guo et al. 2017): the T in [0.05, 20] minimising NLL of softmax(logits / T)."""
    z = _check_logits(logits)
    y = np.asarray(labels)
    if y.shape != (z.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(
            f"labels must be integers of shape ({z.shape[0]},), but got dtype {y.dtype} and shape {y.shape}."
        )
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ConfigError(f"labels must lie in [0, {z.shape[1]}), but got range [{y.min()}, {y.max()}].")
    z_true = z[np.arange(z.shape[0]), y]

    def nll(t: float) -> float:
        return float(np.mean(logsumexp(z / t, axis=1) - z_true / t))

    res = minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded", options={"xatol": 1e-5})
    return float(res.x)


def exit_costs(prefix_costs: Sequence[float], head_costs: Sequence[float], total_cost: float) -> np.ndarray:
    """Cumulative cost of leaving at each exit, ``(E + 1,)``, the last entry being the final classifier.

    ``prefix_costs[i]`` is the backbone cost up to exit ``i``, ``head_costs[i]`` the cost of head ``i``
    and ``total_cost`` the whole backbone with its final classifier (exits off). A sample leaving at
    exit ``i`` has run heads ``0..i``: ``C_i = prefix_costs[i] + sum(head_costs[:i + 1])``; one that
    passes no exit has run every head: ``C_final = total_cost + sum(head_costs)``. Any unit (MACs, ms).
    """
    prefix = np.asarray(prefix_costs, dtype=float).ravel()
    heads = np.asarray(head_costs, dtype=float).ravel()
    total = float(total_cost)
    if prefix.shape != heads.shape:
        raise ConfigError(
            f"prefix_costs and head_costs need one entry per exit, but got {prefix.size} and {heads.size}."
        )
    if not (np.isfinite(prefix).all() and np.isfinite(heads).all() and math.isfinite(total)):
        raise ConfigError("exit costs must be finite; got NaN/inf in prefix_costs, head_costs or total_cost.")
    if (prefix < 0).any() or (heads < 0).any() or total <= 0:
        raise ConfigError(
            f"costs must be >= 0 (total_cost > 0), but got prefix_costs={prefix.tolist()}, "
            f"head_costs={heads.tolist()}, total_cost={total}."
        )
    if (np.diff(prefix) < 0).any() or (prefix.size and prefix[-1] > total):
        raise ConfigError(
            f"prefix_costs must be non-decreasing and <= total_cost, but got {prefix.tolist()} "
            f"with total_cost={total}; list the exits in backbone order."
        )
    return np.append(prefix + np.cumsum(heads), total + heads.sum())


# ----------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class PolicyResult:
    """Outcome of one threshold setting on one data set (fractions, costs in the caller's unit)."""

    thresholds: tuple[float, ...]  # len E; math.inf = exit never taken
    accuracy: float  # dynamic accuracy
    static_accuracy: float  # final classifier on every sample (exits off)
    exit_rates: tuple[float, ...]  # len E + 1, last = final classifier; sums to 1
    exit_accuracy: tuple[float, ...]  # accuracy of the samples leaving at each exit; NaN where none
    c_avg: float  # expected cost, sum_i p_i * C_i
    c_static: float  # C_L: cost with exits off
    speedup: float  # c_static / c_avg
    worst_cost: float  # costs[-1]: every exit fails

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: inf and NaN become ``None``."""

        def safe(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = [safe(v) for v in value] if isinstance(value, tuple) else safe(value)
        return out


def _check_inputs(
    scores: np.ndarray | Sequence[Sequence[float]],
    correct: np.ndarray | Sequence[Sequence[bool]],
    costs: np.ndarray | Sequence[float],
    c_static: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    ok = np.asarray(correct)
    if ok.ndim != 2 or ok.shape[0] < 1 or ok.shape[1] < 1:
        raise ConfigError(f"correct must have shape (E + 1, n) with n >= 1, but got shape {ok.shape}.")
    if ok.dtype != bool:
        if not np.isin(ok, (0, 1)).all():
            raise ConfigError(
                f"correct must be boolean (or 0/1), but got dtype {ok.dtype} with other values."
            )
        ok = ok.astype(bool)
    n_exits, n = ok.shape[0] - 1, ok.shape[1]
    s = np.asarray(scores, dtype=float)
    if s.size == 0 and n_exits == 0:
        s = s.reshape(0, n)
    if s.shape != (n_exits, n):
        raise ConfigError(
            f"scores must have shape (E, n) = {(n_exits, n)} to match correct {ok.shape}, but got {s.shape}."
        )
    if not np.isfinite(s).all():
        raise ConfigError(f"scores must be finite, but got {int((~np.isfinite(s)).sum())} NaN/inf values.")
    c = np.asarray(costs, dtype=float)
    if c.shape != (n_exits + 1,):
        raise ConfigError(f"costs must have shape (E + 1,) = ({n_exits + 1},), but got {c.shape}.")
    if not (np.isfinite(c).all() and (c > 0).all() and (np.diff(c) >= 0).all()):
        raise ConfigError(
            f"costs must be finite, positive and non-decreasing (exit order, final last), but got {c.tolist()}."
        )
    cs = float(c[-1]) if c_static is None else float(c_static)
    if not (math.isfinite(cs) and cs > 0):
        raise ConfigError(f"`c_static` must be finite and > 0, but got {c_static}; omit it to use costs[-1].")
    return s, ok, c, cs


def _total_cost(counts: np.ndarray, costs: np.ndarray) -> np.ndarray:
    # column by column, in a fixed order: equal exit counts give bit-identical costs in every path
    total = np.zeros(counts.shape[1:], dtype=float)
    for m in range(costs.size):
        total = total + counts[m] * costs[m]
    return total


def _result(
    thresholds: np.ndarray, exit_at: np.ndarray, ok: np.ndarray, costs: np.ndarray, c_static: float
) -> PolicyResult:
    n_exits, n = ok.shape[0] - 1, ok.shape[1]
    counts = np.bincount(exit_at, minlength=n_exits + 1)
    hits = np.bincount(exit_at, weights=ok[exit_at, np.arange(n)], minlength=n_exits + 1)
    c_avg = float(_total_cost(counts, costs)) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        exit_acc = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    return PolicyResult(
        thresholds=tuple(float(t) for t in thresholds),
        accuracy=float(int(round(hits.sum())) / n),
        static_accuracy=float(int(ok[-1].sum()) / n),
        exit_rates=tuple(float(k / n) for k in counts),
        exit_accuracy=tuple(float(a) for a in exit_acc),
        c_avg=c_avg,
        c_static=c_static,
        speedup=c_static / c_avg,
        worst_cost=float(costs[-1]),
    )


def simulate(
    scores: np.ndarray | Sequence[Sequence[float]],
    correct: np.ndarray | Sequence[Sequence[bool]],
    costs: np.ndarray | Sequence[float],
    thresholds: np.ndarray | Sequence[float],
    *,
    c_static: float | None = None,
) -> PolicyResult:
    """Run the policy: each sample leaves at the first exit ``i`` with ``scores[i] >= thresholds[i]``.

    ``scores`` is ``(E, n)``, ``correct`` ``(E + 1, n)`` (last row: final classifier), ``costs``
    ``(E + 1,)`` from :func:`exit_costs`, ``thresholds`` ``(E,)``.
    """
    s, ok, c, cs = _check_inputs(scores, correct, costs, c_static)
    t = np.asarray(thresholds, dtype=float).ravel()
    if t.shape != (s.shape[0],):
        raise ConfigError(f"thresholds must have shape (E,) = ({s.shape[0]},), but got {t.shape}.")
    if np.isnan(t).any():
        raise ConfigError(f"thresholds must not be NaN, but got {t.tolist()}; use math.inf for 'never exit'.")
    passes = np.vstack([s >= t[:, None], np.ones((1, s.shape[1]), dtype=bool)])
    return _result(t, passes.argmax(axis=0), ok, c, cs)


# ----------------------------------------------------------------------------- calibration


def candidate_thresholds(scores: np.ndarray | Sequence[float], grid: int = 48) -> np.ndarray:
    """Sorted candidate thresholds of one exit: up to ``grid`` distinct score values at evenly spaced
    quantiles, then ``+inf`` (never exit). Actual score values, so ``score >= t`` splits exactly."""
    s = np.sort(np.asarray(scores, dtype=float).ravel())
    if s.size == 0:
        return np.array([math.inf])
    idx = np.unique(np.round(np.linspace(0, s.size - 1, grid)).astype(np.int64))
    return np.append(np.unique(s[idx]), math.inf)


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _best(c_avg: np.ndarray, hits: np.ndarray, feasible: np.ndarray) -> int:
    """Flat index of the best feasible entry: lower cost, then more hits, then larger index."""
    idx = np.flatnonzero(feasible)
    order = np.lexsort((-idx, -hits[idx], c_avg[idx]))  # last key is the primary one
    return int(idx[order[0]])


def _exhaustive(levels: np.ndarray, ok: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Exit counts and hits of every threshold combination, ``(E + 1, *shape)`` and ``shape``.

    A sample with level tuple ``l`` (``l_i`` = candidates of exit ``i`` at or below its score, so it
    passes candidate ``k`` iff ``k < l_i``) leaves at exit ``i`` under combination ``k`` iff
    ``l_m <= k_m`` for every ``m < i`` and ``l_i > k_i``. Histograms over level tuples turn both
    conditions into cumulative sums: O(n + E * prod(shape)) instead of a loop over combinations.
    """
    n_exits = levels.shape[0]
    flat = np.ravel_multi_index(tuple(levels), shape)
    size = int(np.prod(shape))
    h_count = np.bincount(flat, minlength=size).reshape(shape)
    counts = np.empty((n_exits + 1, *shape), dtype=np.int64)
    hits = np.zeros(shape, dtype=np.int64)
    for i in range(n_exits + 1):
        h_hit = np.bincount(flat[ok[i]], minlength=size).reshape(shape)
        tail = tuple(range(i + 1, n_exits))
        cnt, hit = h_count.sum(axis=tail, keepdims=True), h_hit.sum(axis=tail, keepdims=True)
        for m in range(min(i, n_exits)):  # earlier exits fail: l_m <= k_m
            cnt, hit = np.cumsum(cnt, axis=m), np.cumsum(hit, axis=m)
        if i < n_exits:  # exit i passes: l_i > k_i (strict suffix sum)
            cnt = cnt.sum(axis=i, keepdims=True) - np.cumsum(cnt, axis=i)
            hit = hit.sum(axis=i, keepdims=True) - np.cumsum(hit, axis=i)
        counts[i] = np.broadcast_to(cnt, shape)
        hits += np.broadcast_to(hit, shape)
    return counts, hits


def _coordinate_descent(
    levels: np.ndarray,
    ok: np.ndarray,
    costs: np.ndarray,
    shape: tuple[int, ...],
    static_acc: float,
    max_drop: float,
) -> np.ndarray:
    """Candidate indices found by exact line searches over one exit at a time, from all-inf."""
    n_exits, n = levels.shape
    k = np.array([size - 1 for size in shape], dtype=np.int64)  # the last candidate is +inf
    rows = np.arange(n)
    for _ in range(_MAX_SWEEPS):
        changed = False
        for i in range(n_exits):
            passes = np.vstack([levels > k[:, None], np.ones((1, n), dtype=bool)])
            before = passes[:i].any(axis=0)  # left earlier, whatever t_i is
            exit_before = passes[:i].argmax(axis=0) if i else np.zeros(n, dtype=np.int64)
            rest = passes[i + 1 :]
            fallback = i + 1 + rest.argmax(axis=0)  # where a sample failing exit i goes
            base = np.bincount(exit_before[before], minlength=n_exits + 1)
            base_hits = int(ok[exit_before[before], rows[before]].sum())
            free = ~before
            lv, fb, r = levels[i, free], fallback[free], rows[free]
            kk = shape[i]
            # per level of exit i: samples that would fail it (go to fallback) and their hits
            fail_tab = np.bincount(lv * (n_exits + 1) + fb, minlength=kk * (n_exits + 1))
            fail_cum = np.cumsum(fail_tab.reshape(kk, n_exits + 1), axis=0)  # level <= k: fails exit i
            fail_hits = np.cumsum(np.bincount(lv, weights=ok[fb, r].astype(float), minlength=kk))
            n_lv = np.bincount(lv, minlength=kk)
            pass_cnt = n_lv.sum() - np.cumsum(n_lv)  # level > k: exits at i
            pass_hits_lv = np.bincount(lv, weights=ok[i, r].astype(float), minlength=kk)
            pass_hits = pass_hits_lv.sum() - np.cumsum(pass_hits_lv)
            counts = base[None, :] + fail_cum
            counts[:, i] += pass_cnt
            hits = np.rint(base_hits + fail_hits + pass_hits).astype(np.int64)
            c_avg = _total_cost(counts.T, costs) / n
            feasible = static_acc - hits / n <= max_drop + _ACC_TOL
            best = _best(c_avg, hits, feasible)
            if best != k[i]:
                k[i], changed = best, True
        if not changed:
            break
    return k


def calibrate(
    scores: np.ndarray | Sequence[Sequence[float]],
    correct: np.ndarray | Sequence[Sequence[bool]],
    costs: np.ndarray | Sequence[float],
    max_drop: float,
    *,
    c_static: float | None = None,
    grid: int = 48,
    exhaustive_limit: int = 20000,
) -> PolicyResult:
    """Thresholds minimising ``c_avg`` subject to ``static_accuracy - accuracy <= max_drop``.

    Candidates per exit come from :func:`candidate_thresholds`. When the number of combinations is
    at most ``exhaustive_limit`` every one is evaluated (vectorised); otherwise coordinate descent
    from all-inf. Ties: lower ``c_avg``, then higher accuracy, then larger thresholds (fewer exits).
    All-inf is always feasible, so a result always comes back.
    """
    try:
        drop = float(max_drop)
    except (TypeError, ValueError):
        drop = math.nan
    if not 0.0 <= drop < 1.0:
        raise ConfigError(f"`max_drop` must be in [0, 1), but got {max_drop}; pass e.g. 0.005 (0.5 pp).")
    if not (_is_int(grid) and grid >= 1):
        raise ConfigError(f"`grid` must be an integer >= 1, but got {grid}; pass e.g. 48.")
    if not (_is_int(exhaustive_limit) and exhaustive_limit >= 1):
        raise ConfigError(
            f"`exhaustive_limit` must be an integer >= 1, but got {exhaustive_limit}; pass e.g. 20000."
        )
    s, ok, c, cs = _check_inputs(scores, correct, costs, c_static)
    n_exits, n = s.shape
    if n_exits == 0:
        return simulate(s, ok, c, [], c_static=cs)
    cands = [candidate_thresholds(s[i], grid) for i in range(n_exits)]
    shape = tuple(len(cand) for cand in cands)
    # level: how many candidates lie at or below the score; passes candidate k iff k < level
    levels = np.stack([np.searchsorted(cands[i], s[i], side="right") for i in range(n_exits)])
    static_acc = float(int(ok[-1].sum()) / n)
    if math.prod(shape) <= exhaustive_limit:
        counts, hits = _exhaustive(levels, ok, shape)
        c_avg = (_total_cost(counts, c) / n).ravel()
        hits = hits.ravel()
        feasible = static_acc - hits / n <= drop + _ACC_TOL
        k = np.array(np.unravel_index(_best(c_avg, hits, feasible), shape))
    else:
        k = _coordinate_descent(levels, ok, c, shape, static_acc, drop)
    return simulate(s, ok, c, [cands[i][k[i]] for i in range(n_exits)], c_static=cs)
