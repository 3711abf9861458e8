"""Facts about the machine ``dynnas profile`` runs on: CPU (or GPU) model, clock, memory, versions and power.

Each fact is read from ``/proc``, ``/sys``, ``nvidia-smi`` or the Python runtime, and comes with where it
was read; package power comes from the RAPL energy counter where one is readable.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort

from hw_profiles.timing import thread_pool

if TYPE_CHECKING:
    from hw_profiles.measured import ProfileSettings


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _nvidia_smi(query: str) -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0].strip() if out else None


def machine_info(settings: ProfileSettings) -> dict[str, Any]:
    """CPU (or GPU) model, clock, memory and versions, each with where it was read."""
    cpuinfo = _read("/proc/cpuinfo")
    cpu = ""
    for key in ("model name", "Hardware", "Model"):
        for line in cpuinfo.splitlines():
            if line.split(":", 1)[0].strip() == key and ":" in line:
                cpu = line.split(":", 1)[1].strip()
                break
        if cpu:
            break
    cpu_src = "/proc/cpuinfo" if cpu else "platform.processor()"
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    clock, clock_src = None, ""
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").strip()
    if khz.isdigit():
        clock, clock_src = int(khz) / 1e3, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq (maximum clock)"
    else:
        mhz = [float(line.split(":", 1)[1]) for line in cpuinfo.splitlines() if line.startswith("cpu MHz")]
        if mhz:
            clock, clock_src = max(mhz), "/proc/cpuinfo 'cpu MHz' (the highest core's clock while profiling)"
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), None)
    if mem_kb is not None:
        memory_bytes, mem_src = mem_kb * 1024.0, f"/proc/meminfo MemTotal {mem_kb} kB"
    else:
        memory_bytes = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        mem_src = "os.sysconf SC_PAGE_SIZE * SC_PHYS_PAGES"
    info: dict[str, Any] = {
        "cpu": cpu, "cpu_source": cpu_src, "cpu_clock_mhz": clock, "cpu_clock_source": clock_src,
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "memory_bytes": memory_bytes,
        "memory_source": mem_src, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
        "numpy": np.__version__, "provider": settings.providers[0], "threads": settings.threads,
        "thread_pool": thread_pool(settings.threads),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if settings.provider != "cpu":
        gpu = _nvidia_smi("name,memory.total,clocks.max.sm,power.limit")
        parts = [s.strip() for s in gpu.split(",")] if gpu else []
        info["gpu"] = parts[0] if parts else "GPU (nvidia-smi not found)"
        info["gpu_memory_mib"] = _float(parts[1]) if len(parts) > 1 else None
        info["gpu_clock_mhz"] = _float(parts[2]) if len(parts) > 2 else None
        info["gpu_power_limit_w"] = _float(parts[3]) if len(parts) > 3 else None
    return info


def _float(s: str) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) and v > 0 else None


_RAPL = Path("/sys/class/powercap/intel-rapl:0")


def _rapl_energy_uj() -> int | None:
    text = _read(str(_RAPL / "energy_uj")).strip()
    return int(text) if text.isdigit() else None


def _rapl_power(start_uj: int | None, t0: float) -> float | None:
    """Average package power (W) since ``start_uj`` from the RAPL counter, or None where none is readable."""
    end = _rapl_energy_uj()
    dt = time.perf_counter() - t0
    if start_uj is None or end is None or dt <= 0:
        return None
    delta = end - start_uj
    if delta < 0:  # the counter wrapped
        wrap = _read(str(_RAPL / "max_energy_range_uj")).strip()
        delta += int(wrap) if wrap.isdigit() else 0
    return delta * 1e-6 / dt if delta > 0 else None
