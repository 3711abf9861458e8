"""``optuna``: multi-objective TPE with a real SQLite study in the run folder.

One categorical parameter per encoding position (``w0…`` block widths, ``h0…`` attention heads,
``x0…`` exit bits, ``t0…`` token keep ratios, ``method`` the token-reduction method, ``cascade`` the
width-cascade scout). The study ``dynnas-<device>-seed<seed>`` lives in
``<run>/study.db``; with ``resume`` its finished trials are handed back to the driver (counted
in the budget) and the search continues from them. The latency constraint is stored as the trial
constraint ``latency_ms`` with ``Trial.set_constraint`` (optuna 5 deprecates the sampler's
``constraints_func`` in its favour); TPE reads it from the stored trial.

Speed: optuna's RDB storage commits a transaction per suggested parameter; with SQLite's default
rollback journal every commit syncs the disk. The study therefore opens SQLite in WAL mode with
``synchronous=NORMAL`` (safe against a crash of dynnas, not against power loss), and TPE is
multivariate (one joint sample per trial instead of one per parameter): 2-3x faster on a busy
machine, and multivariate TPE models the interplay of the block widths.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import Trial, TrialState

from nas.algorithms.base import AlgorithmContext, SearchAlgorithm
from nas.algorithms.registry import register_algorithm
from supernet.space import SubnetConfig

STUDY_FILE = "study.db"


def study_name(device: str, seed: int) -> str:
    return f"dynnas-{device}-seed{seed}"


def _connector(path: Path) -> Callable[[], sqlite3.Connection]:
    """SQLite connections in WAL mode without a disk sync per commit (see the module docstring)."""

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    return connect


@register_algorithm
class OptunaSearch(SearchAlgorithm):
    """``TPESampler(seed=…)`` on ``directions=["maximize", "minimize"]`` via ``study.ask``/``study.tell``."""

    name = "optuna"

    def __init__(self, ctx: AlgorithmContext, batch_size: int = 1) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = ctx.problem.space
        self.batch_size = batch_size
        self.constraints = ctx.problem.constraint_names
        self.params = self._param_names()
        path = (ctx.workdir / STUDY_FILE).resolve()
        self.storage = optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"creator": _connector(path)})
        self.study_name = study_name(ctx.problem.device, ctx.seed)
        with warnings.catch_warnings():  # multivariate TPE is flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=int(ctx.seed), multivariate=True)
        if not ctx.resume:
            self._delete_existing()
        # one direction per objective: maximise accuracy, minimise latency (and energy or memory)
        self.directions = [o.direction for o in ctx.problem.objectives]
        self.study = optuna.create_study(storage=self.storage, study_name=self.study_name, sampler=sampler,
                                         directions=self.directions, load_if_exists=True)
        self._pending: list[Trial] = []

    def _param_names(self) -> list[str]:
        """One optuna parameter per gene, named as the space's genome names them."""
        return list(self.space.gene_names)

    def _delete_existing(self) -> None:
        try:
            optuna.delete_study(study_name=self.study_name, storage=self.storage)
        except KeyError:
            pass

    def _decode(self, params: dict[str, Any]) -> SubnetConfig:
        return self.space.decode([int(params[p]) for p in self.params])

    def resumed(self) -> list[SubnetConfig]:
        """Finished trials of an earlier session, in trial order; unfinished ones are marked failed."""
        done = []
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.COMPLETE:
                done.append(self._decode(t.params))
            elif t.state in (TrialState.RUNNING, TrialState.WAITING):
                self.study.tell(t.number, state=TrialState.FAIL)
        return done

    def ask(self, limit: int) -> list[SubnetConfig]:
        self._pending = [self.study.ask() for _ in range(min(limit, self.batch_size))]
        return [
            self._decode({p: t.suggest_categorical(p, list(range(c)))
                          for p, c in zip(self.params, self.space.cardinalities, strict=True)})
            for t in self._pending
        ]

    def tell(self, subnets: Sequence[SubnetConfig], F: np.ndarray, G: np.ndarray) -> None:  # noqa: N803
        pending, self._pending = self._pending, []
        for i, trial in enumerate(pending):
            if i >= len(subnets):  # asked but never evaluated (budget ran out)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            for j, name in enumerate(self.constraints):
                trial.set_constraint(name, float(G[i, j]))
            self.study.tell(trial, [float(-F[i, 0]), *(float(f) for f in F[i, 1:])])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "library": f"optuna {optuna.__version__}", "sampler": "TPESampler(multivariate=True), multi-objective",
                "directions": self.directions,
                "storage": f"sqlite:///{STUDY_FILE}", "study_name": self.study_name, "batch_size": self.batch_size,
                "params": "categorical per encoding position"}

    def close(self) -> None:
        self.storage.remove_session()
        self.storage.engine.dispose()
