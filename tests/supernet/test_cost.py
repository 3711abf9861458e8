"""supernet.cost.MacsTable: the batch MACs of the search equal the kernel-table count subnet by subnet."""

from __future__ import annotations

import numpy as np
import pytest

from supernet.cost import MacsTable, count_macs
from supernet.registry import get_preset


@pytest.mark.parametrize("family, preset", [("cnn", "cifar-default"), ("cnn", "tiny"), ("vit", "cifar-vit"),
                                            ("vit", "tiny")])
def test_macs_table_equals_count_macs(family, preset):
    config = get_preset(family, preset)
    space = config.space()
    rng = np.random.default_rng(0)
    subs = [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(200))]
    table = MacsTable(config)
    got = table(subs)
    assert got.dtype == np.int64 and got.shape == (len(subs),)
    assert got.tolist() == [count_macs(config, s) for s in subs]
    assert got[0] > got[1] > 0 and len(set(got.tolist())) > 50  # the subnets differ, and so do their MACs
    assert table([]).shape == (0,)
