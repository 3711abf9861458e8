from __future__ import annotations

import numpy as np
import pytest
import torch

from supernet.bn import recalibrate
from supernet.cnn import PRESETS, CNNSupernet, cnn_layers, count_macs
from supernet.dynamic import segment_sort
from supernet.registry import extract
from supernet.static import StaticCNN


def _trained_like(seed: int = 0) -> CNNSupernet:
    """A tiny supernet with randomised weights and BN statistics (so equivalence is non-trivial)."""
    torch.manual_seed(seed)
    model = CNNSupernet(PRESETS["tiny"], mean=(0.3,), std=(0.2,))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("seed", range(5))
def test_extraction_matches_supernet(seed):
    model = _trained_like(seed)
    rng = np.random.default_rng(seed)
    x = torch.rand(8, 1, 8, 8)
    for cfg in [model.space.smallest(), model.space.largest()] + [model.space.sample(rng) for _ in range(6)]:
        sub = extract(model, cfg)
        assert isinstance(sub, StaticCNN)
        assert (sub(x) - model(x, cfg)).abs().max().item() <= 1e-5
        assert sum(p.numel() for p in sub.parameters()) <= sum(p.numel() for p in model.parameters())


def test_extracted_model_has_sliced_shapes_and_fewer_macs():
    model = _trained_like()
    small, large = model.space.smallest(), model.space.largest()
    s, ll = extract(model, small), extract(model, large)
    assert s.blocks[0].expand[0].weight.shape[0] == PRESETS["tiny"].hidden_widths(0)[0]
    assert ll.blocks[0].expand[0].weight.shape[0] == PRESETS["tiny"].hidden_widths(0)[-1]
    assert count_macs(model.config, small) < count_macs(model.config, large)
    assert sum(layer["macs"] for layer in cnn_layers(model.config, small)) == count_macs(model.config, small)


def test_extract_does_not_depend_on_supernet_code():
    import inspect

    import supernet.static as static

    src = inspect.getsource(static)
    assert "import supernet" not in src and "from supernet" not in src


def test_switchable_bn_keeps_statistics_separate_per_width():
    torch.manual_seed(0)
    model = CNNSupernet(PRESETS["tiny"]).train()
    space = model.space
    bns = model.blocks[0].bn1.bns
    before = [bn.running_mean.clone() for bn in bns]
    x = torch.rand(16, 1, 8, 8) * 3
    model(x, space.uniform(1))
    after = [bn.running_mean for bn in bns]
    assert not torch.equal(before[1], after[1])  # the active width's statistics moved
    for i in (0, 2, 3):
        assert torch.equal(before[i], after[i])  # the others did not
    assert int(bns[1].num_batches_tracked) == 1 and int(bns[0].num_batches_tracked) == 0


def test_segment_sort_keeps_segments():
    scores = torch.tensor([1.0, 5.0, 3.0, 9.0, 2.0, 8.0])
    perm = segment_sort(scores, (2, 4))
    assert perm.tolist() == [1, 0, 3, 2, 5, 4]
    assert segment_sort(scores, ()).tolist() == [3, 5, 1, 2, 4, 0]


def test_importance_sorting_is_nested_and_preserves_trained_subnets():
    model = _trained_like(1)
    space = model.space
    x = torch.rand(8, 1, 8, 8)
    trained = (2, 3)
    before = {i: model(x, space.uniform(i)).detach() for i in trained}
    old = model.blocks[1].expand.weight.detach().clone()
    k_trained = model.blocks[1].widths[2]
    perms = [b.sort_channels(trained, "l1") for b in model.blocks]
    perm = perms[1]
    # Channels of the trained width stay a subset (a permutation of range(k)): nested sets kept.
    assert sorted(perm[:k_trained].tolist()) == list(range(k_trained))
    # Inside the trained segment, channels are now in descending importance.
    imp = model.blocks[1].project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(imp[: k_trained - 1] >= imp[1:k_trained])
    assert torch.equal(model.blocks[1].expand.weight, old[perm])
    for i in trained:  # every trained subnet computes the same function after sorting
        assert (model(x, space.uniform(i)) - before[i]).abs().max().item() <= 1e-5


def test_bn_recalibration_gives_exact_statistics():
    model = _trained_like()
    sub = extract(model, model.space.sample(np.random.default_rng(0)))
    torch.manual_seed(0)
    data = [torch.rand(32, 1, 8, 8) for _ in range(3)]
    seen = recalibrate(sub, data)
    assert seen == 96 and not sub.training
    # The stem BN sees the normalised input through a fixed conv: its mean is exactly computable.
    with torch.no_grad():
        feats = torch.cat([sub.stem[0]((x - sub.mean) / sub.std) for x in data])
    assert torch.allclose(sub.stem[1].running_mean, feats.mean(dim=(0, 2, 3)), atol=1e-5)
    assert sub.stem[1].momentum == 0.1  # momentum restored
