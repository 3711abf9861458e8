"""Shared bits of the benchmark scripts: results files, versions, timing."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> dict[str, Any]:
    import numpy
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def save(name: str, result: dict[str, Any], command: str) -> Path:
    """Write ``benchmarks/results/<name>.json`` atomically and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "command": command, "environment": environment(), **result}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    print(json.dumps(result, indent=2, sort_keys=True))
    print(f"saved {path}")
    return path
