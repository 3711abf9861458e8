"""The run folder: the output contract of ``dynnas search`` and how it is written safely.

``DIR/`` (default ``runs/<device>-<YYYYmmdd-HHMMSS>``) holds:

- ``run.json``: ``format`` ("dynnas-search-run"), ``format_version``, ``status`` ("complete"),
  ``created``, ``command`` (a command that reproduces the run), ``settings`` (every resolved option)
  and, for convenience, ``device``, ``seed``, ``bn``, ``budget``, ``latency_budget_ms``, ``algorithms``
  at the top level; ``versions`` (dynnas, python, torch, numpy, optuna, pymoo, onnxruntime);
  ``profile`` (the resolved device profile dict, incl. ``name`` and the ``deploy`` template);
  ``supernet`` {path (absolute), sha256, family, space, config, default}; ``predictors``
  {accuracy: {quality, data}, latency: describe()}; ``objectives``; ``hv_reference`` (see
  :mod:`nas.pareto`); ``hypervolume`` {algorithm: final HV}; ``hypervolume_combined`` (union of all fronts);
  ``hypervolume_baselines`` (the uniform-width subnets alone, for scale);
  ``results`` {algorithm: n_evals, seconds, evals_per_second, stopped_early, settings, n_pareto};
  ``baselines`` (the uniform-width subnets: width, arch, subnet_id, accuracy, latency_ms, macs,
  feasible); ``exported`` (subnet ids under ``subnets/``, recorded by :mod:`nas.export`).
- ``evaluations.csv``: ``eval_index, algorithm, subnet_id, arch, accuracy, latency_ms, macs, feasible``
  (every evaluation; ``eval_index`` counts from 0 per algorithm; accuracy is a fraction).
- ``history.csv``: ``algorithm, n_evals, hypervolume`` (after every batch).
- ``pareto.csv``: one row per Pareto-optimal (feasible, distinct) subnet per algorithm:
  ``subnet_id, algorithm, arch, accuracy, latency_ms, macs, combined, spread_rank`` — ``combined`` is
  true when the subnet is also on the non-dominated union of all algorithms; ``spread_rank``
  (0, 1, … on combined rows, -1 elsewhere) is the order :func:`nas.pareto.spread_order` picks them,
  so "the top k spread along the front" is ``spread_rank < k``.
- ``study.db``: the optuna study (SQLite), ``subnets/<subnet_id>/``: exported models,
  ``report.html``: the report.

Everything is written into a staging folder ``.<name>.partial`` beside ``DIR`` and renamed at the
end, so a failure leaves no partial run. Only an interrupt (Ctrl-C) keeps the staging folder, so
``--resume`` can continue it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.driver import EVAL_COLUMNS, HISTORY_COLUMNS, SearchResult, pareto_rows
from nas.pareto import HVBox, hypervolume, non_dominated, spread_order
from supernet.checkpoint import atomic_write, read_json, write_json
from supernet.errors import CheckpointError, OutputError

RUN_FORMAT = "dynnas-search-run"
RUN_FORMAT_VERSION = 2  # 2: early exits (dynamic accuracy, expected and worst-case latency, exit rates)
RUN_FILE = "run.json"
EVALUATIONS_FILE = "evaluations.csv"
HISTORY_FILE = "history.csv"
PARETO_FILE = "pareto.csv"
PARTIAL_FILE = "partial.json"  # only in a staging folder: settings + finished algorithms
PARETO_COLUMNS = ("subnet_id", "algorithm", "arch", "accuracy", "latency_ms", "macs", "static_accuracy",
                  "worst_latency_ms", "exit_rates", "combined", "spread_rank")
# Settings that must match for --resume to reuse earlier work.
RESUME_KEYS = ("device", "profile_sha", "supernet_sha256", "budget", "latency_budget_ms", "bn", "seed",
               "accuracy_samples", "exits", "max_accuracy_drop", "max_worst_latency_ms", "cascade", "power_mode", "batch")


class NoRunError(CheckpointError):
    """A folder holds no (readable) dynnas search run."""


@dataclass(frozen=True, kw_only=True)
class SearchSettings:
    """Every resolved option of one ``dynnas search`` (stored in run.json and checked on resume)."""

    device: str
    profile_sha: str
    supernet: str
    supernet_sha256: str
    algorithms: tuple[str, ...]
    budget: int
    latency_budget_ms: float | None
    top_k: int
    bn: str
    seed: int
    device_type: str
    accuracy_samples: int
    out: str
    dataset: str | None = None
    exits: str = "auto"
    cascade: str = "auto"
    power_mode: str | None = None  # None: the profile's default mode
    batch: int = 1  # images per inference; latency_ms is per batch
    max_accuracy_drop: float | None = None  # fraction; None when the space has no exits
    max_worst_latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["algorithms"] = list(self.algorithms)
        return d

    def command(self) -> str:
        """A ``dynnas search`` command line that reproduces these settings."""
        device = f"{self.device}:{self.power_mode}" if self.power_mode else self.device
        parts = ["dynnas search", f"--device {device}", f"--supernet {self.supernet}",
                 f"--algorithm {','.join(self.algorithms)}", f"--budget {self.budget}"]
        if self.latency_budget_ms is not None:
            parts.append(f"--latency-budget {self.latency_budget_ms:g}")
        parts += [f"--top {self.top_k}", f"--bn {self.bn}", f"--seed {self.seed}",
                  f"--accuracy-samples {self.accuracy_samples}", f"--device-type {self.device_type}",
                  f"--out {self.out}"]
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
        return " ".join(parts)


def default_out(device: str, now: _dt.datetime | None = None) -> Path:
    """``runs/<device>-<YYYYmmdd-HHMMSS>`` (local time)."""
    now = now or _dt.datetime.now()
    return Path("runs") / f"{device}-{now:%Y%m%d-%H%M%S}"


def staging_path(out: Path) -> Path:
    out = Path(out)
    return out.parent / f".{out.name}.partial"


# ---- reading ---------------------------------------------------------------------------------
def load_run(run_dir: Path | str) -> dict[str, Any]:
    """run.json of a finished search run; :class:`NoRunError` naming the fix for anything else."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NoRunError(f"run folder '{run_dir}' does not exist; pass a folder written by `dynnas search`.")
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise NoRunError(f"'{run_dir}' holds no dynnas search run (no {RUN_FILE}); pass a folder written by "
                         "`dynnas search --out DIR`.")
    doc = read_json(path, "run file")
    if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT:
        raise NoRunError(f"'{path}' is not a dynnas search run file (format {doc.get('format') if isinstance(doc, dict) else None!r}); "
                         "pass a folder written by `dynnas search`.")
    if doc.get("format_version") != RUN_FORMAT_VERSION:
        raise NoRunError(f"run '{run_dir}' has format version {doc.get('format_version')}, this dynnas reads "
                         f"{RUN_FORMAT_VERSION}; rerun `{doc.get('command', 'dynnas search')}`.")
    if doc.get("status") != "complete":
        raise NoRunError(f"run '{run_dir}' is not complete (status {doc.get('status')!r}); rerun it with --resume.")
    return doc


def read_table(run_dir: Path | str, name: str) -> pd.DataFrame:
    """One of the run's CSV tables, with its columns checked."""
    columns = {EVALUATIONS_FILE: EVAL_COLUMNS, HISTORY_FILE: HISTORY_COLUMNS, PARETO_FILE: PARETO_COLUMNS}[name]
    path = Path(run_dir) / name
    if not path.is_file():
        raise NoRunError(f"run '{run_dir}' has no {name}; it is incomplete: rerun the search with --overwrite.")
    try:
        df = pd.read_csv(path, dtype={"subnet_id": str, "arch": str, "exit_rates": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise NoRunError(f"'{path}' is corrupt ({e.__class__.__name__}); rerun the search with --overwrite.") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise NoRunError(f"'{path}' lacks columns {missing}; rerun the search with --overwrite.")
    return df


# ---- writing ---------------------------------------------------------------------------------
def _write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda p: df.to_csv(p, index=False, float_format="%.10g"))


def pareto_table(results: list[SearchResult]) -> pd.DataFrame:
    """pareto.csv: per-algorithm fronts plus the ``combined`` flag and the ``spread_rank``."""
    fronts = [pareto_rows(r.evaluations) for r in results]
    cols = ["subnet_id", "algorithm", "arch", "accuracy", "latency_ms", "macs", "static_accuracy", "worst_latency_ms",
            "exit_rates"]
    table = pd.concat([f[cols] for f in fronts], ignore_index=True) if fronts else pd.DataFrame(columns=cols)
    union = table.drop_duplicates("subnet_id")
    F = np.column_stack([-union["accuracy"].to_numpy(float), union["latency_ms"].to_numpy(float)])
    combined = union.iloc[non_dominated(F)]
    rank = {sid: i for i, sid in enumerate(combined["subnet_id"].to_numpy()[spread_order(combined["latency_ms"].to_numpy(float))])}
    table["combined"] = table["subnet_id"].isin(rank)
    table["spread_rank"] = table["subnet_id"].map(rank).fillna(-1).astype(int)
    return table.sort_values(["algorithm", "latency_ms"], kind="stable").reset_index(drop=True)


def combined_hypervolume(results: list[SearchResult], box: HVBox) -> float:
    fronts = [pareto_rows(r.evaluations) for r in results]
    if not fronts:
        return 0.0
    union = pd.concat(fronts, ignore_index=True)
    F = np.column_stack([-union["accuracy"].to_numpy(float), union["latency_ms"].to_numpy(float)])
    return hypervolume(F, box)


def write_tables(run_dir: Path, results: list[SearchResult]) -> None:
    """evaluations.csv, history.csv and pareto.csv for the finished algorithms (in order)."""
    ev = [r.evaluations for r in results]
    hist = [r.history for r in results]
    _write_csv(run_dir / EVALUATIONS_FILE, pd.concat(ev, ignore_index=True) if ev else pd.DataFrame(columns=list(EVAL_COLUMNS)))
    _write_csv(run_dir / HISTORY_FILE, pd.concat(hist, ignore_index=True) if hist else pd.DataFrame(columns=list(HISTORY_COLUMNS)))
    _write_csv(run_dir / PARETO_FILE, pareto_table(results))


def result_summary(r: SearchResult) -> dict[str, Any]:
    """What run.json records about one algorithm's search."""
    return {"n_evals": r.n_evals, "budget": r.budget, "seconds": round(r.seconds, 3),
            "evals_per_second": round(r.n_evals / r.seconds, 2) if r.seconds > 0 else None,
            "stopped_early": r.stopped_early, "settings": r.settings, "n_pareto": len(r.pareto()),
            "hypervolume": r.hypervolume, "n_distinct": int(r.evaluations["subnet_id"].nunique())}


def results_from_tables(run_dir: Path, summaries: dict[str, dict[str, Any]], seed: int) -> list[SearchResult]:
    """Rebuild finished algorithms' results from the CSVs of an earlier session (for --resume)."""
    if not summaries:
        return []
    ev, hist = read_table(run_dir, EVALUATIONS_FILE), read_table(run_dir, HISTORY_FILE)
    out = []
    for name, s in summaries.items():
        e = ev[ev["algorithm"] == name].reset_index(drop=True)
        if len(e) != s["n_evals"]:
            raise NoRunError(f"'{run_dir}' records {s['n_evals']} evaluations of {name} but {EVALUATIONS_FILE} "
                             f"holds {len(e)}; it is inconsistent: pass --overwrite.")
        e["feasible"] = e["feasible"].astype(bool)
        out.append(SearchResult(algorithm=name, budget=int(s["budget"]), seed=seed, evaluations=e,
                                history=hist[hist["algorithm"] == name].reset_index(drop=True),
                                seconds=float(s["seconds"]), settings=dict(s["settings"]),
                                stopped_early=s["stopped_early"]))
    return out


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("dynnas", "torch", "numpy", "optuna", "pymoo", "onnxruntime", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


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
    return obj


def write_run_json(run_dir: Path, doc: dict[str, Any]) -> None:
    write_json(run_dir / RUN_FILE, jsonable({"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, **doc}))


# ---- the staging folder ----------------------------------------------------------------------
@dataclass(eq=False)
class Staging:
    """The folder a run is written into, what it resumes, and how it becomes ``out``.

    ``done`` maps finished algorithms (from a resumed session) to their run.json summaries.
    """

    out: Path
    path: Path
    settings: SearchSettings
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    resumed_from: str | None = None
    after_commit: list[Callable[[Path], None]] = field(default_factory=list)

    def save_progress(self, results: list[SearchResult]) -> None:
        """After each algorithm: tables + partial.json, so an interrupt loses at most one algorithm."""
        write_tables(self.path, results)
        _write_partial(self, {r.algorithm: result_summary(r) for r in results})


def _write_partial(stage: Staging, done: dict[str, dict[str, Any]]) -> None:
    write_json(stage.path / PARTIAL_FILE, jsonable({"format": RUN_FORMAT, "settings": stage.settings.to_dict(),
                                                    "done": done}))


def _describe(doc: dict[str, Any]) -> str:
    s = doc.get("settings", {})
    return f"device {s.get('device')}, seed {s.get('seed')}, created {doc.get('created', '?')}"


def _check_same(settings: SearchSettings, old: dict[str, Any], where: Path) -> None:
    new = settings.to_dict()
    for key in RESUME_KEYS:
        if old.get(key) != new[key]:
            raise OutputError(f"cannot resume '{where}': it was made with {key}={old.get(key)!r} but this command "
                              f"has {key}={new[key]!r}; use the same settings or pass --overwrite.")


def check_out(out: Path, *, overwrite: bool, resume: bool, settings: SearchSettings | None = None) -> None:
    """Fail early (before any work) when ``out`` cannot receive this run.

    With ``resume`` and ``settings``, also check that what would be resumed (an interrupted
    session's staging folder, else the run in ``out``) was made with the same settings.
    """
    out = Path(out)
    if overwrite and resume:
        raise OutputError("--overwrite and --resume exclude each other; pass one of them.")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out '{out}' is a file, not a folder; pass a folder path.")
    if out.is_dir() and any(out.iterdir()):
        if not (out / RUN_FILE).is_file():
            raise OutputError(f"--out '{out}' is a non-empty folder that holds no dynnas run; choose another "
                              "--out (dynnas only replaces its own run folders).")
        if not (overwrite or resume):
            try:
                what = _describe(json.loads((out / RUN_FILE).read_text()))
            except (OSError, ValueError):
                what = "unreadable run.json"
            raise OutputError(f"--out '{out}' already holds a run ({what}); pass --overwrite to replace it or "
                              "--resume to continue it.")
    if resume and settings is not None:
        partial = staging_path(out) / PARTIAL_FILE
        if partial.is_file():
            _check_same(settings, read_json(partial, "partial run state").get("settings", {}), staging_path(out))
        elif (out / RUN_FILE).is_file():
            _check_same(settings, read_json(out / RUN_FILE, "run file").get("settings", {}), out)
    # The parent must exist or be creatable and take a new folder. A real folder is made and removed
    # (os.access says yes to root, and on /proc, where mkdir then fails); parents made for this
    # probe are removed again, so a run that fails later leaves nothing behind.
    import tempfile

    missing, nearest = _missing_parents(out)
    if not nearest.is_dir():
        raise OutputError(f"--out '{out}' cannot be created: '{nearest}' is a file, not a folder; pass --out to a "
                          "writable folder.")
    step = f"folder '{out.parent}' cannot be created"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        step = f"folder '{out.parent}' is not writable"
        os.rmdir(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.probe-"))
    except OSError as e:
        raise OutputError(f"--out '{out}' cannot be created: {step} ({e.strerror or e}); pass --out to a writable "
                          "folder.") from None
    finally:
        _rmdirs(missing)


def _missing_parents(path: Path) -> tuple[list[Path], Path]:
    """The folders above ``path`` that do not exist yet (deepest first) and the nearest existing one."""
    missing, p = [], Path(path).parent
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing, p


def _rmdirs(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) where they are empty."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            pass


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


@contextmanager
def staging(out: Path, settings: SearchSettings, *, overwrite: bool = False, resume: bool = False) -> Iterator[Staging]:
    """Yield the staging folder for ``out``; on success rename it to ``out`` (replacing an old run).

    On an error the staging folder is removed; on Ctrl-C it is kept for ``--resume``.
    """
    out = Path(out)
    check_out(out, overwrite=overwrite, resume=resume, settings=settings)
    stage = Staging(out=out, path=staging_path(out), settings=settings)
    created, _ = _missing_parents(stage.path)  # made below; removed again if the run fails
    if stage.path.exists() and resume and (stage.path / PARTIAL_FILE).is_file():
        partial = read_json(stage.path / PARTIAL_FILE, "partial run state")
        _check_same(settings, partial.get("settings", {}), stage.path)
        stage.done, stage.resumed_from = dict(partial.get("done", {})), "interrupted session"
    else:
        _remove(stage.path)
        try:
            stage.path.mkdir(parents=True)
        except OSError as e:
            _rmdirs(created)
            raise OutputError(f"--out '{out}' cannot be created: cannot make '{stage.path}' ({e.strerror or e}); "
                              "pass --out to a writable folder.") from None
        try:
            if resume and (out / RUN_FILE).is_file():
                old = read_json(out / RUN_FILE, "run file")
                _check_same(settings, old.get("settings", {}), out)
                for name in (EVALUATIONS_FILE, HISTORY_FILE, PARETO_FILE, "study.db"):
                    if (out / name).is_file():
                        shutil.copy2(out / name, stage.path / name)
                stage.done, stage.resumed_from = dict(old.get("results", {})), "complete run"
            _write_partial(stage, stage.done)  # from now on an interrupt leaves a resumable staging folder
        except BaseException:
            shutil.rmtree(stage.path, ignore_errors=True)
            _rmdirs(created)
            raise
    try:
        yield stage
    except KeyboardInterrupt:
        raise  # keep the staging folder: --resume continues from it
    except BaseException:
        shutil.rmtree(stage.path, ignore_errors=True)
        _rmdirs(created)
        raise
    try:
        (stage.path / PARTIAL_FILE).unlink(missing_ok=True)
        _commit(stage.path, out, stage.after_commit)
    except BaseException:
        shutil.rmtree(stage.path, ignore_errors=True)  # gone already unless the move itself failed
        _rmdirs(created)
        raise


def _commit(src: Path, out: Path, after: list[Callable[[Path], None]]) -> None:
    """Move ``src`` to ``out`` and run ``after(out)`` (steps that need the final path, e.g. the report).

    An old run at ``out`` is moved aside first and deleted at the end; if an ``after`` step fails,
    the new run is removed and the old one put back.
    """
    old = None
    if out.is_dir() and any(out.iterdir()):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        _remove(old)
        out.rename(old)
    elif out.is_dir():
        out.rmdir()
    try:
        src.rename(out)
    except BaseException:
        if old is not None:  # put the old run back; the caller removes ``src``
            old.rename(out)
        raise
    try:
        for step in after:
            step(out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
