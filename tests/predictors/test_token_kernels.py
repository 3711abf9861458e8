"""Token-wise kernels (a transformer's): FLOPs and bytes by hand, and their ONNX chain graphs run in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from predictors.kernel_graphs import chain_graph, input_shape
from predictors.kernels import to_kernel

T, C, H, D = 17, 32, 2, 16


def _run(layers: list[dict], seed: int = 0) -> np.ndarray:
    ks = [to_kernel(layer) for layer in layers]
    sess = ort.InferenceSession(chain_graph(ks, np.random.default_rng(seed)), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).random(input_shape(ks[0])).astype(np.float32)
    return sess.run(None, {"x": x})[0]


def test_attention_kernel_counts_flops_and_bytes_by_hand() -> None:
    k = to_kernel({"name": "b0.attn", "op": "attention", "tokens": T, "heads": H, "head_dim": D,
                   "macs": 2 * T * T * H * D}, bytes_per_element=2)
    assert k.flops == 2 * 2 * T * T * H * D
    # q, k, v in and the output (4 T h d), plus the h T x T score matrix written and read
    assert k.bytes == 2 * (4 * T * H * D + 2 * H * T * T)
    assert (k.rows, k.groups, k.cin) == (T, H, H * D)
    assert input_shape(k) == (1, T, 3 * H * D)


def test_token_linear_scales_activations_with_rows_and_keeps_cnn_keys() -> None:
    k = to_kernel({"name": "b0.fc1", "op": "linear", "rows": T, "cin": C, "cout": 64, "macs": T * C * 64})
    assert k.bytes == 4 * (T * (C + 64) + C * 64 + 64)
    assert k.shape_key.endswith(":r17")
    one = to_kernel({"name": "classifier", "op": "linear", "cin": C, "cout": 10, "macs": C * 10})
    assert one.shape_key == "linear:32>10:k0s1g1:h1:b1:none"  # a CNN's key: no row tag


def test_attention_unit_graph_computes_softmax_attention() -> None:
    layers = [{"name": "b0.norm1", "op": "norm", "rows": T, "cin": C, "macs": 0},
              {"name": "b0.qkv", "op": "linear", "rows": T, "cin": C, "cout": 3 * H * D, "macs": T * C * 3 * H * D},
              {"name": "b0.attn", "op": "attention", "tokens": T, "heads": H, "head_dim": D, "macs": 2 * T * T * H * D},
              {"name": "b0.proj", "op": "linear", "rows": T, "cin": H * D, "cout": C, "macs": T * H * D * C},
              {"name": "b0.add1", "op": "add", "rows": T, "cin": C, "macs": 0}]
    assert _run(layers).shape == (1, T, C)
    # the attention kernel alone: rows of softmax weights sum to one, so constant v gives constant output
    k = to_kernel(layers[2])
    sess = ort.InferenceSession(chain_graph([k], np.random.default_rng(0)), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((1, T, 3 * H * D)).astype(np.float32)
    x[..., 2 * H * D:] = 0.25
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], 0.25, atol=1e-6)


@pytest.mark.parametrize(("method", "t_out"), [("topk", 12), ("tome", 9), ("tome", 13)])
def test_reduce_graphs_output_the_scheduled_token_count(method: str, t_out: int) -> None:
    out = _run([{"name": "b0.reduce", "op": "reduce", "method": method, "tokens_in": T, "tokens_out": t_out,
                 "cin": C, "macs": 0}])
    assert out.shape == (1, t_out, C)


def test_topk_graph_keeps_cls_first() -> None:
    k = to_kernel({"name": "b0.reduce", "op": "reduce", "method": "topk", "tokens_in": T, "tokens_out": 8,
                   "cin": C, "macs": 0})
    sess = ort.InferenceSession(chain_graph([k], np.random.default_rng(0)), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).random((1, T, C)).astype(np.float32)
    out = sess.run(None, {"x": x})[0]
    np.testing.assert_array_equal(out[0, 0], x[0, 0])
    rest = x[0, 1:]
    top = np.sort(np.argsort(-rest.sum(1))[:6])
    np.testing.assert_allclose(np.sort(out[0, 1:7].sum(1)), np.sort(rest[top].sum(1)), rtol=1e-6)
