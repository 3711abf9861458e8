"""What a subnet with early exits will score: static accuracy, exit rates and dynamic accuracy.

The accuracy data (:mod:`predictors.accuracy`, format 2) holds, per measured width config, the
static accuracy (averaged over BN-recalibration seeds) and, for every exit mask and every
calibrated accuracy drop δ, the exit policy found on validation data: thresholds, the fraction
of samples leaving at each exit (p_i) and the dynamic accuracy. From these rows this module fits
scikit-learn regressors (the same model selection as the static predictor) so the search
predicts, per candidate and without data:

* ``p_i`` for every enabled exit (one regressor per exit, on the rows where it is enabled;
  a disabled exit has p_i = 0, the final classifier gets the rest);
* the accuracy drop of the policy (static − dynamic, at most δ by construction), so the dynamic
  accuracy is the static prediction minus the predicted drop.

With a width cascade (data calibrated with scouts, see :func:`predictors.accuracy._policies`)
the space gets the ``cascade`` gene and the rates get a first column: the fraction answered by
the scout (0 for a subnet without one). A space without exits or scouts degenerates to the
static predictor with p = [1].

Example::

    dyn = DynamicAccuracyPredictor(static, data, max_drop=0.005)
    dyn.predict([subnet])              # dynamic accuracy
    dyn.predict_exit_rates([subnet])   # (1, E + 1), rows sum to 1 (E + 2 with a cascade: scout first)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from predictors.accuracy import AccuracyData, AccuracyPredictor, data_cascade, drop_key, exit_masks
from predictors.errors import CalibrationError
from predictors.exit_policy import DEFAULT_MAX_DROP
from predictors.metrics import kendall_tau
from supernet.errors import ConfigError
from supernet.space import SearchSpace, SubnetConfig

DYNAMIC_MODELS = ("ridge-pairwise", "gbr")  # candidates for exit rates and drops (faster than all four)


def available_drops(data: AccuracyData) -> list[float]:
    """The accuracy drops the data's exit policies were calibrated for (fractions)."""
    return [float(d) for d in ((data.meta.get("exits") or {}).get("max_drops") or [])]


def check_drop(data: AccuracyData, max_drop: float) -> str:
    """The data key of ``max_drop``; a one-line error naming the calibrated drops when it is not one of them."""
    drops = available_drops(data)
    if not drops:
        raise ConfigError("the supernet's accuracy data holds no exit policies (it has no exit heads or was "
                          "measured without them); search it without --max-accuracy-drop or re-run `dynnas calibrate`.")
    key = drop_key(max_drop)
    if key not in {drop_key(d) for d in drops}:
        pp = ", ".join(f"{100 * d:g}" for d in drops)
        raise ConfigError(f"--max-accuracy-drop {100 * max_drop:g} pp was not calibrated for this supernet; choose one "
                          f"of {pp} pp, or add it with `dynnas calibrate --max-accuracy-drops ...`.")
    return key


def _with_mask(subnet: SubnetConfig, mask: tuple[int, ...], cascade: int = 0) -> SubnetConfig:
    return dataclasses.replace(subnet, exits=tuple(mask), cascade=cascade)


def _with_final(rates: np.ndarray) -> np.ndarray:
    """``rates`` (every column but the last: predicted early shares) made a distribution, in place: each
    clipped to [0, 1], scaled down where they add up to more than 1, the final classifier's share the rest;
    no rate is negative (not even by rounding) and each row sums to 1 within an ulp or two."""
    early = np.clip(rates[:, :-1], 0.0, 1.0)
    total = early.sum(axis=1)
    early *= np.where(total > 1.0, 1.0 / np.maximum(total, 1e-12), 1.0)[:, None]
    rates[:, :-1] = early
    rates[:, -1] = np.clip(1.0 - early.sum(axis=1), 0.0, 1.0)  # 1 - (1 + ulp) would be -ulp
    return rates


class DynamicAccuracyPredictor:
    """Dynamic accuracy and exit rates of subnets with early exits (see the module docstring)."""

    def __init__(self, static: AccuracyPredictor, data: AccuracyData, *, max_drop: float = DEFAULT_MAX_DROP,
                 seed: int = 0, cascade: bool = True) -> None:
        """``cascade=False`` ignores the data's width-cascade policies (a space without the gene)."""
        self.static = static
        self.data = data
        self.n_cascade = data_cascade(data) if cascade else 0
        self.space: SearchSpace = dataclasses.replace(data.space, n_cascade=self.n_cascade)
        self.n_exits = len(self.space.exit_positions)
        self.max_drop = float(max_drop)
        self.seed = seed
        self.rate_models: list[AccuracyPredictor | None] = []
        self.scout_model: AccuracyPredictor | None = None
        self.drop_model: AccuracyPredictor | None = None
        self.quality: dict[str, Any] = {}
        if self.n_exits or self.n_cascade:
            self._fit(check_drop(data, max_drop))

    @property
    def n_stages(self) -> int:
        """Columns of :meth:`predict_exit_rates`: the scout (with a cascade), each exit, the final classifier."""
        return (1 if self.n_cascade else 0) + self.n_exits + 1

    def _rows(self, key: str) -> list[tuple[SubnetConfig, dict[str, Any]]]:
        from predictors.accuracy import policy_key

        rows = []
        for r in self.data.records:
            base = self.data.space.parse(r["arch"])
            pol = (r.get("policies") or {}).get("masks") or {}
            subs = [_with_mask(base, m) for m in exit_masks(self.n_exits)]
            subs += [_with_mask(base, m, k) for k in range(1, self.n_cascade + 1)
                     for m in exit_masks(self.n_exits, with_empty=True)]
            for sub in subs:
                entry = (pol.get(policy_key(sub)) or {}).get(key)
                if entry is None:
                    raise CalibrationError(f"accuracy record {r['arch']} lacks the exit policy {policy_key(sub)} at "
                                           f"drop {key}; re-run `dynnas calibrate`.")
                rows.append((sub, entry))
        return rows

    def _regressor(self) -> AccuracyPredictor:
        return AccuracyPredictor(self.static.arch_config, seed=self.seed, candidates=DYNAMIC_MODELS)

    def _fit(self, key: str) -> None:
        rows = self._rows(key)
        subs = [s for s, _ in rows]
        drops = np.array([e["static_accuracy"] - e["accuracy"] for _, e in rows])
        self.drop_model = self._regressor().fit_xy(self.space, subs, drops)
        rate_q = {}
        if self.n_cascade:
            sel = [(s, en["scout_rate"]) for s, en in rows if s.cascade]
            self.scout_model = self._regressor().fit_xy(self.space, [s for s, _ in sel], np.array([v for _, v in sel]))
            rate_q["scout"] = {"heldout_mae": self.scout_model.quality["heldout_mae"],
                               "model": self.scout_model.model_name, "mean_rate": float(np.mean([v for _, v in sel]))}
        for e in range(self.n_exits):
            sel = [(s, en["exit_rates"][e]) for s, en in rows if s.exits[e]]
            model = self._regressor().fit_xy(self.space, [s for s, _ in sel], np.array([v for _, v in sel]))
            self.rate_models.append(model)
            rate_q[f"exit{e}"] = {"heldout_mae": model.quality["heldout_mae"], "model": model.model_name,
                                  "mean_rate": float(np.mean([v for _, v in sel]))}
        dyn_true = np.array([e["accuracy"] for _, e in rows])
        dyn_pred = self.predict(subs)
        self.quality = {
            "max_drop": self.max_drop,
            "n_rows": len(rows),
            "exit_rate_heldout_mae": rate_q,
            "drop_model": self.drop_model.model_name,
            "drop_heldout_mae_points": 100 * self.drop_model.quality["heldout_mae"],
            "dynamic_tau_in_sample": kendall_tau(dyn_pred, dyn_true),
            "mean_speedup_macs": float(np.mean([e["speedup_macs"] for _, e in rows])),
        }

    # -- prediction
    def _static_subnets(self, subnets: Sequence[SubnetConfig]) -> list[SubnetConfig]:
        return [_with_mask(s, (0,) * self.n_exits) for s in subnets]  # exits off, no scout

    def predict_static(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Accuracy of each subnet with its exits off."""
        return self.static.predict(self._static_subnets(subnets))

    def predict_exit_rates(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """``(n, E + 1)``: the predicted fraction of samples leaving at each exit, then at the final classifier
        (``(n, E + 2)`` with a cascade: the scout's share first)."""
        n = len(subnets)
        rates = np.zeros((n, self.n_stages))
        if n == 0:
            return rates
        first = 1 if self.n_cascade else 0
        stages = ([(0, self.scout_model, lambda s: s.cascade > 0)] if self.n_cascade else []) + [
            (first + e, model, lambda s, e=e: bool(s.exits[e])) for e, model in enumerate(self.rate_models)]
        for col, model, enabled in stages:
            on = np.array([enabled(s) for s in subnets])
            if on.any() and model is not None:
                rates[on, col] = np.clip(model.predict([s for s, o in zip(subnets, on, strict=True) if o]), 0.0, 1.0)
        return _with_final(rates)

    def predict_with_static(self, subnets: Sequence[SubnetConfig]) -> tuple[np.ndarray, np.ndarray]:
        """``(dynamic, static)`` accuracy of each subnet, the static part predicted once (what the search
        reports for every candidate)."""
        if len(subnets) == 0:
            return np.zeros(0), np.zeros(0)
        static = self.predict_static(subnets)
        return self._with_drop(subnets, static), static

    def _with_drop(self, subnets: Sequence[SubnetConfig], static: np.ndarray) -> np.ndarray:
        if self.drop_model is None:
            return static
        any_on = np.array([any(s.exits) or s.cascade > 0 for s in subnets], dtype=bool)
        drop = np.zeros(len(subnets))
        if any_on.any():
            drop[any_on] = np.clip(self.drop_model.predict([s for s, o in zip(subnets, any_on, strict=True) if o]),
                                   0.0, self.max_drop)
        return np.clip(static - drop, 0.0, 1.0)

    def predict(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Dynamic accuracy: the static prediction minus the policy's predicted accuracy drop (≤ δ)."""
        return self.predict_with_static(subnets)[0]

    def describe(self) -> dict[str, Any]:
        d = self.static.describe()
        return {**d, "dynamic": {"method": "sklearn regressors of exit rates and accuracy drop per exit mask",
                                 "quality": self.quality}}
