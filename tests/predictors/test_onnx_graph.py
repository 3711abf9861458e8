"""Kernels from ONNX graphs: FLOPs and bytes by hand, fusion rules, If branches, attention, CNN export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hw_profiles import list_profiles, load_profile
from predictors.onnx_graph import (
    DynamicShapeError,
    FusionRules,
    GraphError,
    UnsupportedOpError,
    fusion_names,
    graph_kernels,
    runtime_fusion,
)

F = TensorProto.FLOAT


def w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[str],
          inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(o, F, None) for o in outputs],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def residual_block(dims: list[int | str] | None = None) -> onnx.ModelProto:
    """x(1,4,8,8) → Conv 3x3 (no bias) → BN → Add(x) → Relu."""
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
             helper.make_node("Add", ["n", "x"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]
    inits = [w("W", 4, 4, 3, 3), *(w(k, 4) for k in "sbmv")]
    return model(nodes, [helper.make_tensor_value_info("x", F, dims or [1, 4, 8, 8])], ["y"], inits)


def test_conv_bn_add_relu_is_one_kernel_under_tensorrt() -> None:
    (k,) = graph_kernels(residual_block(), fusion="tensorrt")
    assert (k.op, k.macs, k.flops) == ("conv", 8 * 8 * 4 * 4 * 9, 2 * 9216)
    # x read once (conv and residual), y written, weights 4*4*3*3 plus a folded bias of 4
    assert k.params == 144 + 4 and k.bytes == (256 + 256 + 148) * 4
    assert k.act == "relu" and k.onnx_nodes == ("conv", "bn", "add", "relu") and k.out_shape == (1, 4, 8, 8)


def test_conv_bn_add_relu_is_four_kernels_without_fusion() -> None:
    ks = graph_kernels(residual_block(), fusion="none", bytes_per_element=2)
    assert [k.op for k in ks] == ["conv", "norm", "elementwise", "elementwise"]
    assert [k.bytes // 2 for k in ks] == [256 + 256 + 144, 256 + 256 + 2 * 4, 3 * 256, 2 * 256]
    assert sum(k.macs for k in ks) == 9216


def test_onnxruntime_fuses_matmul_bias_but_not_into_a_standalone_softmax() -> None:
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"), helper.make_node("Add", ["h", "b"], ["z"]),
             helper.make_node("Softmax", ["z"], ["y"], axis=-1)]
    m = model(nodes, [helper.make_tensor_value_info("x", F, [2, 16])], ["y"], [w("W", 16, 8), w("b", 8)])
    lin, sm = graph_kernels(m, fusion="onnxruntime-cpu")
    assert (lin.op, lin.macs, lin.params, lin.bytes) == ("linear", 2 * 16 * 8, 136, (32 + 16 + 136) * 4)
    assert (sm.op, sm.macs, sm.bytes) == ("reduce", 0, 2 * 16 * 4)


def test_depthwise_conv_and_free_ops() -> None:
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="dw", group=8, kernel_shape=[3, 3],
                             strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["y"], name="flat")]
    m = model(nodes, [helper.make_tensor_value_info("x", F, [1, 8, 16, 16])], ["y"], [w("W", 8, 1, 3, 3), w("B", 8)])
    dw, gap = graph_kernels(m)  # Flatten is metadata: no kernel
    assert (dw.op, dw.groups, dw.stride, dw.h_in, dw.h_out) == ("dwconv", 8, 2, 16, 8)
    assert dw.macs == 8 * 8 * 8 * 9 and dw.params == 72 + 8
    assert (gap.op, gap.bytes) == ("pool", (8 * 64 + 8) * 4)


def test_unsupported_ops_are_listed_sorted_and_unique() -> None:
    nodes = [helper.make_node("NonMaxSuppression", ["x"], ["a"]), helper.make_node("Foo", ["a"], ["b"]),
             helper.make_node("Foo", ["b"], ["y"])]
    m = model(nodes, [helper.make_tensor_value_info("x", F, [1, 4])], ["y"], [])
    with pytest.raises(UnsupportedOpError, match=r"unsupported ONNX ops: Foo, NonMaxSuppression; covered ops: .*Conv"):
        graph_kernels(m)


def test_dynamic_input_needs_a_shape() -> None:
    m = residual_block(["N", 4, 8, 8])
    with pytest.raises(DynamicShapeError, match=r"input 'x' has dynamic dimensions \(N\).*--input-shape"):
        graph_kernels(m)
    (k,) = graph_kernels(m, input_shape=(2, 4, 8, 8))
    assert k.macs == 2 * 9216 and k.batch == 2
    assert graph_kernels(m, batch=3)[0].macs == 3 * 9216


def test_if_recurses_into_both_branches() -> None:
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"], name="r")], "then", [],
                             [helper.make_tensor_value_info("t", F, [1, 4])])
    other = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["e"], name="mm")], "else", [],
                              [helper.make_tensor_value_info("e", F, [1, 4])])
    nodes = [helper.make_node("If", ["cond"], ["y"], name="exit0", then_branch=then, else_branch=other)]
    m = model(nodes, [helper.make_tensor_value_info("x", F, [1, 4]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
              ["y"], [w("W", 4, 4)])
    ks = graph_kernels(m, fusion="none")
    assert [(k.branch, k.op, k.macs) for k in ks] == [("exit0.then", "elementwise", 0), ("exit0.else", "linear", 16)]


def _attention() -> onnx.ModelProto:
    """Tokens (1,5,8) → q,k,v linear → softmax(q kᵀ / √8) v → (1,5,8)."""
    nodes = [helper.make_node("MatMul", ["x", f"W{c}"], [c], name=f"proj_{c}") for c in "qkv"]
    nodes += [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
              helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
              helper.make_node("Div", ["s", "scale"], ["d"], name="scale"),
              helper.make_node("Softmax", ["d"], ["p"], name="softmax", axis=-1),
              helper.make_node("MatMul", ["p", "v"], ["y"], name="context")]
    inits = [*(w(f"W{c}", 8, 8) for c in "qkv"), numpy_helper.from_array(np.array(8 ** 0.5, np.float32), "scale")]
    return model(nodes, [helper.make_tensor_value_info("x", F, [1, 5, 8])], ["y"], inits)


def test_attention_is_detected_and_fused_under_tensorrt() -> None:
    ks = graph_kernels(_attention(), fusion="tensorrt")
    att = [k for k in ks if k.op == "attention"]
    assert len(att) == 1 and att[0].onnx_nodes == ("scores", "scale", "softmax", "context")
    assert att[0].macs == 5 * 5 * 8 + 5 * 5 * 8  # q kᵀ, then p v
    assert att[0].bytes == 4 * 4 * 40  # q, kᵀ, v in and the context out; the 5x5 scores stay on chip
    assert [k.op for k in ks].count("linear") == 3 and [k.op for k in ks].count("data") == 1


def test_attention_split_under_onnxruntime() -> None:
    ks = [k for k in graph_kernels(_attention(), fusion="onnxruntime-cpu") if k.op == "attention"]
    assert [k.name for k in ks] == ["scores", "scale", "softmax", "context"]
    assert ks[0].bytes == 4 * (40 + 40 + 25)


def test_cnn_subnet_export_has_the_macs_of_subnet_kernels() -> None:
    from predictors.host_latency import subnet_onnx
    from predictors.kernels import subnet_kernels
    from supernet.cnn import PRESETS, CNNSupernet

    config = PRESETS["tiny"]
    net = CNNSupernet(config)
    for subnet in (config.space().largest(), config.space().smallest()):
        data, shape = subnet_onnx(net, subnet)
        ks = graph_kernels(onnx.load_from_string(data), batch=1, fusion="tensorrt")
        ref = subnet_kernels(config, subnet)
        assert sum(k.macs for k in ks) == sum(k.macs for k in ref)
        assert sum(k.params for k in ks) == sum(k.params for k in ref)
        weighted = [k for k in ref if k.op in ("conv", "dwconv", "linear")]
        assert len([k for k in ks if k.op in ("conv", "dwconv", "linear")]) == len(weighted)


def test_not_onnx_and_truncated_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(GraphError, match="not .*ONNX model"):
        graph_kernels(text)
    full = tmp_path / "full.onnx"
    onnx.save(residual_block(), str(full))
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    with pytest.raises(GraphError, match="ONNX model"):
        graph_kernels(cut)
    assert len(graph_kernels(full)) == 1


def test_fusion_rules_file_is_validated() -> None:
    assert {"none", "tensorrt", "onnxruntime-cpu"} <= set(fusion_names())
    with pytest.raises(ValueError, match="unknown ONNX ops NoSuchOp"):
        FusionRules.model_validate({"format": "dynnas-fusion-rules", "format_version": 1, "runtimes": {
            "x": {"description": "d", "source": "s", "attention": "split",
                  "rules": [{"anchor": ["NoSuchOp"], "then": []}]}}})


@pytest.mark.parametrize("device", list_profiles())
def test_every_shipped_profile_runtime_has_fusion_rules(device: str) -> None:
    assert runtime_fusion(load_profile(device).runtime) in fusion_names()


def test_profile_runtimes_map_to_their_rules_and_unknown_ones_name_the_fix() -> None:
    assert runtime_fusion("tensorrt") == "tensorrt" and runtime_fusion("executorch-xnnpack") == "tflite"
    with pytest.raises(GraphError, match="add it to a runtime's profile_runtimes in predictors/fusion_rules.yaml"):
        runtime_fusion("openvino")
    rt = {"description": "d", "source": "s", "attention": "split", "rules": [], "profile_runtimes": ["tflite"]}
    with pytest.raises(ValueError, match="listed under both 'a' and 'b'"):
        FusionRules.model_validate({"format": "dynnas-fusion-rules", "format_version": 1, "runtimes": {"a": rt, "b": rt}})


def test_elided_ops_launch_nothing_and_move_no_bytes() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r1"), helper.make_node("Relu", ["x"], ["b"], name="r2"),
             helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=1)]
    m = model(nodes, [helper.make_tensor_value_info("x", F, [1, 4, 8, 8])], ["y"], [])
    split = graph_kernels(m, fusion="none")
    trt = graph_kernels(m, fusion="tensorrt")
    assert [k.onnx_nodes for k in split] == [("r1",), ("r2",), ("cat",)]
    assert [k.onnx_nodes for k in trt] == [("r1",), ("r2",)]
    assert split[-1].bytes == 4 * (2 * 256 + 512)  # the Concat reads both halves and writes the whole
