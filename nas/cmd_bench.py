"""`dynnas bench`: measure exported subnets on real images on this machine, against their predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nas.app import SeedOpt, app
from nas.errors import guarded


def _batches(text: str) -> list[int]:
    from supernet.errors import ConfigError

    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        out = []
    if not out or any(b < 1 for b in out):
        raise ConfigError(f"--batch takes batch sizes >= 1 separated by commas, e.g. 1,32, but got '{text}'.")
    return sorted(set(out))


@app.command(epilog="Examples:\n\n    dynnas bench runs/demo\n\n"
             "    dynnas bench runs/host-run --images 300 --batch 1,32\n\n"
             "    dynnas bench runs/host-run/subnets/3f2a9c1e --dataset cifar10:data/cifar10\n\n"
             "    dynnas bench runs/host-run --engine openvino --threads 2")
@guarded
def bench(
    path: Annotated[Path, typer.Argument(help="A run folder, a fleet folder, or one exported subnet's folder.",
                                         show_default=False)],
    images: Annotated[int, typer.Option(help="Test images to run (the first N of the test split).")] = 1000,
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated: 1 is timed image by image, larger "
                                       "ones as throughput with batch compaction.")] = "1,32",
    dataset: Annotated[str | None, typer.Option(help="Dataset spec (default: the run's, else the sample shipped "
                                                "beside the supernet), e.g. cifar10:PATH.")] = None,
    engine: Annotated[str, typer.Option(help="onnxruntime or openvino (f32 forced).")] = "onnxruntime",
    threads: Annotated[int, typer.Option(help="Intra-op threads of every session.")] = 1,
    out: Annotated[Path | None, typer.Option(help="Where to write bench.json (default: PATH/bench.json).")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Run every export under PATH through the segment runtime on real images: expected latency at batch 1 image
    by image (interleaved with the same subnet with its exits off), throughput at larger batches, accuracy and the
    exit histogram, against what the export predicted. Prints a table and writes bench.json. This is how you check
    dynnas's predictions on your own device: copy the exports and run it there."""
    from rich.table import Table

    from nas.bench import bench_document, bench_exports, find_exports, load_images
    from nas.progress import console
    from reports.run_folder import BENCH_FILE
    from supernet.errors import ConfigError
    from supernet.files import ensure_writable, write_json
    from supernet.runtime import ENGINES

    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, but got '{engine}'.")
    if engine == "openvino":
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise ConfigError("--engine openvino needs OpenVINO: pip install openvino") from None
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, but got {threads}.")
    sizes = _batches(batch)
    exports = find_exports(path)
    target = out or (path / BENCH_FILE if path.is_dir() else Path(BENCH_FILE))
    ensure_writable(target.parent, keep=False)
    x, y, note = load_images(exports, dataset, images)
    rows = bench_exports(exports, x, y, batches=sizes, engine=engine, threads=threads,
                         progress=lambda i, n, arch: console.print(f"[{i + 1}/{n}] {arch}"))
    doc = bench_document(rows, dataset=note, engine=engine, threads=threads, batches=sizes, seed=seed)
    write_json(target, doc)
    table = Table(title=f"{len(rows)} exports on {note}, {engine}, {threads} thread(s)")
    for col in ("arch", "acc", "Δ pp", "exits", "b1 ms", "static ms", "speed-up", "pred. ms†", "Δ pred",
                *(f"b{b} gain" for b in sizes if b > 1)):
        table.add_column(col)
    for r in rows:
        b1, pred = r["batch1"], r["predicted"]
        anchored = pred.get("anchored_expected_ms")
        table.add_row(
            r["arch"], f"{r['accuracy']:.4f}", f"{r['accuracy_drop_pp']:.2f}" if "accuracy_drop_pp" in r else "–",
            "/".join(f"{v:.2f}" for v in r["exit_rates"]), f"{b1['expected_ms']:.4g}",
            f"{b1['static_ms']:.4g}" if "static_ms" in b1 else "–",
            f"{b1['speedup']:.2f}×" if "speedup" in b1 else "–",
            f"{anchored:.4g}" if anchored else "–",
            f"{100 * (anchored / b1['expected_ms'] - 1):+.1f} %" if anchored else "–",
            *(f"{t['gain']:.2f}×" if "gain" in t else f"{t['images_per_s']:.0f}/s" for t in r["throughput"]))
    console.print(table)
    console.print(f"† the host prediction scaled by this machine's speed on the static subnet "
                  f"(measured static / predicted static); wrote {target}")
