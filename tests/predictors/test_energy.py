"""Energy predictor: power mode × latency, the idle split, per-op energy, on every shipped profile."""

from __future__ import annotations

import numpy as np
import pytest

from hw_profiles import DeviceProfile, PowerMode, ProfileError, Quantity, list_profiles, load_profile
from hw_profiles.quantity import Frozen
from predictors.energy import EnergyPredictor, OpEnergy
from predictors.errors import CalibrationError
from predictors.kernels import exit_kernels, subnet_kernels
from supernet.cnn import PRESETS
from supernet.cost import count_macs
from supernet.space import SubnetConfig

TINY = PRESETS["tiny"]


@pytest.mark.parametrize("name", list_profiles())
def test_every_mode_of_every_profile_is_power_times_latency(name: str) -> None:
    profile = load_profile(name)
    for mode in profile.power_modes:
        if mode.power_w is None:  # the vendor publishes no figure: an error naming the fix, or a given draw
            assert not EnergyPredictor.supports(profile, mode.name)
            with pytest.raises(CalibrationError, match="publishes no power figure .* pass power_w="):
                EnergyPredictor(profile, mode.name)
            np.testing.assert_allclose(EnergyPredictor(profile, mode.name, power_w=7.0).predict_mj([2.0]), [14.0])
            continue
        assert EnergyPredictor.supports(profile, mode.name)
        e = EnergyPredictor(profile, mode.name)
        np.testing.assert_allclose(e.predict_mj([0.5, 2.0]), [0.5 * mode.power_w.value, 2.0 * mode.power_w.value])
        d = e.describe()
        assert d["method"] == "power_x_latency" and d["formula"] == "E_mJ = P_W * t_ms"
        assert d["power_w"] == mode.power_w.value and d["power_source"]


def test_jetson_modes_by_hand() -> None:
    np.testing.assert_allclose(EnergyPredictor.from_device("jetson-orin:15W").predict_mj([0.2, 0.1]), [3.0, 1.5])
    assert EnergyPredictor.from_device("jetson-orin").power_mode == "MAXN"
    np.testing.assert_allclose(EnergyPredictor.from_device("jetson-orin").predict_mj(0.2), 12.0)  # 60 W budget
    # a batch of 4 in 0.8 ms at 15 W: 3 mJ per image
    np.testing.assert_allclose(EnergyPredictor.from_device("jetson-orin:15W", batch=4).predict_mj([0.8]), [3.0])


def test_idle_split() -> None:
    profile = load_profile("jetson-orin")
    above = EnergyPredictor(profile, "15W", idle_power_w=5.0, baseline="above_idle")
    np.testing.assert_allclose(above.predict_mj([0.2]), [2.0])  # (15 - 5) W × 0.2 ms
    assert above.describe()["formula"] == "E_mJ = (P_W - P_idle_W) * t_ms"
    np.testing.assert_allclose(EnergyPredictor(profile, "15W", idle_power_w=5.0).predict_mj([0.2]), [3.0])
    with pytest.raises(CalibrationError, match="pass idle_power_w"):
        EnergyPredictor(profile, "15W", baseline="above_idle")
    with pytest.raises(CalibrationError, match=r"idle power must be in \[0, 15.0\] W"):
        EnergyPredictor(profile, "15W", idle_power_w=20.0)


def test_expected_energy_with_exits() -> None:
    e = EnergyPredictor.from_device("jetson-orin:30W")
    leave = np.array([[0.1, 0.15, 0.2], [0.05, 0.1, 0.12]])
    np.testing.assert_allclose(e.predict_exit_mj(leave), 30.0 * leave)
    with pytest.raises(CalibrationError, match=r"\(n, E \+ 1\) array"):
        e.predict_exit_mj(np.array([0.1, 0.2]))


def test_per_op_by_hand() -> None:
    """1 pJ per MAC, nothing per byte: E = MACs × 1e-9 mJ; the tiny smallest subnet has 26,400 MACs."""
    space = TINY.space()
    small, big = space.smallest(), space.largest()
    assert count_macs(TINY, small) == 26_400
    e = EnergyPredictor(load_profile("host"), arch_config=TINY, op_energy=OpEnergy(1.0, 0.0, "test"))
    np.testing.assert_allclose(e.predict_mj([0.1, 0.1], [small, big]),
                               [26_400e-9, count_macs(TINY, big) * 1e-9])
    assert e.describe()["method"] == "per_op" and e.describe()["op_energy"]["source"] == "test"
    with pytest.raises(CalibrationError, match="needs the subnets"):
        e.predict_mj([0.1])


def test_per_op_bytes_and_static_power_and_exits() -> None:
    space = TINY.space()
    s = SubnetConfig((1, 2, 0, 3), (1, 1))
    e = EnergyPredictor(load_profile("host"), arch_config=TINY, op_energy=OpEnergy(2.0, 10.0), idle_power_w=1.5)
    ks = subnet_kernels(TINY, s)
    dynamic = 1e-9 * sum(2.0 * k.macs + 10.0 * k.bytes for k in ks)
    np.testing.assert_allclose(e.predict_mj([0.3], [s]), [dynamic + 1.5 * 0.3])
    heads = [1e-9 * sum(2.0 * k.macs + 10.0 * k.bytes for k in exit_kernels(TINY, i)) for i in (0, 1)]
    leave = e.predict_exit_mj(np.zeros((1, 3)), [s])
    np.testing.assert_allclose(leave[0, 2], dynamic + heads[0] + heads[1])  # all exits fail: every head paid
    assert leave[0, 0] < leave[0, 1] < leave[0, 2]
    assert space.size > 0
    with pytest.raises(CalibrationError, match="needs the supernet's architecture config"):
        EnergyPredictor(load_profile("host"), op_energy=OpEnergy(1.0, 1.0))


class _OpEnergyField(Frozen):
    pj_per_mac: float
    pj_per_byte: float
    source: str


class _ProfileWithOpEnergy(DeviceProfile):
    op_energy: _OpEnergyField


class _ModeWithIdle(PowerMode):
    idle_power_w: Quantity


def test_profile_fields_are_read_when_present() -> None:
    """A profile carrying ``op_energy`` and a mode carrying ``idle_power_w`` (not in schema v1) are used."""
    base = load_profile("jetson-orin")
    modes = tuple(_ModeWithIdle(**m.model_dump(), idle_power_w=Quantity(value=4.0, unit="W", source="test"))
                  for m in base.power_modes)
    profile = _ProfileWithOpEnergy(**{**base.model_dump(), "power_modes": modes},
                                   op_energy=_OpEnergyField(pj_per_mac=1.0, pj_per_byte=0.0, source="test"))
    e = EnergyPredictor(profile, "15W", arch_config=TINY)
    assert e.method == "per_op" and e.idle_power_w == 4.0
    small = TINY.space().smallest()
    np.testing.assert_allclose(e.predict_mj([0.5], [small]), [26_400e-9 + 4.0 * 0.5])


def test_bad_input() -> None:
    e = EnergyPredictor.from_device("host")
    with pytest.raises(CalibrationError, match="finite and >= 0 ms, but got -1.0"):
        e.predict_mj([0.1, -1.0])
    with pytest.raises(ProfileError, match="no power mode 'turbo'"):
        EnergyPredictor(load_profile("host"), "turbo")
    with pytest.raises(CalibrationError, match="batch must be >= 1"):
        EnergyPredictor(load_profile("host"), batch=0)
    with pytest.raises(CalibrationError, match="power_w must be a finite number of watts > 0"):
        EnergyPredictor(load_profile("host"), power_w=0.0)
    with pytest.raises(CalibrationError, match="`pj_per_mac` must be a finite number >= 0"):
        OpEnergy(-1.0, 0.0)
    assert e.predict_mj([]).shape == (0,)
