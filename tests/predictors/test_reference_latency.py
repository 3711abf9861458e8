"""benchmarks/reference_latency.py: which published rows it predicts, at which mode, and which it skips."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hw_profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("reference_latency", ROOT / "benchmarks" / "reference_latency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def profiles():
    return {n: load_profile(n) for n in ("jetson-orin", "nvidia-a100", "raspberry-pi-4")}


def _row(id_, device, model, batch, precision, scenario, value, unit, resolution=224):
    return {"id": id_, "device": device, "model": model, "input": str(resolution), "batch": str(batch),
            "precision": precision, "runtime": "rt", "scenario": scenario, "value": str(value), "unit": unit,
            "quality": "verified", "source": "https://example.org", "notes": ""}


def test_rows_map_devices_convert_units_and_skip_throughput(bench, profiles):
    csv_rows = [
        _row("agx", "jetson-agx-orin-64gb (dev kit)", "resnet50-v1.5", 1, "int8", "SingleStream median", 0.636, "ms"),
        _row("tp-ss", "nvidia-a100-sxm-80gb", "resnet50-v1.5", 1, "int8", "SingleStream", 2000, "samples/s"),
        _row("tp-ms", "nvidia-a100-sxm-80gb", "resnet50-v1.5", 8, "int8", "MultiStream", 9000, "samples/s"),
        _row("tp-off", "nvidia-a100-sxm-80gb", "resnet50-v1.5", 1, "int8", "Offline", 30000, "samples/s"),
        _row("pi-clock", "raspberry-pi-4 (4x A72 1.5 GHz)", "mobilenet-v1-1.0-224", 1, "fp32", "SingleStream", 68, "ms"),
        _row("pi-u8", "raspberry-pi-4 (4x A72 1.5 GHz)", "mobilenet-v2-1.0-224 (quantized)", 1, "uint8", "SS", 24, "ms"),
        _row("pi-f16", "raspberry-pi-4 (4x A72 1.5 GHz)", "mobilenet-v2-1.0-224", 1, "fp16", "SS", 30, "ms"),
        _row("pi-w", "raspberry-pi-4 (4x A72 1.5 GHz)", "mobilenet-v1-0.25", 1, "fp32", "SS", 5, "ms", 128),
        _row("coral", "coral-edgetpu (USB)", "mobilenet-v2-1.0-224", 1, "int8", "mean", 2.3, "ms"),
    ]
    rows, skipped = bench.build_rows(csv_rows, profiles)
    csv_out = {r["id"]: r for r in rows if r["origin"] == "csv"}
    why = {s["id"]: s["reason"] for s in skipped}
    assert set(csv_out) == {"agx", "tp-ss", "pi-clock", "pi-u8", "pi-w"}
    assert set(why) == {"tp-ms", "tp-off", "pi-f16", "coral"}

    agx = csv_out["agx"]  # the AGX Orin's first calibration point: its mode comes from the point
    assert (agx["device"], agx["model"], agx["calibration_index"], agx["power_mode"]) == ("jetson-orin", "resnet50", 0, "MAXN")
    assert csv_out["tp-ss"]["published_ms"] == pytest.approx(0.5)  # 2000 samples/s at batch 1, single stream
    assert csv_out["tp-ss"]["calibration_index"] is None
    pi = csv_out["pi-clock"]
    assert (pi["model"], pi["power_mode"], pi["power_mode_from"]) == ("mobilenet_v1", "1500MHz", "core clock in the device name")
    assert "throughput" in why["tp-ms"] and "throughput" in why["tp-off"]
    assert "fp16" in why["pi-f16"] and "coral-edgetpu" in why["coral"]
    assert csv_out["pi-u8"]["precision"] == "int8"  # uint8 runs on the int8 peak
    assert (csv_out["pi-w"]["model"], csv_out["pi-w"]["resolution"]) == ("mobilenet_v1_0.25", 128)  # a width variant
    # the calibration points no CSV row matched are added, the matched one is not repeated
    extra = [r for r in rows if r["origin"] == "profile-calibration"]
    n_points = sum(len(p.calibration) for p in profiles.values())
    assert len(extra) == n_points - 1
    assert "jetson-orin-cal0" not in {r["id"] for r in extra}


def test_shipped_csv_rows_used_by_a_profile_are_its_calibration_points(bench):
    profiles = {n: load_profile(n) for n in ("jetson-orin", "jetson-orin-nx", "nvidia-a100", "raspberry-pi-4")}
    csv_rows = bench.read_csv()
    rows, skipped = bench.build_rows(csv_rows, profiles)
    from_csv = {r["id"]: r for r in rows if r["origin"] == "csv"}
    assert len(from_csv) + len(skipped) == len(csv_rows)  # every row predicted or skipped with a reason
    for row in csv_rows:
        if "used in" in row["notes"]:
            assert from_csv[row["id"]]["calibration_index"] is not None, row["id"]
