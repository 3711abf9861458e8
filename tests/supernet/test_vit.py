"""The ViT family: config errors, cost model, elastic heads and widths, extraction and ONNX export."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from supernet.checkpoint import load_supernet, save_supernet
from supernet.errors import ArchStringError, ConfigError
from supernet.registry import extract, get_family, get_preset
from supernet.static_vit import StaticViT
from supernet.vit import PRESETS, ViTConfig, ViTSupernet, count_macs, exit_layers, exit_macs, vit_layers

TINY = PRESETS["tiny"]


def _net(config: ViTConfig = TINY, seed: int = 0) -> ViTSupernet:
    """A supernet with randomised weights (LayerNorm affine terms and biases too, so a wrong slice shows)."""
    torch.manual_seed(seed)
    net = ViTSupernet(config, mean=(0.4,) * config.in_channels, std=(0.3,) * config.in_channels)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.uniform_(-0.3, 0.3) if name.endswith("bias") else p.uniform_(0.5, 1.5)
            elif p.dim() >= 2:
                p.normal_(0, 0.3)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _subnets(space, rng: np.random.Generator, n: int = 6) -> list:
    return [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(n))]


# ---- configs and errors ----------------------------------------------------------------------
def test_presets_are_registered_and_sized():
    fam = get_family("vit")
    assert fam.config_cls is ViTConfig and fam.build is ViTSupernet and set(fam.presets) == {"tiny", "cifar-vit",
                                                                                             "cifar-vit-patch4", "cifar-vit-256"}
    assert get_preset("vit", "cifar-vit-256").n_patches == 256
    cifar = get_preset("vit", "cifar-vit")
    assert cifar.n_patches == 64 and cifar.head_dim == 24
    plain = get_preset("vit", "cifar-vit-patch4")  # the stem ablation: the same tokens from a plain patch embedding
    assert plain.n_patches == 64 and plain.stem_channels == 0 and plain.space() == cifar.space()
    assert 0.95 < count_macs(plain, plain.space().largest()) / count_macs(cifar, cifar.space().largest()) < 1.0
    space = cifar.space()
    assert 25e6 <= count_macs(cifar, space.largest()) <= 31e6
    assert count_macs(cifar, space.smallest()) <= 0.3 * count_macs(cifar, space.largest())
    assert TINY.n_patches == 16 and len(TINY.space().token_methods) == 2
    assert ViTConfig.from_dict(cifar.to_dict()) == cifar and ViTConfig.from_dict(TINY.to_dict()) == TINY


@pytest.mark.parametrize("kwargs, match", [
    (dict(token_choices=(0.0, 1.0)), r"\(0, 1\]"),
    (dict(token_choices=(0.5, 1.2)), r"\(0, 1\]"),
    (dict(token_choices=(0.3, 1.0)), "ToMe merges at most half"),
    (dict(dim=30, max_heads=4, head_choices=(2, 4)), "do not divide the embedding width dim=30"),
    (dict(resolution=8, patch=3), "patch size 3 does not divide the input resolution 8"),
    (dict(resolution=12, patch=4, stem_channels=8, stem_stride=2), "patch size 4 does not divide the 6×6 map"),
    (dict(head_choices=(1, 3)), "head_choices"),
    (dict(token_blocks=(1,)), "token_blocks"),  # the last block computes only CLS
    (dict(exit_blocks=(1,)), "exit_blocks"),
])
def test_config_errors_are_one_line(kwargs, match):
    with pytest.raises(ConfigError, match=match) as e:
        dataclasses.replace(TINY, **kwargs)
    assert "\n" not in str(e.value)


def test_topk_only_space_allows_small_keep_ratios():
    c = dataclasses.replace(TINY, token_choices=(0.3, 1.0), token_methods=("topk",))
    assert c.tokens_per_block(c.space().make((1, 1), (0,), (0,), heads=(1, 1))) == [(17, 6), (6, 1)]


def test_increasing_schedule_and_cnn_strings_are_refused():
    c = dataclasses.replace(TINY, depth=3, token_blocks=(0, 1))
    space = c.space()
    with pytest.raises(ArchStringError, match="non-increasing"):
        space.parse("w1-1-1_h1-1-1_x0_t0-2_m0")
    assert space.parse("w1-1-1_h1-1-1_x0_t2-0_m0").tokens == (2, 0)
    with pytest.raises(ArchStringError):
        TINY.space().parse("w3-3-3-3_x00")  # a CNN string


# ---- cost model ------------------------------------------------------------------------------
def test_tokens_per_block_and_layers():
    c = dataclasses.replace(TINY, depth=4, token_blocks=(0, 1, 2), exit_blocks=(0, 2))
    space = c.space()
    sub = space.make((1, 0, 1, 1), (1, 0), (1, 1, 0), heads=(1, 0, 1, 0), method=1)  # 0.75, 0.75, 0.5
    assert c.tokens_per_block(sub) == [(17, 13), (13, 10), (10, 6), (6, 1)]
    layers = vit_layers(c, sub)
    names = [r["name"] for r in layers]
    assert names[:2] == ["stem.patch", "stem.pos"] and names[-3:] == ["pool", "norm", "classifier"]
    assert all(r["name"].split(".")[0] in {"stem", "b0", "b1", "b2", "b3", "pool", "norm", "classifier"} for r in layers)
    by = {r["name"]: r for r in layers}
    assert by["b1.attn"]["macs"] == 2 * 13 * 13 * 16 and by["b1.attn"]["heads"] == 1 and by["b1.attn"]["proportional"]
    assert not by["b0.attn"]["proportional"]  # sizes exist only after the first merge
    assert by["b1.qkv"] == {"name": "b1.qkv", "op": "linear", "macs": 13 * 32 * 48, "rows": 13, "cin": 32, "cout": 48,
                            "params": 32 * 48 + 48}
    assert by["b1.fc1"]["rows"] == 10 and by["b1.fc1"]["cout"] == 32  # after the merge; width 0.5 of 64
    assert by["b2.reduce"]["method"] == "tome" and (by["b2.reduce"]["tokens_in"], by["b2.reduce"]["tokens_out"]) == (10, 6)
    assert by["b3.attn"]["queries"] == 1 and by["b3.attn"]["macs"] == 2 * 6 * 16 and by["b3.fc2"]["rows"] == 1
    assert count_macs(c, sub) == sum(r["macs"] for r in layers)
    costs = exit_macs(c, sub)
    head = sum(r["macs"] for r in exit_layers(c, 0))
    assert [r["op"] for r in exit_layers(c, 1)] == ["pool", "norm", "linear", "decide"]
    assert costs[-1] == count_macs(c, sub) + head  # exit 0 enabled, exit 1 off
    upto_b0 = sum(r["macs"] for r in layers if r["name"].split(".")[0] in {"stem", "b0"})
    assert costs[0] == upto_b0 + head
    assert exit_macs(c, space.largest())[-1] == count_macs(c, space.largest())


def test_reduction_cuts_macs_and_methods_cost_alike_but_for_the_matching():
    c = PRESETS["cifar-vit"]
    space = c.space()
    big = space.largest()
    half_topk = space.replace(big, tokens=(0, 0, 0, 0), method=0)
    half_tome = space.replace(big, tokens=(0, 0, 0, 0), method=1)
    assert c.tokens_per_block(half_topk) == c.tokens_per_block(half_tome) == \
        [(65, 65), (65, 33), (33, 17), (17, 9), (9, 5), (5, 1)]
    assert count_macs(c, big) / count_macs(c, half_topk) > 1.9
    assert abs(count_macs(c, half_tome) - count_macs(c, half_topk)) < 0.02 * count_macs(c, half_topk)


# ---- elastic heads and widths ------------------------------------------------------------------
def test_heads_and_widths_really_slice():
    net = _net()
    x = torch.rand(4, 1, 8, 8)
    space = net.space
    a = net(x, space.make((1, 1), (0,), (2,), heads=(1, 1)))
    b = net(x, space.make((1, 1), (0,), (2,), heads=(0, 1)))
    c = net(x, space.make((0, 1), (0,), (2,), heads=(1, 1)))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    with torch.no_grad():  # heads beyond the active ones are not read
        net.blocks[0].qkv.weight.view(3, 32, 32)[:, 16:] = 7.0
        net.blocks[0].proj.weight[:, 16:] = 7.0
        net.blocks[0].fc1.weight[32:] = 7.0
    assert torch.allclose(net(x, space.make((0, 1), (0,), (2,), heads=(0, 1))),
                          _net()(x, space.make((0, 1), (0,), (2,), heads=(0, 1))))


@pytest.mark.parametrize("trained", [(1,), (0, 1)])
def test_sorting_keeps_heads_and_channels_nested_and_trained_subnets_unchanged(trained):
    c = dataclasses.replace(TINY, dim=48, max_heads=4, head_choices=(1, 2, 4), width_choices=(0.25, 0.5, 1.0),
                            depth=3, token_blocks=(0, 1), exit_blocks=(0, 1))
    trained = tuple(i + 1 for i in trained)  # levels (2,) or (1, 2)
    net = _net(c, seed=3)
    space = net.space
    rng = np.random.default_rng(0)
    subs = [space.largest()] + [space.sample(rng, trained) for _ in range(8)]
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        before = [net.forward_exits(x, s) for s in subs]
        old_qkv = net.blocks[1].qkv.weight.clone()
    perms = [b.sort_channels(trained) for b in net.blocks]
    perm, hperm = perms[1]
    block = net.blocks[1]
    for lvl in trained:  # every trained level keeps its channel and head sets
        k, h = block.hidden[lvl], block.heads[lvl]
        assert sorted(perm[:k].tolist()) == list(range(k)) and sorted(hperm[:h].tolist()) == list(range(h))
    assert sorted(hperm.tolist()) == list(range(4)) and sorted(perm.tolist()) == list(range(96))
    # inside the first trained segment, importance is now descending
    mlp_imp = block.fc2.weight.abs().sum(0)
    head_imp = block.proj.weight.abs().view(48, 4, 12).sum((0, 2))
    k0, h0 = block.hidden[trained[0]], block.heads[trained[0]]
    assert torch.all(mlp_imp[: k0 - 1] >= mlp_imp[1:k0]) and torch.all(head_imp[: h0 - 1] >= head_imp[1:h0])
    ch = (hperm[:, None] * 12 + torch.arange(12)).reshape(-1)
    assert torch.equal(block.qkv.weight.view(3, 48, 48), old_qkv.view(3, 48, 48)[:, ch])
    with torch.no_grad():
        for s, want in zip(subs, before, strict=True):
            for got, ref in zip(net.forward_exits(x, s), want, strict=True):
                assert (got - ref).abs().max().item() <= 1e-5


def test_hooks_and_features():
    net = _net()
    assert net.activate_width(0, 1) is None
    exit_ids = {id(p) for p in net.exits.parameters()}
    assert exit_ids and not exit_ids & {id(p) for p in net.backbone_parameters()}
    sub = net.space.make((1, 0), (1,), (0,), heads=(0, 1), method=1)
    x = torch.rand(3, 1, 8, 8)
    feats = net.forward_exits(x, sub, features=True)
    assert feats[0].shape == (3, 9, 32)  # tokens after block 0's merge (16 → 8, plus CLS)
    logits = net.forward_exits(x, sub)
    assert torch.allclose(net.exit_logits(feats[:-1], sub)[0], logits[0]) and torch.allclose(feats[-1], logits[-1])
    assert net.layers(sub) == vit_layers(TINY, sub) and net.tokens_per_block(sub) == [(17, 9), (9, 1)]


def test_checkpoint_round_trip(tmp_path):
    net = _net()
    path = tmp_path / "vit.safetensors"
    save_supernet(path, net, {"family": "vit", "config": TINY.to_dict(), "mean": [0.4], "std": [0.3]})
    again, _ = load_supernet(path)
    assert isinstance(again, ViTSupernet) and again.config == TINY
    x = torch.rand(2, 1, 8, 8)
    sub = net.space.sample(np.random.default_rng(1))
    assert torch.equal(again(x, sub), net(x, sub))


# ---- extraction and export ---------------------------------------------------------------------
@st.composite
def vit_configs(draw):
    stem = draw(st.sampled_from([(0, 1, 1), (6, 1, 1), (6, 2, 2)]))
    patch = draw(st.sampled_from([1, 2] if stem[2] == 2 else [2, 4]))
    heads = draw(st.sampled_from([(1, 2), (2, 4), (1, 3)]))
    depth = draw(st.integers(2, 3))
    token_blocks = tuple(b for b in range(depth - 1) if draw(st.booleans()))
    methods = draw(st.sampled_from([("topk",), ("tome",), ("topk", "tome")]))
    exits = tuple(b for b in range(depth - 1) if draw(st.booleans()))
    return ViTConfig(in_channels=1, resolution=8, patch=patch, stem_channels=stem[0], stem_layers=stem[1],
                     stem_stride=stem[2], dim=heads[-1] * 8, depth=depth, max_heads=heads[-1], head_choices=heads,
                     mlp_ratio=draw(st.sampled_from([1.0, 2.0])), width_choices=(0.5, 1.0), exit_blocks=exits,
                     token_blocks=token_blocks, token_choices=(0.5, 0.75, 1.0), token_methods=methods)


@given(vit_configs(), st.integers(0, 1000))
@settings(max_examples=25, deadline=None)
def test_extraction_matches_supernet(config, seed):
    net = _net(config, seed)
    rng = np.random.default_rng(seed)
    x = torch.rand(4, 1, 8, 8)
    for sub in _subnets(net.space, rng, 4):
        model = extract(net, sub)
        assert isinstance(model, StaticViT)
        with torch.no_grad():
            want, got = net.forward_exits(x, sub), model.forward_all(x)
            assert (model(x) - want[-1]).abs().max().item() <= 1e-5
        assert len(got) == len(want) == len(config.exit_blocks) + 1
        for a, b in zip(got, want, strict=True):
            assert (a - b).abs().max().item() <= 1e-5
        tokens = [blk.norm2.weight.shape for blk in model.blocks]  # static blocks hold sliced weights only
        assert len(tokens) == config.depth
        assert sum(p.numel() for p in model.parameters()) <= sum(p.numel() for p in net.parameters())


def test_static_blocks_see_the_planned_token_counts():
    net = _net()
    sub = net.space.make((1, 1), (1,), (0,), heads=(1, 1), method=0)
    model = extract(net, sub)
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append((i[0].shape[1], o[0].shape[1]))) for b in model.blocks]
    model(torch.rand(2, 1, 8, 8))
    for h in hooks:
        h.remove()
    assert seen == TINY.tokens_per_block(sub) == [(17, 9), (9, 1)]


@pytest.mark.parametrize("arch, ops", [("w1-1_h1-1_x1_t2_m0", set()), ("w1-0_h1-0_x1_t0_m0", {"TopK", "GatherElements"}),
                                       ("w0-1_h1-1_x1_t1_m1", {"TopK", "ScatterElements", "ArgMax"})])
def test_static_subnet_exports_to_onnx_and_agrees(arch, ops):
    import onnx

    from predictors.onnx_io import export_multi_output_onnx, onnx_bytes, session
    from supernet.early_exit import AllExits

    net = _net(seed=4)
    sub = net.space.parse(arch)
    model = extract(net, sub)
    x = torch.rand(7, 1, 8, 8)
    data = onnx_bytes(model, torch.zeros(1, 1, 8, 8))
    graph = onnx.load_from_string(data).graph
    assert ops <= {n.op_type for n in graph.node}
    assert "Shape" not in {n.op_type for n in graph.node} or "tome" in net.space.token_method(sub)
    with torch.no_grad():
        want = model.forward_all(x)
    assert np.abs(session(data).run(None, {"image": x.numpy()})[0] - want[-1].numpy()).max() <= 1e-4
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        export_multi_output_onnx(AllExits(model), torch.zeros(1, 1, 8, 8), Path(d) / "all.onnx", ["logits_exit0", "logits"])
        for got, ref in zip(session(Path(d) / "all.onnx").run(None, {"image": x.numpy()}), want, strict=True):
            assert np.abs(got - ref.numpy()).max() <= 1e-4


def test_early_exit_model_with_merged_tokens_branches_in_onnx(tmp_path):
    """ToMe sizes cross the exit cut (packed as a last channel): the If export agrees per sample."""
    from predictors.onnx_io import export_branching_onnx, session
    from supernet.early_exit import EarlyExitCNN, exit_score

    net = _net(seed=5)
    sub = net.space.parse("w1-1_h1-1_x1_t0_m1")
    model = extract(net, sub)
    segments = model.segments()
    assert segments[0][1] == 0 and segments[1][1] is None and segments[0][0].packed_out and segments[1][0].packed_in
    xs = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        t0 = float(torch.quantile(exit_score(model.forward_all(xs)[0], "confidence"), 0.5))
    ee = EarlyExitCNN(model, sub.exits, (t0,)).eval()
    with torch.no_grad():
        ref_logits, ref_exit = ee.per_sample(ee.forward_all(xs))
        for i in range(len(xs)):  # the PyTorch branching model routes like the policy
            logits, taken = ee(xs[i: i + 1])
            assert int(taken) == int(ref_exit[i]) and torch.allclose(logits, ref_logits[i: i + 1], atol=1e-5)
    export_branching_onnx(ee, torch.zeros(1, 1, 8, 8), tmp_path / "m.onnx")
    sess = session(tmp_path / "m.onnx")
    taken = []
    for i in range(len(xs)):
        logits, e = sess.run(None, {"image": xs[i: i + 1].numpy()})
        taken.append(int(np.asarray(e).reshape(-1)[0]))
        assert np.abs(logits - ref_logits[i: i + 1].numpy()).max() <= 1e-4
    assert taken == ref_exit.tolist() and 0 < taken.count(0) < len(xs)


def test_tome_uses_proportional_attention_after_merging():
    """After a merge the next block weighs a merged token by its size: removing the sizes changes the output."""
    net = _net(seed=6)
    sub = net.space.parse("w1-1_h1-1_x0_t0_m1")
    model = extract(net, sub)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        h, size = model.blocks[0](model.stem((x - model.mean) / model.std))
        assert size is not None and math.isclose(float(size.sum()), 3 * 17)
        with_sizes = model.blocks[1](h, size)[0]
        without = model.blocks[1](h, None)[0]
    assert (with_sizes - without).abs().max().item() > 1e-4
    assert torch.allclose(model._final(with_sizes), net(x, sub), atol=1e-5)


def test_every_kernel_row_has_the_generic_fields():
    c = PRESETS["cifar-vit"]
    space = c.space()
    sub = space.sample(np.random.default_rng(3))
    rows = vit_layers(c, sub) + [r for e in range(len(c.exit_blocks)) for r in exit_layers(c, e)]
    ops = {"conv", "linear", "attention", "norm", "add", "act", "reduce", "pool", "decide"}
    for r in rows:
        assert {"name", "op", "macs", "rows", "cin", "cout", "params"} <= set(r) and r["op"] in ops
    assert sum(r["params"] for r in vit_layers(c, space.largest())) > 0
    conv = [r for r in rows if r["op"] == "conv"]
    assert [r["name"] for r in conv] == ["stem.conv0", "stem.patch"] and conv[1]["h_in"] == 16 and conv[1]["h_out"] == 8
