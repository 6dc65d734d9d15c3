"""The blocks of efficient CNNs, each registered where it is defined, with the parameters it takes at
each stage of an ImageNet network (``stages``: spatial size → parameters), which the grids run."""

from __future__ import annotations

from torch import nn

from bench_lib.catalogue import layers
from bench_lib.catalogue.registry import (
    DENSE,
    IN,
    OUT,
    STRIDE,
    K,
    Param,
    Params,
    divisible,
    odd_kernel,
    stride_in,
    workload,
)


@workload(
    kind="block",
    summary="depthwise K×K → BN → ReLU → pointwise → BN → ReLU",
    params={
        "in_channels": IN,
        "out_channels": Param(int, 128, 1),
        "kernel_size": K,
        "stride": STRIDE,
        "dense": DENSE,
    },
    check=lambda p: odd_kernel("mobilenet_v1", p),
    references=("Howard et al. 2017, Fig. 3",),
    stages={
        56: {"in_channels": 128, "out_channels": 128},
        28: {"in_channels": 256, "out_channels": 256},
        14: {"in_channels": 512, "out_channels": 512},
        7: {"in_channels": 1024, "out_channels": 1024},
    },
)
def mobilenet_v1(p: Params) -> nn.Module:
    return layers.MobileNetV1Block(p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"], p["dense"])


@workload(
    kind="block",
    summary="MobileNet V2: 1×1 expand → depthwise K×K → linear 1×1, ReLU6, residual at stride 1",
    params={
        "in_channels": Param(int, 24, 1),
        "out_channels": Param(int, 24, 1),
        "kernel_size": K,
        "stride": STRIDE,
        "expand_ratio": Param(int, 6, 1, "expansion factor t"),
        "dense": DENSE,
    },
    check=lambda p: odd_kernel("inverted_residual", p),
    references=("Sandler et al. 2018 (MobileNet V2), Table 1",),
    stages={
        56: {"in_channels": 24, "out_channels": 24},
        28: {"in_channels": 32, "out_channels": 32},
        14: {"in_channels": 96, "out_channels": 96},
        7: {"in_channels": 160, "out_channels": 160},
    },
)
def inverted_residual(p: Params) -> nn.Module:
    return layers.InvertedResidual(
        p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"], p["expand_ratio"], p["dense"]
    )


def _check_shufflenet_v1(p: Params) -> None:
    name = "shufflenet_v1_unit"
    odd_kernel(name, p)
    stride_in(name, p, (1, 2))
    mid = p["out_channels"] // 4
    if p["out_channels"] % 4:
        raise ValueError(f"{name}: out_channels={p['out_channels']} must be divisible by 4 (bottleneck width)")
    if mid % p["groups"]:
        raise ValueError(f"{name}: out_channels / 4 = {mid} must be divisible by groups={p['groups']}")
    if p["first_grouped"]:
        divisible(name, p, "in_channels", "groups")
    if p["stride"] == 1 and p["in_channels"] != p["out_channels"]:
        raise ValueError(
            f"{name}: in_channels={p['in_channels']} must equal out_channels="
            f"{p['out_channels']} at stride 1 (the input is added)"
        )
    if p["stride"] == 2:
        branch = p["out_channels"] - p["in_channels"]
        if branch < 1 or branch % p["groups"]:
            raise ValueError(
                f"{name}: out_channels - in_channels = {branch} must be positive and divisible "
                f"by groups={p['groups']} at stride 2 (the branch is concatenated)"
            )


@workload(
    kind="block",
    summary="grouped 1×1 → shuffle → depthwise 3×3 → grouped 1×1; add, or concat pooled at stride 2",
    params={
        "in_channels": Param(int, 240, 1),
        "out_channels": Param(int, 240, 1),
        "kernel_size": K,
        "stride": STRIDE,
        "groups": Param(int, 3, 1),
        "first_grouped": Param(bool, True, None, "group the first 1×1 (False in the first unit)"),
        "dense": DENSE,
    },
    check=_check_shufflenet_v1,
    references=("Zhang et al. 2018 (ShuffleNet), Fig. 2",),
    stages={
        28: {"in_channels": 240, "out_channels": 240, "groups": 3},
        14: {"in_channels": 480, "out_channels": 480, "groups": 3},
        7: {"in_channels": 960, "out_channels": 960, "groups": 3},
    },
)
def shufflenet_v1_unit(p: Params) -> nn.Module:
    return layers.ShuffleNetV1Unit(
        p["in_channels"],
        p["out_channels"],
        p["kernel_size"],
        p["stride"],
        p["groups"],
        p["first_grouped"],
        p["dense"],
    )


def _check_shufflenet_v2(p: Params) -> None:
    name = "shufflenet_v2_unit"
    odd_kernel(name, p)
    stride_in(name, p, (1, 2))
    if p["out_channels"] % 2:
        raise ValueError(f"{name}: out_channels={p['out_channels']} must be even (two branches)")
    if p["stride"] == 1 and p["in_channels"] != p["out_channels"]:
        raise ValueError(
            f"{name}: in_channels={p['in_channels']} must equal out_channels="
            f"{p['out_channels']} at stride 1 (channel split)"
        )


@workload(
    kind="block",
    summary="split, 1×1 → depthwise 3×3 → 1×1 on one half, concat, shuffle; stride 2: two branches",
    params={
        "in_channels": Param(int, 116, 1),
        "out_channels": Param(int, 116, 1),
        "kernel_size": K,
        "stride": STRIDE,
        "dense": DENSE,
    },
    check=_check_shufflenet_v2,
    references=("Ma et al. 2018 (ShuffleNet V2), Fig. 3", "torchvision.models.shufflenetv2"),
    stages={
        28: {"in_channels": 116, "out_channels": 116},
        14: {"in_channels": 232, "out_channels": 232},
        7: {"in_channels": 464, "out_channels": 464},
    },
)
def shufflenet_v2_unit(p: Params) -> nn.Module:
    return layers.ShuffleNetV2Unit(p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"], p["dense"])


def _check_mbconv(p: Params) -> None:
    odd_kernel("mbconv", p)
    if not 0 <= p["se_ratio"] <= 1:
        raise ValueError(f"mbconv: se_ratio={p['se_ratio']} must be between 0 and 1 (0 disables SE)")


@workload(
    kind="block",
    summary="EfficientNet: 1×1 expand → depthwise K×K → squeeze-excitation → linear 1×1, SiLU",
    params={
        "in_channels": Param(int, 40, 1),
        "out_channels": Param(int, 40, 1),
        "kernel_size": Param(int, 5, 1),
        "stride": STRIDE,
        "expand_ratio": Param(int, 6, 1),
        "se_ratio": Param(float, 0.25, 0.0),
        "dense": DENSE,
    },
    check=_check_mbconv,
    references=("Tan & Le 2019 (EfficientNet)", "Sandler et al. 2018"),
    stages={
        56: {"in_channels": 24, "out_channels": 24, "kernel_size": 3},
        28: {"in_channels": 40, "out_channels": 40, "kernel_size": 5},
        14: {"in_channels": 112, "out_channels": 112, "kernel_size": 5},
        7: {"in_channels": 192, "out_channels": 192, "kernel_size": 5},
    },
)
def mbconv(p: Params) -> nn.Module:
    return layers.MBConv(
        p["in_channels"],
        p["out_channels"],
        p["kernel_size"],
        p["stride"],
        p["expand_ratio"],
        p["se_ratio"],
        p["dense"],
    )


def _check_bottleneck(name: str, p: Params) -> None:
    width = layers.bottleneck_width(p["out_channels"], p["groups"], p["width_per_group"])
    if width < 1:
        raise ValueError(
            f"{name}: out_channels={p['out_channels']} gives a bottleneck width of 0 with "
            f"groups={p['groups']}, width_per_group={p['width_per_group']}; width = "
            "int(out_channels / 4 · width_per_group / 64) · groups must be at least 1"
        )


def _make_bottleneck(p: Params) -> nn.Module:
    return layers.Bottleneck(
        p["in_channels"], p["out_channels"], p["stride"], p["groups"], p["width_per_group"], p["dense"]
    )


@workload(
    kind="block",
    summary="1×1 → grouped 3×3 (cardinality groups) → 1×1, residual (projection when shapes differ)",
    params={
        "in_channels": Param(int, 256, 1),
        "out_channels": Param(int, 256, 1),
        "stride": STRIDE,
        "groups": Param(int, 32, 1, "cardinality"),
        "width_per_group": Param(int, 4, 1),
        "dense": DENSE,
    },
    check=lambda p: _check_bottleneck("resnext_bottleneck", p),
    references=("Xie et al. 2017 (ResNeXt)", "torchvision.models.resnet"),
    stages={
        56: {"in_channels": 256, "out_channels": 256},
        28: {"in_channels": 512, "out_channels": 512},
        14: {"in_channels": 1024, "out_channels": 1024},
        7: {"in_channels": 2048, "out_channels": 2048},
    },
)
def resnext_bottleneck(p: Params) -> nn.Module:
    return _make_bottleneck(p)


@workload(
    kind="block",
    summary="dense baseline: 3×3 → 3×3, residual (projection when shapes differ)",
    params={"in_channels": IN, "out_channels": OUT, "stride": STRIDE},
    references=("He et al. 2016 (ResNet)",),
    stages={
        56: {"in_channels": 64, "out_channels": 64},
        28: {"in_channels": 128, "out_channels": 128},
        14: {"in_channels": 256, "out_channels": 256},
        7: {"in_channels": 512, "out_channels": 512},
    },
)
def resnet_basic(p: Params) -> nn.Module:
    return layers.BasicBlock(p["in_channels"], p["out_channels"], p["stride"])


def _resnet_bottleneck(p: Params) -> nn.Module:
    return layers.Bottleneck(p["in_channels"], p["out_channels"], p["stride"], 1, 64, False)


@workload(
    kind="block",
    summary="dense baseline: 1×1 → 3×3 → 1×1 (width out/4), residual (projection when shapes differ)",
    params={"in_channels": Param(int, 256, 1), "out_channels": Param(int, 256, 1), "stride": STRIDE},
    check=lambda p: _check_bottleneck("resnet_bottleneck", {**p, "groups": 1, "width_per_group": 64}),
    references=("He et al. 2016 (ResNet)",),
    stages={
        56: {"in_channels": 256, "out_channels": 256},
        28: {"in_channels": 512, "out_channels": 512},
        14: {"in_channels": 1024, "out_channels": 1024},
        7: {"in_channels": 2048, "out_channels": 2048},
    },
)
def resnet_bottleneck(p: Params) -> nn.Module:
    return _resnet_bottleneck(p)
