"""Reference-model latency through the ONNX-graph path vs published measurements, per device.

For every shipped profile that is not ``measured`` and every reference model of
``hw_profiles.REFERENCE_MODELS``, the batch-1 latency at the profile's default precision and power
mode is predicted the way ``dynnas latency --model NAME`` does it: ``reference_graph`` →
``graph_kernels`` with the fusion rules of the profile's runtime → ``predict_graph`` with the
roofline fitted on the profile's calibration points (fitted on the same graph kernels).

Then every published row is predicted at its own precision, batch and power mode:
``hw_profiles/published_latencies.csv`` (CSV device names mapped to profiles, ``DEVICE_ALIASES``)
plus the profiles' calibration points that have no CSV row. Errors are ``100 * (pred / pub - 1)``:

* ``in_sample_pct``: the roofline fitted on all the profile's points (what the tool ships);
* ``loo_pct``: for a row that is one of the profile's calibration points, the roofline refitted
  without that point (``predictors.profile_quality.fit_params``) - the honest figure;
* ``lco_pct`` (leave-config-out): refitted without every point of the same model, resolution,
  batch and precision (the profiles hold near-duplicate points from two MLPerf rounds, which
  leave-one-out keeps in the fit).

Rows that are not calibration points are out of sample: their three errors are the same figure.
The summary counts, per device and overall, the rows within +-25 % (issue 8 asks >= 80 %) and the
median |error|, with the honest error (LOO for calibration rows). Rows that cannot be predicted
soundly are listed with the reason (no profile for the device, a precision without a cited peak,
a throughput figure that is not a batch-1 single-stream one, ...).

Run from the repository root (seconds)::

    .venv/bin/python benchmarks/reference_latency.py
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import save  # noqa: E402

from hw_profiles import REFERENCE_MODELS, DeviceProfile, list_profiles, load_profile  # noqa: E402
from predictors.graph_latency import predict_graph  # noqa: E402
from predictors.onnx_graph import runtime_fusion  # noqa: E402
from predictors.profile_quality import fit_params  # noqa: E402
from predictors.reference_graphs import reference_kernels  # noqa: E402
from predictors.roofline import BYTES_PER_ELEMENT, RooflineParams  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CSV_PATH = ROOT / "hw_profiles" / "published_latencies.csv"
TOLERANCE_PCT = 25.0  # issue 8: >= 80 % of published rows within +-25 %
TARGET_FRACTION = 0.8
# Issue 27: "small networks" are the MobileNet class and below (MobileNet-v1 1.0 at 224x224 is 569 M MACs), the
# regime of the supernets' subnets, where dispatch and synchronisation are most of the time.
SMALL_MACS = 600e6

# CSV device name (the part before " (") -> shipped profile.
DEVICE_ALIASES: Mapping[str, str] = {
    "jetson-agx-orin-64gb": "jetson-orin",
    "jetson-agx-orin": "jetson-orin",
    "jetson-orin-nx-16gb": "jetson-orin-nx",
    "nvidia-a100-sxm-80gb": "nvidia-a100",
    "raspberry-pi-4": "raspberry-pi-4",
    "raspberry-pi-5": "raspberry-pi-5",
    "jetson-orin-nano-8gb": "jetson-orin-nano",
    "jetson-orin-nano-8gb-super": "jetson-orin-nano-super",
    "coral-edgetpu": "coral-edgetpu",
    "snapdragon-8-gen-2": "snapdragon-8-gen-2",
    "xeon-platinum-8481c": "xeon-8481c",
}
# CSV model name (the part before " (") -> reference model.
MODEL_ALIASES: Mapping[str, str] = {
    "resnet50-v1.5": "resnet50",
    "ssd-mobilenet-v1": "ssd_mobilenet_v1",
    "ssd-mobilenet-v1-coco": "ssd_mobilenet_v1",
    "mobilenet-v1-1.0-224": "mobilenet_v1",
    "mobilenet-v1-1.0-160": "mobilenet_v1",  # the row's `input` column carries the resolution
    "mobilenet-v1-1.0-192": "mobilenet_v1",
    "mobilenet-v2-1.0-224": "mobilenet_v2",
    "mobilenet-v3-large-224-1.0": "mobilenet_v3_large",
    "efficientnet-lite0": "efficientnet_lite0",
    "mobilenet-v1-1.0": "mobilenet_v1",  # width 1.0 (the resolution is in the `input` column)
    "mobilenet-v2-1.0": "mobilenet_v2",
    "mobilenet-v3-large-1.0": "mobilenet_v3_large",
    "shufflenet-v2-x1.0": "shufflenet_v2",
}
# uint8 and int8 kernels move the same bytes and use the same peak (if the device cites one).
PRECISION_ALIASES: Mapping[str, str] = {"uint8": "int8"}
LATENCY_UNITS: Mapping[str, float] = {"ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3}  # -> ms
THROUGHPUT_UNITS = ("samples/s", "sample/s", "qps", "fps", "img/s", "images/s", "inferences/s")
MATCH_TOLERANCE = 0.005  # a CSV value within 0.5 % of a calibration point's (rounded) value is that point


def _base(text: str) -> str:
    return text.split(" (", 1)[0].strip().lower()


def _single_stream(scenario: str) -> bool:
    return "singlestream" in re.sub(r"[^a-z]", "", scenario.lower())


def fusion_of(profile: DeviceProfile) -> str:
    """The fusion rules of the profile's runtime (``profile_runtimes`` in predictors/fusion_rules.yaml)."""
    return runtime_fusion(profile.runtime)


def read_csv(path: Path = CSV_PATH) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _to_ms(row: Mapping[str, str], batch: int) -> tuple[float | None, str]:
    """The row's latency in ms and how it was read, or ``None`` and why not."""
    unit = row["unit"].strip()
    value = float(row["value"])
    if unit in LATENCY_UNITS:
        return value * LATENCY_UNITS[unit], "" if unit == "ms" else f"converted from {unit}"
    if unit.lower() in THROUGHPUT_UNITS:
        if batch == 1 and _single_stream(row["scenario"]):
            return 1e3 / value, f"batch-1 single-stream throughput {value} {unit} read as 1000 / value ms"
        return None, (f"throughput ({unit}) at batch {batch}, scenario {row['scenario']!r}: not a per-query "
                      "latency (only batch-1 single-stream throughput converts)")
    return None, f"unknown unit {unit!r}"


def _clock_mode(profile: DeviceProfile, device_text: str) -> str | None:
    """The power mode whose core clock the CSV device text names (e.g. '1.5 GHz'), if exactly one."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*GHz", device_text)
    if not m:
        return None
    mhz = float(m.group(1)) * 1e3
    hits = [pm.name for pm in profile.power_modes
            if pm.gpu_clock_mhz is not None and abs(pm.gpu_clock_mhz.value - mhz) < 1.0]
    return hits[0] if len(hits) == 1 else None


def _match_calibration(profile: DeviceProfile, model: str, resolution: int, batch: int, precision: str,
                       ms: float) -> int | None:
    """Index of the calibration point this row is (same config, value within MATCH_TOLERANCE), if any."""
    best, best_rel = None, MATCH_TOLERANCE
    for i, pt in enumerate(profile.calibration):
        if (pt.model, pt.resolution, pt.batch, pt.precision) != (model, resolution, batch, precision):
            continue
        rel = abs(ms / pt.latency_ms.value - 1)
        if rel <= best_rel:
            best, best_rel = i, rel
    return best


def build_rows(csv_rows: Iterable[Mapping[str, str]],
               profiles: Mapping[str, DeviceProfile]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Published rows to predict and the rows skipped with their reason.

    ``profiles``: the non-measured profiles by name. CSV rows come first; then every calibration
    point no CSV row matched, as a row of origin ``profile-calibration``.
    """
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    matched: set[tuple[str, int]] = set()

    def skip(row: Mapping[str, str], reason: str) -> None:
        skipped.append({"id": row["id"], "device": row["device"], "model": row["model"], "reason": reason})

    for row in csv_rows:
        device = DEVICE_ALIASES.get(_base(row["device"]))
        if device is None:
            skip(row, f"no shipped profile for device {_base(row['device'])!r}")
            continue
        if device not in profiles:
            skip(row, f"profile {device!r} is measured or not shipped")
            continue
        profile = profiles[device]
        base_model = _base(row["model"])
        model = MODEL_ALIASES.get(base_model, base_model.replace("-", "_"))
        if model not in REFERENCE_MODELS:
            skip(row, f"model {row['model']!r} is not a reference model")
            continue
        if not row["batch"].strip().isdigit():
            skip(row, f"batch not stated ({row['batch']!r}): a figure of unknown batch is not a per-query latency")
            continue
        batch, resolution = int(row["batch"]), int(row["input"])
        precision = PRECISION_ALIASES.get(row["precision"].strip().lower(), row["precision"].strip().lower())
        if precision not in profile.peak_compute or precision not in BYTES_PER_ELEMENT:
            skip(row, f"profile {device!r} cites no {precision} peak (has {', '.join(sorted(profile.peak_compute))})")
            continue
        ms, how = _to_ms(row, batch)
        if ms is None:
            skip(row, how)
            continue
        cal = _match_calibration(profile, model, resolution, batch, precision, ms)
        if cal is not None:
            mode, mode_from = profile.calibration[cal].power_mode, "calibration point"
            matched.add((device, cal))
        elif (clock := _clock_mode(profile, row["device"])) is not None:
            mode, mode_from = clock, "core clock in the device name"
        else:
            mode, mode_from = profile.default_power_mode, "profile default (the row names no mode)"
        rows.append({"id": row["id"], "origin": "csv", "device": device, "csv_device": row["device"],
                     "model": model, "resolution": resolution, "batch": batch, "precision": precision,
                     "power_mode": mode, "power_mode_from": mode_from, "published_ms": ms, "unit_note": how,
                     "scenario": row["scenario"], "runtime": row["runtime"], "quality": row["quality"],
                     "source": row["source"], "calibration_index": cal})
    for device, profile in profiles.items():
        for i, pt in enumerate(profile.calibration):
            if (device, i) in matched:
                continue
            rows.append({"id": f"{device}-cal{i}", "origin": "profile-calibration", "device": device,
                         "csv_device": None, "model": pt.model, "resolution": pt.resolution, "batch": pt.batch,
                         "precision": pt.precision, "power_mode": pt.power_mode,
                         "power_mode_from": "calibration point", "published_ms": pt.latency_ms.value,
                         "unit_note": "", "scenario": pt.statistic, "runtime": pt.runtime,
                         "quality": "profile calibration (not in published_latencies.csv)", "source": pt.source,
                         "calibration_index": i})
    return rows, skipped


# ---- predictions ------------------------------------------------------------------------------


def _graph_ms(profile: DeviceProfile, model: str, resolution: int, batch: int, precision: str, mode: str,
              params: RooflineParams) -> tuple[float, int]:
    ks = reference_kernels(model, resolution, BYTES_PER_ELEMENT[precision], batch=batch, fusion=fusion_of(profile))
    lat = predict_graph(ks, profile, precision=precision, power_mode=mode, params=(params, True))
    return lat.total_ms, len(ks)


def _pct(pred: float, pub: float) -> float:
    return 100.0 * (pred / pub - 1.0)


class Fits:
    """Full, leave-one-out and leave-config-out roofline fits of one profile, cached."""

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        self.points = tuple(profile.calibration)
        self.full = fit_params(profile, self.points)
        self._cache: dict[tuple[int, ...], RooflineParams] = {}

    def without(self, drop: Sequence[int]) -> RooflineParams:
        key = tuple(sorted(drop))
        if key not in self._cache:
            kept = tuple(p for i, p in enumerate(self.points) if i not in key)
            self._cache[key] = fit_params(self.profile, kept)
        return self._cache[key]

    def same_config(self, i: int) -> list[int]:
        c = self.points[i]
        return [j for j, p in enumerate(self.points)
                if (p.model, p.resolution, p.batch, p.precision) == (c.model, c.resolution, c.batch, c.precision)]


def predict_rows(rows: list[dict[str, Any]], fits: Mapping[str, Fits]) -> None:
    """Add predictions and errors to each row (in place)."""
    for r in rows:
        f = fits[r["device"]]
        cfg = (r["model"], r["resolution"], r["batch"], r["precision"], r["power_mode"])
        pred, n = _graph_ms(f.profile, *cfg, f.full)
        macs = sum(k.macs for k in reference_kernels(r["model"], r["resolution"], 4, batch=1))
        r.update(fusion=fusion_of(f.profile), n_kernels=n, predicted_ms=pred, macs_per_image=macs,
                 small=macs < SMALL_MACS,
                 in_sample_pct=_pct(pred, r["published_ms"]))
        i = r["calibration_index"]
        if i is None:
            r.update(loo_predicted_ms=pred, loo_pct=r["in_sample_pct"], lco_predicted_ms=pred,
                     lco_pct=r["in_sample_pct"], lco_dropped=0, out_of_sample=True)
            continue
        loo, _ = _graph_ms(f.profile, *cfg, f.without([i]))
        same = f.same_config(i)
        lco, _ = _graph_ms(f.profile, *cfg, f.without(same))
        r.update(loo_predicted_ms=loo, loo_pct=_pct(loo, r["published_ms"]), lco_predicted_ms=lco,
                 lco_pct=_pct(lco, r["published_ms"]), lco_dropped=len(same), out_of_sample=False)


def _stats(errors: Sequence[float]) -> dict[str, Any]:
    if not errors:
        return {"n": 0, "within_25_pct": None, "median_abs_pct": None, "max_abs_pct": None}
    a = [abs(e) for e in errors]
    return {"n": len(a), "within_25_pct": sum(e <= TOLERANCE_PCT for e in a) / len(a),
            "median_abs_pct": statistics.median(a), "max_abs_pct": max(a)}


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Overall, CSV rows only, and per device: within +-25 % and median |error| per error kind (LOO: headline)."""
    kinds = {"loo": "loo_pct", "in_sample": "in_sample_pct", "leave_config_out": "lco_pct"}
    groups: dict[str, list[dict[str, Any]]] = {"all": list(rows), "csv-only": [r for r in rows if r["origin"] == "csv"],
                                               "small": [r for r in rows if r["small"]]}
    for r in rows:
        groups.setdefault(r["device"], []).append(r)
    out = {}
    for name, rs in groups.items():
        out[name] = {kind: _stats([r[key] for r in rs]) for kind, key in kinds.items()}
        out[name]["out_of_sample_rows"] = sum(r["out_of_sample"] for r in rs)
        out[name]["csv_rows"] = sum(r["origin"] == "csv" for r in rs)
    out["all"]["meets_target"] = (out["all"]["loo"]["within_25_pct"] or 0.0) >= TARGET_FRACTION
    out["small"]["meets_target"] = (out["small"]["loo"]["within_25_pct"] or 0.0) >= TARGET_FRACTION
    for name in list(out):  # small rows per device too
        if name not in ("all", "csv-only", "small"):
            rs = [r for r in groups[name] if r["small"]]
            out[name]["small_loo"] = _stats([r["loo_pct"] for r in rs])
    return out


def matrix(profiles: Mapping[str, DeviceProfile], fits: Mapping[str, Fits]) -> list[dict[str, Any]]:
    """Batch-1 latency of every reference model on every profile, default precision and power mode."""
    out = []
    for name, profile in profiles.items():
        prec, mode = profile.default_precision, profile.default_power_mode
        for model, ref in REFERENCE_MODELS.items():
            ks = reference_kernels(model, ref.resolution, BYTES_PER_ELEMENT[prec], fusion=fusion_of(profile))
            lat = predict_graph(ks, profile, precision=prec, power_mode=mode, params=(fits[name].full, True))
            bounds: dict[str, float] = {}
            for t in lat.kernels:
                bounds[t.bound] = bounds.get(t.bound, 0.0) + t.us / 1e3
            out.append({"device": name, "model": model, "resolution": ref.resolution, "batch": 1, "precision": prec,
                        "power_mode": mode, "fusion": fusion_of(profile), "predicted_ms": lat.total_ms,
                        "n_kernels": len(ks), "ms_by_bound": bounds,
                        "gmac": sum(k.macs for k in ks) / 1e9})
    return out


# ---- output -----------------------------------------------------------------------------------


def _f(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def print_tables(mat: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], skipped: Sequence[dict[str, str]],
                 summary: Mapping[str, Any]) -> None:
    devices = list(dict.fromkeys(m["device"] for m in mat))
    models = list(REFERENCE_MODELS)
    print("Predicted batch-1 latency (ms), default precision and power mode, ONNX-graph path:")
    width = {d: max(16, len(d) + 1) for d in devices}
    head = f"{'model':<19}" + "".join(f"{d:>{width[d]}}" for d in devices)
    print(head)
    sub = f"{'':<19}" + "".join(
        f"{next(m['precision'] + ' ' + m['power_mode'] for m in mat if m['device'] == d):>{width[d]}}" for d in devices)
    print(sub)
    print("-" * len(head))
    for model in models:
        cells = {m["device"]: m["predicted_ms"] for m in mat if m["model"] == model}
        print(f"{model:<19}" + "".join(f"{_f(cells[d], '.3f'):>{width[d]}}" for d in devices))
    print()
    print("Published rows (err = pred/pub - 1; LOO / LCO refit without the point / its config; "
          "'=' out of sample):")
    head = (f"{'id':<27} {'device':<22} {'model':<18} {'b':>2} {'prec':<5} {'mode':<10} {'pub ms':>9} "
            f"{'pred ms':>9} {'in %':>7} {'LOO %':>7} {'LCO %':>7}  quality")
    print(head)
    print("-" * len(head))
    for r in rows:
        oos = r["out_of_sample"]
        print(f"{r['id']:<27} {r['device']:<22} {r['model']:<18} {r['batch']:>2} {r['precision']:<5} "
              f"{r['power_mode']:<10} {r['published_ms']:>9.3f} {r['predicted_ms']:>9.3f} {r['in_sample_pct']:>+7.1f} "
              f"{'=' if oos else format(r['loo_pct'], '+.1f'):>7} {'=' if oos else format(r['lco_pct'], '+.1f'):>7}"
              f"  {r['quality']}")
    print()
    print(f"Skipped rows ({len(skipped)}):")
    for s in skipped:
        print(f"  {s['id']:<27} {s['reason']}")
    print()
    print(f"Summary (|err| <= {TOLERANCE_PCT:.0f} %, target >= {TARGET_FRACTION:.0%}; headline = LOO):")
    head = (f"{'device':<22} {'n':>3} {'oos':>3} {'LOO in25':>8} {'LOO med':>8} {'LOO max':>8} "
            f"{'LCO in25':>8} {'LCO med':>8} {'fit in25':>8} {'fit med':>8}")
    print(head)
    print("-" * len(head))
    for name, s in summary.items():
        loo, lco, fit = s["loo"], s["leave_config_out"], s["in_sample"]
        print(f"{name:<22} {loo['n']:>3} {s['out_of_sample_rows']:>3} {_f(_x100(loo['within_25_pct']), '.0f'):>7}% "
              f"{_f(loo['median_abs_pct']):>8} {_f(loo['max_abs_pct']):>8} {_f(_x100(lco['within_25_pct']), '.0f'):>7}% "
              f"{_f(lco['median_abs_pct']):>8} {_f(_x100(fit['within_25_pct']), '.0f'):>7}% "
              f"{_f(fit['median_abs_pct']):>8}")


def _x100(v: float | None) -> float | None:
    return None if v is None else 100 * v


def run(csv_path: Path = CSV_PATH) -> dict[str, Any]:
    t0 = time.perf_counter()
    profiles = {n: p for n in list_profiles() if not (p := load_profile(n)).measured}
    fits = {n: Fits(p) for n, p in profiles.items()}
    rows, skipped = build_rows(read_csv(csv_path), profiles)
    predict_rows(rows, fits)
    mat = matrix(profiles, fits)
    summary = summarise(rows)
    print_tables(mat, rows, skipped, summary)
    return {
        "tolerance_pct": TOLERANCE_PCT, "target_fraction": TARGET_FRACTION,
        "csv": str(csv_path.relative_to(ROOT)) if csv_path.is_relative_to(ROOT) else str(csv_path),
        "device_aliases": dict(DEVICE_ALIASES),
        "fusion_of_device": {n: fusion_of(p) for n, p in profiles.items()},
        "small_macs": SMALL_MACS,
        "rooflines": {n: {"eta_c": f.full.eta_c, "eta_m": f.full.eta_m, "overhead_us": f.full.overhead_s * 1e6,
                          "invoke_us": f.full.invoke_s * 1e6, "n_points": len(f.points)} for n, f in fits.items()},
        "summary": summary, "rows": rows, "skipped": skipped, "matrix": mat,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=CSV_PATH, help="published latencies (default: the shipped CSV)")
    parser.add_argument("--name", default="reference_latency", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    result = run(args.csv.resolve())
    save(args.name, result, " ".join(["benchmarks/reference_latency.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
