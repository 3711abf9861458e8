"""`dynnas search` (choose subnets for a device) and `dynnas devices` (list device profiles)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from nas.app import DeviceTypeOpt, SeedOpt, app
from nas.errors import guarded

SEARCH_EPILOG = (
    "Examples:\n\n"
    "    dynnas search --device jetson-orin\n\n"
    "    dynnas search --device host --algorithm nsga2 --budget 500 --latency-budget 1.5 --out runs/host-nsga2\n\n"
    "    dynnas search --device my-board.yaml --supernet runs/tiny --top 3 --seed 1\n\n"
    "    dynnas search --device jetson-orin --out runs/demo --resume\n\n"
    "    dynnas search --device host --max-accuracy-drop 1 --max-worst-latency 0.6\n\n"
    "    dynnas search --device jetson-orin --exits off --out runs/jetson-static\n\n"
    "    dynnas search --device jetson-orin:15W --batch 16 --out runs/orin-15w-b16\n\n"
    "    dynnas search --device jetson-orin --cascade off\n\n"
    "    dynnas search --device jetson-orin,raspberry-pi-5,host --latency-budget jetson-orin=0.15,raspberry-pi-5=20\n\n"
    "    dynnas search --device jetson-orin --objectives accuracy,latency,energy --max-memory 2MB"
)


class _Bars:
    """One rich progress bar per phase (predictors, each algorithm, export)."""

    def __init__(self) -> None:
        from nas.progress import make_progress

        self.bar = make_progress()
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Bars:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, key: str, done: int, total: int, info: str = "") -> None:
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(key, total=max(total, 1), info=info)
        self.bar.update(self.tasks[key], completed=done, total=max(total, 1), info=info)

    def phase(self, prefix: str) -> Callable[[str, int, int], None]:
        """A ``(description, done, total)`` callback, as the predictors call it."""
        return lambda desc, done, total: self.update(f"{prefix}: {desc}", done, total)

    def search(self, algorithm: str, n_evals: int, budget: int, hv: float) -> None:
        self.update(f"search {algorithm}", n_evals, budget, f"HV {hv:.4f}")

    def export(self, i: int, total: int, arch: str) -> None:
        self.update("export", i, total, arch)


def _profile_sha(profile: Any) -> str:
    return hashlib.sha256(profile.model_dump_json().encode()).hexdigest()[:16]


@app.command(epilog=SEARCH_EPILOG)
@guarded
def search(
    device: Annotated[str, typer.Option(help="Target device: a profile name (see `dynnas devices`) or a profile YAML file, optionally with a power mode: jetson-orin:15W; a comma list searches each device (one run folder, one shared accuracy predictor, a deployment table): jetson-orin,raspberry-pi-5,host.")],
    supernet: Annotated[Path | None, typer.Option(help="Supernet file or run folder (default: the shipped one).")] = None,
    algorithm: Annotated[str, typer.Option(help="nsga2, optuna, random, a comma list, or all.")] = "all",
    budget: Annotated[int, typer.Option(help="Predictor evaluations per algorithm (duplicates count).")] = 300,
    latency_budget: Annotated[str | None, typer.Option("--latency-budget", help="Only subnets predicted at most this many ms on the device are feasible: a number for one device, or per device: jetson-orin=0.15,raspberry-pi-5=20 (devices left out have no budget).")] = None,
    top: Annotated[int, typer.Option("--top", help="Subnets to export (ONNX + verification), spread along the combined front; 0 skips export.")] = 5,
    bn: Annotated[str, typer.Option(help="BN statistics of evaluated/exported subnets: recal or switchable.")] = "recal",
    out: Annotated[Path | None, typer.Option(help="Run folder (default `runs/<device>-<timestamp>`).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the run already in --out.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out (same settings): finished algorithms and the optuna study are reused.")] = False,
    dataset: Annotated[str | None, typer.Option(help="Dataset to measure accuracy data on when none is cached beside the supernet (default: its own, else its shipped sample).")] = None,
    accuracy_samples: Annotated[int, typer.Option(help="Subnets measured to fit the accuracy predictor when no cache exists.")] = 400,
    exits: Annotated[str, typer.Option(help="Early exits: auto (searched when the supernet has exit heads), on (required) or off (widths only).")] = "auto",
    batch: Annotated[int, typer.Option(help="Images per inference: 1 is single-stream latency; larger batches cost ms per batch (throughput scenarios; static networks only, so exits are off).")] = 1,
    cascade: Annotated[str, typer.Option(help="Width cascade (a narrow uniform scout runs first, the subnet only when the scout is unsure): auto (searched when the accuracy data has scouts, see `dynnas calibrate --cascade`) or off.")] = "auto",
    max_accuracy_drop: Annotated[float | None, typer.Option("--max-accuracy-drop", help="Exit thresholds may cost at most this many accuracy points against the same subnet without exits (default 0.5; one of the calibrated drops).")] = None,
    max_worst_latency: Annotated[float | None, typer.Option("--max-worst-latency", help="Only subnets whose worst case (every exit fails) is predicted at most this many ms are feasible.")] = None,
    objectives: Annotated[str, typer.Option("--objectives", help="accuracy,latency (two objectives), or a third: accuracy,latency,energy or accuracy,latency,memory (NSGA-III, optuna or random; 3-D hypervolume).")] = "accuracy,latency",
    max_memory: Annotated[str | None, typer.Option("--max-memory", help="Only subnets predicted to need at most this memory (weights + input + peak activations) are feasible: bytes, or with a unit: 2MB, 512KiB.")] = None,
    max_energy: Annotated[float | None, typer.Option("--max-energy", help="Only subnets predicted at most this many mJ per inference on the device are feasible (needs the power mode's power figure).")] = None,
    seed: SeedOpt = 0,
    device_type: DeviceTypeOpt = "cpu",
) -> None:
    """Search the supernet for the subnets that trade accuracy against latency best on one device or several.

    Writes `DIR/run.json`, `evaluations.csv`, `history.csv`, `pareto.csv`, `subnets/<id>/model.onnx`
    and `report.html` into a run folder (see `reports/run_folder.py` for the contract). With several
    devices, `DIR/devices/<device>/` holds one such folder per device, beside `fleet.json`,
    `deployment.csv` and `report.html`.
    """
    from nas.algorithms import resolve_algorithms
    from supernet.errors import ConfigError
    from supernet.evaluate import BN_MODES

    if budget < 1:
        raise ConfigError(f"--budget must be >= 1 evaluation per algorithm, but got {budget}; e.g. --budget 300.")
    if top < 0:
        raise ConfigError(f"--top must be >= 0 (0 skips export), but got {top}.")
    if bn not in BN_MODES:
        raise ConfigError(f"--bn must be one of {', '.join(BN_MODES)}, but got '{bn}'.")
    if accuracy_samples < 10:
        raise ConfigError(f"--accuracy-samples must be >= 10, but got {accuracy_samples}.")
    if max_worst_latency is not None and not max_worst_latency > 0:
        raise ConfigError(f"--max-worst-latency must be a positive number of ms, but got {max_worst_latency}.")
    if exits not in ("auto", "on", "off"):
        raise ConfigError(f"--exits must be auto, on or off, but got '{exits}'.")
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1 image, but got {batch}; e.g. --batch 8.")
    if cascade not in ("auto", "off"):
        raise ConfigError(f"--cascade must be auto or off, but got '{cascade}'.")
    if max_accuracy_drop is not None and not 0 <= max_accuracy_drop < 100:
        raise ConfigError(f"--max-accuracy-drop is in accuracy points and must be in [0, 100), but got "
                          f"{max_accuracy_drop:g}; e.g. --max-accuracy-drop 0.5.")
    from nas.problem import parse_objectives

    objs = parse_objectives(objectives)
    max_memory_bytes = parse_bytes(max_memory) if max_memory is not None else None
    if max_energy is not None and not (0 < max_energy < float("inf")):
        raise ConfigError(f"--max-energy must be a positive number of mJ, but got {max_energy}; e.g. --max-energy 2.")
    algorithms = resolve_algorithms(algorithm, len(objs))
    targets = parse_devices(device)
    budgets = parse_latency_budgets(latency_budget, targets)
    if len(targets) > 1 and resume:
        raise ConfigError("--resume continues single-device runs only; rerun a search over several devices with "
                          "--overwrite.")

    from nas.runfolder import check_out, default_out

    fleet = len(targets) > 1
    out = Path(out) if out is not None else default_out("-".join(t.key.replace(":", "-") for t in targets))
    check_out(out, overwrite=overwrite, resume=resume)  # before any slow work

    from supernet.pretrained import resolve_supernet
    from supernet.train import resolve_device

    model, meta, path = resolve_supernet(supernet, resolve_device(device_type))
    file = path / "supernet.safetensors" if path.is_dir() else path
    has_heads = bool(model.space.exit_positions)
    if not has_heads and (exits == "on" or max_accuracy_drop is not None or max_worst_latency is not None):
        raise ConfigError(f"supernet '{file}' has no exit heads, so it cannot search exits (--exits on, "
                          "--max-accuracy-drop, --max-worst-latency); train heads with `dynnas train --init-from "
                          f"{file} --exit-epochs 3` or drop those options.")
    if batch > 1 and exits == "on":
        raise ConfigError(f"--batch {batch} cannot search exits (a batch leaves an exit only when every image "
                          "passes); drop --exits on or use --batch 1.")
    common = dict(model=model, meta=meta, path=path, file=file, algorithms=algorithms, budget=budget, top=top,
                  bn=bn, seed=seed, device_type=device_type, accuracy_samples=accuracy_samples, dataset=dataset,
                  exits=exits, batch=batch, cascade=cascade, max_accuracy_drop=max_accuracy_drop,
                  max_worst_latency=max_worst_latency, objectives=objs, max_memory_bytes=max_memory_bytes,
                  max_energy_mj=max_energy)
    if not fleet:
        t = targets[0]
        _search_device(t, budgets[t.key], out=out, record_out=out, overwrite=overwrite, resume=resume, **common)
        return
    _search_fleet(targets, budgets, out=out, overwrite=overwrite, **common)


def _new_settings(objectives: tuple[Any, ...], max_memory_bytes: float | None,
                  max_energy_mj: float | None) -> dict[str, Any]:
    """Settings keys added with energy and memory, recorded only when used (a two-objective run's settings
    stay exactly as before)."""
    out: dict[str, Any] = {}
    if len(objectives) > 2:
        out["objectives"] = [o.name for o in objectives]
    if max_memory_bytes is not None:
        out["max_memory_bytes"] = max_memory_bytes
    if max_energy_mj is not None:
        out["max_energy_mj"] = max_energy_mj
    return out


_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_bytes(text: str) -> float:
    """``--max-memory``: bytes, or a number with a unit (B, kB, MB, GB decimal; KiB, MiB, GiB binary)."""
    import re

    from supernet.errors import ConfigError

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS or not float(m.group(1)) > 0:
        raise ConfigError(f"--max-memory must be a positive number of bytes, optionally with a unit (kB, MB, GB, "
                          f"KiB, MiB, GiB), but got {text!r}; e.g. --max-memory 2MB.")
    return float(m.group(1)) * _UNITS[unit]


@dataclass(frozen=True)
class Target:
    """One ``--device`` entry: what was written, its profile and power mode (None: the default)."""

    arg: str
    profile: Any
    power_mode: str | None

    @property
    def key(self) -> str:
        """``name`` or ``name:MODE``: how budgets and the deployment table name the device."""
        return self.profile.name + (f":{self.power_mode}" if self.power_mode else "")

    @property
    def folder(self) -> str:
        """The device's folder under ``devices/`` in a run over several devices."""
        return self.key.replace(":", "-")


def parse_devices(spec: str) -> list[Target]:
    """``--device``: one ``NAME[:MODE]`` (or profile file), or a comma list of distinct ones."""
    from hw_profiles import parse_device
    from supernet.errors import ConfigError

    items = [s.strip() for s in spec.split(",")] if "," in spec else [spec.strip()]
    if not any(items) or not all(items):
        raise ConfigError(f"--device got an empty device list or an empty entry ({spec!r}); pass one device or a "
                          "comma list of distinct ones, e.g. --device jetson-orin,raspberry-pi-5.")
    targets = []
    for item in items:
        profile, mode = parse_device(item)
        targets.append(Target(item, profile, None if mode == profile.default_power_mode else mode))
    keys = [t.key for t in targets]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ConfigError(f"--device lists {', '.join(dups)} more than once ({spec!r}); pass each device once.")
    return targets


def parse_latency_budgets(spec: str | None, targets: list[Target]) -> dict[str, float | None]:
    """``--latency-budget``: a number (the one device) or ``DEVICE=MS,…`` → ms per device key (None: no budget)."""
    from supernet.errors import ConfigError

    budgets: dict[str, float | None] = {t.key: None for t in targets}
    if spec is None:
        return budgets
    names = ", ".join(budgets)

    def ms(text: str, what: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise ConfigError(f"--latency-budget must be a positive number of ms{what}, but got {text.strip()!r}; "
                              "e.g. --latency-budget 1.5 or --latency-budget jetson-orin=0.15,raspberry-pi-5=20.")
        return value

    if "=" not in spec:
        if len(targets) > 1:
            raise ConfigError(f"--latency-budget {spec} does not say which of the {len(targets)} devices it is for; "
                              f"give one per device: --latency-budget {targets[0].key}={spec.strip()},…")
        budgets[targets[0].key] = ms(spec, "")
        return budgets
    by_name = {t.profile.name: t.key for t in targets}
    by_arg = {t.arg: t.key for t in targets}
    seen: set[str] = set()
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        key = name if name in budgets else by_arg.get(name) or by_name.get(name)
        if not sep or key is None:
            raise ConfigError(f"--latency-budget names device {name!r}, which is not in --device ({names}); give "
                              "budgets as DEVICE=MS for the listed devices, e.g. "
                              f"--latency-budget {targets[0].key}=1.5.")
        if key in seen:
            raise ConfigError(f"--latency-budget gives {key} more than one budget; pass one per device.")
        seen.add(key)
        budgets[key] = ms(value, f" for {key}")
    return budgets


def _search_device(t: Target, latency_budget: float | None, *, out: Path, record_out: Path, overwrite: bool,
                   resume: bool, model: Any, meta: dict[str, Any], path: Path, file: Path, algorithms: list[str],
                   budget: int, top: int, bn: str, seed: int, device_type: str, accuracy_samples: int,
                   dataset: str | None, exits: str, batch: int, cascade: str, max_accuracy_drop: float | None,
                   max_worst_latency: float | None, shared: Any = None, bars: _Bars | None = None,
                   quiet: bool = False, objectives: tuple[Any, ...] = (), max_memory_bytes: float | None = None,
                   max_energy_mj: float | None = None) -> tuple[Any, list[Any], list[dict[str, Any]]]:
    """One device's search into the run folder ``out`` (``record_out`` is where it will finally live);
    returns its problem setup, results and exported subnets."""
    from nas.driver import run_search
    from nas.problem import setup_problem
    from nas.runfolder import (
        SearchSettings,
        check_out,
        results_from_tables,
        staging,
        versions,
        write_run_json,
    )
    from supernet.checkpoint import sha256
    from supernet.pretrained import DEFAULT_SUPERNET

    profile, power_mode = t.profile, t.power_mode
    has_heads = bool(model.space.exit_positions)
    use_exits = has_heads and exits != "off" and batch == 1
    drop = (0.5 if max_accuracy_drop is None else max_accuracy_drop) / 100 if use_exits else None
    settings = SearchSettings(
        device=profile.name, power_mode=power_mode, profile_sha=_profile_sha(profile), supernet=str(file.resolve()),
        supernet_sha256=sha256(file), algorithms=tuple(algorithms), budget=budget, latency_budget_ms=latency_budget,
        top_k=top, bn=bn, seed=seed, device_type=device_type, accuracy_samples=accuracy_samples, out=str(record_out),
        dataset=dataset, exits=exits, max_accuracy_drop=drop, max_worst_latency_ms=max_worst_latency,
        cascade=cascade, batch=batch, **_new_settings(objectives, max_memory_bytes, max_energy_mj))
    check_out(out, overwrite=overwrite, resume=resume, settings=settings)  # a resume with other settings fails now

    from rich.console import Console

    from nas.progress import console

    console.print(f"search {', '.join(algorithms)} on {profile.name}{':' + power_mode if power_mode else ''} ({budget} evaluations each) over "
                  f"{model.space.size} subnets of {file.name} → {record_out}")
    with _Bars() if bars is None else nullcontext(bars) as bars:
        setup = setup_problem(file, model, meta, profile, bn=bn, seed=seed, latency_budget_ms=latency_budget,
                              accuracy_samples=accuracy_samples, dataset=dataset, progress=bars.phase,
                              max_accuracy_drop=drop if drop is not None else 0.005,
                              max_worst_latency_ms=max_worst_latency, exits=use_exits, cascade=cascade == "auto",
                              power_mode=power_mode, batch=batch, shared=shared,
                              **({"objectives": tuple(objectives)} if objectives else {}),
                              max_memory_bytes=max_memory_bytes, max_energy_mj=max_energy_mj)
        problem = setup.problem
        problem.check_feasible()
        with staging(out, settings, overwrite=overwrite, resume=resume) as stage:
            reused = {a: s for a, s in stage.done.items() if a in algorithms}
            results = results_from_tables(stage.path, reused, seed, tuple(o.name for o in problem.objectives))
            if reused:
                console.print(f"resuming ({stage.resumed_from}): reusing {', '.join(reused)}")
            for name in algorithms:
                if name in reused:
                    continue
                results.append(run_search(problem, name, budget, seed, stage.path, bars.search, resume=resume))
                results.sort(key=lambda r: algorithms.index(r.algorithm))
                stage.save_progress(results)
            doc = _run_doc(settings, profile, t.arg, file, meta, setup, dataset, results, path == DEFAULT_SUPERNET,
                           versions())
            if hasattr(problem.latency, "speed_now"):  # a measured (host) predictor: how fast is the machine now?
                doc["host_speed"] = problem.latency.speed_now(model.config, seed=seed)
            write_run_json(stage.path, doc)
            exported: list[dict[str, Any]] = []
            if top > 0:
                from nas.export import export_subnets

                # writes subnets/<id>/ and records run.json["exported"]
                exported = export_subnets(stage.path, top, supernet_path=file, seed=seed, progress=bars.export)
                bars.update("export", len(exported), len(exported))

            def report(final: Path) -> None:
                from reports.html import write_report

                write_report([final], final / "report.html")

            stage.after_commit.append(report)

    Console().print(_summary(results, exported, problem, record_out))
    if not quiet:
        console.print(f"wrote {out}/ (run.json, evaluations.csv, history.csv, pareto.csv"
                      f"{', subnets/' if exported else ''}, report.html)")
    return setup, results, exported


def _search_fleet(targets: list[Target], budgets: dict[str, float | None], *, out: Path, overwrite: bool,
                  **common: Any) -> None:
    """Search every device into ``out/devices/<device>/`` (the accuracy predictor fitted once), then write
    the deployment table, fleet.json and the report; atomically, like a single-device run."""
    import shutil

    from rich.console import Console

    from nas.progress import console
    from nas.runfolder import commit, deployment_table, now_iso, staging_path, write_deployment
    from reports.run_folder import DEVICES_DIR, FleetDevice, FleetRecord, save_fleet

    stage = staging_path(out)
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        shared = None
        rows = []
        devices = []
        for t in targets:
            rel = f"{DEVICES_DIR}/{t.folder}"
            setup, results, _ = _search_device(t, budgets[t.key], out=stage / rel, record_out=out / rel,
                                               overwrite=False, resume=False, shared=shared, quiet=True, **common)
            shared = setup.shared
            rows.append((t, setup, stage / rel, rel))
            devices.append(FleetDevice(device=t.profile.name, power_mode=t.power_mode,
                                       latency_budget_ms=budgets[t.key], run=rel))
        table = deployment_table([(t.key, t.power_mode, budgets[t.key], s.problem, d, rel, t.profile)
                                  for t, s, d, rel in rows], model=common["model"], batch=common["batch"])
        write_deployment(stage, table)
        acc = rows[0][1].problem.accuracy
        acc = getattr(acc, "static", acc)
        save_fleet(stage, FleetRecord(created=now_iso(), seed=common["seed"], devices=tuple(devices),
                                      command=_fleet_command(targets, budgets, out, common),
                                      accuracy_predictor={"quality": dict(acc.quality), "shared": True}))

        def report(final: Path) -> None:
            from reports.html import write_report

            write_report([final], final / "report.html")

        commit(stage, out, [report])
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    Console().print(_deployment_rich(table, out))
    console.print(f"wrote {out}/ (fleet.json, deployment.csv, report.html, "
                  f"{', '.join(f'{DEVICES_DIR}/{t.folder}/' for t in targets)})")


def _fleet_command(targets: list[Target], budgets: dict[str, float | None], out: Path, common: dict[str, Any]) -> str:
    parts = ["dynnas search", f"--device {','.join(t.key for t in targets)}"]
    given = [f"{k}={v:g}" for k, v in budgets.items() if v is not None]
    if given:
        parts.append(f"--latency-budget {','.join(given)}")
    parts += [f"--algorithm {','.join(common['algorithms'])}", f"--budget {common['budget']}",
              f"--top {common['top']}", f"--bn {common['bn']}", f"--seed {common['seed']}", f"--out {out}"]
    return " ".join(parts)


def _deployment_rich(table: Any, out: Path) -> Any:
    """The deployment table as printed: which subnet to deploy on which device under which budget."""
    from rich.table import Table

    t = Table(title=f"deployment: which subnet on which device under which budget ({out}/deployment.csv)")
    for col in ("device", "budget ms", "subnet", "arch", "pred. acc", "pred. ms", "MMACs", "memory KiB"):
        t.add_column(col)
    for r in table.itertuples(index=False):
        budget = "none" if r.latency_budget_ms != r.latency_budget_ms or r.latency_budget_ms is None \
            else f"{r.latency_budget_ms:g}"
        t.add_row(str(r.device), budget, str(r.subnet_id), str(r.arch), f"{r.accuracy:.4f}", f"{r.latency_ms:.5g}",
                  f"{r.macs / 1e6:.2f}", f"{r.memory_bytes / 1024:.1f}")
    return t


def _latency_trust(profile: Any, power_mode: str | None) -> dict[str, Any]:
    """How far the device's latency predictions can be trusted: ``confidence`` is ``low`` when the
    profile rests on few published points (see predictors.profile_quality), and the power mode used."""
    from predictors.profile_quality import confidence_of

    return {"confidence": confidence_of(profile), "n_calibration_points": len(profile.calibration),
            "power_mode": power_mode or profile.default_power_mode}


def _run_doc(settings: Any, profile: Any, device_arg: str, file: Path, meta: dict[str, Any], setup: Any,
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
            "latency": {**lat.describe(), **_latency_trust(profile, settings.power_mode)},
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


def _summary(results: list[Any], exported: list[dict[str, Any]], problem: Any, out: Path) -> Any:
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


@app.command(epilog="Examples:\n\n    dynnas devices\n\n    dynnas devices --profile my-board.yaml\n\n"
                    "    dynnas devices --no-quality")
@guarded
def devices(
    profile: Annotated[list[Path] | None, typer.Option(help="Also show (and validate) this profile YAML file.")] = None,
    quality: Annotated[bool, typer.Option(help="Refit each published roofline leave-one-out to show its calibration "
                                               "error (about a second per profile).")] = True,
) -> None:
    """List the device profiles: compute, power modes, calibration points and their leave-one-out error."""
    from rich.console import Console
    from rich.table import Table

    from hw_profiles import list_profiles, load_profile

    profiles = [load_profile(n) for n in list_profiles()] + [load_profile(Path(p)) for p in profile or []]
    table = Table(title="device profiles")
    for col in ("name", "kind", "runtime", "precisions", "peak", "bandwidth", "power modes", "calibration",
                "LOO median / max", "confidence"):
        table.add_column(col, no_wrap=col in ("name", "peak", "bandwidth", "calibration", "LOO median / max"))
    for p in profiles:
        table.add_row(*_device_row(p, quality))
    table.caption = ("LOO: each calibration point predicted by the roofline refitted on the others (|error| %); "
                     "confidence 'low' under 3 points or 2 reference models")
    Console().print(table)


def _device_row(p: Any, quality: bool) -> list[str]:
    """The `devices` table cells of one profile (the LOO refit only when ``quality``)."""
    from predictors.profile_quality import confidence_of, profile_quality

    peak = p.peak_compute[p.default_precision]
    precisions = ", ".join(k + ("*" if k == p.default_precision else "") for k in p.peak_compute)
    modes = ", ".join(m.name + (" (default)" if m.name == p.default_power_mode else "") for m in p.power_modes)
    calib = "measured here" if p.measured and not p.calibration else f"{len(p.calibration)} points"
    loo = "-"
    if quality and p.calibration:
        q = profile_quality(p)
        loo = f"{q.loo_median_abs_pct:.1f} / {q.loo_max_abs_pct:.1f} %"
    return [p.name, p.kind, p.runtime, precisions, f"{peak.value:g} {peak.unit}", f"{p.memory_bandwidth.value:g} GB/s",
            modes, calib, loo, confidence_of(p)]
