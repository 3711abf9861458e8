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
from predictors.errors import CalibrationError
from predictors.graph_latency import check_precision
from predictors.profile_quality import confidence_of, n_fitted, point_ms, prior_params
from predictors.reference_graphs import reference_kernels
from predictors.roofline import BYTES_PER_ELEMENT, RooflinePredictor, fit_roofline, inference_seconds
from supernet.cnn import CNNConfig
from tests.cli import fails_cleanly

SHIPPED = list_profiles()
PUBLISHED = [n for n in SHIPPED if not load_profile(n).measured]
# Profiles added with the fleet (issue 8); their calibration points must be traceable to a row of
# hw_profiles/published_latencies.csv.
MLPERF_FLEET = ["jetson-orin-nx", "nvidia-a100", "raspberry-pi-4"]  # every point read in an MLPerf log
NEW_FLEET = ["coral-edgetpu", "jetson-orin-nano", "jetson-orin-nano-super", "raspberry-pi-5", "snapdragon-8-gen-2",
             "xeon-8481c"]
FLEET = MLPERF_FLEET + NEW_FLEET
# A calibration point may rest on a vendor's own file or page, never on a third party quoting it.
CITABLE_QUALITIES = {"verified", "file", "page"}
THROUGHPUT_UNITS = ("images/s", "samples/s")
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
            ms = 1e3 * inference_seconds(kernels, peak, bandwidth, params)
            assert math.isfinite(ms) and ms > 0, (precision, mode.name, ms)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_slower_power_mode_is_never_predicted_faster(name: str) -> None:
    profile, params = load_profile(name), _params(name)
    kernels = reference_kernels("resnet50", None, BYTES_PER_ELEMENT[profile.default_precision])
    bandwidth = profile.memory_bandwidth.value * 1e9
    by_scale = sorted((profile.compute_scale(m.name), inference_seconds(
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


def _csv_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(resources.files("hw_profiles").joinpath("published_latencies.csv")
                               .read_text(encoding="utf-8").splitlines()))


def _row_ms(row: dict[str, str]) -> float:
    """A CSV row's figure in ms: latencies as they are, throughputs as 1000 / value (one image a query)."""
    value = float(row["value"])
    return 1e3 / value if row["unit"] in THROUGHPUT_UNITS else value


@pytest.mark.parametrize("name", FLEET)
def test_fleet_calibration_points_are_recorded_in_the_repo_csv(name: str) -> None:
    rows = _csv_rows()
    for point in load_profile(name).calibration:
        match = [r for r in rows if r["source"] == point.source
                 and _row_ms(r) == pytest.approx(point.latency_ms.value, rel=2e-3)]
        assert len(match) == 1, (name, point.model, point.source)
        row = match[0]
        assert row["batch"] in (str(point.batch), "n/s")
        if row["batch"] == "n/s":  # a throughput of unstated batch read as batch-1 latency: say so
            assert row["unit"] in THROUGHPUT_UNITS and point.batch == 1
            assert point.latency_ms.derived and "1000" in point.latency_ms.derived
        assert row["quality"] == ("verified" if name in MLPERF_FLEET else row["quality"])
        assert row["quality"] in CITABLE_QUALITIES, (name, row["id"], row["quality"])
        assert name in row["notes"], f"{row['id']}: notes should name the profile it calibrates"


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
    assert set(pi4.peak_compute) == {"fp32", "int8"}
    assert pi4.peak_compute["fp32"].value == pytest.approx(4 * 1.8 * 8 / 1000)  # cores x GHz x FLOP/cycle
    assert pi4.peak_compute["int8"].value == pytest.approx(4 * 1.8 * 16 / 1000)  # one SMLAL (8 MACs) per cycle
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


_SOURCE_PATHS = [
    (("memory_bandwidth",), "memory_bandwidth.source"),
    (("kernel_overhead",), "kernel_overhead.source"),
    (("power_modes", 0, "gpu_clock_mhz"), "power_modes[0].gpu_clock_mhz.source"),
    (("power_modes", 0, "power_w"), "power_modes[0].power_w.source"),
    (("calibration", 0, "latency_ms"), "calibration[0].latency_ms.source"),
]


def _node(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if isinstance(data, dict) and key not in data or isinstance(data, list) and key >= len(data):
            return None
        data = data[key]
    return data


# Every (profile, field) whose number exists: a profile may leave an unpublished clock or power out.
_SOURCE_CASES = [(n, path, field) for n in FLEET for path, field in _SOURCE_PATHS if _node(_raw(n), path)]


@pytest.mark.parametrize(("name", "path", "field"), _SOURCE_CASES)
def test_a_number_without_source_fails_naming_the_field(tmp_path: Path, name: str, path: tuple[Any, ...],
                                                        field: str) -> None:
    data = _raw(name)
    del _node(data, path)["source"]
    with pytest.raises(MalformedProfileError) as info:
        load_profile(_write(tmp_path, data))
    message = str(info.value)
    assert f"{field}: required field is missing; add it" in message, message
    assert "\n" not in message


@pytest.mark.parametrize("name", FLEET)
def test_fleet_power_modes_have_positive_cited_clocks(name: str) -> None:
    profile = load_profile(name)
    for mode in profile.power_modes:
        for q in (mode.gpu_clock_mhz, mode.power_w, mode.cpu_clock_mhz, mode.compute_units):
            assert q is None or (q.value > 0 and q.source.strip())
        if len(profile.power_modes) > 1:  # modes are compared by clock (x units, where published)
            assert mode.gpu_clock_mhz is not None, (name, mode.name)
        if name in MLPERF_FLEET:
            assert mode.power_w is not None and mode.compute_units is not None
        if mode.power_w is None or mode.gpu_clock_mhz is None:  # an omitted figure is explained
            assert mode.notes.strip() or profile.notes.strip()


# --- the new fleet: hardware numbers and modes ---------------------------------------------


def test_the_new_fleet_is_low_confidence_where_thin() -> None:
    for name in NEW_FLEET:
        profile = load_profile(name)
        assert not profile.measured and profile.calibration
        thin = len(profile.calibration) < n_fitted(profile) or len({p.model for p in profile.calibration}) < 2
        assert confidence_of(profile) == ("low" if thin else "ok"), name


def test_jetson_orin_nano_modes_follow_nvpmodel() -> None:
    nano = load_profile("jetson-orin-nano")
    assert [m.name for m in nano.power_modes] == ["7W", "15W"] and nano.default_power_mode == "15W"
    assert nano.compute_scale("7W") == pytest.approx(408 * 2 / (625 * 4))  # 2 of 4 TPCs at 408 MHz
    assert nano.peak_compute["int8"].value == pytest.approx(40 / 2)  # 40 sparse TOPS, dense
    assert nano.peak_compute["fp32"].value == pytest.approx(1024 * 2 * 0.625 / 1000, rel=1e-3)
    super_ = load_profile("jetson-orin-nano-super")
    assert [m.name for m in super_.power_modes] == ["15W", "25W", "MAXN_SUPER"]
    assert super_.default_power_mode == "MAXN_SUPER"
    assert super_.compute_scale("25W") == pytest.approx(918 / 1020)
    assert super_.compute_scale("15W") == pytest.approx(612 / 1020)
    assert super_.power_mode("MAXN_SUPER").power_w is None  # nvpmodel sets no budget: none is invented
    assert super_.peak_compute["int8"].value == pytest.approx(67 / 2)
    assert super_.memory_bandwidth.value == pytest.approx(128 / 8 * 2 * 3.2, rel=1e-3)
    # the same silicon: Super is faster by its clock, the peaks scale with it
    ratio = super_.peak_compute["fp16"].value / nano.peak_compute["fp16"].value
    assert ratio == pytest.approx(1020 / 625, rel=0.03)


def test_headline_numbers_of_the_new_fleet() -> None:
    pi5 = load_profile("raspberry-pi-5")
    assert pi5.peak_compute["fp32"].value == pytest.approx(4 * 2.4 * 16 / 1000)  # cores x GHz x FLOP/cycle
    assert pi5.peak_compute["int8"].value == pytest.approx(4 * 2.4 * 64 / 1000)
    assert pi5.default_precision == "int8" and [m.name for m in pi5.power_modes] == ["2400MHz"]
    phone = load_profile("snapdragon-8-gen-2")
    assert set(phone.peak_compute) == {"int8"} and phone.kind == "npu"
    assert phone.power_mode().gpu_clock_mhz is None and phone.compute_scale() == 1.0  # no clock published
    xeon = load_profile("xeon-8481c")
    assert xeon.peak_compute["fp32"].value == pytest.approx(4 * 2.7 * 64 / 1000)
    assert {p.resolution for p in xeon.calibration} == {128, 160, 192}
    coral = load_profile("coral-edgetpu")
    assert coral.peak_compute["int8"].value == 4.0 and coral.compute_scale("std") == pytest.approx(0.5)


# --- Coral: INT8 only; any other precision is a one-line error naming int8 -------------------


def test_coral_is_int8_only() -> None:
    coral = load_profile("coral-edgetpu")
    assert set(coral.peak_compute) == {"int8"} and coral.default_precision == "int8"
    assert {p.precision for p in coral.calibration} == {"int8"}
    assert "SRAM" in coral.notes or "RAM" in coral.notes  # the unmodelled parameter cache is stated


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_coral_float_precision_fails_in_one_line_naming_int8(precision: str) -> None:
    coral = load_profile("coral-edgetpu")
    with pytest.raises(ProfileError) as info:
        coral.peak_ops_per_s(precision)
    assert str(info.value) == f"device 'coral-edgetpu' has no peak for precision '{precision}'; use one of: int8"
    with pytest.raises(CalibrationError) as info:
        check_precision(coral, precision)
    message = str(info.value)
    assert f"precision '{precision}'" in message and "use one of: int8" in message and "\n" not in message
    params, rows = fit_roofline(coral)
    with pytest.raises(ProfileError, match="use one of: int8"):
        RooflinePredictor(coral, CNNConfig(), params, rows, precision=precision)
    assert check_precision(coral, None) == "int8"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_coral_float_precision_at_the_cli_is_exit_2(precision: str) -> None:
    line = fails_cleanly(["latency", "--model", "mobilenet_v2", "--device", "coral-edgetpu", "--precision", precision],
                         "use one of: int8")
    assert f"'{precision}'" in line


# --- schema: optional clocks and power, the 'unstated' statistic ------------------------------


def test_a_single_mode_may_leave_out_an_unpublished_clock_and_power(tmp_path: Path) -> None:
    data = _raw("nvidia-a100")
    mode = data["power_modes"][0]
    del mode["gpu_clock_mhz"], mode["power_w"]
    profile = load_profile(_write(tmp_path, data))
    assert profile.power_mode().gpu_clock_mhz is None and profile.power_mode().power_w is None
    assert profile.compute_scale() == 1.0


def test_several_modes_need_every_clock(tmp_path: Path) -> None:
    data = _raw("jetson-orin")
    del data["power_modes"][1]["gpu_clock_mhz"]
    with pytest.raises(MalformedProfileError) as info:
        load_profile(_write(tmp_path, data))
    message = str(info.value)
    assert "power mode(s) 30W have no gpu_clock_mhz" in message and "keep a single mode" in message
    assert "\n" not in message


def test_statistic_may_be_unstated_but_not_anything(tmp_path: Path) -> None:
    data = _raw("nvidia-a100")
    data["calibration"][0]["statistic"] = "unstated"
    assert load_profile(_write(tmp_path, data)).calibration[0].statistic == "unstated"
    data["calibration"][0]["statistic"] = "average"
    with pytest.raises(MalformedProfileError, match="calibration\\[0\\].statistic"):
        load_profile(_write(tmp_path, data, "bad.yaml"))
