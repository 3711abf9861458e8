"""`dynnas export` and `dynnas report`: deployable subnets and the HTML report of search runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nas.app import app
from nas.errors import guarded


@app.command(epilog="Examples:\n\n    dynnas export runs/demo-jetson-orin\n\n"
             "    dynnas export runs/demo-host --top 3 --seed 1\n\n"
             "    dynnas export runs/demo-host --supernet runs/cifar/supernet.safetensors\n\n"
             "    dynnas export runs/fleet\n\n"
             "    dynnas export runs/fleet --device raspberry-pi-5 --top 3")
@guarded
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `dynnas search` (one device, or several: "
                                            "each device's front).", show_default=False)],
    top: Annotated[int, typer.Option("--top", help="How many subnets to export, spread along the combined front "
                                     "(the fastest and the most accurate always among them).")] = 5,
    supernet: Annotated[Path | None, typer.Option(help="Supernet file, if it moved since the search "
                                                  "(its sha256 must match the run's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of BN recalibration and latency input (default: the "
                                             "run's seed, reproducing the search's export).")] = None,
    device: Annotated[str | None, typer.Option(help="Of a search over several devices, export only this device's "
                                               "front (default: every device's).")] = None,
) -> None:
    """Export subnets of a search run as verified ONNX + safetensors under DIR/subnets/<subnet_id>/ (over several
    devices: DIR/devices/<device>/subnets/<subnet_id>/ for each device, or the one of --device)."""
    from nas.fleet import fleet_device_runs
    from reports.run_folder import load_run

    runs = fleet_device_runs(run_dir, device)
    for _, d in runs:  # a missing or broken run is reported as such, before the write checks
        load_run(d)
    for _, d in runs:  # every device's folder, before the slow work of any
        _check_writable(d / "subnets" if (d / "subnets").is_dir() else d, d)
    for key, d in runs:
        _export_run(d, top, supernet=supernet, seed=seed, device=key if len(runs) > 1 else None)


def _export_run(run_dir: Path, top: int, *, supernet: Path | None, seed: int | None, device: str | None) -> None:
    """Export one single-device run folder and print its table (``device``: its name in a fleet, for the title)."""
    from rich.table import Table

    from nas.export import export_subnets
    from nas.progress import console

    subnets = run_dir / "subnets"
    had_subnets = subnets.is_dir()
    if device is not None:
        console.print(f"{device}: exporting from {run_dir}")
    try:
        done = export_subnets(run_dir, top, supernet_path=supernet, seed=seed,
                              progress=lambda i, n, arch: console.print(f"[{i + 1}/{n}] exporting {arch}"))
    except BaseException:
        if not had_subnets:  # leave no empty subnets/ behind a failed export
            try:
                subnets.rmdir()
            except OSError:
                pass
        raise
    table = Table(title=f"exported to {run_dir / 'subnets'} (verified: ONNX vs PyTorch logits ≤ 1e-4)")
    for col in ("arch", "subnet_id", "MMACs", "pred. acc", "ONNX acc", "pred. ms", "host ms†", "max |Δ|"):
        table.add_column(col)
    for d in done:
        table.add_row(d["arch"], d["subnet_id"], f"{d['macs'] / 1e6:.3f}", f"{d['predicted_accuracy']:.4f}",
                      f"{d['onnx_accuracy']:.4f}", f"{d['predicted_latency_ms']:.4g}", f"{d['host_latency_relative_ms']:.4g}",
                      f"{d['max_abs_logit_diff']:.1e}")
    console.print(table)
    if done:
        console.print(f"accuracy measured with onnxruntime on {done[0]['eval_set']}; † host latency timed against "
                      "the host predictor's reference subnet (verify.json: host_latency_relative)")


def _check_writable(folder: Path, run_dir: Path) -> None:
    """:class:`OutputError` unless a folder can be made in ``folder`` (probed for real: ``os.access``
    says yes to root), before the slow work of an export."""
    import os
    import tempfile

    from supernet.errors import OutputError

    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".export-probe-"))
    except OSError as e:
        raise OutputError(f"cannot export into run folder '{run_dir}': '{folder}' is not writable "
                          f"({e.strerror or e}); copy the run to a writable folder (cp -r {run_dir} COPY) and run "
                          "`dynnas export COPY`.") from None


@app.command(epilog="Examples:\n\n    dynnas report runs/demo-jetson-orin\n\n"
             "    dynnas report runs/demo-jetson-orin runs/demo-host --out compare.html\n\n"
             "    dynnas report runs/orin-seed0 runs/orin-seed1 runs/orin-seed2 --out seeds.html")
@guarded
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run folders (several: compared side by side).",
                                                   show_default=False)],
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: DIR/report.html of the "
                                             "first run).")] = None,
) -> None:
    """Write one self-contained HTML report (fronts, hypervolume, predicted vs measured, exports); several runs
    are compared side by side, and runs that are seeds of one search compare the algorithms over seeds."""
    from nas.progress import console
    from reports.html import write_report

    path = write_report(run_dirs, out or run_dirs[0] / "report.html")
    console.print(f"wrote {path}")
