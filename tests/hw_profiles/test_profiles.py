"""Conformance tests for every shipped device profile, and the loader's error messages."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from hw_profiles import (
    REFERENCE_MODELS,
    SCHEMA_VERSION,
    DeviceProfile,
    MalformedProfileError,
    ProfileError,
    Quantity,
    UnknownDeviceError,
    list_profiles,
    load_profile,
)

SHIPPED = list_profiles()


def _quantities(obj: Any, path: str = "") -> Iterator[tuple[str, Quantity]]:
    """Every Quantity inside a model, with its field path."""
    if isinstance(obj, Quantity):
        yield path, obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from _quantities(getattr(obj, name), f"{path}.{name}" if path else name)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _quantities(value, f"{path}.{key}")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            yield from _quantities(value, f"{path}[{i}]")


def _raw(name: str) -> dict[str, Any]:
    text = resources.files("hw_profiles").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _write(tmp_path: Path, data: Any, name: str = "custom.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _malformed(tmp_path: Path, mutate: Callable[[dict[str, Any]], None], base: str = "jetson-orin") -> str:
    data = copy.deepcopy(_raw(base))
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(MalformedProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message
    return message


# --- every shipped profile ---------------------------------------------------------------


def test_ships_the_expected_devices() -> None:
    assert {"host", "jetson-orin"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_profile_loads_and_matches_its_file(name: str) -> None:
    profile = load_profile(name)
    assert isinstance(profile, DeviceProfile)
    assert profile.name == name
    assert profile.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("name", SHIPPED)
def test_every_number_is_cited(name: str) -> None:
    found = list(_quantities(load_profile(name)))
    assert found
    for path, q in found:
        assert q.source.strip(), f"{name}: {path} has no source"
        if q.derived is not None:
            assert "=" in q.derived, f"{name}: {path}.derived is not a formula"


@pytest.mark.parametrize("name", SHIPPED)
def test_cross_field_consistency(name: str) -> None:
    profile = load_profile(name)
    modes = {m.name for m in profile.power_modes}
    assert profile.default_precision in profile.peak_compute
    assert profile.default_power_mode in modes
    for point in profile.calibration:
        assert point.precision in profile.peak_compute
        assert point.power_mode in modes
        ref = REFERENCE_MODELS[point.model]
        if point.resolution != ref.resolution:  # e.g. MobileNetV1 at 160 or 192: the kernels follow the input
            from predictors.reference_graphs import reference_kernels

            macs = sum(k.macs for k in reference_kernels(point.model, point.resolution, 4)) / 1e9
            expected = ref.macs.value * (point.resolution / ref.resolution) ** 2
            # within 15 %: at 96-128 px the stride-2 layers' padding makes the MACs drift from the pixel count
            assert macs == pytest.approx(expected, rel=0.15), (name, point.model, point.resolution, macs)
    assert profile.deploy.format(onnx="model.onnx") != profile.deploy


@pytest.mark.parametrize("name", SHIPPED)
def test_published_profiles_have_calibration_and_say_when_it_is_thin(name: str) -> None:
    from predictors.profile_quality import LOW_CONFIDENCE_MIN_MODELS, confidence_of, n_fitted

    profile = load_profile(name)
    if profile.measured:
        assert confidence_of(profile) == "measured"
        return
    assert len(profile.calibration) >= 1
    thin = (len(profile.calibration) < n_fitted(profile)
            or len({p.model for p in profile.calibration}) < LOW_CONFIDENCE_MIN_MODELS)
    assert confidence_of(profile) == ("low" if thin else "ok")


@pytest.mark.parametrize("name", SHIPPED)
def test_compute_scale_is_one_at_the_fastest_mode(name: str) -> None:
    profile = load_profile(name)
    scales = [profile.compute_scale(m.name) for m in profile.power_modes]
    assert max(scales) == pytest.approx(1.0)
    assert all(0 < s <= 1 for s in scales)
    assert profile.peak_ops_per_s() > 0


def test_reference_models_are_cited() -> None:
    for key, model in REFERENCE_MODELS.items():
        assert model.name == key
        assert model.macs.unit == "GMAC" and model.macs.source.strip()
        assert model.params.unit == "M" and model.params.source.strip()


def test_jetson_orin_headline_numbers() -> None:
    orin = load_profile("jetson-orin")
    assert orin.memory_bandwidth.value == 204.8
    assert orin.memory_size.value == 64
    assert orin.default_precision == "fp16"
    assert {m.name for m in orin.power_modes} == {"15W", "30W", "50W", "MAXN"}
    assert {p.model for p in orin.calibration} >= {"resnet50", "ssd_mobilenet_v1"}


# --- loader behaviour --------------------------------------------------------------------


def test_shipped_profiles_are_cached_but_not_shared() -> None:
    first = load_profile("jetson-orin")
    first.peak_compute["fp16"] = first.peak_compute["fp32"]  # a caller mutating its copy
    again = load_profile("jetson-orin")
    assert again.peak_compute["fp16"].value == 42.5
    assert again == load_profile("jetson-orin")
    assert hash(again) == hash(load_profile("jetson-orin"))


def test_profiles_are_frozen() -> None:
    with pytest.raises(ValidationError):
        load_profile("host").name = "other"  # type: ignore[misc]


def test_unknown_power_mode_lists_known_modes() -> None:
    with pytest.raises(ProfileError, match="use one of: 15W, 30W, 50W, MAXN"):
        load_profile("jetson-orin").power_mode("40W")


def test_unknown_name_suggests_closest_match() -> None:
    with pytest.raises(UnknownDeviceError) as info:
        load_profile("jetson-orn")
    message = str(info.value)
    assert "did you mean 'jetson-orin'?" in message
    assert f"Known: {', '.join(list_profiles())}." in message  # every shipped name, sorted
    assert "path to a profile YAML file" in message
    assert "\n" not in message


def test_unknown_name_without_close_match() -> None:
    with pytest.raises(UnknownDeviceError, match="unknown device 'tpu-v9'") as info:
        load_profile("tpu-v9")
    assert "did you mean" not in str(info.value)


def test_errors_are_value_errors() -> None:
    assert issubclass(UnknownDeviceError, ValueError)
    assert issubclass(MalformedProfileError, ProfileError)


@pytest.mark.parametrize("as_path", [True, False], ids=["Path", "str"])
def test_loads_a_user_file_by_path(tmp_path: Path, as_path: bool) -> None:
    data = _raw("host")
    data["name"] = "my-laptop"
    path = _write(tmp_path, data, "my-laptop.yaml")
    profile = load_profile(path if as_path else str(path))
    assert profile.name == "my-laptop"
    assert profile.kind == "cpu"


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UnknownDeviceError, match="does not exist") as info:
        load_profile(tmp_path / "nope.yaml")
    assert "\n" not in str(info.value)


def test_yaml_syntax_error_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\n  bad: [unclosed\n", encoding="utf-8")
    with pytest.raises(MalformedProfileError, match="YAML syntax error at line") as info:
        load_profile(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", ["- a\n- b\n", "just a string\n", ""])
def test_not_a_mapping(tmp_path: Path, content: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(MalformedProfileError, match="must hold a YAML mapping") as info:
        load_profile(path)
    assert "\n" not in str(info.value)


def test_python_tags_are_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(
        f"name: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n",
        encoding="utf-8",
    )
    with pytest.raises(MalformedProfileError, match="safe_load") as info:
        load_profile(path)
    assert not marker.exists()
    assert "\n" not in str(info.value)


def test_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nname: b\n", encoding="utf-8")
    with pytest.raises(MalformedProfileError, match="duplicate key 'name'"):
        load_profile(path)


# --- malformed profiles: the message names the field, in one line -------------------------


def test_wrong_schema_version(tmp_path: Path) -> None:
    message = _malformed(tmp_path, lambda d: d.update(schema_version=2))
    assert "schema_version" in message
    assert f"reads schema_version {SCHEMA_VERSION}" in message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["memory_bandwidth"].update(value=-1),
            "memory_bandwidth.value must be finite and > 0, got -1",
        ),
        (lambda d: d["memory_bandwidth"].update(value=".nan"), "memory_bandwidth.value"),
        (lambda d: d["memory_bandwidth"].update(value="204.8"), "memory_bandwidth.value"),
        (lambda d: d["memory_bandwidth"].update(unit="GB"), "memory_bandwidth.unit must be 'GB/s'"),
        (lambda d: d["memory_size"].update(unit="GiB"), "memory_size.unit 'GiB' is not a known unit"),
        (lambda d: d["memory_size"].update(source="  "), "memory_size.source must not be empty"),
        (lambda d: d["peak_compute"]["fp16"].update(derived="170/4"), "peak_compute.fp16.derived"),
        (lambda d: d["peak_compute"].update(bf16=d["peak_compute"]["fp16"]), "peak_compute.bf16"),
        (lambda d: d.pop("deploy"), "deploy: required field is missing"),
        (lambda d: d.update(colour="green"), "colour: unknown field"),
        (lambda d: d.update(deploy="trtexec --onnx=model.onnx"), "deploy must use exactly the placeholder"),
        (lambda d: d.update(name="Jetson Orin"), "name must be a lowercase slug"),
        (lambda d: d.update(kind="fpga"), "kind"),
        (lambda d: d.update(default_power_mode="40W"), "default_power_mode '40W' names no power mode"),
        (lambda d: d["peak_compute"].pop("fp16"), "default_precision 'fp16' has no entry in peak_compute"),
        (lambda d: d["peak_compute"].pop("int8"), "calibration[0].precision 'int8' has no entry"),
        (lambda d: d["calibration"][0].update(power_mode="TURBO"), "calibration[0].power_mode 'TURBO'"),
        (
            lambda d: d["calibration"][1].update(model="vgg16"),
            "calibration[1].model 'vgg16' is not a reference model",
        ),
        (lambda d: d["calibration"][0].update(batch=0), "calibration[0].batch"),
        (
            lambda d: d["calibration"][0]["latency_ms"].update(unit="us"),
            "calibration[0].latency_ms.unit must be",
        ),
        (lambda d: d["power_modes"][0]["power_w"].update(value=0), "power_modes[0].power_w.value"),
        (lambda d: d["power_modes"].append(d["power_modes"][0]), "power_modes names must be unique"),
        (lambda d: d.update(calibration=[]), "calibration is empty but measured is false"),
        (lambda d: d.update(measured="yes"), "measured"),
    ],
)
def test_malformed_profile_names_the_field(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    assert expected in _malformed(tmp_path, mutate)


def test_host_may_have_no_calibration(tmp_path: Path) -> None:
    data = _raw("host")
    assert data["measured"] is True and data["calibration"] == []
    data["measured"] = False
    with pytest.raises(MalformedProfileError, match="calibration is empty"):
        load_profile(_write(tmp_path, data))
