"""`dynnas latency`: predicted per-kernel latency of any ONNX model (or a reference model) on a device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from nas.app import app
from nas.errors import guarded

LATENCY_EPILOG = (
    "Examples:\n\n"
    "    dynnas latency --model resnet50 --device jetson-orin\n\n"
    "    dynnas latency model.onnx --device jetson-orin:15W --precision fp16 --batch 8\n\n"
    "    dynnas latency model.onnx --device host --input-shape 1,3,224,224 --fusion none --json\n\n"
    "    dynnas latency --model vit_b16 --device jetson-orin --power-mode 30W --out vit.json"
)


def _shape(text: str | None) -> tuple[int, ...] | None:
    from supernet.errors import ConfigError

    if text is None:
        return None
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise ConfigError(f"--input-shape must be positive integers separated by commas (e.g. 1,3,224,224), "
                          f"but got {text!r}.")
    return dims


@app.command(epilog=LATENCY_EPILOG)
@guarded
def latency(
    device: Annotated[str, typer.Option(help="Device profile name or YAML file, optionally NAME:MODE (see `dynnas devices`).")],
    onnx_file: Annotated[Path | None, typer.Argument(help="ONNX model file (or use --model).", show_default=False)] = None,
    model: Annotated[str | None, typer.Option(help="A reference model built by dynnas instead of a file: resnet50, resnet18, mobilenet_v1, mobilenet_v2, mobilenet_v3_large, efficientnet_lite0, vit_b16, ssd_mobilenet_v1.")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32, fp16 or int8 (default: the device's).")] = None,
    batch: Annotated[int | None, typer.Option(help="Batch size (replaces the input's first dimension; default: the model's, 1 for --model or a dynamic batch dimension).")] = None,
    power_mode: Annotated[str | None, typer.Option("--power-mode", help="Power mode (scales peak compute; default: the device's).")] = None,
    input_shape: Annotated[str | None, typer.Option("--input-shape", help="Input shape for models with dynamic dimensions, e.g. 1,3,224,224.")] = None,
    fusion: Annotated[str | None, typer.Option(help="Fusion rules of the runtime: tensorrt, onnxruntime-cpu, tflite or none (default: the device's runtime's; see predictors/fusion_rules.yaml).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of the table.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON document to this file (atomically).")] = None,
) -> None:
    """Predict the latency of an ONNX model on a device, kernel by kernel, from the device's roofline."""
    from hw_profiles.loader import parse_device
    from predictors.graph_latency import check_precision, predict_graph, to_json
    from predictors.onnx_graph import batch_is_dynamic, graph_kernels, runtime_fusion
    from predictors.profile_quality import range_warning
    from predictors.reference_graphs import reference_graph
    from predictors.roofline import BYTES_PER_ELEMENT
    from supernet.errors import ConfigError
    from supernet.files import atomic_write

    if (onnx_file is None) == (model is None):
        raise ConfigError("give exactly one of an ONNX file or --model NAME, e.g. `dynnas latency --model resnet50`.")
    if batch is not None and batch <= 0:
        raise ConfigError(f"--batch must be >= 1, but got {batch}.")
    profile, mode = parse_device(device)
    if power_mode is not None:
        profile.power_mode(power_mode)  # raises on an unknown mode, naming the known ones
        mode = power_mode
    prec = check_precision(profile, precision)
    fusion = fusion or runtime_fusion(profile.runtime)
    shape = _shape(input_shape)
    if model is not None:
        graph: Any = reference_graph(model, batch=batch or 1, weights="shape-only")
        source = f"reference:{model}"
    else:
        graph, source = onnx_file, str(onnx_file)
        if batch is None and shape is None and batch_is_dynamic(onnx_file):
            batch = 1
            typer.echo("note: the model's batch dimension is dynamic; costing batch 1 (pass --batch N for another).",
                       err=True)
    kernels = graph_kernels(graph, input_shape=shape, batch=batch if model is None else None,
                            bytes_per_element=BYTES_PER_ELEMENT[prec], fusion=fusion)
    lat = predict_graph(kernels, profile, precision=prec, power_mode=mode)
    warning = range_warning(profile, sum(k.macs for k in kernels) / _batch_of(kernels))
    if warning:
        typer.echo(warning, err=True)
    doc = to_json(lat, model=source, device=profile.name, fusion=fusion)
    if out is not None:
        text = json.dumps(doc, indent=1)
        atomic_write(out, lambda p: p.write_text(text + "\n"))
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    _print_table(doc)


def _batch_of(kernels: list[Any]) -> int:
    """The batch the kernels run at (their first output dimension; 1 for an empty list)."""
    return max(1, int(kernels[0].out_shape[0])) if kernels and kernels[0].out_shape else 1


def _print_table(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{doc['model']} on {doc['device']} ({doc['precision']}, {doc['power_mode']}, "
                        f"fusion {doc['fusion']})")
    for col in ("kernel", "op", "output", "GFLOP", "MB", "bound", "µs"):
        table.add_column(col, justify="right" if col in ("GFLOP", "MB", "µs") else "left")
    for k in doc["kernels"]:
        name = f"{k['branch']}:{k['name']}" if k["branch"] else k["name"]
        table.add_row(name, k["op"], "x".join(map(str, k["out_shape"])), f"{k['flops'] / 1e9:.3f}",
                      f"{k['bytes'] / 1e6:.2f}", k["bound"], f"{k['us']:.1f}")
    table.add_section()
    table.add_row("total", f"{len(doc['kernels'])} kernels", "", f"{doc['total_flops'] / 1e9:.2f}",
                  f"{doc['total_bytes'] / 1e6:.1f}", "", f"{doc['total_ms'] * 1e3:.1f}")
    note = "" if doc["calibrated"] else " (uncalibrated: roofline priors, the profile has no calibration points)"
    table.caption = f"predicted {doc['total_ms']:.3f} ms{note}"
    Console().print(table)
