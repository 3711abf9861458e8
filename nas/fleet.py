"""A search over several devices (``dynnas search --device a,b``) into one fleet run folder.

Each device is searched into ``DIR/devices/<device>/`` (a complete single-device run folder, see
:func:`nas.device_search.search_device`), the accuracy predictor fitted once and shared; then
``deployment.csv``, ``fleet.json`` and ``report.html`` are written (see :mod:`reports.run_folder`).
Everything goes into the staging folder ``.<name>.partial`` and is renamed at the end, as for one
device; a Ctrl-C keeps the staging folder, so ``--resume`` continues it. ``--resume`` of a finished
fleet reuses every device whose search finished with the same settings and runs the others.

Example::

    targets = parse_devices("jetson-orin,raspberry-pi-5")
    search_fleet(targets, parse_latency_budgets(None, targets), opts, out=Path("runs/fleet"), overwrite=False,
                 resume=False)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nas.device_search import SearchOptions
from nas.targets import Target
from reports.run_folder import DEPLOYMENT_FILE, FLEET_PARTIAL_FILE, FLEET_PARTIAL_FORMAT
from supernet.errors import OutputError
from supernet.files import atomic_write

__all__ = ["FleetDevices", "check_resume_devices", "fleet_device_runs", "recorded_devices", "search_fleet"]


def _key(device: str, power_mode: str | None) -> str:
    """A device's key as :attr:`nas.targets.Target.key` writes it: ``name`` or ``name:MODE``."""
    return device + (f":{power_mode}" if power_mode else "")


def _rel(t: Target) -> str:
    from reports.run_folder import DEVICES_DIR

    return f"{DEVICES_DIR}/{t.folder}"


@dataclass(frozen=True)
class FleetDevices:
    """The devices a run folder (or its staging folder) holds or was searching, and where that was read."""

    keys: tuple[str, ...]
    where: Path
    fleet: bool  # a search over several devices (fleet.json, or a fleet's staging folder)


def recorded_devices(out: Path) -> FleetDevices | None:
    """What ``--resume`` would continue at ``out``: an interrupted session's staging folder first, else the run
    in ``out``; None when there is nothing to continue."""
    from nas.runfolder import staging_path
    from reports.run_folder import FLEET_FILE, PARTIAL_FILE, RUN_FILE, load_fleet, load_partial, load_run
    from supernet.checkpoint import read_json
    from supernet.errors import OutputError

    out = Path(out)
    stage = staging_path(out)
    if (stage / FLEET_PARTIAL_FILE).is_file():
        doc = read_json(stage / FLEET_PARTIAL_FILE, "fleet staging state")
        if not (isinstance(doc, dict) and doc.get("format") == FLEET_PARTIAL_FORMAT
                and isinstance(doc.get("devices"), list)):
            raise OutputError(f"'{stage / FLEET_PARTIAL_FILE}' is not a dynnas fleet staging state; pass --overwrite "
                              "to start the search afresh.")
        return FleetDevices(tuple(str(k) for k in doc["devices"]), stage, fleet=True)
    if (stage / PARTIAL_FILE).is_file():
        s = load_partial(stage / PARTIAL_FILE).settings
        return FleetDevices((_key(s.device, s.power_mode),), stage, fleet=False)
    if (out / FLEET_FILE).is_file():
        rec = load_fleet(out)
        return FleetDevices(tuple(_key(d.device, d.power_mode) for d in rec.devices), out, fleet=True)
    if (out / RUN_FILE).is_file():
        s = load_run(out).settings
        return FleetDevices((_key(s.device, s.power_mode),), out, fleet=False)
    return None


def check_resume_devices(out: Path, targets: list[Target]) -> None:
    """:class:`OutputError` unless ``--resume`` at ``out`` continues a search over exactly ``targets`` (in
    order). Reads only; a single-device run resumed on one device is left to its settings check."""
    from supernet.errors import OutputError

    found = recorded_devices(out)
    if found is None or (len(targets) == 1 and not found.fleet):
        return
    want = tuple(t.key for t in targets)
    if found.keys != want:
        had, has = ",".join(found.keys), ",".join(want)
        raise OutputError(f"cannot resume '{found.where}': it searched --device {had} but this command has "
                          f"--device {has}; pass --device {had} to continue it, or --overwrite to replace it "
                          f"with a search over {has}.")


def _new_stage(stage: Path, src: Path | None, targets: list[Target]) -> None:
    """Make the staging folder afresh: with ``src`` (the fleet run resumed), a copy of each device folder
    whose search finished, then the marker that makes it resumable."""
    from reports.run_folder import RUN_FILE
    from supernet.checkpoint import write_json

    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        for t in targets:
            if src is not None and (src / _rel(t) / RUN_FILE).is_file():
                # a copy, not links: a resumed optuna study is written in place
                shutil.copytree(src / _rel(t), stage / _rel(t), symlinks=True)
        write_json(stage / FLEET_PARTIAL_FILE, {"format": FLEET_PARTIAL_FORMAT, "devices": [t.key for t in targets]})
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _finished(run_dir: Path, settings: Any) -> bool:
    """Whether ``run_dir`` holds this device's finished search made with exactly ``settings`` (then it is
    reused as it is; otherwise it is resumed, which reuses its finished algorithms)."""
    from nas.runfolder import staging_path
    from reports.run_folder import PARTIAL_FILE, RUN_FILE, load_run

    if not (run_dir / RUN_FILE).is_file() or (staging_path(run_dir) / PARTIAL_FILE).is_file():
        return False
    return load_run(run_dir).settings.to_dict() == settings.to_dict()


def _reuse(t: Target, budget: float | None, opts: SearchOptions, record_out: Path, shared: Any) -> Any:
    """The problem setup of a device whose finished search is reused (for the shared accuracy predictor and
    the deployment table); nothing of its run folder is rewritten."""
    from nas.device_search import device_setup
    from nas.progress import SearchBars, console

    console.print(f"reusing the finished search on {t.key} ({record_out})")
    with SearchBars() as bars:
        return device_setup(t, budget, opts, bars, shared=shared)


def search_fleet(targets: list[Target], budgets: dict[str, float | None], opts: SearchOptions, *, out: Path,
                 overwrite: bool, resume: bool = False) -> None:
    """Search every device into ``out/devices/<device>/`` (the accuracy predictor fitted once), then write
    the deployment table, fleet.json and the report; atomically, like a single-device run.

    With ``resume``: an interrupted session's staging folder is continued, else the fleet run in ``out``;
    devices whose search finished with the same settings are reused, the others run (resumed where they
    stopped). A different device list, or a device made with other settings, fails before any work.
    """
    from rich.console import Console

    from nas.device_search import device_settings, search_device
    from nas.progress import console
    from nas.runfolder import check_resumable, commit, now_iso, staging_path
    from reports.run_folder import DEVICES_DIR, FleetDevice, FleetRecord, save_fleet

    out = Path(out)
    stage = staging_path(out)
    settings = {t.key: device_settings(t, budgets[t.key], opts, out / _rel(t)) for t in targets}
    continuing = resume and (stage / FLEET_PARTIAL_FILE).is_file()
    if resume:
        check_resume_devices(out, targets)
        for t in targets:  # every device's settings, before any slow work
            check_resumable((stage if continuing else out) / _rel(t), settings[t.key])
    if continuing:
        console.print(f"resuming (interrupted session): {stage}")
    else:
        _new_stage(stage, out if resume else None, targets)
    try:
        shared = None
        rows = []
        devices = []
        for t in targets:
            rel = _rel(t)
            if resume and _finished(stage / rel, settings[t.key]):
                setup = _reuse(t, budgets[t.key], opts, out / rel, shared)
            else:
                setup = search_device(t, budgets[t.key], opts, out=stage / rel, record_out=out / rel,
                                      overwrite=False, resume=resume, shared=shared, quiet=True).setup
            shared = setup.shared
            rows.append((t, setup, stage / rel, rel))
            devices.append(FleetDevice(device=t.profile.name, power_mode=t.power_mode,
                                       latency_budget_ms=budgets[t.key], run=rel))
        table = deployment_table([(t.key, t.power_mode, budgets[t.key], s.problem, d, rel, t.profile)
                                  for t, s, d, rel in rows], model=opts.model, batch=opts.batch)
        write_deployment(stage, table)
        acc = rows[0][1].problem.accuracy
        acc = getattr(acc, "static", acc)
        save_fleet(stage, FleetRecord(created=now_iso(), seed=opts.seed, devices=tuple(devices),
                                      command=fleet_command(targets, budgets, out, opts),
                                      accuracy_predictor={"quality": dict(acc.quality), "shared": True}))

        def report(final: Path) -> None:
            from reports.html import write_report

            write_report([final], final / "report.html")

        (stage / FLEET_PARTIAL_FILE).unlink()
        commit(stage, out, [report])
    except KeyboardInterrupt:
        raise  # keep the staging folder: --resume continues from it
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    Console().print(deployment_rich(table, out))
    console.print(f"wrote {out}/ (fleet.json, deployment.csv, report.html, "
                  f"{', '.join(f'{DEVICES_DIR}/{t.folder}/' for t in targets)})")


def fleet_command(targets: list[Target], budgets: dict[str, float | None], out: Path, opts: SearchOptions) -> str:
    """A ``dynnas search`` command line that reproduces the fleet run (recorded in fleet.json): every
    shared option as one device's settings record it, with the device list and per-device budgets."""
    from nas.device_search import device_settings

    given = ",".join(f"{k}={v:g}" for k, v in budgets.items() if v is not None)
    return device_settings(targets[0], None, opts, out).command(
        device=",".join(t.key for t in targets), latency_budget=given, out=str(out))


def deployment_rich(table: Any, out: Path) -> Any:
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


def fleet_device_runs(run_dir: Path, device: str | None = None) -> list[tuple[str, Path]]:
    """``(device key, run folder)`` of each device of ``run_dir``: a fleet's ``devices/<device>/`` in order, or
    the single-device run itself; ``device`` (a key, profile name or folder name) keeps only that one.

    :class:`~reports.run_folder.NoRunError` for a broken run or a fleet missing a device's folder;
    :class:`~supernet.errors.UnknownNameError` (with the closest match) for a device not in the run.
    """
    from reports.run_folder import NoRunError, is_fleet, load_fleet, load_run
    from supernet.errors import UnknownNameError, closest

    run_dir = Path(run_dir)
    if is_fleet(run_dir):
        runs = [(_key(d.device, d.power_mode), run_dir / d.run) for d in load_fleet(run_dir).devices]
    else:
        s = load_run(run_dir).settings
        runs = [(_key(s.device, s.power_mode), run_dir)]
    every = ",".join(k for k, _ in runs)
    if device is not None:
        name = device.strip()
        hits = [(k, p) for k, p in runs if name in (k, p.name)]
        by_profile = [(k, p) for k, p in runs if k.partition(":")[0] == name]
        hits = hits or (by_profile if len(by_profile) == 1 else [])
        if not hits:
            keys = [k for k, _ in runs]
            raise UnknownNameError(f"run '{run_dir}' has no device '{name}'{closest(name, keys) or '.'} Its devices: "
                                   f"{', '.join(keys)}; pass one of them to --device, or drop --device.")
        runs = hits
    for key, path in runs:
        if not path.is_dir():
            raise NoRunError(f"run '{run_dir}' lacks the folder of device {key} ('{path}'); search it again: rerun "
                             f"the search with the same options and --device {every} --out {run_dir} --resume.")
    return runs


# ---- several devices: the deployment table ---------------------------------------------------
def deploy_choice(front: pd.DataFrame, budget_ms: float | None) -> pd.Series:
    """The subnet to deploy under ``budget_ms``: the most accurate of a combined front within the budget
    (ties: the faster, then the smaller subnet id), or the most accurate at all without a budget."""
    rows = front if budget_ms is None else front[front["latency_ms"] <= budget_ms]
    if rows.empty:
        raise OutputError(f"no subnet on the front meets the latency budget {budget_ms:g} ms; this cannot happen "
                          "after a feasible search: rerun it with --overwrite.")
    return rows.sort_values(["accuracy", "latency_ms", "subnet_id"], ascending=[False, True, True],
                            kind="stable").iloc[0]


def deployment_table(devices: list[tuple[str, str | None, float | None, Any, Path, str, Any]], *, model: Any,
                     batch: int = 1) -> pd.DataFrame:
    """deployment.csv (:data:`reports.run_folder.DEPLOYMENT_COLUMNS`): one row per (device, budget).

    ``devices``: ``(device key, power mode, budget ms, problem, run folder, folder relative to the fleet,
    profile)`` each. The subnet is :func:`deploy_choice` on the device's combined front (pareto.csv);
    memory is :class:`predictors.memory.MemoryPredictor` at the profile's default precision.
    """
    from nas.problem import _full
    from predictors.memory import MemoryPredictor, rules_for_device
    from reports.run_folder import DEPLOYMENT_COLUMNS, PARETO_FILE, read_table

    rows = []
    for key, mode, budget, problem, run_dir, rel, profile in devices:
        par = read_table(run_dir, PARETO_FILE)
        front = par[par["combined"].astype(bool)].drop_duplicates("subnet_id")
        r = deploy_choice(front, budget)
        subnet = _full(problem.space.parse(str(r["arch"])), model.space)
        mem = MemoryPredictor(model.config, profile.default_precision, batch=batch, rules=rules_for_device(profile))
        rows.append({"device": key, "power_mode": mode or profile.default_power_mode, "latency_budget_ms": budget,
                     "subnet_id": str(r["subnet_id"]), "arch": str(r["arch"]), "accuracy": float(r["accuracy"]),
                     "latency_ms": float(r["latency_ms"]), "macs": int(r["macs"]),
                     "memory_bytes": int(mem.predict_bytes([subnet])[0]), "run": rel})
    return pd.DataFrame(rows, columns=list(DEPLOYMENT_COLUMNS))


def write_deployment(run_dir: Path, table: pd.DataFrame) -> None:
    """deployment.csv, atomically."""
    atomic_write(Path(run_dir) / DEPLOYMENT_FILE, lambda p: table.to_csv(p, index=False, float_format="%.10g"))
