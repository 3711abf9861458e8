"""Writing a run folder safely: the staging folder, the tables, resume.

What a run folder holds (file names, CSV columns, the typed ``run.json``, subnet packages) is
defined in :mod:`reports.run_folder`; this module writes it. Everything is written into a staging
folder ``.<name>.partial`` beside ``DIR`` and renamed at the end, so a failure leaves no partial
run. Only an interrupt (Ctrl-C) keeps the staging folder, so ``--resume`` can continue it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nas.driver import SearchResult, objective_matrix, pareto_rows
from nas.pareto import HVBox, hypervolume, non_dominated, spread_order
from reports.run_folder import (  # the contract (import it from reports.run_folder, not from here)
    EVAL_COLUMNS,
    EVALUATIONS_FILE,
    FLEET_FILE,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    PARETO_FILE,
    PARTIAL_FILE,
    RESUME_KEYS,
    RUN_FILE,
    RUN_FORMAT,
    STUDY_FILE,
    AlgorithmSummary,
    NoRunError,
    RunRecord,
    SearchSettings,
    jsonable,
    load_partial,
    load_run,
    read_table,
    save_run,
)
from supernet.errors import OutputError
from supernet.files import atomic_write, remove_empty_dirs, write_json

__all__ = ["commit", "Staging", "check_out", "check_resumable", "combined_hypervolume", "default_out", "now_iso", "pareto_table", "result_summary", "results_from_tables", "staging", "staging_path", "versions", "write_run_json", "write_tables"]


def default_out(device: str, now: _dt.datetime | None = None) -> Path:
    """``runs/<device>-<YYYYmmdd-HHMMSS>`` (local time)."""
    now = now or _dt.datetime.now()
    return Path("runs") / f"{device}-{now:%Y%m%d-%H%M%S}"


def staging_path(out: Path) -> Path:
    out = Path(out)
    return out.parent / f".{out.name}.partial"


# ---- writing ---------------------------------------------------------------------------------
def _write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda p: df.to_csv(p, index=False, float_format="%.10g"))


def pareto_table(results: list[SearchResult]) -> pd.DataFrame:
    """pareto.csv: per-algorithm fronts plus the ``combined`` flag and the ``spread_rank``."""
    objectives = results[0].objectives if results else ("accuracy", "latency_ms")
    fronts = [pareto_rows(r.evaluations, r.objectives) for r in results]
    extra = [c for c in ("energy_mj", "memory_bytes") if results and c in results[0].evaluations.columns]
    cols = ["subnet_id", "algorithm", "arch", "accuracy", "latency_ms", "macs", "static_accuracy", "worst_latency_ms",
            "exit_rates", *extra]
    table = pd.concat([f[cols] for f in fronts], ignore_index=True) if fronts else pd.DataFrame(columns=cols)
    union = table.drop_duplicates("subnet_id")
    combined = union.iloc[non_dominated(objective_matrix(union, objectives))]
    rank = {sid: i for i, sid in enumerate(combined["subnet_id"].to_numpy()[spread_order(combined["latency_ms"].to_numpy(float))])}
    table["combined"] = table["subnet_id"].isin(rank)
    table["spread_rank"] = table["subnet_id"].map(rank).fillna(-1).astype(int)
    table = table[[c for c in cols if c not in extra] + ["combined", "spread_rank", *extra]]
    return table.sort_values(["algorithm", "latency_ms"], kind="stable").reset_index(drop=True)


def combined_hypervolume(results: list[SearchResult], box: HVBox) -> float:
    fronts = [pareto_rows(r.evaluations, r.objectives) for r in results]
    if not fronts:
        return 0.0
    union = pd.concat(fronts, ignore_index=True)
    return hypervolume(objective_matrix(union, results[0].objectives), box)


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


def results_from_tables(run_dir: Path, summaries: dict[str, AlgorithmSummary], seed: int,
                        objectives: tuple[str, ...] = ("accuracy", "latency_ms")) -> list[SearchResult]:
    """Rebuild finished algorithms' results from the CSVs of an earlier session (for --resume)."""
    if not summaries:
        return []
    ev, hist = read_table(run_dir, EVALUATIONS_FILE), read_table(run_dir, HISTORY_FILE)
    out = []
    for name, s in summaries.items():
        e = ev[ev["algorithm"] == name].reset_index(drop=True)
        if len(e) != s.n_evals:
            raise NoRunError(f"'{run_dir}' records {s.n_evals} evaluations of {name} but {EVALUATIONS_FILE} "
                             f"holds {len(e)}; it is inconsistent: pass --overwrite.")
        out.append(SearchResult(algorithm=name, budget=s.budget, seed=seed, evaluations=e,
                                history=hist[hist["algorithm"] == name].reset_index(drop=True),
                                seconds=s.seconds, settings=dict(s.settings), stopped_early=s.stopped_early,
                                objectives=objectives))
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


def write_run_json(run_dir: Path, doc: dict[str, Any] | RunRecord) -> RunRecord:
    """Validate ``doc`` against the run-folder contract and write it as run.json (see :func:`reports.run_folder.save_run`)."""
    return save_run(run_dir, doc)


# ---- the staging folder ----------------------------------------------------------------------
@dataclass(eq=False)
class Staging:
    """The folder a run is written into, what it resumes, and how it becomes ``out``.

    ``done`` maps finished algorithms (from a resumed session) to their run.json summaries.
    """

    out: Path
    path: Path
    settings: SearchSettings
    done: dict[str, AlgorithmSummary] = field(default_factory=dict)
    resumed_from: str | None = None
    after_commit: list[Callable[[Path], None]] = field(default_factory=list)

    def save_progress(self, results: list[SearchResult]) -> None:
        """After each algorithm: tables + partial.json, so an interrupt loses at most one algorithm."""
        write_tables(self.path, results)
        _write_partial(self, {r.algorithm: result_summary(r) for r in results})


def _write_partial(stage: Staging, done: dict[str, Any]) -> None:
    write_json(stage.path / PARTIAL_FILE, jsonable({"format": RUN_FORMAT, "settings": stage.settings.to_dict(),
                                                    "done": done}))


def _describe(doc: dict[str, Any]) -> str:
    s = doc.get("settings", {})
    return f"device {s.get('device')}, seed {s.get('seed')}, created {doc.get('created', '?')}"


def _check_same(settings: SearchSettings, old: SearchSettings, where: Path) -> None:
    for key, was, now in old.differences(settings, RESUME_KEYS)[:1]:
        raise OutputError(f"cannot resume '{where}': it was made with {key}={was!r} but this command "
                          f"has {key}={now!r}; use the same settings or pass --overwrite.")


def check_resumable(out: Path, settings: SearchSettings) -> None:
    """:class:`OutputError` naming the first differing setting unless what ``--resume`` would continue in
    ``out`` (an interrupted session's staging folder, else the run in ``out``) was made with ``settings``;
    nothing to continue passes. Reads only."""
    out = Path(out)
    partial = staging_path(out) / PARTIAL_FILE
    if partial.is_file():
        _check_same(settings, load_partial(partial).settings, staging_path(out))
    elif (out / RUN_FILE).is_file():
        _check_same(settings, load_run(out).settings, out)


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
        if not ((out / RUN_FILE).is_file() or (out / FLEET_FILE).is_file()):
            raise OutputError(f"--out '{out}' is a non-empty folder that holds no dynnas run; choose another "
                              "--out (dynnas only replaces its own run folders).")
        if not (overwrite or resume):
            try:
                what = (_describe(json.loads((out / RUN_FILE).read_text())) if (out / RUN_FILE).is_file()
                        else "a search over several devices")
            except (OSError, ValueError):
                what = "unreadable run.json"
            raise OutputError(f"--out '{out}' already holds a run ({what}); pass --overwrite to replace it or "
                              "--resume to continue it.")
    if resume and settings is not None:
        check_resumable(out, settings)
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
        remove_empty_dirs(missing)


def _missing_parents(path: Path) -> tuple[list[Path], Path]:
    """The folders above ``path`` that do not exist yet (deepest first) and the nearest existing one."""
    missing, p = [], Path(path).parent
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing, p


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
        partial = load_partial(stage.path / PARTIAL_FILE)
        _check_same(settings, partial.settings, stage.path)
        stage.done, stage.resumed_from = dict(partial.done), "interrupted session"
    else:
        _remove(stage.path)
        try:
            stage.path.mkdir(parents=True)
        except OSError as e:
            remove_empty_dirs(created)
            raise OutputError(f"--out '{out}' cannot be created: cannot make '{stage.path}' ({e.strerror or e}); "
                              "pass --out to a writable folder.") from None
        try:
            if resume and (out / RUN_FILE).is_file():
                old = load_run(out)
                _check_same(settings, old.settings, out)
                for name in (EVALUATIONS_FILE, HISTORY_FILE, PARETO_FILE, STUDY_FILE):
                    if (out / name).is_file():
                        shutil.copy2(out / name, stage.path / name)
                stage.done, stage.resumed_from = dict(old.results), "complete run"
            _write_partial(stage, stage.done)  # from now on an interrupt leaves a resumable staging folder
        except BaseException:
            shutil.rmtree(stage.path, ignore_errors=True)
            remove_empty_dirs(created)
            raise
    try:
        yield stage
    except KeyboardInterrupt:
        raise  # keep the staging folder: --resume continues from it
    except BaseException:
        shutil.rmtree(stage.path, ignore_errors=True)
        remove_empty_dirs(created)
        raise
    try:
        (stage.path / PARTIAL_FILE).unlink(missing_ok=True)
        _commit(stage.path, out, stage.after_commit)
    except BaseException:
        shutil.rmtree(stage.path, ignore_errors=True)  # gone already unless the move itself failed
        remove_empty_dirs(created)
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


def commit(src: Path, out: Path, after: list[Callable[[Path], None]]) -> None:
    """Move the finished staging folder ``src`` to ``out`` (replacing an old run), then run ``after(out)``."""
    _commit(src, out, after)
