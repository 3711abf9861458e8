"""`dynnas profile`: measure this machine's device profile (micro-benchmarks + reference models) with onnxruntime.

The command's own path imports no torch (only onnx, onnxruntime, numpy, pyyaml, pydantic, typer, rich), so it
runs on a target board where only an inference runtime is installed; bring the YAML file back and pass it to
``--device``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from nas.app import SeedOpt, app
from nas.errors import guarded

PROFILE_EPILOG = (
    "Examples:\n\n"
    "    dynnas profile --out my-board.yaml\n\n"
    "    dynnas profile --out profiles/pi4.yaml --threads 4 --name raspberry-pi-4-measured\n\n"
    "    dynnas profile --out orin.yaml --provider cuda\n\n"
    "    dynnas profile --out quick.yaml --quick --threads 1\n\n"
    "    dynnas profile --install      # this machine's `host` profile: `--device host` reads it from then on\n\n"
    "Then: `dynnas devices --profile my-board.yaml` and `dynnas latency --model resnet50 --device my-board.yaml`.\n\n"
    "A full run takes 1-3 minutes on 2 CPU cores; --quick (fewer sizes and repeats, the two smallest reference "
    "models) about 10 s. TensorRT builds an engine per graph: expect minutes."
)


@app.command(epilog=PROFILE_EPILOG)
@guarded
def profile(
    out: Annotated[Path | None, typer.Option(help="Profile YAML file to write (atomically), e.g. my-board.yaml.",
                                             show_default=False)] = None,
    install: Annotated[bool, typer.Option("--install", help="Write it as this machine's `host` profile instead "
                                          "(in the dynnas cache): `--device host` then reads the measured profile, "
                                          "not the shipped nominal one.")] = False,
    provider: Annotated[str, typer.Option(help="onnxruntime execution provider: cpu, cuda or tensorrt.")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="onnxruntime intra-op threads (default: this machine's CPUs).",
                                                show_default=False)] = None,
    quick: Annotated[bool, typer.Option(help="A short run (about 10 s): fewer sizes and repeats, the two smallest "
                                             "reference models. For tests and a first look.")] = False,
    name: Annotated[str | None, typer.Option(help="The profile's name (a lowercase slug; default: the file name).",
                                             show_default=False)] = None,
    seed: SeedOpt = 0,
) -> None:
    """Measure a device profile here: peak FLOP/s per op class, memory bandwidth, per-kernel overhead and the
    reference models' latencies, written as a `measured: true` profile YAML that `--device FILE` reads."""
    from hw_profiles.installed import HOST, installed_host_path
    from hw_profiles.measure import check_out_path, measure_profile, profile_name
    from hw_profiles.measured import MeasurementError, ProfileSettings, default_threads
    from hw_profiles.profile_doc import install_host, write_profile

    if (out is None) == (not install):
        raise MeasurementError("give exactly one of --out FILE.yaml or --install, e.g. `dynnas profile --install`.")
    if install:
        if provider != "cpu":
            raise MeasurementError(f"--install measures the `host` profile on onnxruntime's CPU provider, but got "
                                   f"--provider {provider}; drop --provider, or use --out FILE.yaml for a GPU profile.")
        if name not in (None, HOST):
            raise MeasurementError(f"--install writes the profile named '{HOST}', but got --name {name}; drop --name, "
                                   "or use --out FILE.yaml.")
        out, name = installed_host_path(), HOST
    settings = ProfileSettings(name=profile_name(out, name), provider=provider,
                               threads=default_threads() if threads is None else threads, quick=quick, seed=seed)
    check_out_path(out)  # before any measurement: a bad --out costs nothing and leaves nothing
    builder = reference_graph_builder()
    with _Progress() as progress:
        result = measure_profile(settings, builder, progress=progress)
    if install:
        install_host(result)
    else:
        write_profile(out, result)
    _print_summary(result, out)


def reference_graph_builder() -> Callable[[str], Any]:
    """``name -> ONNX model`` of a reference model at its resolution, batch 1, from ``predictors.reference_graphs``
    (which, like the ``predictors`` package's lazy ``__init__``, imports no torch: this command runs where only
    onnxruntime is installed)."""
    from predictors.reference_graphs import reference_graph

    def build(name: str) -> Any:
        return reference_graph(name, batch=1, weights="shape-only")  # weights are filled in by the timing

    return build


class _Progress:
    """Rich progress bars, one per measurement stage (stderr), fed by ``measure_profile``'s callback."""

    def __enter__(self) -> _Progress:
        from nas.progress import make_progress

        self.bar = make_progress()
        self.tasks: dict[str, Any] = {}
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total, info="")
        self.bar.update(self.tasks[stage], completed=done, total=total)


def _print_summary(result: Any, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from hw_profiles.timing import NOISY_SPREAD

    doc, micro = result.document, result.micro
    table = Table(title=f"{doc['name']}: {doc['display_name']}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("from")
    table.add_row("peak compute (fp32)", f"{micro.peak_flops / 1e9:.4g} GFLOP/s", micro.best[micro.peak_class]["label"])
    for cls, best in micro.best.items():
        unit = "GFLOP/s" if best["unit"] == "FLOP/s" else "GB/s"
        table.add_row(f"  best {cls}", f"{best['rate'] / 1e9:.4g} {unit}", best["label"])
    table.add_row("memory bandwidth", f"{micro.bandwidth / 1e9:.4g} GB/s", ", ".join(micro.bandwidth_sizes))
    table.add_row("kernel overhead", f"{micro.kernel_overhead_us:.3g} µs", "median of the tiny ops' per-kernel cost")
    table.add_row("session run", f"{micro.session_us:.3g} µs", "fixed cost per InferenceSession.run")
    table.add_section()
    for r in result.references:
        t = r.timing
        table.add_row(f"{r.model} @{r.resolution}", f"{r.ms:.4g} ms", f"ratio p10-p90 {t.ratio_p10:.3g}-{t.ratio_p90:.3g}")
    for model, why in result.skipped.items():
        table.add_row(model, "-", f"skipped: {why}")
    table.caption = (f"{result.seconds:.0f} s; machine speed spread {result.spread:.3g} (p90/p10 of the reference); "
                     f"wrote {out}")
    Console().print(table)
    if result.spread > NOISY_SPREAD:
        Console(stderr=True).print(
            f"warning: the reference graph's speed varied by {result.spread:.2f}x (p90/p10) during the run, more "
            f"than the {NOISY_SPREAD}x of an idle machine: other processes were likely using the CPU; rerun "
            "`dynnas profile` on an idle machine for reliable numbers.")
