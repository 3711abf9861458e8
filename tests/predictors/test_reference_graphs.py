"""Reference models built as ONNX graphs: published parameter counts and MACs, runnable weights."""

from __future__ import annotations

import numpy as np
import pytest

from hw_profiles import REFERENCE_MODELS
from predictors.kernels import total_macs
from predictors.onnx_graph import graph_kernels, graph_params
from predictors.reference_graphs import reference_graph, reference_graph_names, reference_kernels
from supernet.errors import UnknownNameError

# torchvision / timm / Keras parameter counts (torchvision's models table; timm tf_efficientnet_lite0;
# Keras MobileNet 1.0 224 trainable parameters)
PARAMS = {"resnet50": 25_557_032, "resnet18": 11_689_512, "mobilenet_v2": 3_504_872, "mobilenet_v1": 4_231_976,
          "efficientnet_lite0": 4_652_008, "vit_b16": 86_567_656, "mobilenet_v3_large": 5_483_032}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count_is_the_published_one(name: str) -> None:
    assert graph_params(reference_graph(name, weights="shape-only")) == PARAMS[name]


@pytest.mark.parametrize("name", reference_graph_names())
def test_macs_match_the_cited_reference(name: str) -> None:
    ks = graph_kernels(reference_graph(name, weights="shape-only"), fusion="onnxruntime-cpu")  # the last Concat is a kernel there
    assert total_macs(ks) / 1e9 == pytest.approx(REFERENCE_MODELS[name].macs.value, rel=0.02)
    assert ks[-1].out_shape == ((1, 1917, 4) if name == "ssd_mobilenet_v1" else (1, 1000))


def test_ssd_has_the_mlperf_parameter_count_and_anchor_outputs() -> None:
    model = reference_graph("ssd_mobilenet_v1", weights="shape-only")
    # BN's scale and shift both count here; the published 6.91M is within 2 %
    assert graph_params(model) / 1e6 == pytest.approx(REFERENCE_MODELS["ssd_mobilenet_v1"].params.value, rel=0.02)
    outs = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert outs == [[1, 1917, 91], [1, 1917, 4]]  # 19²·3 + (10² + 5² + 3² + 2² + 1²)·6 anchors


# Kernels each runtime launches (hand count): ResNet-50 has 53 convs (+ the residual adds), a stem
# maxpool, a global pool and the FC; TensorRT and onnxruntime fuse BN, the add and ReLU into the conv.
LAUNCHES = {("resnet50", "tensorrt"): 56, ("resnet50", "onnxruntime-cpu"): 56, ("resnet50", "tflite"): 72,
            ("mobilenet_v1", "tensorrt"): 29, ("mobilenet_v1", "tflite"): 29,
            ("mobilenet_v2", "tensorrt"): 54, ("mobilenet_v2", "tflite"): 64}  # TFLite: 10 separate residual ADDs


@pytest.mark.parametrize(("name", "fusion"), sorted(LAUNCHES))
def test_kernel_counts_follow_the_runtime_fusion(name: str, fusion: str) -> None:
    ks = reference_kernels(name, fusion=fusion)
    assert len(ks) == LAUNCHES[name, fusion]
    assert total_macs(ks) == total_macs(reference_kernels(name, fusion="none"))  # fusion changes launches, not work


def test_tensorrt_removes_concats_and_head_transposes() -> None:
    trt, ort = reference_kernels("ssd_mobilenet_v1", fusion="tensorrt"), reference_kernels(
        "ssd_mobilenet_v1", fusion="onnxruntime-cpu")
    assert not [k for k in trt if k.op == "data"]  # the Transposes ride on their convs, the Concats vanish
    assert len(ort) - len(trt) == 14  # 12 head Transposes and 2 Concats launch on onnxruntime
    assert total_macs(trt) == total_macs(ort)


def test_reference_kernels_are_cached_copies() -> None:
    a, b = reference_kernels("resnet18"), reference_kernels("resnet18")
    assert a == b and a is not b
    a.clear()
    assert reference_kernels("resnet18") == b


def test_batch_and_resolution_scale_the_graph() -> None:
    one = total_macs(graph_kernels(reference_graph("mobilenet_v2", weights="shape-only")))
    assert total_macs(graph_kernels(reference_graph("mobilenet_v2", batch=4, weights="shape-only"))) == 4 * one
    assert total_macs(graph_kernels(reference_graph("resnet18", 448, weights="shape-only"))) > 3.9 * total_macs(
        graph_kernels(reference_graph("resnet18", weights="shape-only")))


def test_vit_has_twelve_fused_attention_kernels_and_reference_kernels_use_it() -> None:
    ks = graph_kernels(reference_graph("vit_b16", weights="shape-only"), fusion="tensorrt")
    att = [k for k in ks if k.op == "attention"]
    assert len(att) == 12 and all(k.macs == 2 * 12 * 197 * 197 * 64 for k in att)
    assert total_macs(reference_kernels("vit_b16")) == total_macs(ks)


def test_zero_weight_graph_runs_in_onnxruntime() -> None:
    import onnx

    from predictors.onnx_io import run_onnx

    model = reference_graph("mobilenet_v1", 64, batch=2)
    onnx.checker.check_model(model)
    y = run_onnx(model.SerializeToString(), np.ones((2, 3, 64, 64), np.float32))
    assert y.shape == (2, 1000) and np.allclose(y, 0.0)


def test_unknown_reference_graph_names_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'resnet50'"):
        reference_graph("resnet5O")
