"""The measured profile as a document and a file: the mapping with the schema of ``hw_profiles/*.yaml``,
its YAML text, and the atomic, loader-checked write.

Every number in the document names where it came from (``source``) and how it was derived
(``derived``), from the micro-benchmark fit, the reference models' timings and the machine's facts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hw_profiles.benches import COMPUTE_CLASSES, MEMORY_CLASSES
from hw_profiles.machine import _RAPL
from hw_profiles.schema import SCHEMA_VERSION, DeviceProfile
from hw_profiles.timing import NOISY_SPREAD, RUN_PERCENTILE

if TYPE_CHECKING:
    from hw_profiles.measured import MeasuredProfile, MicroFit, ProfileSettings, ReferenceResult

POWER_MODE = "measured"


# ---- the profile document -------------------------------------------------------------------------
def _sig(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant digits (a float, as the schema wants)."""
    return float(f"{x:.{digits}g}")


def profile_document(settings: ProfileSettings, machine: Mapping[str, Any], micro: MicroFit,
                     refs: Sequence[ReferenceResult], skipped: Mapping[str, str], reference_ms: float, spread: float,
                     seconds: float) -> dict[str, Any]:
    """The profile as a plain mapping with the schema of ``hw_profiles/*.yaml`` (validated by the caller)."""
    gpu = settings.provider != "cpu"
    where = machine.get("gpu") if gpu else machine["cpu"]
    measured_by = (f"measured by dynnas profile on {where}, onnxruntime {machine['onnxruntime']} "
                   f"({machine['provider']}), {_threads(settings.threads)}, {machine['date']}")
    mode = "quick" if settings.quick else "full"
    proto = settings.protocol
    timing = (f"{mode} run; every graph timed against an interleaved reference graph (two 3x3 convs, 32ch 28x28) in "
              f"{proto.blocks} blocks ({proto.model_blocks} over {proto.model_rounds} passes for the reference models), "
              f"p{RUN_PERCENTILE} of its runs / p{RUN_PERCENTILE} of the reference runs beside "
              f"them, x the reference's p{RUN_PERCENTILE} {reference_ms:.4f} ms over the run")
    best = micro.best

    def rate(c: str) -> str:
        if c not in best:
            return f"{c} -"
        b = best[c]
        return f"{c} {b['rate'] / 1e9:.4g} G{b['unit']} ({b['label']})"

    per_class = "; ".join(rate(c) for c in COMPUTE_CLASSES)
    per_mem = "; ".join(rate(c) for c in MEMORY_CLASSES)
    overheads = ", ".join(f"{c} {v:.3g}" for c, v in micro.overhead_us.items() if c != "if")
    peak = {"value": _sig(micro.peak_flops / 1e12), "unit": "TFLOP/s",
            "source": f"{measured_by}: {timing}",
            "derived": (f"peak_fp32 = max over op classes and sizes of FLOPs / (t_op - o_class) = {rate(micro.peak_class)}, "
                        f"where t_op = (t_graph - {micro.session_us:.3g} us session cost) / depth; "
                        f"best per class: {per_class}")}
    bandwidth = {"value": _sig(micro.bandwidth / 1e9), "unit": "GB/s", "source": f"{measured_by}: {timing}",
                 "derived": (f"bandwidth = median over {', '.join(micro.bandwidth_sizes)} of 12 B x n / (t_op - o_elementwise) "
                             f"(Add of two n-float tensors: read 2, write 1); best per memory-bound class (in cache "
                             f"where small): {per_mem}")}
    overhead = {"value": _sig(micro.kernel_overhead_us), "unit": "us", "source": f"{measured_by}: {timing}",
                "derived": (f"kernel_overhead = median over op classes of o_class = (t_graph - t_session) / depth of a "
                            f"chain of ops doing almost no work; o_class (us): {overheads}; t_session = "
                            f"{micro.session_us:.3g} us, the intercept of 1-element Add chains over their length")}
    op_rates = {}
    for key, r in sorted(micro.rates.items()):
        compute = r["unit"] == "FLOP/s"
        what = "FLOPs" if compute else "bytes"
        op_rates[key] = {"value": _sig(r["rate"] / (1e12 if compute else 1e9)), "unit": "TFLOP/s" if compute else "GB/s",
                         "source": f"{measured_by}: {timing}",
                         "derived": (f"rate_{key} = median of {what} / (t_op - o_class) over {len(r['labels'])} "
                                     f"sized benches: {'; '.join(r['labels'])}")}
    if gpu and machine.get("gpu_memory_mib"):
        memory = {"value": _sig(machine["gpu_memory_mib"] * 2**20 / 1e9), "unit": "GB",
                  "source": f"nvidia-smi memory.total {machine['gpu_memory_mib']:g} MiB",
                  "derived": "memory_size = MiB * 1048576 B / 1e9"}
    else:
        memory = {"value": _sig(machine["memory_bytes"] / 1e9), "unit": "GB", "source": machine["memory_source"],
                  "derived": "memory_size = bytes / 1e9" + (" (host memory: the GPU's was not readable)" if gpu else "")}
    mode_entry = _power_mode(settings, machine)
    points = []
    for r in refs:
        t = r.timing
        points.append({
            "model": r.model, "resolution": r.resolution, "batch": 1, "precision": "fp32",
            "latency_ms": {"value": _sig(r.ms, 5), "unit": "ms", "source": f"{measured_by}: {timing}",
                           "derived": (f"latency_ms = ratio {t.ratio:.5g} x reference {reference_ms:.5g} ms")},
            "statistic": f"p{RUN_PERCENTILE}",
            "runtime": f"onnxruntime-{machine['onnxruntime']}-{settings.provider}",
            "power_mode": POWER_MODE, "source": measured_by,
            "notes": (f"{t.blocks} blocks, {t.runs} timed runs; block ratio p10-p90 {t.ratio_p10:.4g}-{t.ratio_p90:.4g}; "
                      f"plain median {t.raw_median_ms:.4g} ms; seeded random weights (seed {settings.seed})"
                      + ("" if r.finite else "; WARNING: outputs were not finite")),
        })
    skipped_note = ("; not timed: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())) if skipped else ""
    if_note = f"; an If node with a 1-kernel branch costs {micro.overhead_us['if']:.3g} us" if "if" in micro.overhead_us else ""
    notes = (f"Made by `dynnas profile --provider {settings.provider} --threads {settings.threads}"
             f"{' --quick' if settings.quick else ''} --seed {settings.seed}` in {seconds:.0f} s ({mode} run), "
             f"every session on a {machine.get('thread_pool', 'single')} thread pool. "
             f"The machine's speed spread (p90/p10 of the reference's block medians) was {spread:.3g}"
             + (f" (over {NOISY_SPREAD}: the machine was busy; remeasure on an idle one). " if spread > NOISY_SPREAD
                else ". ") +
             f"Per-class best rates: {per_class}; {per_mem}. Per-kernel cost of tiny ops (us): {overheads}{if_note}. "
             f"A session run costs {micro.session_us:.3g} us on top of its kernels{skipped_note}. The latency "
             "predictors fit their roofline (efficiencies, overhead) to the calibration points of this file.")
    provider_list = ", ".join(repr(x) for x in settings.providers)
    deploy = (f"python -c \"import onnxruntime as ort; so = ort.SessionOptions(); so.intra_op_num_threads = "
              f"{settings.threads}; sess = ort.InferenceSession('{{onnx}}', so, providers=[{provider_list}]); "
              "print('inputs:', [i.name for i in sess.get_inputs()])\"")
    runtime = {"cpu": "onnxruntime-cpu", "cuda": "onnxruntime-cuda", "tensorrt": "onnxruntime-tensorrt"}
    return {
        "schema_version": SCHEMA_VERSION,
        "name": settings.name,
        "display_name": f"{where} ({_threads(settings.threads)}, onnxruntime {machine['provider']}, measured)",
        "kind": "gpu" if gpu else "cpu",
        "runtime": runtime[settings.provider],
        "default_precision": "fp32",
        "measured": True,
        "peak_compute": {"fp32": peak},
        "memory_bandwidth": bandwidth,
        "memory_size": memory,
        "power_modes": [mode_entry],
        "default_power_mode": POWER_MODE,
        "kernel_overhead": overhead,
        "calibration": points,
        "deploy": deploy,
        "notes": notes,
        "op_rates": op_rates,
    }


def _power_mode(settings: ProfileSettings, machine: Mapping[str, Any]) -> dict[str, Any]:
    gpu = settings.provider != "cpu"
    power = machine.get("power_w")
    if power:
        power_q = {"value": _sig(power, 3), "unit": "W",
                   "source": f"RAPL package energy counter ({_RAPL}/energy_uj) while the reference models ran",
                   "derived": "power_w = delta energy_uj * 1e-6 / delta seconds"}
    elif gpu and machine.get("gpu_power_limit_w"):
        power_q = {"value": _sig(machine["gpu_power_limit_w"], 3), "unit": "W",
                   "source": "nvidia-smi power.limit (the board's power limit, not a measured draw)"}
    else:  # no sensor: no figure (an energy objective then asks for one), never a placeholder
        power_q = None
    clock, clock_src = machine.get("cpu_clock_mhz"), machine.get("cpu_clock_source", "")
    if clock:
        cpu_clock = {"value": _sig(clock, 5), "unit": "MHz", "source": clock_src}
    else:
        cpu_clock = {"value": 1000.0, "unit": "MHz",
                     "source": ("NOT MEASURED: neither cpufreq nor /proc/cpuinfo gives a clock here; 1000 MHz is a "
                                "placeholder (with one power mode the clock only labels it: compute_scale is 1)")}
    engine = cpu_clock
    if gpu and machine.get("gpu_clock_mhz"):
        engine = {"value": _sig(machine["gpu_clock_mhz"], 5), "unit": "MHz", "source": "nvidia-smi clocks.max.sm"}
    units = {"value": float(settings.threads), "unit": "count",
             "source": f"--threads {settings.threads}: onnxruntime intra-op threads used for every timing"}
    mode = {"name": POWER_MODE, "power_w": power_q, "gpu_clock_mhz": engine, "cpu_clock_mhz": cpu_clock,
            "compute_units": units,
            "notes": "The machine as it ran dynnas profile; for kind cpu, gpu_clock_mhz is the core clock."}
    if power_q is None:
        del mode["power_w"]
        mode["notes"] += (" No power sensor was readable (no RAPL powercap counter, no nvidia-smi), so the mode "
                          "has no power_w: add a meter reading (value, unit W, source) for energy objectives.")
    return mode


class _PlainDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes a repeated value out again instead of as an ``&anchor``/``*alias``."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def profile_yaml(result: MeasuredProfile) -> str:
    """The profile file's text: a comment header, then the document as block YAML."""
    m, s = result.machine, result.settings
    head = [f"# Measured by `dynnas profile` on {m.get('gpu') or m['cpu']} ({m['machine']}, {m['cpu_count']} CPUs),",
            f"# onnxruntime {m['onnxruntime']} {m['provider']}, {_threads(s.threads)}, {m['date']}, "
            f"{'quick' if s.quick else 'full'} run of {result.seconds:.0f} s.",
            "# Every number below comes from this run (or names where it was read); see each source/derived."]
    body = yaml.dump(result.document, Dumper=_PlainDumper, sort_keys=False, width=110, allow_unicode=True,
                     default_flow_style=False)
    return "\n".join(head) + "\n" + body


def _write_atomic(path: Path, text: str, check: Callable[[Path], Any] | None = None) -> Any:
    """Write ``text`` to a temp file beside ``path``, run ``check`` on it (its result is returned), then
    ``os.replace`` it into place (umask permissions); on any failure nothing is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        out = check(Path(tmp)) if check is not None else None
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def write_profile(path: Path, result: MeasuredProfile) -> DeviceProfile:
    """Write the profile atomically (temp file beside ``path``, checked with the loader, then ``os.replace``)."""
    from hw_profiles.loader import load_profile

    return _write_atomic(Path(path), profile_yaml(result), load_profile)  # what a later `--device FILE` reads


def install_host(result: MeasuredProfile) -> tuple[Path, DeviceProfile]:
    """Write ``result`` as this machine's ``host`` profile (:func:`hw_profiles.installed.installed_host_path`)
    and, after it, the JSON naming this machine, both atomically; ``--device host`` reads it from then on."""
    import json
    from datetime import UTC, datetime

    from hw_profiles.installed import installed_host_path, machine_key, machine_path

    path = installed_host_path()
    profile = write_profile(path, result)
    meta = {"machine_key": machine_key(), "written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "profile": path.name, "command": "dynnas profile --install"}
    _write_atomic(machine_path(path), json.dumps(meta, indent=1))
    return path, profile
