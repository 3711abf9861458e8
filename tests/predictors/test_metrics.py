"""Metrics on hand-computed examples."""

from __future__ import annotations

import math

import pytest

from predictors import kendall_tau, rmse, within
from supernet.errors import ConfigError


def test_kendall_tau_hand_example() -> None:
    # pairs of (1,2,3,4) vs (1,3,2,4): 6 pairs, 5 concordant, 1 discordant -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1.0], [2.0]))


def test_rmse_and_within() -> None:
    assert rmse([1.0, 3.0], [1.0, 1.0]) == pytest.approx(math.sqrt(2.0))
    # 10.5 is 5 % off 10, 12 is 20 % off 10, 9.5 is 5 % off 10
    assert within([10.5, 12.0, 9.5], [10.0, 10.0, 10.0], 10) == pytest.approx(2 / 3)
    assert within([10.5, 12.0, 9.5], [10.0, 10.0, 10.0], 4) == 0.0
    with pytest.raises(ConfigError, match="same length"):
        rmse([1.0], [1.0, 2.0])
