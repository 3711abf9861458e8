"""Atomic writes: the file appears whole or not at all, with ordinary permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supernet.checkpoint import atomic_write, read_json, write_json


def test_write_json_round_trips_with_umask_permissions(tmp_path: Path) -> None:
    write_json(tmp_path / "a" / "x.json", {"b": [1, 2.5]})
    assert read_json(tmp_path / "a" / "x.json") == {"b": [1, 2.5]}
    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "y.json", {})
    finally:
        os.umask(mask)
    assert (tmp_path / "y.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600


def test_failed_write_leaves_neither_file_nor_temp(tmp_path: Path) -> None:
    def boom(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "z.json", boom)
    assert list(tmp_path.iterdir()) == []
