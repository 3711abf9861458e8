"""One device's search into a run folder: settings, problem, algorithms, run.json, export, report.

:func:`search_device` is what ``dynnas search --device NAME`` runs; :mod:`nas.fleet` runs it once per
device of ``--device a,b``. Everything is written through :func:`nas.runfolder.staging` (atomic, resumable).
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.progress import SearchBars
from nas.targets import Target
from predictors.exit_policy import DEFAULT_MAX_DROP

if TYPE_CHECKING:
    from nas.problem import Objective, ProblemSetup
    from reports.run_folder import SearchSettings

__all__ = ["DeviceSearch", "SearchOptions", "device_settings", "device_setup", "exit_free_summary", "search_device"]


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """Everything one ``dynnas search`` resolved that every device of it shares (validated by the CLI)."""

    model: Any  # the loaded supernet
    meta: dict[str, Any]
    path: Path  # the supernet as resolved: its file or its run folder
    file: Path  # the supernet file
    algorithms: tuple[str, ...]
    budget: int  # evaluations per algorithm
    top: int  # subnets to export; 0 skips export
    bn: str
    seed: int
    device_type: str
    accuracy_samples: int
    dataset: str | None = None
    exits: str = "auto"  # auto, on or off
    batch: int = 1
    cascade: str = "auto"  # auto or off
    max_accuracy_drop: float | None = None  # accuracy points, as given (None: 0.5)
    max_worst_latency: float | None = None  # ms
    objectives: tuple[Objective, ...] = ()  # () : the default two (accuracy, latency)
    max_memory_bytes: float | None = None
    max_energy_mj: float | None = None

    @property
    def use_exits(self) -> bool:
        """Whether exits are searched: the supernet has heads, they are not off, and a batch of one."""
        return bool(self.model.space.exit_positions) and self.exits != "off" and self.batch == 1

    @property
    def drop(self) -> float | None:
        """The exit thresholds' accuracy drop as a fraction (None when exits are not searched)."""
        if not self.use_exits:
            return None
        return DEFAULT_MAX_DROP if self.max_accuracy_drop is None else self.max_accuracy_drop / 100


@dataclass(frozen=True, eq=False)
class DeviceSearch:
    """What one device's search produced: its problem setup, each algorithm's result, the exported subnets."""

    setup: ProblemSetup
    results: list[Any]  # nas.driver.SearchResult each
    exported: list[dict[str, Any]]


def _profile_sha(profile: Any) -> str:
    return hashlib.sha256(profile.model_dump_json().encode()).hexdigest()[:16]


def _new_settings(objectives: tuple[Any, ...], max_memory_bytes: float | None,
                  max_energy_mj: float | None) -> dict[str, Any]:
    """Settings keys added with energy and memory, recorded only when used (a two-objective run's settings
    stay exactly as before)."""
    out: dict[str, Any] = {}
    if len(objectives) > 2:
        from nas.problem import OBJECTIVE_CHOICES

        cli = {o.name: name for name, o in OBJECTIVE_CHOICES.items()}
        out["objectives"] = [cli[o.name] for o in objectives]  # as --objectives spells them
    if max_memory_bytes is not None:
        out["max_memory_bytes"] = max_memory_bytes
    if max_energy_mj is not None:
        out["max_energy_mj"] = max_energy_mj
    return out


def device_settings(t: Target, latency_budget: float | None, opts: SearchOptions,
                    record_out: Path) -> SearchSettings:
    """The :class:`~reports.run_folder.SearchSettings` of ``t``'s search (stored in its run.json, checked on
    resume); ``record_out`` is where its run folder finally lives."""
    from reports.run_folder import SearchSettings
    from supernet.checkpoint import sha256

    return SearchSettings(
        device=t.profile.name, power_mode=t.power_mode, profile_sha=_profile_sha(t.profile),
        supernet=str(opts.file.resolve()), supernet_sha256=sha256(opts.file), algorithms=tuple(opts.algorithms),
        budget=opts.budget, latency_budget_ms=latency_budget, top_k=opts.top, bn=opts.bn, seed=opts.seed,
        device_type=opts.device_type, accuracy_samples=opts.accuracy_samples, out=str(record_out),
        dataset=opts.dataset, exits=opts.exits, max_accuracy_drop=opts.drop,
        max_worst_latency_ms=opts.max_worst_latency, cascade=opts.cascade, batch=opts.batch,
        **_new_settings(opts.objectives, opts.max_memory_bytes, opts.max_energy_mj))


def device_setup(t: Target, latency_budget: float | None, opts: SearchOptions, bars: SearchBars, *,
                 shared: Any = None) -> ProblemSetup:
    """``t``'s :class:`~nas.problem.ProblemSetup` (``shared``: the accuracy side of another device's setup,
    reused instead of fitted again), checked to be feasible."""
    from nas.problem import setup_problem

    drop = opts.drop
    setup = setup_problem(opts.file, opts.model, opts.meta, t.profile, bn=opts.bn, seed=opts.seed,
                          latency_budget_ms=latency_budget, accuracy_samples=opts.accuracy_samples,
                          dataset=opts.dataset, progress=bars.phase,
                          max_accuracy_drop=drop if drop is not None else DEFAULT_MAX_DROP,
                          max_worst_latency_ms=opts.max_worst_latency, exits=opts.use_exits,
                          cascade=opts.cascade == "auto", power_mode=t.power_mode, batch=opts.batch, shared=shared,
                          **({"objectives": tuple(opts.objectives)} if opts.objectives else {}),
                          max_memory_bytes=opts.max_memory_bytes, max_energy_mj=opts.max_energy_mj)
    setup.problem.check_feasible()
    return setup


def search_device(t: Target, latency_budget: float | None, opts: SearchOptions, *, out: Path, record_out: Path,
                  overwrite: bool, resume: bool, shared: Any = None, bars: SearchBars | None = None,
                  quiet: bool = False) -> DeviceSearch:
    """One device's search into the run folder ``out`` (``record_out`` is where it will finally live).

    With ``resume``, finished algorithms of an interrupted session (or of the run in ``out``) are reused.
    """
    from rich.console import Console

    from nas.driver import run_search
    from nas.progress import console
    from nas.runfolder import check_out, results_from_tables, staging, versions, write_run_json
    from supernet.pretrained import DEFAULT_SUPERNET

    settings = device_settings(t, latency_budget, opts, record_out)
    check_out(out, overwrite=overwrite, resume=resume, settings=settings)  # a resume with other settings fails now
    algorithms, model, file, seed = list(opts.algorithms), opts.model, opts.file, opts.seed
    profile, power_mode = t.profile, t.power_mode
    console.print(f"search {', '.join(algorithms)} on {profile.name}{':' + power_mode if power_mode else ''} ({opts.budget} evaluations each) over "
                  f"{model.space.size} subnets of {file.name} → {record_out}")
    with SearchBars() if bars is None else nullcontext(bars) as bars:
        setup = device_setup(t, latency_budget, opts, bars, shared=shared)
        problem = setup.problem
        from predictors.profile_quality import range_warning

        warning = range_warning(profile, *space_macs(problem))  # said once per device, in a fleet too
        if warning:
            console.print(warning, style="yellow", markup=False, highlight=False, soft_wrap=True)
        with staging(out, settings, overwrite=overwrite, resume=resume) as stage:
            reused = {a: s for a, s in stage.done.items() if a in algorithms}
            results = results_from_tables(stage.path, reused, seed, tuple(o.name for o in problem.objectives))
            if reused:
                console.print(f"resuming ({stage.resumed_from}): reusing {', '.join(reused)}")
            for name in algorithms:
                if name in reused:
                    continue
                results.append(run_search(problem, name, opts.budget, seed, stage.path, bars.search, resume=resume))
                results.sort(key=lambda r: algorithms.index(r.algorithm))
                stage.save_progress(results)
            doc = run_doc(settings, profile, t.arg, file, opts.meta, setup, opts.dataset, results,
                          opts.path == DEFAULT_SUPERNET, versions())
            if hasattr(problem.latency, "speed_now"):  # a measured (host) predictor: how fast is the machine now?
                doc["host_speed"] = problem.latency.speed_now(model.config, seed=seed)
            write_run_json(stage.path, doc)
            exported: list[dict[str, Any]] = []
            if opts.top > 0:
                from nas.export import export_subnets

                # writes subnets/<id>/ and records run.json["exported"]
                exported = export_subnets(stage.path, opts.top, supernet_path=file, seed=seed, progress=bars.export)
                bars.update("export", len(exported), len(exported))

            def report(final: Path) -> None:
                from reports.html import write_report

                write_report([final], final / "report.html")

            stage.after_commit.append(report)

    Console().print(summary_table(results, exported, problem, record_out))
    if not quiet:
        console.print(f"wrote {out}/ (run.json, evaluations.csv, history.csv, pareto.csv"
                      f"{', subnets/' if exported else ''}, report.html)")
    return DeviceSearch(setup=setup, results=results, exported=exported)


def _latency_trust(profile: Any, power_mode: str | None, problem: Any) -> dict[str, Any]:
    """How far the device's latency predictions can be trusted: ``confidence`` is ``low`` when the
    profile rests on few published points (see predictors.profile_quality); ``extrapolated`` when the
    searched subnets' MACs lie outside the calibrated range; and the power mode used."""
    from predictors.profile_quality import calibrated_macs, confidence_of

    rng = calibrated_macs(profile)
    lo, hi = space_macs(problem)
    return {"confidence": confidence_of(profile), "n_calibration_points": len(profile.calibration),
            "power_mode": power_mode or profile.default_power_mode,
            "calibrated_macs": None if rng is None else list(rng), "subnet_macs": [lo, hi],
            "extrapolated": rng is not None and (lo < rng[0] or hi > rng[1])}


def space_macs(problem: Any) -> tuple[float, float]:
    """MACs per image of the searched space's smallest and largest uniform-width subnets."""
    macs = problem.baselines.macs
    return float(macs.min()), float(macs.max())


def run_doc(settings: Any, profile: Any, device_arg: str, file: Path, meta: dict[str, Any], setup: Any,
            dataset: str | None, results: list[Any], is_default: bool, vers: dict[str, str]) -> dict[str, Any]:
    """The run.json document (see :mod:`reports.run_folder` for the contract; validated when written)."""
    from nas.pareto import hypervolume
    from nas.runfolder import combined_hypervolume, now_iso, result_summary

    problem, acc_data = setup.problem, setup.accuracy_data
    lat = problem.latency
    acc = getattr(problem.accuracy, "static", problem.accuracy)  # the static predictor behind a dynamic one
    dyn = problem.accuracy if hasattr(problem.accuracy, "predict_exit_rates") else None
    prof = profile.model_dump(mode="json")
    if Path(device_arg).suffix in (".yaml", ".yml") or "/" in device_arg:
        prof["path"] = str(Path(device_arg).resolve())
    base = problem.baselines
    space = problem.space
    return {
        "status": "complete",
        "created": now_iso(),
        "command": settings.command(),
        "settings": settings.to_dict(),
        "device": settings.device, "seed": settings.seed, "bn": settings.bn, "budget": settings.budget,
        "latency_budget_ms": settings.latency_budget_ms, "algorithms": list(settings.algorithms),
        "dataset": dataset,
        "versions": vers,
        "profile": prof,
        "supernet": {"path": str(file.resolve()), "sha256": settings.supernet_sha256, "family": meta.get("family"),
                     "space": space.to_dict(), "config": meta.get("config"), "default": is_default,
                     "dataset": (meta.get("dataset") or {}).get("spec")},
        "predictors": {
            "accuracy": {"quality": dict(acc.quality), **{k: v for k, v in acc.describe().items() if k != "quality"},
                         "data": {"n_records": len(acc_data.records), "measured_on": setup.data_note,
                                  **{k: v for k, v in acc_data.meta.items() if isinstance(v, str | int | float | bool)}}},
            "exits": ({"quality": dyn.quality, "method": dyn.describe()["dynamic"]["method"],
                       "calibration": acc_data.meta.get("exits")} if dyn is not None else None),
            "latency": {**lat.describe(), **_latency_trust(profile, settings.power_mode, problem)},
            **({"energy": problem.energy.describe()} if problem.energy is not None else {}),
            **({"memory": problem.memory.describe()} if problem.memory is not None else {}),
        },
        "objectives": [{"name": o.name, "direction": o.direction, "unit": o.unit} for o in problem.objectives],
        "constraints": ([{"name": "latency_ms", "budget_ms": problem.latency_budget_ms, "g": "latency_ms - budget_ms <= 0"}]
                        if problem.latency_budget_ms is not None else [])
                       + ([{"name": "worst_latency_ms", "budget_ms": problem.max_worst_latency_ms,
                            "g": "worst_latency_ms - budget_ms <= 0"}] if problem.max_worst_latency_ms is not None else [])
                       + ([{"name": "memory_bytes", "budget_bytes": problem.max_memory_bytes,
                            "g": "memory_bytes - budget_bytes <= 0"}] if problem.max_memory_bytes is not None else [])
                       + ([{"name": "energy_mj", "budget_mj": problem.max_energy_mj,
                            "g": "energy_mj - budget_mj <= 0"}] if problem.max_energy_mj is not None else []),
        "exits": {"searched": bool(space.exit_positions), "positions": list(space.exit_positions),
                  "max_accuracy_drop": settings.max_accuracy_drop,
                  "objectives": ("dynamic accuracy and expected latency sum_i p_i * L_i" if space.exit_positions
                                 else "static accuracy and latency"),
                  **exit_free_summary(results, problem)},
        "hv_reference": problem.hv_reference(),
        "hypervolume": {r.algorithm: r.hypervolume for r in results},
        "hypervolume_combined": combined_hypervolume(results, problem.hv_box),
        "hypervolume_baselines": hypervolume(base.F[base.feasible], problem.hv_box),
        "results": {r.algorithm: result_summary(r) for r in results},
        "baselines": [{"width": space.width_choices[i], "arch": space.format(s), "subnet_id": space.subnet_id(s),
                       "accuracy": float(base.accuracy[i]), "latency_ms": float(base.latency_ms[i]),
                       "macs": int(base.macs[i]), "feasible": bool(base.feasible[i])}
                      for i, s in enumerate(base.subnets)],
    }


def exit_free_summary(results: list[Any], problem: Any) -> dict[str, Any]:
    """Hypervolume of the exit-free candidates alone (a subset of the space) against all, and the front's span."""
    import numpy as np
    import pandas as pd

    from nas.driver import exit_free_rows, objective_matrix, pareto_rows
    from nas.pareto import hypervolume

    ev = pd.concat([r.evaluations for r in results], ignore_index=True) if results else None
    if ev is None or ev.empty:
        return {}
    static = exit_free_rows(ev)
    out: dict[str, Any] = {}
    for name, df in (("with_exits", ev), ("exit_free", static)):
        objectives = tuple(o.name for o in problem.objectives)
        front = pareto_rows(df, objectives) if len(df) else df
        F = objective_matrix(front, objectives) if len(front) else np.zeros((0, problem.n_obj))
        out[name] = {"hypervolume": hypervolume(F, problem.hv_box), "n_front": int(len(front)),
                     "latency_span_ms": ([float(front["latency_ms"].min()), float(front["latency_ms"].max())]
                                         if len(front) else None)}
    return out


def summary_table(results: list[Any], exported: list[dict[str, Any]], problem: Any, out: Path) -> Any:
    """The chosen subnets (exported ones, else the spread of the combined front) and each algorithm's HV."""
    from rich.table import Table

    from nas.runfolder import pareto_table

    table = Table(title=f"chosen subnets for {problem.device} ({out})")
    if exported:
        for col in ("subnet", "arch", "pred. acc", "ONNX acc", f"{problem.device} ms", "host ms†", "MMACs"):
            table.add_column(col)
        for e in exported:
            table.add_row(e["subnet_id"], e["arch"], f"{e['predicted_accuracy']:.4f}", f"{e['onnx_accuracy']:.4f}",
                          f"{e['predicted_latency_ms']:.5g}", f"{e['host_latency_relative_ms']:.4g}",
                          f"{e['macs'] / 1e6:.2f}")
    else:
        front = pareto_table(results)
        front = front[front["spread_rank"].between(0, 4)].drop_duplicates("subnet_id").sort_values("latency_ms")
        for col in ("subnet", "arch", "pred. acc", f"{problem.device} ms", "MMACs"):
            table.add_column(col)
        for r in front.itertuples(index=False):
            table.add_row(r.subnet_id, r.arch, f"{r.accuracy:.4f}", f"{r.latency_ms:.5g}", f"{r.macs / 1e6:.2f}")
    hv = ", ".join(f"{r.algorithm} {r.hypervolume:.4f}" + (" (stopped early)" if r.stopped_early else "")
                   for r in results)
    table.caption = f"hypervolume: {hv}"
    if exported:
        table.caption += ("\n† onnxruntime, 1 thread, batch 1, timed against the host predictor's reference subnet "
                          "(verify.json: host_latency_relative; the plain median is host_latency_ms)")
    return table
