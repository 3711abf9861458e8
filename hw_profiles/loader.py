"""Find and load device profiles: shipped ``*.yaml`` files or a user's own file."""

from __future__ import annotations

import difflib
import functools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hw_profiles.errors import MalformedProfileError, UnknownDeviceError
from hw_profiles.installed import HOST, installed_host
from hw_profiles.schema import DeviceProfile

_SUFFIXES = (".yaml", ".yml")


def list_profiles() -> list[str]:
    """Names of the profiles shipped with dynnas, sorted (e.g. ``['host', 'jetson-orin']``)."""
    root = resources.files(__package__)
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """Load a shipped profile by name, or a profile YAML file by path.

    A ``Path``, or a string that ends in ``.yaml``/``.yml`` or contains a path separator, is read
    as a file; anything else is a shipped name. ``host`` is this machine's measured profile once
    ``dynnas profile --install`` has written one (:mod:`hw_profiles.installed`), else the shipped
    nominal ``host.yaml``.

    Example:
        >>> load_profile("jetson-orin").memory_bandwidth.value
        204.8
    """
    if isinstance(name_or_path, Path) or _looks_like_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise UnknownDeviceError(
                f"profile file '{path}' does not exist; check the path, or use a shipped device: "
                f"{', '.join(list_profiles())}."
            )
        return _parse(_read(path), str(path))
    known = list_profiles()
    if name_or_path not in known:
        raise UnknownDeviceError(_unknown_message(name_or_path, known))
    if name_or_path == HOST and (installed := installed_host()) is not None:
        return _parse(_read(installed), f"{installed} (this machine's host profile; rewrite it with "
                                        "`dynnas profile --install`)")
    return _load_shipped(name_or_path).model_copy(deep=True)


def parse_device(spec: str | Path) -> tuple[DeviceProfile, str]:
    """Resolve a ``--device`` value ``NAME[:MODE]`` to its profile and power-mode name.

    ``NAME`` is a shipped profile or a path to a profile YAML file (as for :func:`load_profile`);
    ``MODE`` names one of its ``power_modes`` and defaults to ``default_power_mode``. Only the
    last ``:`` splits, so a Windows path like ``C:\\x.yaml`` still reads as a file.

    Example:
        >>> profile, mode = parse_device("jetson-orin:15W")
        >>> profile.name, mode
        ('jetson-orin', '15W')
        >>> parse_device("jetson-orin")[1]
        'MAXN'
    """
    if isinstance(spec, Path):
        profile = load_profile(spec)
        return profile, profile.default_power_mode
    name, sep, mode = spec.rpartition(":")
    if not sep or not name or "/" in mode or "\\" in mode or mode.endswith(_SUFFIXES):
        name, mode = spec, ""  # no mode, or the ':' belongs to a path
    elif not mode.strip():
        raise UnknownDeviceError(
            f"device '{spec}' has an empty power mode after ':'; write NAME:MODE, e.g. 'jetson-orin:15W', "
            "or drop the ':' for the default mode"
        )
    profile = load_profile(name)
    if not mode:
        return profile, profile.default_power_mode
    known = [m.name for m in profile.power_modes]
    if mode not in known:
        raise UnknownDeviceError(_unknown_mode_message(profile.name, mode, known))
    return profile, mode


def _unknown_mode_message(device: str, mode: str, known: list[str]) -> str:
    match = difflib.get_close_matches(mode, known, n=1, cutoff=0.4)
    if not match:  # case-insensitive second try: '15w' -> '15W', 'maxn' -> 'MAXN'
        lower = {k.lower(): k for k in known}
        hit = difflib.get_close_matches(mode.lower(), list(lower), n=1, cutoff=0.4)
        match = [lower[hit[0]]] if hit else []
    hint = f"; did you mean '{device}:{match[0]}'?" if match else "."
    return f"device '{device}' has no power mode '{mode}'{hint} Known modes: {', '.join(known)}."


def _looks_like_path(s: str) -> bool:
    return s.endswith(_SUFFIXES) or "/" in s or "\\" in s


def _unknown_message(name: str, known: list[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{match[0]}'?" if match else "."
    return f"unknown device '{name}'{hint} Known: {', '.join(known)}. Or pass a path to a profile YAML file."


@functools.cache
def _load_shipped(name: str) -> DeviceProfile:
    text = resources.files(__package__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    profile = _parse(text, f"{name}.yaml (shipped)")
    if profile.name != name:
        raise MalformedProfileError(
            f"{name}.yaml (shipped): name is {profile.name!r} but the file is {name}.yaml; make them match"
        )
    return profile


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedProfileError(
            f"{path}: cannot read the file ({_one_line(str(exc))}); check it is a UTF-8 text file"
        ) from None


def _parse(text: str, where: str) -> DeviceProfile:
    try:
        data = yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise MalformedProfileError(f"{where}: {_yaml_message(exc)}") from None
    if not isinstance(data, dict):
        raise MalformedProfileError(
            f"{where}: the file must hold a YAML mapping of profile fields, got {type(data).__name__}; "
            "start from a shipped profile, e.g. hw_profiles/host.yaml"
        )
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        raise MalformedProfileError(f"{where}: invalid profile: {format_validation_error(exc)}") from None


def format_validation_error(exc: ValidationError) -> str:
    """All errors of ``exc`` on one line as ``field.path: message``, separated by ``; ``."""
    errors = exc.errors(include_url=False)
    count = f"({len(errors)} errors) " if len(errors) > 1 else ""
    return count + "; ".join(_format_one(err) for err in errors)


_HINTS = {  # pydantic error type -> how to fix it in the YAML file
    "float_type": "write the number without quotes",
    "int_type": "write a whole number without quotes",
    "bool_type": "use true or false",
}


def _format_one(err: Any) -> str:
    parts, msg = err["loc"], _one_line(err["msg"]).removeprefix("Value error, ")
    if parts and parts[-1] == "[key]":  # a bad dict key, e.g. peak_compute.bf16
        parts, msg = parts[:-1], msg.replace("Input should be", "key should be", 1)
    loc, kind = _loc(parts), err["type"]
    if kind == "missing":
        return f"{loc}: required field is missing; add it"
    if kind == "extra_forbidden":
        return f"{loc}: unknown field; remove it or fix its spelling"
    got = err.get("input")
    if kind != "value_error" and not isinstance(got, dict | list):
        msg = f"{msg}, got {_one_line(repr(got))[:80]}"
    if kind in _HINTS:
        msg = f"{msg}; {_HINTS[kind]}"
    last = str(parts[-1]) if parts else ""
    if last and loc.endswith(last) and msg.startswith((f"{last} ", f"{last}.")):
        return loc[: -len(last)] + msg  # "x.value" + "value must be > 0" -> "x.value must be > 0"
    return f"{loc}: {msg}" if loc else msg


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _one_line(s: str) -> str:
    return " ".join(s.split())


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = _one_line(f"{context}, {problem}" if context else str(problem))
    if isinstance(exc, yaml.constructor.ConstructorError) and "constructor for the tag" in detail:
        return (
            f"YAML error{where}: {detail}; profiles are read with yaml.safe_load, so only plain "
            "mappings, lists, strings and numbers are allowed (no !!python tags)"
        )
    if isinstance(exc, yaml.constructor.ConstructorError):
        return f"YAML error{where}: {detail}"
    return f"YAML syntax error{where}: {detail}; fix the YAML syntax"


class _StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also rejects duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictSafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' may be overridden explicitly
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}; keep only one", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
