"""The shipped device fleet: every profile predicts, cites and calibrates; `NAME:MODE` device specs."""

from __future__ import annotations

import copy
import csv
import math
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from hw_profiles import (
    REFERENCE_MODELS,
    MalformedProfileError,
    ProfileError,
    UnknownDeviceError,
    list_profiles,
    load_profile,
    parse_device,
)
from predictors.kernels import reference_kernels
from predictors.profile_quality import point_ms, prior_params
from predictors.roofline import BYTES_PER_ELEMENT, fit_roofline, network_seconds

SHIPPED = list_profiles()
PUBLISHED = [n for n in SHIPPED if not load_profile(n).measured]
# Profiles added with the fleet (issue 8); their calibration points must be traceable to a row of
# hw_profiles/published_latencies.csv.
FLEET = ["jetson-orin-nx", "nvidia-a100", "raspberry-pi-4"]
# A fitted roofline may miss a published point, but never by more than this factor either way.
SANE_FACTOR = 1.5
CSV_COLUMNS = ["id", "device", "model", "input", "batch", "precision", "runtime", "scenario", "value", "unit",
               "quality", "source", "notes"]


def _raw(name: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files("hw_profiles").joinpath(f"{name}.yaml").read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict[str, Any], name: str = "custom.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_the_fleet_ships() -> None:
    assert set(FLEET) <= set(SHIPPED)
    kinds = {load_profile(n).kind for n in SHIPPED}
    assert {"gpu", "cpu"} <= kinds


@pytest.mark.parametrize("name", SHIPPED)
def test_profile_loads_with_a_valid_default_mode(name: str) -> None:
    profile, mode = parse_device(name)
    assert profile == load_profile(name)
    assert mode == profile.default_power_mode
    assert profile.compute_scale(mode) > 0


def _params(name: str) -> Any:
    profile = load_profile(name)
    return fit_roofline(profile)[0] if profile.calibration else prior_params(profile)  # host: the priors


@pytest.mark.parametrize("model", sorted(REFERENCE_MODELS))
@pytest.mark.parametrize("name", SHIPPED)
def test_roofline_predicts_every_reference_model(name: str, model: str) -> None:
    profile, params = load_profile(name), _params(name)
    bandwidth = profile.memory_bandwidth.value * 1e9
    for precision in profile.peak_compute:
        kernels = reference_kernels(model, None, BYTES_PER_ELEMENT[precision])
        for mode in profile.power_modes:
            peak = profile.peak_ops_per_s(precision) * profile.compute_scale(mode.name)
            ms = 1e3 * network_seconds(kernels, peak, bandwidth, params)
            assert math.isfinite(ms) and ms > 0, (precision, mode.name, ms)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_slower_power_mode_is_never_predicted_faster(name: str) -> None:
    profile, params = load_profile(name), _params(name)
    kernels = reference_kernels("resnet50", None, BYTES_PER_ELEMENT[profile.default_precision])
    bandwidth = profile.memory_bandwidth.value * 1e9
    by_scale = sorted((profile.compute_scale(m.name), network_seconds(
        kernels, profile.peak_ops_per_s() * profile.compute_scale(m.name), bandwidth, params)) for m in profile.power_modes)
    times = [t for _, t in by_scale]
    assert times == sorted(times, reverse=True)
    assert by_scale[-1][0] == pytest.approx(1.0)


@pytest.mark.parametrize("name", PUBLISHED)
def test_fitted_roofline_is_within_a_sane_factor_of_each_published_point(name: str) -> None:
    profile = load_profile(name)
    params, rows = fit_roofline(profile)
    assert len(rows) == len(profile.calibration) >= 1
    for point, row in zip(profile.calibration, rows, strict=True):
        predicted = point_ms(profile, point, params)
        assert predicted == pytest.approx(row["predicted_ms"], rel=1e-9)
        ratio = predicted / point.latency_ms.value
        assert 1 / SANE_FACTOR < ratio < SANE_FACTOR, (name, point.model, point.batch, ratio)


@pytest.mark.parametrize("name", FLEET)
def test_fleet_calibration_points_are_recorded_in_the_repo_csv(name: str) -> None:
    rows = list(csv.DictReader(resources.files("hw_profiles").joinpath("published_latencies.csv")
                               .read_text(encoding="utf-8").splitlines()))
    for point in load_profile(name).calibration:
        match = [r for r in rows if r["source"] == point.source]
        assert len(match) == 1, (name, point.source)
        assert float(match[0]["value"]) == pytest.approx(point.latency_ms.value, rel=2e-3)
        assert int(match[0]["batch"]) == point.batch
        assert match[0]["quality"] == "verified"


def test_repo_csv_has_the_shared_columns_and_qualities() -> None:
    text = resources.files("hw_profiles").joinpath("published_latencies.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    assert reader.fieldnames == CSV_COLUMNS
    rows = list(reader)
    assert rows and len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert None not in r.values() and None not in r, r["id"]  # exactly 13 cells
        assert r["quality"] in {"verified", "file", "page", "secondary"}
        assert float(r["value"]) > 0 and r["source"].startswith("https://")


def test_jetson_orin_nx_modes_follow_nvpmodel() -> None:
    nx = load_profile("jetson-orin-nx")
    assert [m.name for m in nx.power_modes] == ["10W", "15W", "25W", "MAXN"]
    assert nx.default_power_mode == "MAXN"
    # compute_scale = clock x active TPCs over MAXN's 918 MHz x 4 TPCs
    assert nx.compute_scale("10W") == pytest.approx(612 * 2 / (918 * 4))
    assert nx.compute_scale("25W") == pytest.approx(408 * 4 / (918 * 4))
    assert nx.peak_compute["int8"].value == pytest.approx(170 * (32 / 64) * (918 / 1300) / 2, rel=2e-3)


def test_headline_numbers_of_the_fleet() -> None:
    a100 = load_profile("nvidia-a100")
    assert (a100.peak_compute["fp16"].value, a100.peak_compute["int8"].value) == (312, 624)
    assert a100.memory_bandwidth.value == 2039
    pi4 = load_profile("raspberry-pi-4")
    assert set(pi4.peak_compute) == {"fp32"}
    assert pi4.peak_compute["fp32"].value == pytest.approx(4 * 1.8 * 8 / 1000)  # cores x GHz x FLOP/cycle
    assert pi4.default_power_mode == "1800MHz"
    assert pi4.compute_scale("1500MHz") == pytest.approx(1500 / 1800)


# --- NAME:MODE device specs ----------------------------------------------------------------


def test_parse_device_with_a_valid_mode() -> None:
    profile, mode = parse_device("jetson-orin:15W")
    assert (profile.name, mode) == ("jetson-orin", "15W")
    assert profile.compute_scale(mode) == pytest.approx(408 * 3 / (1300 * 8))
    assert parse_device("jetson-orin-nx:10W")[1] == "10W"


def test_parse_device_unknown_mode_suggests_the_closest() -> None:
    with pytest.raises(UnknownDeviceError) as info:
        parse_device("jetson-orin:40W")
    message = str(info.value)
    assert "device 'jetson-orin' has no power mode '40W'" in message
    assert "did you mean 'jetson-orin:50W'?" in message
    assert "Known modes: 15W, 30W, 50W, MAXN." in message
    assert "\n" not in message


def test_parse_device_mode_case_typo_is_matched() -> None:
    with pytest.raises(UnknownDeviceError, match="did you mean 'jetson-orin-nx:MAXN'"):
        parse_device("jetson-orin-nx:maxn")


def test_parse_device_mode_without_close_match() -> None:
    with pytest.raises(UnknownDeviceError) as info:
        parse_device("nvidia-a100:turbo-boost")
    assert "did you mean" not in str(info.value)
    assert "Known modes: 400W." in str(info.value)


def test_parse_device_unknown_device() -> None:
    with pytest.raises(UnknownDeviceError) as info:
        parse_device("jetson-orn:15W")
    message = str(info.value)
    assert message.startswith("unknown device 'jetson-orn'; did you mean 'jetson-orin'?")
    assert "\n" not in message


def test_parse_device_empty_mode() -> None:
    with pytest.raises(UnknownDeviceError, match="empty power mode after ':'"):
        parse_device("jetson-orin:")


def test_parse_device_accepts_a_file_with_a_mode(tmp_path: Path) -> None:
    data = _raw("jetson-orin")
    data["name"] = "my-orin"
    path = _write(tmp_path, data, "my-orin.yaml")
    profile, mode = parse_device(f"{path}:30W")
    assert (profile.name, mode) == ("my-orin", "30W")
    assert parse_device(path)[1] == "MAXN"
    assert parse_device(str(path))[1] == "MAXN"


def test_load_profile_is_unchanged_by_mode_syntax() -> None:
    with pytest.raises(UnknownDeviceError, match="unknown device 'jetson-orin:15W'"):
        load_profile("jetson-orin:15W")


# --- validation ----------------------------------------------------------------------------


def _int8_only(data: dict[str, Any]) -> dict[str, Any]:
    """An Edge-TPU-like profile: only an int8 peak, int8 calibration and default."""
    data = copy.deepcopy(data)
    data["name"] = "int8-only"
    data["peak_compute"] = {"int8": data["peak_compute"]["int8"]}
    data["default_precision"] = "int8"
    data["calibration"] = [p for p in data["calibration"] if p["precision"] == "int8"]
    return data


def test_int8_only_profile_has_no_fp32(tmp_path: Path) -> None:
    profile = load_profile(_write(tmp_path, _int8_only(_raw("nvidia-a100"))))
    assert set(profile.peak_compute) == {"int8"}
    with pytest.raises(ProfileError, match="no peak for precision 'fp32'; use one of: int8"):
        profile.peak_ops_per_s("fp32")
    bad = _int8_only(_raw("nvidia-a100"))
    bad["default_precision"] = "fp32"
    with pytest.raises(MalformedProfileError, match="default_precision 'fp32' has no entry in peak_compute"):
        load_profile(_write(tmp_path, bad, "bad.yaml"))


@pytest.mark.parametrize("name", FLEET)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("memory_bandwidth",), "memory_bandwidth.source"),
        (("kernel_overhead",), "kernel_overhead.source"),
        (("power_modes", 0, "gpu_clock_mhz"), "power_modes[0].gpu_clock_mhz.source"),
        (("calibration", 0, "latency_ms"), "calibration[0].latency_ms.source"),
    ],
)
def test_a_number_without_source_fails_naming_the_field(tmp_path: Path, name: str, path: tuple[Any, ...],
                                                        field: str) -> None:
    data = _raw(name)
    node = data
    for key in path:
        node = node[key]
    del node["source"]
    with pytest.raises(MalformedProfileError) as info:
        load_profile(_write(tmp_path, data))
    message = str(info.value)
    assert f"{field}: required field is missing; add it" in message, message
    assert "\n" not in message


@pytest.mark.parametrize("name", FLEET)
def test_fleet_power_modes_have_positive_cited_clocks(name: str) -> None:
    profile = load_profile(name)
    for mode in profile.power_modes:
        assert mode.gpu_clock_mhz.value > 0 and mode.gpu_clock_mhz.source
        assert mode.power_w.value > 0 and mode.power_w.source
        assert mode.compute_units is not None and mode.compute_units.value >= 1
