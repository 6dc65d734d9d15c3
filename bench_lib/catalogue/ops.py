"""The convolution ops: each one's builder, registered where it is defined, with its rules, its dense
equivalent and the parameters the grids run it with at a stage of C channels (``at_stage``: bias-free as
in real networks, so that the ops of a stage share one dense equivalent)."""

from __future__ import annotations

from typing import Any

from torch import nn

from bench_lib.catalogue import layers
from bench_lib.catalogue.registry import (
    BIAS,
    IN,
    OUT,
    PAD,
    STRIDE,
    K,
    Param,
    Params,
    divisible,
    odd_kernel,
    padding_default,
    workload,
)


def _conv2d(p: Params, groups: int) -> nn.Module:
    return nn.Conv2d(
        p["in_channels"],
        p["out_channels"],
        p["kernel_size"],
        stride=p["stride"],
        padding=p["padding"],
        groups=groups,
        bias=p["bias"],
    )


def _standard_of(p: Params, **over: Any) -> tuple[str, Params]:
    keys = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "bias")
    return "standard", {**{k: p[k] for k in keys if k in p}, **over}


@workload(
    kind="op",
    summary="dense K×K convolution (groups=1)",
    params={
        "in_channels": IN,
        "out_channels": OUT,
        "kernel_size": K,
        "stride": STRIDE,
        "padding": PAD,
        "bias": BIAS,
    },
    derive=padding_default,
    at_stage=lambda c: {"in_channels": c, "out_channels": c, "kernel_size": 3, "bias": False},
)
def standard(p: Params) -> nn.Module:
    return _conv2d(p, 1)


def _check_grouped(p: Params) -> None:
    divisible("grouped", p, "in_channels", "groups")
    divisible("grouped", p, "out_channels", "groups")


@workload(
    kind="op",
    summary="grouped K×K convolution: G independent convs on channel slices",
    params={
        "in_channels": IN,
        "out_channels": Param(int, 128, 1),
        "kernel_size": K,
        "stride": STRIDE,
        "padding": PAD,
        "groups": Param(int, 4, 1, "number of groups"),
        "bias": BIAS,
    },
    derive=padding_default,
    check=_check_grouped,
    dense=lambda p: _standard_of(p),
    references=("Krizhevsky et al. 2012", "Xie et al. 2017 (ResNeXt)"),
    at_stage=lambda c: {"in_channels": c, "out_channels": c, "kernel_size": 3, "groups": 4, "bias": False},
)
def grouped(p: Params) -> nn.Module:
    return _conv2d(p, p["groups"])


def _derive_depthwise(p: Params) -> None:
    padding_default(p)
    if p["out_channels"] is None:
        p["out_channels"] = p["in_channels"]


@workload(
    kind="op",
    summary="depthwise K×K convolution (groups=in_channels; out_channels a multiple of it)",
    params={
        "in_channels": IN,
        "out_channels": Param(int, None, 1, "output channels (default in_channels)"),
        "kernel_size": K,
        "stride": STRIDE,
        "padding": PAD,
        "bias": BIAS,
    },
    derive=_derive_depthwise,
    check=lambda p: divisible("depthwise", p, "out_channels", "in_channels"),
    dense=lambda p: _standard_of(p),
    references=("Howard et al. 2017 (MobileNet)",),
    at_stage=lambda c: {"in_channels": c, "kernel_size": 3, "bias": False},
)
def depthwise(p: Params) -> nn.Module:
    return _conv2d(p, p["in_channels"])


@workload(
    kind="op",
    summary="1×1 convolution",
    params={"in_channels": IN, "out_channels": Param(int, 128, 1), "stride": STRIDE, "bias": BIAS},
    at_stage=lambda c: {"in_channels": c, "out_channels": c, "bias": False},
)
def pointwise(p: Params) -> nn.Module:
    return nn.Conv2d(p["in_channels"], p["out_channels"], 1, stride=p["stride"], bias=p["bias"])


@workload(
    kind="op",
    summary="depthwise K×K then pointwise 1×1 (bias-free by default); dense equivalent: the K×K conv",
    params={
        "in_channels": IN,
        "out_channels": Param(int, 128, 1),
        "kernel_size": K,
        "stride": STRIDE,
        "padding": PAD,
        "bias": Param(bool, False),
    },
    derive=padding_default,
    dense=lambda p: _standard_of(p),
    references=("Howard et al. 2017 (MobileNet), Table 3",),
    at_stage=lambda c: {"in_channels": c, "out_channels": c, "kernel_size": 3},
)
def depthwise_separable(p: Params) -> nn.Module:
    return layers.DepthwiseSeparable(
        p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"], p["padding"], p["bias"]
    )


@workload(
    kind="op",
    summary="reshape to (N, G, C/G, H, W), transpose, flatten; dense equivalent: a 1×1 conv C→C",
    params={"in_channels": Param(int, 240, 1), "groups": Param(int, 3, 1)},
    check=lambda p: divisible("channel_shuffle", p, "in_channels", "groups"),
    dense=lambda p: (
        "pointwise",
        {"in_channels": p["in_channels"], "out_channels": p["in_channels"], "bias": False},
    ),
    references=("Zhang et al. 2018 (ShuffleNet)",),
    at_stage=lambda c: {"in_channels": c, "groups": 4},
)
def channel_shuffle(p: Params) -> nn.Module:
    return layers.ChannelShuffle(p["groups"])


def _check_partial(p: Params) -> None:
    divisible("partial", p, "in_channels", "partial_ratio")
    odd_kernel("partial", p)


@workload(
    kind="op",
    summary="FasterNet's PConv: K×K conv on the first C/partial_ratio channels, the rest untouched",
    params={
        "in_channels": IN,
        "kernel_size": K,
        "partial_ratio": Param(int, 4, 2, "the conv sees in_channels / partial_ratio channels"),
        "bias": Param(bool, False),
    },
    check=_check_partial,
    dense=lambda p: (
        "standard",
        {
            "in_channels": p["in_channels"],
            "out_channels": p["in_channels"],
            "kernel_size": p["kernel_size"],
            "bias": p["bias"],
        },
    ),
    references=("Chen et al. 2023 (FasterNet)",),
    at_stage=lambda c: {"in_channels": c, "kernel_size": 3, "partial_ratio": 4},
)
def partial(p: Params) -> nn.Module:
    return layers.PartialConv(p["in_channels"], p["kernel_size"], p["partial_ratio"], p["bias"])
