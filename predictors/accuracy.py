"""Accuracy predictor: what a subnet will score, learned from measured subnets of one supernet.

:func:`collect_accuracy_data` measures seeded random subnets (plus the uniform ones) on the
validation split, and the first ``n_ceiling`` of them on the test split too: how well the val
ranking agrees with the test ranking (the *noise ceiling* Kendall τ) bounds what any
predictor trained on val accuracies can reach. The data live in one versioned JSON file beside
the supernet (``<stem>.accuracy.json``). :class:`AccuracyPredictor` picks a scikit-learn
regressor by cross-validated Kendall τ and reports held-out τ and RMSE.

Example::

    predictor, data = load_or_collect_accuracy(path, supernet, meta, image_data)
    predictor.predict([space.largest()])      # -> array([0.91])
    predictor.quality["heldout_tau"]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.base import RegressorMixin, clone
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn

from predictors.errors import CalibrationError, PredictorCacheError, check_header
from predictors.exit_policy import calibrate, exit_scores, fit_temperature, get_criterion
from predictors.metrics import kendall_tau, rmse
from predictors.units import UnitTable, cache_root, macs_table
from supernet.checkpoint import read_json, sha256, write_json
from supernet.cost import CostedConfig
from supernet.data import ImageData
from supernet.errors import CheckpointError, ConfigError, DatasetError
from supernet.evaluate import BN_MODES, accuracy, subnet_model
from supernet.space import SearchSpace, SubnetConfig

FORMAT = "dynnas-accuracy-data"
FORMAT_VERSION = 2  # 2: k recalibration seeds per subnet, exit heads' accuracies and calibrated exit policies
N_RECAL_BATCHES = 10  # training batches of 128 per BN recalibration
Progress = Callable[[str, int, int], None]


# ---- the data file ----------------------------------------------------------------------------
@dataclass
class AccuracyData:
    """Measured accuracies of one supernet's subnets: ``meta`` (provenance) and ``records``.

    A record is ``{"arch": str, "subnet_id": str, "val_acc": float, "test_acc": float | None}``.
    """

    meta: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.meta["space"])

    def subnets(self) -> list[SubnetConfig]:
        space = self.space
        return [space.parse(r["arch"]) for r in self.records]

    def noise_ceiling_tau(self) -> float:
        """Kendall τ between val and test accuracy over the records measured on both (NaN if < 2)."""
        both = [(r["val_acc"], r["test_acc"]) for r in self.records if r.get("test_acc") is not None]
        return kendall_tau([v for v, _ in both], [t for _, t in both]) if len(both) >= 2 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": self.meta, "records": self.records}

    @classmethod
    def from_dict(cls, d: Any, where: str = "accuracy data") -> AccuracyData:
        """Validate a parsed file; raise :class:`PredictorCacheError` naming what is wrong."""
        def bad(why: str) -> PredictorCacheError:
            return PredictorCacheError(f"{where} {why}; delete it to re-measure the subnets.")

        check_header(d, FORMAT, FORMAT_VERSION, "accuracy-data", bad)
        try:
            meta, records = dict(d["meta"]), list(d["records"])
            space = SearchSpace.from_dict(meta["space"])
            for r in records:
                space.parse(r["arch"])
                accs = [r["val_acc"]] + ([r["test_acc"]] if r.get("test_acc") is not None else [])
                accs += [float(a) for a in r.get("val_acc_seeds", [])] + [float(a) for a in r.get("exit_val_acc", [])]
                if space.exit_positions and "policies" not in r:
                    raise ValueError(f"no exit policies for {r['arch']}")
                if not all(0.0 <= float(a) <= 1.0 for a in accs):
                    raise ValueError(f"accuracy outside [0, 1] for {r['arch']}")
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise bad(f"is corrupt ({e.__class__.__name__}: {str(e)[:80]})") from None
        return cls(meta, records)

    def save(self, path: Path) -> None:
        write_json(Path(path), self.to_dict(), compact=True)  # compact: several exit policies per record

    @classmethod
    def load(cls, path: Path) -> AccuracyData:
        try:
            doc = read_json(Path(path), "accuracy data")
        except CheckpointError as e:
            raise PredictorCacheError(str(e)) from None
        return cls.from_dict(doc, f"accuracy data '{path}'")


def accuracy_data_path(supernet_path: Path | str) -> Path:
    """``x/cifar10-cnn.safetensors`` → ``x/cifar10-cnn.accuracy.json``; a run folder → its
    ``supernet.accuracy.json``."""
    p = Path(supernet_path)
    if p.is_dir():
        p = p / "supernet.safetensors"
    return p.with_name(f"{p.stem}.accuracy.json")


# ---- collecting -------------------------------------------------------------------------------
def sample_subnets(space: SearchSpace, n: int, seed: int) -> list[SubnetConfig]:
    """The uniform subnets, then seeded unique random ones: ``n`` width configs in all (fewer if the space
    is smaller), every exit off (exit masks are evaluated per measured subnet, see :func:`collect_accuracy_data`)."""
    widths_only = dataclasses.replace(space, exit_positions=())
    picked = widths_only.sample_unique(np.random.default_rng(seed), n,
                                       [widths_only.uniform(j) for j in range(len(space.width_choices))])
    return [dataclasses.replace(s, exits=(0,) * len(space.exit_positions)) for s in picked]


DEFAULT_MAX_DROPS = (0.0025, 0.005, 0.01, 0.02)  # accuracy drops (fractions) exit policies are calibrated for


def drop_key(max_drop: float) -> str:
    """The key of a calibrated accuracy drop in the data file: ``0.005`` → ``"0.005"``."""
    return f"{float(max_drop):g}"


def exit_masks(n_exits: int, *, with_empty: bool = False) -> list[tuple[int, ...]]:
    """Every exit mask with at least one exit enabled, in counting order (``01``, ``10``, ``11`` …);
    ``with_empty`` puts the all-off mask first (a cascade scout needs no exit)."""
    if n_exits == 0:
        return [()] if with_empty else []
    return [tuple(int(b) for b in f"{m:0{n_exits}b}") for m in range(0 if with_empty else 1, 2 ** n_exits)]


def policy_key(subnet: SubnetConfig) -> str:
    """The key of a subnet's exit policy in the data: its exit bits (``01``), after ``c<k>:`` with a scout."""
    mask = "".join(map(str, subnet.exits))
    return f"c{subnet.cascade}:{mask}" if subnet.cascade else mask


@dataclass(frozen=True)
class Scout:
    """A width-cascade scout measured once per data collection: its logits on the validation split
    (seed-``seed`` recalibration, as an export deploys it) and its MACs."""

    logits: np.ndarray
    macs: float


def _policies(config: Any, subnet: SubnetConfig, logits: list[np.ndarray], y: np.ndarray, *, criterion: str,
              temperature: bool, max_drops: Sequence[float], scouts: Sequence[Scout] = ()) -> dict[str, Any]:
    """Calibrated exit policies of one subnet for every exit mask and accuracy drop (see exit_policy).

    With ``scouts`` (the width cascade), every scout × every exit mask (the empty one included) is
    calibrated too: the scout is the first stage, at its own cost; the subnet's stages cost the scout
    plus themselves. Its entries add ``scout_threshold`` and ``scout_rate``.
    """
    from supernet.cost import exit_macs

    n_exits = len(logits) - 1
    temps = [fit_temperature(lg, y) if temperature else 1.0 for lg in logits[:-1]]
    scores = [exit_scores(lg, criterion, t) for lg, t in zip(logits[:-1], temps, strict=True)]
    correct = [lg.argmax(1) == y for lg in logits]
    c_static = float(exit_macs(config, dataclasses.replace(subnet, exits=(0,) * n_exits))[-1])
    out: dict[str, Any] = {"temperatures": temps, "masks": {}}
    stages: list[tuple[str, Scout | None, tuple[int, ...]]] = [
        (policy_key(dataclasses.replace(subnet, exits=m)), None, m) for m in exit_masks(n_exits)]
    if scouts:
        out["scout_temperatures"] = [fit_temperature(sc.logits, y) if temperature else 1.0 for sc in scouts]
        stages += [(policy_key(dataclasses.replace(subnet, exits=m, cascade=k + 1)), sc, m)
                   for k, sc in enumerate(scouts) for m in exit_masks(n_exits, with_empty=True)]
    for key, scout, mask in stages:
        on = [e for e in range(n_exits) if mask[e]]
        costs = exit_macs(config, dataclasses.replace(subnet, exits=mask))
        sc = [scores[e] for e in on]
        cor = [correct[e] for e in on] + [correct[-1]]
        cs = [costs[e] for e in on] + [costs[-1]]
        if scout is not None:
            t = out["scout_temperatures"][int(key[1:key.index(":")]) - 1]
            sc = [exit_scores(scout.logits, criterion, t)] + sc
            cor = [scout.logits.argmax(1) == y] + cor
            cs = [scout.macs] + [scout.macs + c for c in cs]
        shift = 1 if scout is not None else 0
        per_drop = {}
        for d in max_drops:
            r = calibrate(np.stack(sc) if sc else np.zeros((0, len(y))), np.stack(cor), np.asarray(cs, np.float64),
                          float(d), c_static=c_static)
            thresholds: list[float | None] = [None] * n_exits
            rates = [0.0] * (n_exits + 1)
            for j, e in enumerate(on):
                thresholds[e] = None if not np.isfinite(r.thresholds[j + shift]) else float(r.thresholds[j + shift])
                rates[e] = float(r.exit_rates[j + shift])
            rates[-1] = float(r.exit_rates[-1])
            entry = {"thresholds": thresholds, "exit_rates": rates, "accuracy": float(r.accuracy),
                     "static_accuracy": float(r.static_accuracy), "c_avg_macs": float(r.c_avg),
                     "speedup_macs": float(r.speedup)}
            if scout is not None:
                entry["scout_threshold"] = float(r.thresholds[0]) if np.isfinite(r.thresholds[0]) else None
                entry["scout_rate"] = float(r.exit_rates[0])
            per_drop[drop_key(d)] = entry
        out["masks"][key] = per_drop
    return out


def collect_accuracy_data(supernet: nn.Module, data: ImageData, *, n_samples: int = 400, n_ceiling: int = 100,
                          bn: str = "recal", seed: int = 0, progress: Progress | None = None,
                          n_recal_batches: int = N_RECAL_BATCHES, supernet_sha256: str | None = None,
                          existing: AccuracyData | None = None, recal_seeds: int = 2,
                          max_drops: Sequence[float] = DEFAULT_MAX_DROPS, criterion: str = "confidence",
                          temperature: bool = False, cascade: int = 0) -> AccuracyData:
    """Measure ``n_samples`` subnets on the validation split (the first ``n_ceiling`` on test too).

    With ``existing`` data of the same sampling seed, BN mode and recalibration, only the
    subnets it lacks are measured: the sample is a prefix-stable sequence and each subnet's
    recalibration depends only on ``seed``, so the result equals measuring all ``n_samples``.

    Each subnet is scored as :func:`supernet.evaluate.subnet_accuracy` does: extracted, its BN
    statistics recalibrated on ``n_recal_batches`` seeded training batches when ``bn="recal"``,
    then evaluated. With ``recal_seeds`` = k > 1 the recalibration is repeated with seeds
    ``seed … seed + k - 1`` and the validation accuracies averaged (one recalibration's batch
    sample is the main label noise). Every exit head is evaluated too; on the seed-``seed``
    model (the one an export with that seed deploys) the exit policy of every exit mask is
    calibrated for every accuracy drop in ``max_drops`` (:func:`predictors.exit_policy.calibrate`,
    costs in MACs). With ``cascade`` = n > 0 the policies of the width cascade with the n narrowest
    uniform subnets as scouts are calibrated too (see :func:`_policies`); an ``existing`` record
    without them is completed by re-measuring its seed-``seed`` model only (checked to reproduce
    the stored accuracy).
    """
    from supernet.evaluate import all_exit_logits

    if bn not in BN_MODES:
        raise ConfigError(f"`bn` must be one of {', '.join(BN_MODES)}, but got '{bn}'.")
    if n_samples < 1 or n_ceiling < 0 or recal_seeds < 1:
        raise ConfigError(f"need n_samples >= 1, n_ceiling >= 0 and recal_seeds >= 1, but got {n_samples=}, "
                          f"{n_ceiling=} and {recal_seeds=}.")
    if len(data.y_val) == 0:
        raise DatasetError(f"dataset '{data.spec}' has an empty validation split; accuracy data needs one.")
    get_criterion(criterion)
    space: SearchSpace = supernet.space
    config = getattr(supernet, "config", None)
    from supernet.evaluate import has_batch_norm

    # A family without batch norm (the ViT) gives every recalibration seed the same model: measure it once.
    k = recal_seeds if bn == "recal" and has_batch_norm(supernet) else 1
    if not 0 <= cascade < len(space.width_choices):
        raise ConfigError(f"`cascade` must be in [0, {len(space.width_choices) - 1}] scouts, but got {cascade}.")
    subnets = sample_subnets(space, n_samples, seed)
    done = {r["arch"]: r for r in existing.records} if existing is not None else {}
    scouts = [_scout(supernet, space.uniform(j), data, bn, n_recal_batches, seed) for j in range(cascade)]
    with_policies = bool(space.exit_positions) or cascade > 0
    records = []
    for i, s in enumerate(subnets):
        old = done.get(space.format(s))
        if old is not None and (not cascade or _has_cascade(old, cascade)):
            records.append(old)
            continue
        vals, heads, test, policy_logits = [], [], None, None
        for j in range(k if old is None else 1):
            if bn == "recal":
                model = subnet_model(supernet, s, data, "recal", n_batches=n_recal_batches, seed=seed + j)
                logits = all_exit_logits(model, data.x_val)
            else:
                model, logits = None, all_exit_logits(supernet, data.x_val, subnet=s)
            accs = [float((lg.argmax(1) == data.y_val).mean()) for lg in logits]
            vals.append(accs[-1])
            heads.append(accs[:-1])
            if j == 0:
                policy_logits = logits
                if i < n_ceiling and len(data.y_test):
                    test = accuracy(model, data.x_test, data.y_test) if model is not None else \
                        accuracy(supernet, data.x_test, data.y_test, s)
        if old is not None:  # completing an older record with cascade policies: same model, same accuracy
            if abs(vals[0] - old["val_acc_seeds"][0]) > 1e-9:
                raise CalibrationError(f"re-measuring {old['arch']} gave val accuracy {vals[0]:.4f}, not the stored "
                                       f"{old['val_acc_seeds'][0]:.4f}: the data was measured differently; "
                                       "re-run `dynnas calibrate` without --extend.")
            record = dict(old)
        else:
            record = {"arch": space.format(s), "subnet_id": space.subnet_id(s), "val_acc": float(np.mean(vals)),
                      "val_acc_seeds": vals, "test_acc": test}
            if space.exit_positions:
                record["exit_val_acc"] = [float(v) for v in np.mean(heads, axis=0)]
        if with_policies:
            record["policies"] = _policies(config, s, policy_logits, data.y_val, criterion=criterion,
                                           temperature=temperature, max_drops=max_drops, scouts=scouts)
        records.append(record)
        if progress is not None:
            progress("measuring subnet accuracy", i + 1, len(subnets))
    meta = {
        "supernet_sha256": supernet_sha256,
        "family": space.family,
        "space": space.to_dict(),
        "arch_config": config.to_dict() if config is not None else None,
        "bn": bn,
        "split": "val",
        "ceiling_split": "test",
        "n_recal_batches": n_recal_batches if bn == "recal" else 0,
        "n_recal_seeds": k,
        "seed": seed,
        "n_samples": len(records),
        "n_ceiling": sum(r["test_acc"] is not None for r in records),
        "exits": ({"criterion": criterion, "temperature": temperature, "max_drops": [float(d) for d in max_drops],
                   "costs": "MACs", "policy_model": f"the seed-{seed} recalibration", "cascade": cascade}
                  if with_policies else None),
        "dataset": {"spec": data.spec, "val": int(len(data.y_val)), "test": int(len(data.y_test))},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if existing is not None:
        meta["extended_from"] = {"n_samples": len(existing.records), "created": existing.meta.get("created")}
    return AccuracyData(meta, records)


def _scout(supernet: nn.Module, subnet: SubnetConfig, data: ImageData, bn: str, n_recal_batches: int,
           seed: int) -> Scout:
    """Measure one cascade scout as a policy subnet is measured (seed-``seed`` model, validation split)."""
    from supernet.cost import exit_macs
    from supernet.evaluate import all_exit_logits

    if bn == "recal":
        logits = all_exit_logits(subnet_model(supernet, subnet, data, "recal", n_batches=n_recal_batches, seed=seed),
                                 data.x_val)[-1]
    else:
        logits = all_exit_logits(supernet, data.x_val, subnet=subnet)[-1]
    return Scout(logits, float(exit_macs(supernet.config, subnet)[-1]))


def _has_cascade(record: dict[str, Any], n: int) -> bool:
    masks = (record.get("policies") or {}).get("masks") or {}
    return any(key.startswith(f"c{n}:") for key in masks)


def data_cascade(data: AccuracyData) -> int:
    """How many width-cascade scouts the data's policies cover (0: none)."""
    return int((data.meta.get("exits") or {}).get("cascade") or 0)


# ---- the predictor ----------------------------------------------------------------------------
def _pairwise(n_blocks: int) -> FunctionTransformer:
    """Append the products of every pair of block width fractions (the first ``n_blocks`` columns)."""
    rows, cols = np.triu_indices(n_blocks, k=1)

    def add(x: np.ndarray) -> np.ndarray:
        return np.hstack([x, x[:, rows] * x[:, cols]])

    return FunctionTransformer(add)


def _candidates(seed: int, n_blocks: int) -> dict[str, RegressorMixin]:
    return {
        "ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "ridge-pairwise": make_pipeline(_pairwise(n_blocks), StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13))),
        "gbr": GradientBoostingRegressor(n_estimators=200, max_depth=3, learning_rate=0.08, subsample=0.8,
                                         random_state=seed),
        "rf": RandomForestRegressor(n_estimators=150, min_samples_leaf=2, max_features=0.5, random_state=seed,
                                    n_jobs=1),
    }


class AccuracyPredictor:
    """Predicts a subnet's validation accuracy (a fraction) from its encoding.

    Features per subnet: each block's width fraction, a one-hot of each block's width choice,
    the mean width fraction and, when ``arch_config`` is given, the MACs as a fraction of the
    largest subnet's. Model: the candidate (ridge, ridge with pairwise terms, gradient boosting,
    random forest) with the best mean Kendall τ in seeded K-fold cross-validation on the
    training part; ``quality`` is measured on a seeded held-out part, then the chosen model is
    refitted on all records.
    """

    def __init__(self, arch_config: CostedConfig | None = None, *, seed: int = 0, test_fraction: float = 0.2,
                 cv_folds: int = 5, candidates: Sequence[str] | None = None) -> None:
        if not 0.0 < test_fraction < 1.0:
            raise ConfigError(f"`test_fraction` must be in (0, 1), but got {test_fraction}.")
        known = list(_candidates(seed, 1))
        unknown_names = [c for c in (candidates or ()) if c not in known]
        if unknown_names:
            raise ConfigError(f"unknown accuracy model(s) {unknown_names}; known: {', '.join(known)}.")
        self.arch_config = arch_config
        self.seed = seed
        self.test_fraction = test_fraction
        self.cv_folds = cv_folds
        self.candidate_names = list(candidates) if candidates else known
        self.space: SearchSpace | None = None
        self.model: RegressorMixin | None = None
        self.model_name = ""
        self.quality: dict[str, Any] = {}
        self._macs: UnitTable | None = None

    # -- features
    def features(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        space = self._space()
        n_choices = len(space.width_choices)
        enc = space.encode_many(subnets)
        if space.token_methods:  # no token reduced: the method gene changes nothing, so it is no feature either
            names = space.gene_names
            t = [i for i, g in enumerate(names) if g.startswith("t") and g[1:].isdigit()]
            full = (enc[:, t] == len(space.token_choices) - 1).all(axis=1)
            enc = enc.copy()
            enc[full, names.index("method")] = 0
        widths = enc[:, : space.n_blocks]
        frac = np.asarray(space.width_choices)[widths]
        onehot = np.zeros((len(widths), space.n_blocks * n_choices))
        onehot[np.arange(len(widths))[:, None], np.arange(space.n_blocks) * n_choices + widths] = 1.0
        cols = [frac, onehot, frac.mean(axis=1, keepdims=True), enc[:, space.n_blocks:].astype(float)]
        if space.n_cascade:  # which scout (one-hot), and its width relative to the subnet's mean width
            scout = np.zeros((len(widths), space.n_cascade))
            k = np.asarray([s.cascade for s in subnets], dtype=np.int64)
            scout[k > 0, k[k > 0] - 1] = 1.0
            rel = np.where(k > 0, np.asarray(space.width_choices)[np.maximum(k - 1, 0)] / frac.mean(axis=1), 0.0)
            cols += [scout, rel.reshape(-1, 1)]
        if self.arch_config is not None:
            if self._macs is None:
                self._macs = macs_table(self.arch_config)
            full = self._macs([space.largest()])[0]
            cols.append((self._macs(subnets) / full).reshape(-1, 1))
        return np.hstack(cols)

    def _space(self) -> SearchSpace:
        if self.space is None:
            raise CalibrationError("the accuracy predictor is not fitted; call fit(space, records) first.")
        return self.space

    # -- fitting
    def fit(self, space: SearchSpace, records: Sequence[dict[str, Any]]) -> AccuracyPredictor:
        """Select, evaluate and fit the model on ``records`` (``arch`` and ``val_acc`` are used)."""
        if len(records) < 10:
            raise CalibrationError(f"the accuracy predictor needs >= 10 measured subnets, but got {len(records)}; "
                                   "collect more (n_samples).")
        subnets = [space.parse(r["arch"]) for r in records]
        both = [(r["val_acc"], r["test_acc"]) for r in records if r.get("test_acc") is not None]
        self.fit_xy(space, subnets, np.array([float(r["val_acc"]) for r in records]))
        self.quality.update({
            "noise_ceiling_tau": kendall_tau(*zip(*both, strict=True)) if len(both) >= 2 else float("nan"),
            "n_ceiling": len(both),
        })
        return self

    def fit_xy(self, space: SearchSpace, subnets: Sequence[SubnetConfig], y: np.ndarray) -> AccuracyPredictor:
        """Select, evaluate and fit the model on any per-subnet target ``y`` (accuracy, exit rate, drop)."""
        if self.arch_config is not None and self.arch_config.space() != dataclasses.replace(space, n_cascade=0):
            raise ConfigError("the accuracy predictor's arch_config does not match the search space of the records.")
        if len(subnets) < 10:
            raise CalibrationError(f"a subnet regressor needs >= 10 measured subnets, but got {len(subnets)}; "
                                   "collect more (n_samples).")
        self.space = space
        x, y = self.features(subnets), np.asarray(y, dtype=np.float64)
        idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=self.test_fraction, random_state=self.seed)
        cv = self._cross_validate(x[idx_train], y[idx_train])
        self.model_name = max(cv, key=lambda name: (np.nan_to_num(cv[name], nan=-2.0), -list(cv).index(name)))
        held = self._candidate(self.model_name).fit(x[idx_train], y[idx_train])
        pred = held.predict(x[idx_test])
        self.model = self._candidate(self.model_name).fit(x, y)
        self.quality = {
            "model": self.model_name,
            "cv_tau": cv,
            "heldout_tau": kendall_tau(pred, y[idx_test]),
            "heldout_rmse_points": 100 * rmse(pred, y[idx_test]),
            "heldout_mae": float(np.mean(np.abs(pred - y[idx_test]))),
            "n_train": int(len(idx_train)),
            "n_test": int(len(idx_test)),
            "val_acc_range": [float(y.min()), float(y.max())],
        }
        return self

    def _candidate(self, name: str) -> RegressorMixin:
        """A fresh, unfitted copy of candidate ``name``."""
        return clone(_candidates(self.seed, self._space().n_blocks)[name])

    def _cross_validate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        folds = KFold(n_splits=min(self.cv_folds, len(y)), shuffle=True, random_state=self.seed)
        out = {}
        for name in self.candidate_names:
            taus = []
            for tr, va in folds.split(x):
                model = self._candidate(name).fit(x[tr], y[tr])
                taus.append(kendall_tau(model.predict(x[va]), y[va]))
            out[name] = float(np.nanmean(taus)) if not np.all(np.isnan(taus)) else float("nan")
        return out

    def predict(self, subnets: Sequence[SubnetConfig]) -> np.ndarray:
        """Predicted validation accuracy of each subnet, as a fraction in [0, 1]."""
        if self.model is None:
            raise CalibrationError("the accuracy predictor is not fitted; call fit(space, records) first.")
        if len(subnets) == 0:
            return np.zeros(0)
        x = self.features(subnets)
        # The features are finite by construction: skip sklearn's per-call input checks, which cost more
        # than the prediction itself at a search's batch of 100.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return np.clip(self.model.predict(x), 0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        return {"method": f"sklearn:{self.model_name}", "quality": self.quality, "seed": self.seed}


# ---- cache beside the supernet ----------------------------------------------------------------
def _fallback_path(sha: str) -> Path:
    return cache_root() / "accuracy" / f"{sha[:16]}.accuracy.json"


def _usable(path: Path, sha: str, bn: str) -> AccuracyData | None:
    if not path.exists():
        return None
    data = AccuracyData.load(path)  # corrupt → PredictorCacheError
    ok = data.meta.get("supernet_sha256") == sha and data.meta.get("bn") == bn
    return data if ok else None


def load_or_collect_accuracy(supernet_path: Path | str, supernet: nn.Module, meta: dict[str, Any],
                             data: ImageData | None, *, n_samples: int = 400, n_ceiling: int = 100, bn: str = "recal",
                             seed: int = 0, progress: Progress | None = None, extend: bool = False,
                             recal_seeds: int = 2, max_drops: Sequence[float] = DEFAULT_MAX_DROPS,
                             criterion: str = "confidence", temperature: bool = False,
                             cascade: int = 0) -> tuple[AccuracyPredictor, AccuracyData]:
    """The fitted accuracy predictor of a supernet, from its cached accuracy data or measured now.

    The cache beside the supernet (:func:`accuracy_data_path`), else the one under
    ``$DYNNAS_CACHE/accuracy``, is used when its sha256 and BN mode match; otherwise the
    subnets are measured on ``data`` and the cache is written beside the supernet (or to the
    user cache when that folder is read-only). With ``extend``, usable cached data with fewer than
    ``n_samples`` records, measured with the same seed and recalibration, is topped up to
    ``n_samples`` (only the new subnets are measured), and data with fewer than ``cascade``
    width-cascade scouts gets their policies (one re-measurement per record). A corrupt cache raises
    :class:`PredictorCacheError`.
    """
    file = Path(supernet_path)
    if file.is_dir():
        file = file / "supernet.safetensors"
    if not file.is_file():
        raise CheckpointError(f"supernet '{file}' does not exist; check the path.")
    sha = sha256(file)
    beside, fallback = accuracy_data_path(file), _fallback_path(sha)
    acc = _usable(beside, sha, bn) or _usable(fallback, sha, bn)
    short = (extend and acc is not None and (len(acc.records) < n_samples or data_cascade(acc) < cascade)
             and acc.meta.get("seed") == seed
             and acc.meta.get("n_recal_batches") == (N_RECAL_BATCHES if bn == "recal" else 0)
             and acc.meta.get("n_recal_seeds") == (recal_seeds if bn == "recal" else 1))
    if acc is None or short:
        if data is None:
            raise DatasetError(f"no accuracy data for supernet '{file}' (sha256 {sha[:12]}, bn={bn}) at '{beside}', "
                               "and no dataset to measure it on; pass --dataset, or restore the .accuracy.json file.")
        acc = collect_accuracy_data(supernet, data, n_samples=n_samples, n_ceiling=n_ceiling, bn=bn, seed=seed,
                                    progress=progress, supernet_sha256=sha, existing=acc if short else None,
                                    recal_seeds=recal_seeds, max_drops=max_drops, criterion=criterion,
                                    temperature=temperature, cascade=max(cascade, data_cascade(acc) if short else 0))
        acc.meta["supernet_file"] = file.name
        acc.meta["dataset"]["supernet_dataset"] = (meta.get("dataset") or {}).get("spec")
        _write(acc, beside, fallback)
    config = getattr(supernet, "config", None)
    arch = config if hasattr(config, "cost_terms") and config.space() == acc.space else None
    predictor = AccuracyPredictor(arch, seed=seed).fit(acc.space, acc.records)
    return predictor, acc


def _write(acc: AccuracyData, beside: Path, fallback: Path) -> None:
    """Write beside the supernet; when that folder is read-only, to the user cache instead."""
    try:
        if not os.access(beside.parent, os.W_OK):
            raise PermissionError(13, "read-only folder")
        acc.save(beside)
    except OSError:
        acc.save(fallback)
