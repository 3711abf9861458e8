"""predictors.units.macs_table: the batch MACs of the search equal the kernel-table count subnet by subnet."""

from __future__ import annotations

import numpy as np
import pytest

from predictors.units import macs_table
from supernet.cost import count_macs
from supernet.registry import get_preset


@pytest.mark.parametrize("family, preset", [("cnn", "cifar-default"), ("cnn", "tiny"), ("vit", "cifar-vit"),
                                            ("vit", "tiny")])
def test_macs_table_equals_count_macs(family, preset):
    config = get_preset(family, preset)
    space = config.space()
    rng = np.random.default_rng(0)
    subs = [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(200))]
    table = macs_table(config)
    got = table(subs).astype(np.int64)
    assert got.shape == (len(subs),)
    assert got.tolist() == [count_macs(config, s) for s in subs]
    assert got[0] > got[1] > 0 and len(set(got.tolist())) > 50  # the subnets differ, and so do their MACs
    assert table([]).shape == (0,)
