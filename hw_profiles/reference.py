"""Reference models whose published latencies calibrate the device profiles.

The predictors package builds each model's layer list from its name and resolution; the MAC
and parameter counts here let it check that list against the published totals.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import Field, field_validator

from hw_profiles.quantity import Frozen, Quantity, expect_unit

_TORCHVISION = "https://pytorch.org/vision/stable/models.html"
# The smallest input the reference graphs are built at (five stride-2 stages leave a 1x1 map).
MIN_RESOLUTION = 32
_SLIM_V1 = ("tensorflow/models research/slim/nets/mobilenet_v1.md (commit 02c04f49a188ba9a515100a3375a6359f3fffef1), "
            "table of pre-trained models")
_SLIM_V2 = ("tensorflow/models research/slim/nets/mobilenet/README.md (commit 0ba83cf0211401a8505505276c59418f15338d31), "
            "table of MobilenetV2 ImageNet checkpoints")


class ReferenceModel(Frozen):
    """A named network at its canonical input size, with cited MACs and parameters."""

    name: str
    resolution: int = Field(strict=True, gt=0)
    macs: Quantity  # GMAC per image at `resolution`
    params: Quantity  # millions of parameters
    notes: str = ""
    # False for the networks only published rows use (width variants, ShuffleNetV2): `dynnas profile` times the rest
    profiled: bool = True

    @field_validator("macs")
    @classmethod
    def _macs_unit(cls, q: Quantity) -> Quantity:
        return expect_unit(q, ("GMAC",), "macs")

    @field_validator("params")
    @classmethod
    def _params_unit(cls, q: Quantity) -> Quantity:
        return expect_unit(q, ("M",), "params")


def _slim(name: str, table: str, row: str, mmacs: float, params_m: float, width: str) -> ReferenceModel:
    """A TF-slim MobileNet at a width multiplier, at 224x224, with the MACs and parameters of its checkpoint table."""
    src = f"{table}: {row}"
    return ReferenceModel(
        name=name,
        resolution=224,
        macs=Quantity(value=mmacs / 1000, unit="GMAC", source=src, derived=f"gmac = {mmacs:g} million MACs / 1000"),
        params=Quantity(value=params_m, unit="M", source=src),
        notes=f"Width multiplier {width}: every layer's channels scaled (the networks MLPerf's open division and "
              "the TFLite hosted models run); other resolutions scale the MACs with the pixel count.",
        profiled=False,
    )


def _tv(name: str, weights: str, gmac: float, params_m: float, count: int) -> ReferenceModel:
    src = f"{_TORCHVISION} (table of classification weights, {weights}: GFLOPS {gmac}, params {count})"
    return ReferenceModel(
        name=name,
        resolution=224,
        macs=Quantity(value=gmac, unit="GMAC", source=src),
        params=Quantity(value=params_m, unit="M", source=src),
        notes="torchvision's 'GFLOPS' column counts multiply-accumulates, i.e. GMAC.",
    )


REFERENCE_MODELS: Mapping[str, ReferenceModel] = MappingProxyType(
    {
        # torchvision's ResNet-50 is v1.5 (stride on the 3x3 conv), the variant MLPerf uses.
        "resnet50": _tv("resnet50", "ResNet50_Weights.IMAGENET1K_V1", 4.09, 25.6, 25557032),
        "resnet18": _tv("resnet18", "ResNet18_Weights.IMAGENET1K_V1", 1.81, 11.7, 11689512),
        "mobilenet_v2": ReferenceModel(
            name="mobilenet_v2",
            resolution=224,
            macs=Quantity(
                value=0.30,
                unit="GMAC",
                source="Sandler et al., MobileNetV2 (CVPR 2018, arXiv:1801.04381), Table 4: 300M MAdds",
            ),
            params=Quantity(
                value=3.4,
                unit="M",
                source="Sandler et al., MobileNetV2 (arXiv:1801.04381), Table 4: 3.4M parameters",
            ),
            notes="Width multiplier 1.0.",
        ),
        "mobilenet_v3_large": _tv(
            "mobilenet_v3_large", "MobileNet_V3_Large_Weights.IMAGENET1K_V1", 0.22, 5.5, 5483032
        ),
        "mobilenet_v1": ReferenceModel(
            name="mobilenet_v1",
            resolution=224,
            macs=Quantity(
                value=0.569,
                unit="GMAC",
                source="Howard et al., MobileNets (arXiv:1704.04861), Table 8: 1.0 MobileNet-224, "
                "569 million Mult-Adds",
            ),
            params=Quantity(
                value=4.2,
                unit="M",
                source="Howard et al., MobileNets (arXiv:1704.04861), Table 8: 1.0 MobileNet-224, "
                "4.2 million parameters (4,231,976 with the 1000-class FC)",
            ),
            notes="Width multiplier 1.0; BN folded, no biases before BN.",
        ),
        "efficientnet_lite0": ReferenceModel(
            name="efficientnet_lite0",
            resolution=224,
            macs=Quantity(
                value=0.39,
                unit="GMAC",
                source="Tan & Le, EfficientNet (arXiv:1905.11946), Table 2: EfficientNet-B0 0.39B FLOPS "
                "(multiply-adds); Lite0 has B0's stages at 224x224",
                derived="gmac = 0.39 (B0) - squeeze-excite (under 0.001 GMAC)",
            ),
            params=Quantity(
                value=4.7,
                unit="M",
                source="https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite "
                "(README, table of EfficientNet-Lite models: Lite0 4.7M params)",
            ),
            notes="EfficientNet-B0 without squeeze-excite, ReLU6 instead of swish, fixed stem and head. The "
            "Lite README lists 407M MACs, a count that does not match the conv/FC multiply-adds (0.385 G).",
        ),
        "mobilenet_v1_0.5": _slim("mobilenet_v1_0.5", _SLIM_V1, "MobileNet_v1_0.50_224 | 150 | 1.34", 150, 1.34, "0.5"),
        "mobilenet_v1_0.25": _slim("mobilenet_v1_0.25", _SLIM_V1, "MobileNet_v1_0.25_224 | 41 | 0.47", 41, 0.47, "0.25"),
        "mobilenet_v2_1.4": _slim("mobilenet_v2_1.4", _SLIM_V2, "mobilenet_v2_1.4_224 | 582 | 6.06", 582, 6.06, "1.4"),
        "mobilenet_v2_0.75": _slim("mobilenet_v2_0.75", _SLIM_V2, "mobilenet_v2_0.75_224 | 209 | 2.61", 209, 2.61,
                                   "0.75"),
        "mobilenet_v2_0.5": _slim("mobilenet_v2_0.5", _SLIM_V2, "mobilenet_v2_0.5_224 | 97 | 1.95", 97, 1.95, "0.5"),
        "mobilenet_v2_0.35": _slim("mobilenet_v2_0.35", _SLIM_V2, "mobilenet_v2_0.35_224 | 59 | 1.66", 59, 1.66,
                                   "0.35"),
        "shufflenet_v2": ReferenceModel(
            name="shufflenet_v2",
            resolution=224,
            macs=Quantity(
                value=0.145,
                unit="GMAC",
                source=f"{_TORCHVISION} (ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1: GFLOPS 0.14, params 2278604)",
                derived="gmac = 0.1449, the layer-by-layer count of torchvision's shufflenet_v2_x1_0 (whose 2278604 "
                        "parameters it matches exactly); torchvision rounds it to 0.14",
            ),
            params=Quantity(value=2.28, unit="M", source=f"{_TORCHVISION} (ShuffleNet_V2_X1_0_Weights: params 2278604)"),
            notes="Width 1.0x (Ma et al. 2018, Table 5): channel split, two-branch units, channel shuffle.",
            profiled=False,
        ),
        "vit_b16": _tv("vit_b16", "ViT_B_16_Weights.IMAGENET1K_V1", 17.56, 86.6, 86567656),
        "ssd_mobilenet_v1": ReferenceModel(
            name="ssd_mobilenet_v1",
            resolution=300,
            macs=Quantity(
                value=1.235,
                unit="GMAC",
                source="Reddi et al., MLPerf Inference Benchmark (arXiv:1911.02549), Table I: "
                "SSD-MobileNet-v1 2.47 GOPS per input",
                derived="gmac = 2.47 GOPS / 2 OPS per MAC",
            ),
            params=Quantity(
                value=6.91,
                unit="M",
                source="Reddi et al., MLPerf Inference Benchmark (arXiv:1911.02549), Table I: 6.91M",
            ),
            notes="The MLPerf edge SSD-MobileNet-v1 (COCO, 300x300, 91 classes).",
        ),
    }
)
