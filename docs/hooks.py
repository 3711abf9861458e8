"""mkdocs hook: serve the figures of ``benchmarks/results/`` as ``img/<name>`` without copying them into docs/.

The PNGs have one home (the benchmark scripts write them there); the docs link to ``img/<name>``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

IMAGES = ("report_demo.png", "batch_fronts.png")


def on_files(files: Files, config) -> Files:
    root = Path(config.config_file_path).resolve().parent
    for name in IMAGES:
        files.append(File.generated(config, f"img/{name}", abs_src_path=str(root / "benchmarks" / "results" / name)))
    return files
