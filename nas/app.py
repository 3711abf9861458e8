"""The typer app and the option types every command shares."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="dynnas",
    help="Hardware-aware once-for-all NAS: train one supernet, search it per device, export Pareto subnets.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)

SeedOpt = Annotated[int, typer.Option(help="Random seed: same seed, same result.")]
DeviceTypeOpt = Annotated[str, typer.Option("--device-type", help="Where PyTorch runs: cpu or cuda.")]
