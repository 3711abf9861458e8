"""The supernet artifact and tensor files (the plain-file helpers live in :mod:`supernet.files`).

The artifact is ONE ``.safetensors`` file whose header metadata holds a JSON document
(family, architecture config, normalisation, dataset and training summary), so a supernet
travels as a single file and loading it never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from supernet.errors import CheckpointError, ConfigError
from supernet.files import atomic_write, ensure_writable, read_json, sha256, write_json  # noqa: F401 - re-exported

FORMAT = "dynnas-supernet"
FORMAT_VERSION = 1


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
    header = {"dynnas": json.dumps(meta, sort_keys=True)} if meta is not None else None
    atomic_write(path, lambda p: save_file(_contiguous(tensors), str(p), metadata=header))


def load_tensors(path: Path, what: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} '{path}' does not exist; check the path.")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
        meta = json.loads(header["dynnas"]) if "dynnas" in header else None
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{what} '{path}' is corrupt or not a safetensors file ({str(e)[:80]}); "
                              "restore it or retrain with `dynnas train`.") from None
    return tensors, meta


# ---- the supernet artifact -------------------------------------------------------------------
def save_supernet(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    save_tensors(path, model.state_dict(), meta)


def load_supernet(path: Path | str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a supernet artifact (a ``.safetensors`` file or a run folder holding ``supernet.safetensors``)."""
    from supernet.registry import config_from_dict, get_family

    path = Path(path)
    if path.is_dir():
        path = path / "supernet.safetensors"
    tensors, meta = load_tensors(path, "supernet")
    if not meta or meta.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is a safetensors file but not a dynnas supernet; pass one written by `dynnas train`.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"supernet '{path}' has format version {meta.get('format_version')}, "
                              f"this dynnas reads {FORMAT_VERSION}; retrain it with this version.")
    try:
        config = config_from_dict(meta["family"], meta["config"])
        model = get_family(meta["family"]).build(config, tuple(meta["mean"]), tuple(meta["std"]))
        model.load_state_dict(tensors, strict=True)
    except (KeyError, RuntimeError, ConfigError) as e:
        raise CheckpointError(f"supernet '{path}' does not match its own config ({str(e).splitlines()[0][:120]}); "
                              "it is corrupt: retrain it.") from None
    return model.to(device).eval(), meta
