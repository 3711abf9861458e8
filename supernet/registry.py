"""Supernet families: a registry of config classes, builders and presets (timm style)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from supernet.cnn import PRESETS as CNN_PRESETS
from supernet.cnn import CNNConfig, CNNSupernet
from supernet.errors import unknown
from supernet.extract import extract_cnn, extract_vit
from supernet.space import SubnetConfig
from supernet.transfer import Transfer, transfer_same, transfer_vit
from supernet.vit import PRESETS as VIT_PRESETS
from supernet.vit import ViTConfig, ViTSupernet


@dataclass(frozen=True)
class Family:
    """A supernet family: its config class, builder ``(config, mean, std) -> supernet``, presets and
    ``extract(supernet, subnet) -> static module`` (see :func:`extract`) and
    ``transfer(state, their_config, my_config) -> state``, which carries trained weights into another of its
    architectures for ``dynnas train --init-from`` (see :mod:`supernet.transfer`)."""

    name: str
    config_cls: type
    build: Callable[..., nn.Module]
    presets: dict[str, Any]
    extract: Callable[..., nn.Module] | None = None
    transfer: Transfer = transfer_same


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


register_family(Family("cnn", CNNConfig, CNNSupernet, CNN_PRESETS, extract_cnn))
register_family(Family("vit", ViTConfig, ViTSupernet, VIT_PRESETS, extract_vit, transfer_vit))


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise unknown("supernet family", name, list(FAMILIES))
    return FAMILIES[name]


def extract(supernet: nn.Module, subnet: SubnetConfig) -> nn.Module:
    """Copy the sliced weights of ``subnet`` into a new static module of the supernet's family
    (eval mode, on the supernet's device). The supernet is left untouched."""
    return get_family(supernet.config.family).extract(supernet, subnet)


def get_preset(family: str, preset: str) -> Any:
    fam = get_family(family)
    if preset not in fam.presets:
        raise unknown(f"{family} preset", preset, list(fam.presets))
    return fam.presets[preset]


def config_from_dict(family: str, d: dict[str, Any]) -> Any:
    return get_family(family).config_cls.from_dict(d)
