"""The run folder: what ``dynnas search`` writes and ``dynnas export``, ``dynnas report`` and ``--resume``
read, defined here and nowhere else.

``DIR/`` (default ``runs/<device>-<YYYYmmdd-HHMMSS>``) holds:

=====================  ================================================================================
``run.json``           :class:`RunRecord`: ``format`` ("dynnas-search-run"), ``format_version`` (2),
                       ``status`` ("complete"), ``created``, ``command`` (reproduces the run), ``settings``
                       (:class:`SearchSettings`, every resolved option; ``device``, ``seed``, ``bn``,
                       ``budget``, ``latency_budget_ms``, ``algorithms`` are copied to the top level for
                       convenience), ``versions``, ``profile`` (the resolved device profile, with its
                       ``deploy`` template), ``supernet`` {path, sha256, family, space, config, default},
                       ``predictors`` {accuracy, exits, latency}, ``objectives``, ``constraints``, ``exits``,
                       ``hv_reference`` (the box hypervolumes are normalised by, see :mod:`nas.pareto`),
                       ``hypervolume`` {algorithm: final HV}, ``hypervolume_combined``,
                       ``hypervolume_baselines``, ``results`` {algorithm: :class:`AlgorithmSummary`},
                       ``baselines`` (uniform-width subnets), ``exported`` (ids under ``subnets/``),
                       ``host_speed`` / ``export_host_speed`` (host reference timing).
``evaluations.csv``    :data:`EVAL_COLUMNS`, one row per evaluation; ``eval_index`` counts from 0 per
                       algorithm, accuracy is a fraction, ``exit_rates`` is ``;``-separated.
                       With a third objective (``--objectives accuracy,latency,energy|memory``) or a
                       ``--max-energy`` / ``--max-memory`` constraint, evaluations.csv and pareto.csv
                       add ``energy_mj`` / ``memory_bytes`` columns after these (optional: older runs
                       lack them), and ``hv_reference`` has a third axis (``third``).
``history.csv``        :data:`HISTORY_COLUMNS`: hypervolume after every batch.
``pareto.csv``         :data:`PARETO_COLUMNS`: per-algorithm fronts; ``combined`` marks the non-dominated
                       union of all algorithms, ``spread_rank`` (0, 1, … on combined rows, -1 elsewhere)
                       the order the export picks them in, so "the top k" is ``spread_rank < k``.
``study.db``           the optuna study (SQLite).
``subnets/<id>/``      one exported subnet package: ``model.onnx`` (+ ``model.all_exits.onnx`` with exits),
                       ``weights.safetensors`` (+ ``scout_weights.safetensors`` with a cascade),
                       ``arch.json`` (:class:`ArchRecord`), ``verify.json`` (:class:`VerifyRecord`).
``report.html``        the report (:mod:`reports.html`).
=====================  ================================================================================

**Several devices** (``dynnas search --device a,b``): ``DIR/`` then holds ``fleet.json``
(:class:`FleetRecord`: devices in order, their per-device budgets, the shared accuracy predictor),
``deployment.csv`` (:data:`DEPLOYMENT_COLUMNS`, one row per (device, budget): the subnet to deploy),
``report.html`` (every device's fronts and the deployment table) and ``devices/<device>/``, one
complete single-device run folder per device as above (its own run.json, tables, study and
``subnets/``). A single-device run has none of these and is exactly the folder above;
:func:`device_runs` lists the single-device folders of either kind.

A staging folder ``.<name>.partial`` additionally holds ``partial.json`` (:class:`PartialRecord`).
Every JSON record keeps keys it does not know (``extra="allow"``), so rewriting ``run.json`` (the
export does) never drops what a newer writer added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from supernet.errors import CheckpointError, CheckpointMismatchError
from supernet.files import read_json, write_json

# ---- names -----------------------------------------------------------------------------------
RUN_FORMAT = "dynnas-search-run"
RUN_FORMAT_VERSION = 2  # 2: early exits (dynamic accuracy, expected and worst-case latency, exit rates)
RUN_FILE = "run.json"
EVALUATIONS_FILE = "evaluations.csv"
HISTORY_FILE = "history.csv"
PARETO_FILE = "pareto.csv"
STUDY_FILE = "study.db"
REPORT_FILE = "report.html"
SUBNETS_DIR = "subnets"
PARTIAL_FILE = "partial.json"  # only in a staging folder: settings + finished algorithms
FLEET_FILE = "fleet.json"  # only in a run over several devices
# Only in the staging folder of a search over several devices: the device keys it searches, so that
# --resume of an interrupted session can check them.
FLEET_PARTIAL_FILE = "fleet.partial.json"
FLEET_PARTIAL_FORMAT = "dynnas-fleet-partial"
FLEET_FORMAT = "dynnas-fleet-run"
FLEET_FORMAT_VERSION = 1
DEVICES_DIR = "devices"  # devices/<device>/: one single-device run folder per device
DEPLOYMENT_FILE = "deployment.csv"

SUBNET_FORMAT = "dynnas-subnet"
SUBNET_FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
ALL_EXITS_FILE = "model.all_exits.onnx"
STATIC_FILE = "static.onnx"  # a dynamic subnet with its exits off: the baseline its speed-up is measured against
MANIFEST_FILE = "manifest.json"  # the segment chain (supernet.runtime); a static subnet: one stage, model.onnx
BENCH_FILE = "bench.json"  # written by dynnas bench
WEIGHTS_FILE = "weights.safetensors"
SCOUT_WEIGHTS_FILE = "scout_weights.safetensors"
ARCH_FILE = "arch.json"
VERIFY_FILE = "verify.json"

EVAL_COLUMNS = ("eval_index", "algorithm", "subnet_id", "arch", "accuracy", "latency_ms", "macs", "feasible",
                "static_accuracy", "worst_latency_ms", "exit_rates")
HISTORY_COLUMNS = ("algorithm", "n_evals", "hypervolume")
PARETO_COLUMNS = ("subnet_id", "algorithm", "arch", "accuracy", "latency_ms", "macs", "static_accuracy",
                  "worst_latency_ms", "exit_rates", "combined", "spread_rank")
DEPLOYMENT_COLUMNS = ("device", "power_mode", "latency_budget_ms", "subnet_id", "arch", "accuracy", "latency_ms",
                      "macs", "memory_bytes", "run")  # run: the device's folder, relative to the fleet folder
TABLE_COLUMNS = {DEPLOYMENT_FILE: DEPLOYMENT_COLUMNS, EVALUATIONS_FILE: EVAL_COLUMNS, HISTORY_FILE: HISTORY_COLUMNS, PARETO_FILE: PARETO_COLUMNS}
# Settings that must match for --resume to reuse earlier work.
RESUME_KEYS = ("device", "profile_sha", "supernet_sha256", "budget", "latency_budget_ms", "bn", "seed",
               "accuracy_samples", "exits", "max_accuracy_drop", "max_worst_latency_ms", "cascade", "power_mode", "batch",
               "objectives", "max_memory_bytes", "max_energy_mj")
TOP_LEVEL_COPIES = ("device", "seed", "bn", "budget", "latency_budget_ms", "algorithms")  # of settings, in run.json


class NoRunError(CheckpointError):
    """A folder holds no (readable) dynnas search run."""


class IncompatibleRunsError(CheckpointMismatchError):
    """Run folders that cannot be read or compared together."""


# ---- records ---------------------------------------------------------------------------------
class _Record(BaseModel):
    """A JSON record: validated, frozen, and keeping the keys it does not know."""

    model_config = ConfigDict(extra="allow", frozen=True)


class SearchSettings(_Record):
    """Every resolved option of one ``dynnas search`` (stored in run.json and checked on resume)."""

    device: str
    profile_sha: str
    supernet: str
    supernet_sha256: str
    algorithms: tuple[str, ...] = Field(min_length=1)
    budget: int = Field(ge=1)
    latency_budget_ms: float | None = Field(default=None, gt=0)
    top_k: int = Field(ge=0)
    bn: Literal["recal", "switchable"]
    seed: int
    device_type: str
    accuracy_samples: int = Field(ge=1)
    out: str
    dataset: str | None = None
    exits: Literal["auto", "on", "off"] = "auto"
    cascade: Literal["auto", "off"] = "auto"
    power_mode: str | None = None  # None: the profile's default mode
    batch: int = Field(default=1, ge=1)  # images per inference; latency_ms is per batch
    max_accuracy_drop: float | None = Field(default=None, ge=0, lt=1)  # fraction; None when the space has no exits
    max_worst_latency_ms: float | None = Field(default=None, gt=0)
    # Recorded only when used, so a two-objective run's settings read exactly as before they existed.
    objectives: tuple[str, ...] | None = None  # None: accuracy, latency
    max_memory_bytes: float | None = Field(default=None, gt=0)
    max_energy_mj: float | None = Field(default=None, gt=0)

    def to_dict(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        for key in ("objectives", "max_memory_bytes", "max_energy_mj"):
            if out.get(key) is None:
                out.pop(key, None)
        return out

    def command(self, *, device: str | None = None, latency_budget: str | None = None,
                out: str | None = None) -> str:
        """A ``dynnas search`` command line that reproduces these settings (``device``, ``latency_budget``
        and ``out`` replace this device's, as the command of a search over several devices needs)."""
        if device is None:
            device = f"{self.device}:{self.power_mode}" if self.power_mode else self.device
        if latency_budget is None and self.latency_budget_ms is not None:
            latency_budget = f"{self.latency_budget_ms:g}"
        parts = ["dynnas search", f"--device {device}", f"--supernet {self.supernet}",
                 f"--algorithm {','.join(self.algorithms)}", f"--budget {self.budget}"]
        if latency_budget:
            parts.append(f"--latency-budget {latency_budget}")
        parts += [f"--top {self.top_k}", f"--bn {self.bn}", f"--seed {self.seed}",
                  f"--accuracy-samples {self.accuracy_samples}", f"--device-type {self.device_type}",
                  f"--out {self.out if out is None else out}"]
        if self.dataset is not None:
            parts.append(f"--dataset {self.dataset}")
        if self.exits != "auto":
            parts.append(f"--exits {self.exits}")
        if self.cascade != "auto":
            parts.append(f"--cascade {self.cascade}")
        if self.batch != 1:
            parts.append(f"--batch {self.batch}")
        if self.max_accuracy_drop is not None:
            parts.append(f"--max-accuracy-drop {100 * self.max_accuracy_drop:g}")
        if self.max_worst_latency_ms is not None:
            parts.append(f"--max-worst-latency {self.max_worst_latency_ms:g}")
        if self.objectives is not None:
            parts.append(f"--objectives {','.join(self.objectives)}")
        if self.max_memory_bytes is not None:
            parts.append(f"--max-memory {self.max_memory_bytes:.0f}")
        if self.max_energy_mj is not None:
            parts.append(f"--max-energy {self.max_energy_mj:g}")
        return " ".join(parts)

    def differences(self, other: SearchSettings, keys: Sequence[str] = RESUME_KEYS) -> list[tuple[str, Any, Any]]:
        """``(key, self's value, other's value)`` for every key in ``keys`` where the two differ."""
        return [(k, getattr(self, k), getattr(other, k)) for k in keys if getattr(self, k) != getattr(other, k)]


class ProfileRecord(_Record):
    """The device profile a run was searched for (the whole resolved profile is kept as extra keys)."""

    name: str
    deploy: str | None = None  # command template with ``{onnx}``
    path: str | None = None  # the YAML file, when the device was given as one


class SupernetRecord(_Record):
    path: str
    sha256: str
    family: str | None = None
    space: dict[str, Any] | None = None  # supernet.space.SearchSpace.to_dict() of the searched space
    config: Any = None
    default: bool = False
    dataset: str | None = None


class PredictorsRecord(_Record):
    accuracy: dict[str, Any] = Field(default_factory=dict)  # quality, method, data
    exits: dict[str, Any] | None = None  # quality, method, calibration (None without exits)
    latency: dict[str, Any] = Field(default_factory=dict)  # the latency predictor's describe() + confidence


class Objective(_Record):
    name: str
    direction: Literal["maximize", "minimize"]
    unit: str = ""


class FrontSummary(_Record):
    hypervolume: float | None = None
    n_front: int = 0
    latency_span_ms: tuple[float, float] | None = None


class ExitsSummary(_Record):
    searched: bool = False
    positions: list[int] = Field(default_factory=list)
    max_accuracy_drop: float | None = None
    objectives: str = "static accuracy and latency"
    with_exits: FrontSummary | None = None
    exit_free: FrontSummary | None = None


class Corner(_Record):
    accuracy: float
    latency_ms: float


class HVReference(_Record):
    """The box hypervolumes are normalised by (see :mod:`nas.pareto`) and its reference point."""

    accuracy: float  # reference point, raw units
    latency_ms: float
    ideal: Corner
    nadir: Corner
    normalised_reference: tuple[float, ...] = (1.1, 1.1)  # (1.1, 1.1, 1.1) with a third objective
    transform: str = ""

    def same_box(self, other: HVReference, rel: float = 1e-9) -> bool:
        third = (self.model_extra or {}).get("third")
        if third != (other.model_extra or {}).get("third"):
            return False
        keys = ("accuracy", "latency_ms", *([third] if third else []))
        a = [float(getattr(c, k)) for c in (self.ideal, self.nadir) for k in keys]
        b = [float(getattr(c, k)) for c in (other.ideal, other.nadir) for k in keys]
        return bool(np.allclose(a, b, rtol=rel, atol=0.0)) and self.normalised_reference == other.normalised_reference


class AlgorithmSummary(_Record):
    """What run.json records about one algorithm's search (also the ``done`` entries of partial.json)."""

    n_evals: int = Field(ge=0)
    budget: int = Field(ge=1)
    seconds: float = Field(ge=0)
    evals_per_second: float | None = None
    stopped_early: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    n_pareto: int = 0
    hypervolume: float | None = None
    n_distinct: int = 0


class Baseline(_Record):
    """A uniform-width subnet (every block at width α) with the run's predictions."""

    width: float
    arch: str
    subnet_id: str | None = None
    accuracy: float
    latency_ms: float
    macs: int | None = None
    feasible: bool = True


class HostSpeed(_Record):
    """The host reference subnet timed now against at calibration (``drift`` = now / then)."""

    drift: float
    reference_ms_now: float
    reference_ms_at_calibration: float


class RunRecord(_Record):
    """``run.json`` of a finished search, typed and validated (see the module docstring)."""

    format: Literal["dynnas-search-run"] = RUN_FORMAT
    format_version: int = RUN_FORMAT_VERSION
    status: Literal["complete"] = "complete"
    created: str = ""
    command: str = ""
    settings: SearchSettings
    dataset: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    profile: ProfileRecord
    supernet: SupernetRecord
    predictors: PredictorsRecord = Field(default_factory=PredictorsRecord)
    objectives: list[Objective] = Field(default_factory=list)
    constraints: list[dict[str, Any]] = Field(default_factory=list)
    exits: ExitsSummary = Field(default_factory=ExitsSummary)
    hv_reference: HVReference
    hypervolume: dict[str, float | None]
    hypervolume_combined: float | None = None
    hypervolume_baselines: float | None = None
    results: dict[str, AlgorithmSummary]
    baselines: list[Baseline] | None = None
    exported: list[str] = Field(default_factory=list)
    host_speed: HostSpeed | None = None
    export_host_speed: HostSpeed | None = None

    @model_validator(mode="before")
    @classmethod
    def _top_level_copies(cls, data: Any) -> Any:
        """Drop the convenience copies of settings at the top level, after checking they agree."""
        if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
            return data
        data = dict(data)
        for key in TOP_LEVEL_COPIES:
            if key in data:
                top, inner = data.pop(key), data["settings"].get(key)
                if key == "algorithms" and isinstance(top, list | tuple) and isinstance(inner, list | tuple):
                    top, inner = list(top), list(inner)
                if top != inner:
                    raise ValueError(f"top-level {key}={top!r} disagrees with settings.{key}={inner!r}")
        return data

    # -- what every reader asks ------------------------------------------------------------
    @property
    def device(self) -> str:
        return self.settings.device

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def bn(self) -> str:
        return self.settings.bn

    @property
    def algorithms(self) -> tuple[str, ...]:
        return self.settings.algorithms

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    def search_space(self) -> Any:
        """The searched :class:`supernet.space.SearchSpace`, or None when run.json stores none."""
        if self.supernet.space is None:
            return None
        from supernet.space import SearchSpace

        return SearchSpace.from_dict(self.supernet.space)

    def supernet_config(self) -> Any:
        """The supernet's typed config (``supernet.registry.config_from_dict``), or None when run.json stores
        none or one this version cannot read."""
        if not isinstance(self.supernet.config, dict):
            return None
        from supernet.errors import ConfigError
        from supernet.registry import config_from_dict

        space = self.search_space()
        family = self.supernet.family or self.supernet.config.get("family") or getattr(space, "family", None)
        try:
            return config_from_dict(family or "cnn", self.supernet.config)
        except (ConfigError, TypeError):
            return None

    def parse_arch(self, arch: str) -> Any:
        """``arch`` as a :class:`supernet.space.SubnetConfig` (:func:`parse_arch_in` the run's spaces)."""
        return parse_arch_in(self.search_space(), self.supernet_config(), arch)

    def problem_key(self) -> tuple[Any, ...]:
        """What must agree for two runs to be seeds of the same search problem (everything but the seed,
        the algorithms and the output folder)."""
        s = self.settings
        return (s.device, s.power_mode, s.profile_sha, s.supernet_sha256, s.budget, s.latency_budget_ms, s.bn,
                s.exits, s.cascade, s.batch, s.max_accuracy_drop, s.max_worst_latency_ms, self.objective_names,
                json.dumps(self.supernet.space, sort_keys=True))

    def updated(self, **changes: Any) -> RunRecord:
        """A validated copy with ``changes`` (plain values: dicts become their records)."""
        return type(self).model_validate({**self.to_doc(), **jsonable(changes)})

    def to_doc(self) -> dict[str, Any]:
        """The JSON document: the record with the convenience copies of settings at the top level."""
        doc = self.model_dump(mode="json", exclude_unset=True)  # optional parts appear only when given
        head = {"format": self.format, "format_version": self.format_version, "status": self.status,
                "created": self.created, "command": self.command, "settings": self.settings.to_dict()}
        return {**head, **{k: head["settings"][k] for k in TOP_LEVEL_COPIES},
                **{k: v for k, v in doc.items() if k not in head}}


class PartialRecord(_Record):
    """``partial.json`` of a staging folder: the settings and the algorithms finished so far."""

    format: Literal["dynnas-search-run"] = RUN_FORMAT
    settings: SearchSettings
    done: dict[str, AlgorithmSummary] = Field(default_factory=dict)


class LatencySummary(_Record):
    median_ms: float
    p10_ms: float
    p90_ms: float


class RelativeLatency(_Record):
    """A host timing relative to the host predictor's reference subnet (see predictors.host_latency)."""

    ratio: float
    at_calibration_speed_ms: float
    at_calibration_speed_p10_ms: float
    at_calibration_speed_p90_ms: float
    now_ms: float | None = None


class ArchRecord(_Record):
    """``arch.json`` of an exported subnet: what it is and how to rebuild it."""

    format: Literal["dynnas-subnet"] = SUBNET_FORMAT
    format_version: Literal[1] = SUBNET_FORMAT_VERSION
    arch: str
    subnet_id: str
    family: str | None = None
    macs: int
    params: int
    bn: str
    files: dict[str, str]
    input: dict[str, Any]
    output: dict[str, Any]
    cascade: dict[str, Any] | None = None
    exit_policy: dict[str, Any] | None = None


class VerifyRecord(_Record):
    """``verify.json`` of an exported subnet: ONNX against PyTorch, measured against predicted."""

    arch: str
    subnet_id: str
    algorithm: str = ""
    device: str = ""
    dynamic: bool = False
    eval_set: str
    max_abs_logit_diff: float
    onnx_accuracy: float
    static_accuracy: float | None = None  # with exits: the same subnet with every exit off
    host_latency_ms: LatencySummary
    host_latency_relative: RelativeLatency | None = None
    predicted_accuracy: float
    predicted_latency_ms: float
    predicted_host_latency_ms: float
    host_latency_predictor: dict[str, Any] = Field(default_factory=dict)
    exit_policy: dict[str, Any] | None = None
    exit_rates: list[float] | None = None  # measured on the test images (the scout's share first)
    predicted_exit_rates: list[float] | None = None
    predicted_static_accuracy: float | None = None
    predicted_worst_latency_ms: float | None = None
    same_exit_as_pytorch: float | None = None


class ExportedSubnet(_Record):
    """One subnet package under ``subnets/<id>/``."""

    folder: Path
    arch: ArchRecord
    verify: VerifyRecord

    @property
    def onnx(self) -> Path:
        return self.folder / str(self.arch.files.get("onnx", MODEL_FILE))


def parse_arch_in(space: Any, config: Any, arch: str) -> Any:
    """``arch`` in the searched ``space``, or else in the supernet's own space (``config.space()``, same cascade):
    an export of an ``--exits off`` search writes arch.json there (``_x0…``). Width, head and token genes mean
    the same in both. Raises :class:`supernet.errors.ArchStringError` when neither fits."""
    import dataclasses

    from supernet.errors import ArchStringError

    try:
        if space is None:
            raise ArchStringError(f"run.json stores no search space to parse '{arch}' in")
        return space.parse(str(arch))
    except ArchStringError:
        if config is None:
            raise
        own = config.space()
        if space is not None:
            own = dataclasses.replace(own, n_cascade=space.n_cascade)
        return own.parse(str(arch))


# ---- reading -----------------------------------------------------------------------------------
def _first_error(err: ValidationError) -> str:
    """``loc: message, got value`` of the first error (the document's own checks name no field)."""
    e = err.errors()[0]
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    msg = e["msg"].removeprefix("Value error, ")
    if not e["loc"]:
        return f"{msg}{more}"
    got = "" if e["type"] == "missing" else f", got {json.dumps(e.get('input'), default=str)[:60]}"
    return f"{'.'.join(str(x) for x in e['loc'])}: {msg}{got}{more}"


def load_run(run_dir: Path | str) -> RunRecord:
    """run.json of a finished search run; :class:`NoRunError` naming the fix for anything else."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NoRunError(f"run folder '{run_dir}' does not exist; pass a folder written by `dynnas search`.")
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise NoRunError(f"'{run_dir}' holds no dynnas search run (no {RUN_FILE}); pass a folder written by "
                         "`dynnas search --out DIR`.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise NoRunError(f"'{path}' is corrupt or truncated ({e.__class__.__name__}{where}); restore it from a copy "
                         f"or rerun the search with --overwrite --out {run_dir}.") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt != RUN_FORMAT:
        raise NoRunError(f"'{path}' is not a dynnas search run file (format {fmt!r}, expected {RUN_FORMAT!r}); "
                         "pass a folder written by `dynnas search`.")
    if doc.get("format_version") != RUN_FORMAT_VERSION:
        raise NoRunError(f"run '{run_dir}' has format version {doc.get('format_version')!r}, this dynnas reads "
                         f"{RUN_FORMAT_VERSION}; rerun `{doc.get('command') or 'dynnas search'}` with --overwrite.")
    if doc.get("status") != "complete":
        raise NoRunError(f"run '{run_dir}' is not complete (status {doc.get('status')!r}); rerun it with --resume.")
    try:
        return RunRecord.model_validate(doc)
    except ValidationError as e:
        raise NoRunError(f"'{path}' breaks the {RUN_FORMAT} format {RUN_FORMAT_VERSION} ({_first_error(e)}); it was "
                         f"edited or written by another tool: rerun `{doc.get('command') or 'dynnas search'}` "
                         "with --overwrite.") from None


def load_runs(run_dirs: Sequence[Path | str]) -> list[tuple[Path, RunRecord]]:
    """Several run folders that are read together (a comparison report): each loaded, none twice, and all of
    one format with the same objectives; :class:`IncompatibleRunsError` otherwise."""
    out: list[tuple[Path, RunRecord]] = []
    seen: dict[Path, Path] = {}
    for d in run_dirs:
        d = Path(d)
        key = d.resolve()
        if key in seen:
            also = f" (also as '{seen[key]}')" if str(seen[key]) != str(d) else ""
            raise IncompatibleRunsError(f"run folder '{d}' is given twice{also}; pass each run once.")
        seen[key] = d
        out.append((d, load_run(d)))
    (first, ref), rest = out[0], out[1:]
    for d, rec in rest:
        if (rec.format, rec.format_version) != (ref.format, ref.format_version):  # a future reader of several versions
            raise IncompatibleRunsError(f"runs '{first}' ({ref.format} {ref.format_version}) and '{d}' ({rec.format} "
                                        f"{rec.format_version}) have incompatible formats; report them separately.")
        if rec.objective_names != ref.objective_names:
            raise IncompatibleRunsError(f"runs '{first}' (objectives {', '.join(ref.objective_names) or 'none'}) and "
                                        f"'{d}' (objectives {', '.join(rec.objective_names) or 'none'}) optimise "
                                        "different objectives; report them separately.")
    return out


def save_run(run_dir: Path, record: RunRecord | dict[str, Any]) -> RunRecord:
    """Validate ``record`` (a :class:`RunRecord` or its document) and write it as ``run_dir/run.json``
    (atomically); returns the record."""
    if not isinstance(record, RunRecord):
        doc = jsonable({"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, **record})
        try:
            record = RunRecord.model_validate(doc)
        except ValidationError as e:  # a bug in the writer, not bad input: say which field
            raise ValueError(f"run.json would break the {RUN_FORMAT} format: {_first_error(e)}") from e
    write_json(Path(run_dir) / RUN_FILE, jsonable(record.to_doc()))
    return record


def load_partial(path: Path) -> PartialRecord:
    """``partial.json`` of an interrupted session."""
    doc = read_json(path, "partial run state")
    try:
        return PartialRecord.model_validate(doc)
    except ValidationError as e:
        raise NoRunError(f"'{path}' is not a dynnas partial run state ({_first_error(e)}); pass --overwrite to start "
                         "the run afresh.") from None


def read_table(run_dir: Path | str, name: str) -> pd.DataFrame:
    """One of the run's CSV tables (:data:`TABLE_COLUMNS`), with its columns checked."""
    columns = TABLE_COLUMNS[name]
    path = Path(run_dir) / name
    if not path.is_file():
        raise NoRunError(f"run '{run_dir}' has no {name}; it is incomplete: rerun the search with --overwrite.")
    try:
        df = pd.read_csv(path, dtype={"subnet_id": str, "arch": str, "exit_rates": str, "algorithm": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise NoRunError(f"'{path}' is corrupt ({e.__class__.__name__}); rerun the search with --overwrite.") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise NoRunError(f"'{path}' lacks columns {missing}; rerun the search with --overwrite.")
    for col in ("feasible", "combined"):
        if col in df.columns:
            df[col] = df[col].astype(str).str.lower().isin(("true", "1"))
    return df


def combined_front(run_dir: Path | str) -> pd.DataFrame:
    """The run's combined Pareto front (over all algorithms), one row per subnet, fastest first."""
    df = read_table(run_dir, PARETO_FILE)
    front = df[df["combined"]].drop_duplicates("subnet_id")
    if front.empty:
        raise NoRunError(f"'{Path(run_dir) / PARETO_FILE}' marks no subnet as on the combined front; "
                         "rerun the search with --overwrite.")
    return front.sort_values(["latency_ms", "accuracy"], ascending=[True, False], kind="stable").reset_index(drop=True)


def choose_subnets(front: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """The ``top_k`` subnets spread along the front (``spread_rank < top_k``: the fastest and the most
    accurate first, then the largest latency gaps), fastest first."""
    from supernet.errors import ConfigError

    if top_k < 1:
        raise ConfigError(f"--top must be >= 1, but got {top_k}.")
    rank = front["spread_rank"].astype(int)
    return front[(rank >= 0) & (rank < top_k)].sort_values("latency_ms", kind="stable").reset_index(drop=True)


def exported_subnets(run_dir: Path | str, run: RunRecord) -> list[ExportedSubnet]:
    """The subnet packages of the run's latest export (``run.exported``), in that order."""
    out = []
    for sid in run.exported:
        folder = Path(run_dir) / SUBNETS_DIR / str(sid)
        try:
            arch, verify = read_json(folder / ARCH_FILE, "arch file"), read_json(folder / VERIFY_FILE, "verify file")
            out.append(ExportedSubnet(folder=folder, arch=ArchRecord.model_validate(arch),
                                      verify=VerifyRecord.model_validate(verify)))
        except CheckpointError as e:
            raise NoRunError(f"{e} Re-export with `dynnas export {run_dir}`.") from None
        except ValidationError as e:
            raise NoRunError(f"subnet package '{folder}' breaks the {SUBNET_FORMAT} format ({_first_error(e)}); "
                             f"re-export with `dynnas export {run_dir}`.") from None
    return out


def resolve_run_supernet(run_dir: Path, run: RunRecord, override: Path | None) -> tuple[Any, dict[str, Any], Path, str]:
    """The run's supernet ``(model, meta, path, sha256)``; its sha256 must match the one in run.json."""
    from supernet.files import sha256
    from supernet.pretrained import resolve_supernet

    path = override
    if path is None and run.supernet.path:
        path = Path(run.supernet.path)
        if not path.is_absolute() and not path.exists() and (run_dir / path).exists():
            path = run_dir / path
    model, meta, path = resolve_supernet(path)
    digest = sha256(path)
    want = run.supernet.sha256
    if want and digest != want:
        raise CheckpointMismatchError(f"supernet '{path}' has sha256 {digest[:12]}… but run '{run_dir}' was searched on "
                                      f"{want[:12]}…; pass --supernet with the run's supernet.")
    return model, meta, path, digest


# ---- several devices ---------------------------------------------------------------------------
class FleetDevice(_Record):
    """One device of a fleet run: its name (and power mode), budget and folder under ``devices/``."""

    device: str
    power_mode: str | None = None
    latency_budget_ms: float | None = Field(default=None, gt=0)
    run: str  # relative to the fleet folder: devices/<device>


class FleetRecord(_Record):
    """``fleet.json`` of a search over several devices (see the module docstring)."""

    format: Literal["dynnas-fleet-run"] = FLEET_FORMAT
    format_version: Literal[1] = FLEET_FORMAT_VERSION
    status: Literal["complete"] = "complete"
    created: str | None = None
    command: str | None = None
    seed: int
    devices: tuple[FleetDevice, ...] = Field(min_length=2)
    accuracy_predictor: dict[str, Any] = Field(default_factory=dict)  # fitted once, shared by every device


def is_fleet(run_dir: Path | str) -> bool:
    """Whether ``run_dir`` holds a search over several devices (a ``fleet.json``)."""
    return (Path(run_dir) / FLEET_FILE).is_file()


def load_fleet(run_dir: Path | str) -> FleetRecord:
    """fleet.json of a finished search over several devices; :class:`NoRunError` naming the fix otherwise."""
    path = Path(run_dir) / FLEET_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return FleetRecord.model_validate(doc)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NoRunError(f"'{path}' cannot be read ({e.__class__.__name__}); rerun the search with --overwrite "
                         f"--out {run_dir}.") from None
    except ValidationError as e:
        raise NoRunError(f"'{path}' is not a valid dynnas fleet run ({_first_error(e)}); rerun the search with "
                         f"--overwrite --out {run_dir}.") from None


def save_fleet(run_dir: Path, record: FleetRecord) -> FleetRecord:
    write_json(Path(run_dir) / FLEET_FILE, jsonable(record.model_dump(mode="json")))
    return record


def device_runs(run_dir: Path | str) -> list[Path]:
    """The single-device run folders of ``run_dir``: itself, or for a fleet its ``devices/<device>`` in order."""
    run_dir = Path(run_dir)
    if not is_fleet(run_dir):
        return [run_dir]
    return [run_dir / d.run for d in load_fleet(run_dir).devices]


def read_deployment(run_dir: Path | str) -> pd.DataFrame | None:
    """deployment.csv of a fleet run (None for a single-device run)."""
    path = Path(run_dir) / DEPLOYMENT_FILE
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"subnet_id": str, "arch": str, "power_mode": str, "run": str})


# ---- writing helpers -----------------------------------------------------------------------------
def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays as Python values and NaN/inf as None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, BaseModel):
        return jsonable(obj.model_dump(mode="json"))
    return obj


__all__ = [
    "ARCH_FILE", "DEPLOYMENT_COLUMNS", "DEPLOYMENT_FILE", "DEVICES_DIR", "FLEET_FILE", "FLEET_PARTIAL_FILE", "FLEET_PARTIAL_FORMAT", "FleetDevice", "FleetRecord",
    "device_runs", "is_fleet", "load_fleet", "read_deployment", "save_fleet", "EVALUATIONS_FILE", "EVAL_COLUMNS", "HISTORY_COLUMNS", "HISTORY_FILE", "PARETO_COLUMNS",
    "PARETO_FILE", "PARTIAL_FILE", "RESUME_KEYS", "RUN_FILE", "RUN_FORMAT", "RUN_FORMAT_VERSION", "SUBNETS_DIR",
    "SUBNET_FORMAT", "SUBNET_FORMAT_VERSION", "VERIFY_FILE", "AlgorithmSummary", "ArchRecord", "ExportedSubnet",
    "HVReference", "IncompatibleRunsError", "NoRunError", "PartialRecord", "RunRecord", "SearchSettings",
    "VerifyRecord", "choose_subnets", "combined_front", "exported_subnets", "jsonable", "load_partial", "load_run",
    "load_runs", "read_table", "resolve_run_supernet", "save_run",
]
