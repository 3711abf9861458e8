"""This machine's own ``host`` profile: written by ``dynnas profile --install``, read by ``--device host``.

The shipped ``host.yaml`` is a nominal roofline of one development VM; every machine differs. Once
``dynnas profile --install`` has measured this machine (micro-benchmarks and the reference models, on
onnxruntime's CPU provider), ``load_profile("host")`` returns that measured profile instead. It lives in
the dynnas cache (``$DYNNAS_CACHE/profiles/host.yaml``, default ``~/.cache/dynnas``) with a small JSON
beside it naming the machine it was measured on (CPU model, logical CPUs, architecture): a cache shared
with another machine (a network home folder) is not used there, and the nominal file is.

Example::

    installed_host_path()          # PosixPath('/home/me/.cache/dynnas/profiles/host.yaml')
    machine_key()                  # 'x86_64|2|AMD EPYC'
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

HOST = "host"


def installed_dir() -> Path:
    """``$DYNNAS_CACHE/profiles`` (default ``~/.cache/dynnas/profiles``).

    The same rule as :func:`supernet.files.cache_root`, restated because ``hw_profiles`` imports no other
    dynnas package (it runs where only onnxruntime is installed).
    """
    env = os.environ.get("DYNNAS_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "dynnas") / "profiles"


def installed_host_path() -> Path:
    """Where ``dynnas profile --install`` writes this machine's ``host`` profile."""
    return installed_dir() / f"{HOST}.yaml"


def machine_path(profile_path: Path) -> Path:
    """The JSON beside an installed profile that names the machine it was measured on."""
    return profile_path.with_suffix(".machine.json")


def machine_key() -> str:
    """What identifies this machine for its measured profile: architecture, logical CPUs and CPU model."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Hardware", "Model"):
                    model = value.strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()}|{os.cpu_count()}|{model or platform.processor() or 'unknown CPU'}"


def installed_host() -> Path | None:
    """The installed ``host`` profile's path when one exists and was measured on this machine, else ``None``."""
    path = installed_host_path()
    try:
        recorded = json.loads(machine_path(path).read_text(encoding="utf-8")).get("machine_key")
    except (OSError, ValueError, AttributeError):
        return None
    return path if recorded == machine_key() and path.is_file() else None
