"""`dynnas search` (choose subnets for a device) and `dynnas devices` (list device profiles)."""

from __future__ import annotations

import sys
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
    "    dynnas search --device jetson-orin,host --out runs/fleet --resume\n\n"
    "    dynnas search --device jetson-orin --objectives accuracy,latency,energy --max-memory 2MB"
)


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
    resume: Annotated[bool, typer.Option(help="Continue the run in --out (same settings): finished algorithms and the optuna study are reused; over several devices (the same --device list), finished devices too.")] = False,
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
    `deployment.csv` and `report.html`; `--resume` continues such a run, reusing the devices whose search
    finished.
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
    from nas.targets import parse_devices, parse_latency_budgets

    targets = parse_devices(device)
    budgets = parse_latency_budgets(latency_budget, targets)

    from nas.fleet import check_resume_devices
    from nas.runfolder import check_out, default_out

    out = Path(out) if out is not None else default_out("-".join(t.key.replace(":", "-") for t in targets))
    check_out(out, overwrite=overwrite, resume=resume)  # before any slow work
    if resume:
        check_resume_devices(out, targets)  # a resume with another device list fails now

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

    from nas.device_search import SearchOptions, search_device
    from nas.fleet import search_fleet

    opts = SearchOptions(model=model, meta=meta, path=path, file=file, algorithms=tuple(algorithms), budget=budget,
                         top=top, bn=bn, seed=seed, device_type=device_type, accuracy_samples=accuracy_samples,
                         dataset=dataset, exits=exits, batch=batch, cascade=cascade,
                         max_accuracy_drop=max_accuracy_drop, max_worst_latency=max_worst_latency, objectives=objs,
                         max_memory_bytes=max_memory_bytes, max_energy_mj=max_energy)
    if len(targets) == 1:
        t = targets[0]
        search_device(t, budgets[t.key], opts, out=out, record_out=out, overwrite=overwrite, resume=resume)
        return
    search_fleet(targets, budgets, opts, out=out, overwrite=overwrite, resume=resume)


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
                "calibrated MACs", "LOO median / max", "confidence"):
        table.add_column(col, no_wrap=col in ("name", "peak", "bandwidth", "calibration", "LOO median / max"))
    for p in profiles:
        table.add_row(*_device_row(p, quality))
    table.caption = ("LOO: each calibration point predicted by the roofline refitted on the others (|error| %); "
                     "confidence 'low' with fewer points than fitted parameters (3, or 4 with an invoke cost) or "
                     "under 2 reference models; calibrated MACs: the smallest and largest calibration network per "
                     "image (outside it, latency is extrapolated)")
    # 11 columns do not fit 80: a terminal wraps them, a pipe or a file gets the whole table
    Console(width=None if sys.stdout.isatty() else 220).print(table)


def _device_row(p: Any, quality: bool) -> list[str]:
    """The `devices` table cells of one profile (the LOO refit only when ``quality``)."""
    from predictors.profile_quality import calibrated_macs, confidence_of, format_macs, profile_quality

    peak = p.peak_compute[p.default_precision]
    precisions = ", ".join(k + ("*" if k == p.default_precision else "") for k in p.peak_compute)
    modes = ", ".join(m.name + (" (default)" if m.name == p.default_power_mode else "") for m in p.power_modes)
    calib = "measured here" if p.measured and not p.calibration else f"{len(p.calibration)} points"
    loo = "-"
    if quality and p.calibration:
        q = profile_quality(p)
        loo = f"{q.loo_median_abs_pct:.1f} / {q.loo_max_abs_pct:.1f} %"
    rng = calibrated_macs(p)
    macs = "-" if rng is None else f"{format_macs(rng[0])}–{format_macs(rng[1])}"
    return [p.name, p.kind, p.runtime, precisions, f"{peak.value:g} {peak.unit}", f"{p.memory_bandwidth.value:g} GB/s",
            modes, calib, macs, loo, confidence_of(p)]
