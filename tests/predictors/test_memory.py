"""Memory predictor: hand-built ONNX graphs, the tiny CNN by hand, and layer table == exported ONNX."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from hw_profiles import load_profile
from predictors.host_latency import subnet_onnx
from predictors.memory import (
    LivenessRules,
    MemoryEstimate,
    MemoryPredictor,
    mlas_channel_block,
    onnx_memory,
    onnxruntime_cpu_rules,
    rules_for_device,
    subnet_memory,
)
from predictors.onnx_graph import DynamicShapeError, GraphError
from supernet.cnn import PRESETS, CNNSupernet
from supernet.errors import ConfigError
from supernet.space import SubnetConfig

F = TensorProto.FLOAT


def _init(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.full(shape, 0.5, dtype=np.float32), name)


def _model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _chain() -> onnx.ModelProto:
    """x[1,4,8,8] → Conv 1×1 to 8 → Relu → Conv 3×3 stride 2 to 4 → y[1,4,4,4]."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1])]
    return _model(nodes, [helper.make_tensor_value_info("x", F, [1, 4, 8, 8])],
                  [helper.make_tensor_value_info("y", F, None)],
                  [_init("w1", 8, 4, 1, 1), _init("b1", 8), _init("w2", 4, 8, 3, 3), _init("b2", 4)])


def test_chain_by_hand() -> None:
    m = onnx_memory(_chain())
    # weights (32 + 8 + 288 + 4) floats; input 4*64 floats; c1 = r1 (in place) 8*64 floats, y 4*16 floats
    assert m == MemoryEstimate(weight_bytes=332 * 4, input_bytes=256 * 4, arena_bytes=(512 + 64) * 4,
                               peak_at="Conv_2")
    assert m.activation_bytes == (256 + 576) * 4 and m.total_bytes == (332 + 256 + 576) * 4


def test_chain_without_inplace_and_at_fp16() -> None:
    assert onnx_memory(_chain(), rules=LivenessRules(inplace_activations=False)).arena_bytes == 1024 * 4
    half = onnx_memory(_chain(), precision="fp16")
    assert (half.weight_bytes, half.input_bytes, half.arena_bytes) == (332 * 2, 256 * 2, 576 * 2)


def test_nodes_out_of_order_are_sorted() -> None:
    m = _chain()
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes[::-1])
    assert onnx_memory(m).arena_bytes == 576 * 4


def _residual(a_is_output: bool = False) -> onnx.ModelProto:
    """a = Conv(x) [1,8,8,8]; h = Relu(Conv(a)) [1,4,8,8]; p = Conv(h) [1,8,8,8]; out = Add(a, p)."""
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w1"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c"], ["h"]),
             helper.make_node("Conv", ["h", "w2"], ["p"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["a", "p"], ["out"])]
    outputs = [helper.make_tensor_value_info("out", F, None)]
    if a_is_output:
        outputs.append(helper.make_tensor_value_info("a", F, None))
    return _model(nodes, [helper.make_tensor_value_info("x", F, [1, 8, 8, 8])], outputs,
                  [_init("w0", 8, 8, 1, 1), _init("w1", 4, 8, 1, 1), _init("w2", 8, 4, 1, 1)])


def test_residual_add_fused_into_the_conv() -> None:
    a, h = 512 * 4, 256 * 4  # bytes of a (= p = out) and h
    # fused: the project conv writes into a's buffer, so its step holds a + h only
    assert onnx_memory(_residual()).arena_bytes == a + h
    # not fused: the conv step holds a + h + p, the Add a + p + out
    assert onnx_memory(_residual(), rules=LivenessRules(fuse_conv_add=False)).arena_bytes == 3 * a
    # fused, but a outlives the Add (a graph output): the conv needs a buffer of its own
    assert onnx_memory(_residual(a_is_output=True)).arena_bytes == 2 * a + h
    assert onnx_memory(_residual()).weight_bytes == (64 + 32 + 32) * 4


def test_alias_ops_and_scalar_constants() -> None:
    """Flatten shares its input's buffer; Clip's scalar bounds are not weights; a [2] Constant is."""
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]),
             helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(0.0, np.float32))),
             helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(6.0, np.float32))),
             helper.make_node("Clip", ["g", "lo", "hi"], ["r"]),
             helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, 16], np.int64))),
             helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)]
    m = _model(nodes, [helper.make_tensor_value_info("x", F, [1, 16, 4, 4])],
               [helper.make_tensor_value_info("y", F, None)], [_init("w", 10, 16)])
    est = onnx_memory(m)
    assert est.weight_bytes == 160 * 4 + 2 * 8  # the Gemm weight (fp32) and the int64 shape
    assert est.arena_bytes == (16 + 10) * 4  # g (= r = f) and y at the Gemm
    assert onnx_memory(m, precision="int8").weight_bytes == 160 + 2 * 8  # int64 stays 8 bytes


def _pooled(channels: int = 20) -> onnx.ModelProto:
    """x[1,3,4,4] → Conv 1×1 to ``channels`` → GlobalAveragePool → Flatten → Gemm to 10."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1)]
    return _model(nodes, [helper.make_tensor_value_info("x", F, [1, 3, 4, 4])],
                  [helper.make_tensor_value_info("y", F, None)],
                  [_init("w", channels, 3, 1, 1), _init("b", channels), _init("wf", 10, channels)])


def test_blocked_layout_by_hand() -> None:
    """Rule 5 at a block of 8: 20 channels are stored as 24, filters and biases padded alike, and a reorder
    copies the pooled map back to NCHW before Flatten."""
    plain = onnx_memory(_pooled())
    assert plain.arena_bytes == (320 + 20) * 4 and plain.weight_bytes == (60 + 20 + 200) * 4
    blocked = onnx_memory(_pooled(), rules=LivenessRules(channel_block=8))
    # GAP step: c (24×4×4) + g (24); the reorder step g (24) + its NCHW copy (20) is smaller
    assert blocked.arena_bytes == (384 + 24) * 4 and blocked.peak_at == "GlobalAveragePool_1"
    assert blocked.weight_bytes == (24 * 3 + 24 + 200) * 4  # the NCHW-input filter keeps its 3 input channels
    assert onnx_memory(_pooled(16), rules=LivenessRules(channel_block=8)).arena_bytes == (256 + 16) * 4
    assert mlas_channel_block() in (1, 8, 16)
    assert onnxruntime_cpu_rules().channel_block == mlas_channel_block()
    assert rules_for_device(load_profile("host")) == onnxruntime_cpu_rules()
    assert rules_for_device(load_profile("jetson-orin")) == LivenessRules()


def _if_model() -> onnx.ModelProto:
    """h = x·W [1,32]; If(cond): then y = (h·W1)·W2 (W1, W2 inside the branch), else y = h·W3 (outer W3)."""
    then = helper.make_graph([helper.make_node("MatMul", ["h", "w1"], ["t1"]),
                              helper.make_node("MatMul", ["t1", "w2"], ["yt"])], "then", [],
                             [helper.make_tensor_value_info("yt", F, [1, 8])],
                             initializer=[_init("w1", 32, 64), _init("w2", 64, 8)])
    other = helper.make_graph([helper.make_node("MatMul", ["h", "w3"], ["ye"])], "else", [],
                              [helper.make_tensor_value_info("ye", F, [1, 8])])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    return _model(nodes, [helper.make_tensor_value_info("x", F, [1, 16]),
                          helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                  [helper.make_tensor_value_info("y", F, [1, 8])], [_init("w", 16, 32), _init("w3", 32, 8)])


def test_if_costs_its_dearer_branch_on_top_of_the_outer_tensors() -> None:
    est = onnx_memory(_if_model())
    # h (32 floats) is live during the If; the then-branch holds t1 (64) + yt (8) at its peak
    assert est.arena_bytes == (32 + 64 + 8) * 4
    assert est.peak_at == "If_1"
    assert est.weight_bytes == (16 * 32 + 32 * 64 + 64 * 8 + 32 * 8) * 4  # branch initializers count
    assert est.input_bytes == 16 * 4 + 1  # the bool condition


def test_errors() -> None:
    m = _chain()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(DynamicShapeError, match="dynamic dimensions"):
        onnx_memory(m)
    assert onnx_memory(m, batch=2).input_bytes == 2 * 256 * 4
    with pytest.raises(GraphError, match="not a serialised ONNX model"):
        onnx_memory(b"not onnx")
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        onnx_memory(_chain(), precision="fp8")
    body = helper.make_graph([helper.make_node("Identity", ["c"], ["c_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("c_out", TensorProto.BOOL, [])])
    loop = _model([helper.make_node("Relu", ["x"], ["r"]),
                   helper.make_node("Loop", ["n", "go"], [], body=body)],
                  [helper.make_tensor_value_info("x", F, [1, 4]),
                   helper.make_tensor_value_info("n", TensorProto.INT64, []),
                   helper.make_tensor_value_info("go", TensorProto.BOOL, [])],
                  [helper.make_tensor_value_info("r", F, [1, 4])])
    with pytest.raises(GraphError, match="Loop/Scan"):
        onnx_memory(loop)


# ---- the layer table -------------------------------------------------------------------------------------
TINY = PRESETS["tiny"]
# tiny, smallest subnet, fp32, by hand (bytes): the peak is block 0's dw: its input x (8×8×8, kept for
# the residual add), the expanded tensor e and the dw output d (4×8×8 each)
TINY_SMALLEST_ARENA = (512 + 256 + 256) * 4
# mean, std 2; stem 80; b0 116; b1 156; b2 360; b3 432; head + classifier 1130 floats
TINY_SMALLEST_WEIGHTS = (2 + 80 + 116 + 156 + 360 + 432 + 1130) * 4


def test_tiny_smallest_by_hand() -> None:
    s = TINY.space().smallest()
    est = subnet_memory(TINY, s)
    assert est == MemoryEstimate(weight_bytes=TINY_SMALLEST_WEIGHTS, input_bytes=64 * 4,
                                 arena_bytes=TINY_SMALLEST_ARENA, peak_at="b0.dw")
    # without the conv+add fusion, block 0's add holds x, p and its output (8×8×8 each)
    assert subnet_memory(TINY, s, rules=LivenessRules(fuse_conv_add=False)).arena_bytes == 3 * 512 * 4
    # batch and precision scale activations; weights scale with precision only
    b4 = subnet_memory(TINY, s, batch=4, precision="fp16")
    assert (b4.weight_bytes, b4.input_bytes, b4.arena_bytes) == (TINY_SMALLEST_WEIGHTS // 2, 64 * 2 * 4,
                                                                 TINY_SMALLEST_ARENA // 2 * 4)
    # largest: block 0's dw holds x (512) + e (1024) + d (1024 floats)
    assert subnet_memory(TINY, TINY.space().largest()).arena_bytes == 2560 * 4
    # blocked layout (8 channels): e and d of block 0 have 4 channels stored as 8
    assert subnet_memory(TINY, s, rules=LivenessRules(channel_block=8)).arena_bytes == 3 * 512 * 4


def test_tiny_exit_head_by_hand() -> None:
    """Exit 0 after block 0: pool to 2×2, fc1 32×32 (+32 folded BN bias), classifier 32×10 + 10."""
    s = SubnetConfig((0, 0, 0, 0), (1, 0))
    est = subnet_memory(TINY, s)
    assert est.weight_bytes == TINY_SMALLEST_WEIGHTS + (32 * 32 + 32 + 32 * 10 + 10) * 4
    assert est.arena_bytes == TINY_SMALLEST_ARENA  # the head (x + 32 + 32 floats at fc1) stays below block 0's dw
    pred = MemoryPredictor(TINY)
    assert pred.p_heads[0] == (512 + 32 + 32) * 4


def test_cascade_scout() -> None:
    """Scout first (its tensors freed, its logits kept), then the subnet; both sets of weights, one mean/std."""
    big = SubnetConfig((3, 3, 3, 3), (0, 0), (), 1)
    est = subnet_memory(TINY, big)
    alone = subnet_memory(TINY, SubnetConfig((3, 3, 3, 3), (0, 0)))
    assert est.weight_bytes == alone.weight_bytes + TINY_SMALLEST_WEIGHTS - 2 * 4
    assert est.arena_bytes == alone.arena_bytes + 10 * 4


def _predictor_subnets(config, n: int, seed: int) -> list[SubnetConfig]:
    space = dataclasses.replace(config.space(), n_cascade=2)
    return space.sample_unique(np.random.default_rng(seed), n, [space.smallest(), space.largest()])


RULES = [LivenessRules(), LivenessRules(fuse_conv_add=False), LivenessRules(channel_block=8),
         LivenessRules(channel_block=16)]


@pytest.mark.parametrize("preset", ["tiny", "cifar-default"])
@pytest.mark.parametrize("rules", RULES)
def test_vectorised_equals_layer_by_layer(preset: str, rules: LivenessRules) -> None:
    config = PRESETS[preset]
    subnets = _predictor_subnets(config, 60, seed=3)
    pred = MemoryPredictor(config, "fp16", batch=2, rules=rules)
    exact = [pred.estimate(s) for s in subnets]
    assert np.array_equal(pred.predict_weight_bytes(subnets), [e.weight_bytes for e in exact])
    assert np.array_equal(pred.predict_arena_bytes(subnets), [e.arena_bytes for e in exact])
    assert np.array_equal(pred.predict_bytes(subnets), [e.total_bytes for e in exact])
    assert np.array_equal(pred.predict_activation_bytes(subnets), [e.activation_bytes for e in exact])
    assert pred.predict_bytes([]).shape == (0,)


def test_minimum_is_the_smallest_subnet() -> None:
    pred = MemoryPredictor(TINY)
    total, s = pred.minimum_bytes()
    assert s == TINY.space().smallest()
    assert total == TINY_SMALLEST_WEIGHTS + 64 * 4 + TINY_SMALLEST_ARENA


def test_predictor_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="unknown precision"):
        MemoryPredictor(TINY, "fp64")
    with pytest.raises(ConfigError, match="batch must be >= 1"):
        MemoryPredictor(TINY, batch=0)
    with pytest.raises(ConfigError, match="`cascade` must be in"):
        MemoryPredictor(TINY).predict_bytes([SubnetConfig((0, 0, 0, 0), (0, 0), (), 4)])
    d = MemoryPredictor(TINY).describe()
    assert d["precision"] == "fp32"
    assert d["rules"] == {"inplace_activations": True, "fuse_conv_add": True, "channel_block": 1}
    with pytest.raises(ConfigError, match="`channel_block` must be an integer >= 1"):
        LivenessRules(channel_block=0)


def _random_weights(config) -> CNNSupernet:
    """A supernet whose every tensor is distinct (the exporter de-duplicates equal initializers, which
    zero-initialised BN produces)."""
    torch.manual_seed(0)
    net = CNNSupernet(config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.dtype.is_floating_point and name not in ("mean", "std"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return net


@pytest.mark.parametrize("rules", RULES)
def test_layer_table_equals_exported_onnx(rules: LivenessRules) -> None:
    """Path (b) == path (a) on exported static subnets of the tiny CNN, at two batch sizes."""
    net = _random_weights(TINY)
    space = TINY.space()
    subnets = [SubnetConfig(s.widths, (0, 0)) for s in
               space.sample_unique(np.random.default_rng(0), 5, [space.smallest(), space.largest()])]
    for s in subnets:
        data, _ = subnet_onnx(net, s)
        for batch in (1, 3):
            a = onnx_memory(data, batch=batch, rules=rules)
            b = subnet_memory(TINY, s, batch=batch, rules=rules)
            assert (a.weight_bytes, a.input_bytes, a.arena_bytes) == (b.weight_bytes, b.input_bytes, b.arena_bytes)


def test_cifar_largest_onnx_by_hand() -> None:
    """The shipped architecture's largest subnet peaks at block 0: the 64×32×32 expanded tensor plus the
    16×32×32 stem output it reads (fp32), on both paths."""
    config = PRESETS["cifar-default"]
    s = config.space().largest()
    data = subnet_onnx(_random_weights(config), s)[0]
    a = onnx_memory(data, batch=1)
    assert a.arena_bytes == (64 + 16) * 32 * 32 * 4 == subnet_memory(config, s).arena_bytes
    assert a.weight_bytes == subnet_memory(config, s).weight_bytes
    # onnxruntime's layout on an AVX-512 CPU: every channel count here but 24 (→ 32) is a multiple of 16
    rules = LivenessRules(channel_block=16)
    assert onnx_memory(data, batch=1, rules=rules).weight_bytes == subnet_memory(config, s, rules=rules).weight_bytes


def test_vit_layer_table_equals_exported_onnx() -> None:
    """The ViT family's layer table (parameter add for the positions, head split, q·kᵀ, softmax, ·v) gives
    the exported tiny ViT's arena and input bytes exactly."""
    from predictors.onnx_io import onnx_bytes
    from supernet.registry import extract
    from supernet.vit import PRESETS as VIT_PRESETS
    from supernet.vit import ViTSupernet

    config = VIT_PRESETS["tiny"]
    torch.manual_seed(0)
    net = ViTSupernet(config)
    space = config.space()
    for s in (space.smallest(), space.largest()):
        s = dataclasses.replace(s, exits=(0,) * len(s.exits))
        data = onnx_bytes(extract(net, s), torch.zeros(1, config.in_channels, config.resolution, config.resolution))
        a, b = onnx_memory(data, batch=1), subnet_memory(config, s)
        assert (a.arena_bytes, a.input_bytes) == (b.arena_bytes, b.input_bytes)
        assert b.peak_at == "b0.attn.split"


@pytest.mark.parametrize("preset", ["tiny", "cifar-vit"])
def test_fast_memory_path_equals_the_layer_count_for_vit_subnets(preset: str) -> None:
    from supernet.vit import PRESETS as VIT

    c = VIT[preset]
    space = c.space()
    subnets = [space.sample(np.random.default_rng(i)) for i in range(60)]
    fast = MemoryPredictor(c).predict_bytes(subnets)
    assert list(fast) == [subnet_memory(c, s).total_bytes for s in subnets]
