"""Whole networks assembled from the catalogue's own blocks: MobileNet V1/V2, ShuffleNet V1/V2,
EfficientNet-B0, ResNeXt-50 (32×4d) and ResNet-50, each as its paper and reference implementation define it.

Each network is an ``nn.Sequential`` of named parts: ``stem``, one child per block (``s1b0``, ``s1b1``, …:
stage, block) and ``head``; so its theory is the sum of its blocks' theory and a per-block breakdown of cost
and of measured time falls out of the same structure (``Cost.parts()``, ``measure.breakdown``).
Reference implementations: torchvision 0.2x (MobileNet V2, ShuffleNet V2, EfficientNet-B0, ResNet-50,
ResNeXt-50), Megvii's ShuffleNet-Series (ShuffleNet V1), and the MobileNet V1 paper's Table 1 (as Keras
implements it).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from bench_lib.catalogue import layers
from bench_lib.catalogue.registry import Param, Workload, register


def network(summary: str, *, width: bool, references: tuple[str, ...]):
    """Register the decorated network builder as ``net_<name>`` (parameters: ``num_classes``, and
    ``width_mult`` where the paper scales the width)."""

    def decorate(make):
        params: dict[str, Param] = {"num_classes": Param(int, 1000, 1, "classifier outputs")}
        if width:
            params = {"width_mult": Param(float, 1.0, 0.0, "the paper's width multiplier"), **params}
        name = f"net_{make.__name__}"
        register(Workload(name, "network", summary, params, lambda p: make(**p), references=references))
        return make

    return decorate


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90% of ``value`` (MobileNet's rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def _head(
    in_channels: int,
    num_classes: int,
    dropout: float = 0.0,
    bias: bool = True,
    conv: tuple[int, type[nn.Module]] | None = None,
) -> nn.Sequential:
    parts: list[tuple[str, nn.Module]] = []
    if conv is not None:
        channels, act = conv
        parts.append(("conv", layers.conv_bn(in_channels, channels, 1, act=act)))
        in_channels = channels
    parts += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1))]
    if dropout:
        parts.append(("dropout", nn.Dropout(dropout)))
    parts.append(("fc", nn.Linear(in_channels, num_classes, bias=bias)))
    return nn.Sequential(OrderedDict(parts))


def _network(stem: nn.Module, blocks: list[tuple[str, nn.Module]], head: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("stem", stem), *blocks, ("head", head)]))


@network(
    "MobileNet V1 (α = width_mult), 224×224",
    width=True,
    references=("Howard et al. 2017, Table 1",),
)
def mobilenet_v1(width_mult: float = 1.0, num_classes: int = 1000) -> nn.Sequential:
    """Howard et al. 2017, Table 1: a 3×3/2 conv then 13 depthwise-separable blocks, pool, FC."""
    c = lambda n: int(n * width_mult)  # noqa: E731 (the paper's α scales every layer)
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1)]
    blocks, cin = [], c(32)
    for i, (out, stride) in enumerate(plan):
        blocks.append((f"b{i}", layers.MobileNetV1Block(cin, c(out), 3, stride, dense=False)))
        cin = c(out)
    return _network(layers.conv_bn(3, c(32), 3, stride=2), blocks, _head(cin, num_classes))


@network(
    "MobileNet V2 (width_mult), 224×224",
    width=True,
    references=("Sandler et al. 2018, Table 2", "torchvision.models.mobilenet_v2"),
)
def mobilenet_v2(width_mult: float = 1.0, num_classes: int = 1000) -> nn.Sequential:
    """Sandler et al. 2018, Table 2 (torchvision's mobilenet_v2)."""
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    cin = make_divisible(32 * width_mult)
    last = make_divisible(1280 * max(1.0, width_mult))
    blocks = []
    for s, (t, c, n, stride) in enumerate(settings, start=1):
        out = make_divisible(c * width_mult)
        for i in range(n):
            blocks.append((f"s{s}b{i}", layers.InvertedResidual(cin, out, 3, stride if i == 0 else 1, t, dense=False)))
            cin = out
    stem = layers.conv_bn(3, make_divisible(32 * width_mult), 3, stride=2, act=nn.ReLU6)
    return _network(stem, blocks, _head(cin, num_classes, dropout=0.2, conv=(last, nn.ReLU6)))


SHUFFLENET_V1_WIDTHS = {
    0.5: [12, 120, 240, 480],
    1.0: [24, 240, 480, 960],
    1.5: [24, 360, 720, 1440],
    2.0: [48, 480, 960, 1920],
}  # groups = 3 (Megvii's ShuffleNet-Series)


def _pooled_stem(channels: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            [("conv", layers.conv_bn(3, channels, 3, stride=2)), ("pool", nn.MaxPool2d(3, stride=2, padding=1))]
        )
    )


@network(
    "ShuffleNet V1, g = 3, 1× (width_mult 0.5–2.0)",
    width=True,
    references=("Zhang et al. 2018, Table 1", "megvii-model/ShuffleNet-Series"),
)
def shufflenet_v1(width_mult: float = 1.0, groups: int = 3, num_classes: int = 1000) -> nn.Sequential:
    """Zhang et al. 2018, Table 1, g = 3: stem, stages of 4/8/4 units, pool, FC without bias (Megvii's code)."""
    if width_mult not in SHUFFLENET_V1_WIDTHS:
        raise ValueError(
            f"net_shufflenet_v1: width_mult={width_mult} must be one of {', '.join(map(str, SHUFFLENET_V1_WIDTHS))}"
        )
    widths = SHUFFLENET_V1_WIDTHS[width_mult]
    blocks, cin = [], widths[0]
    for s, (out, repeats) in enumerate(zip(widths[1:], (4, 8, 4), strict=True), start=1):
        for i in range(repeats):
            unit = layers.ShuffleNetV1Unit(
                cin, out, 3, 2 if i == 0 else 1, groups, first_grouped=not (s == 1 and i == 0), dense=False
            )
            blocks.append((f"s{s}b{i}", unit))
            cin = out
    return _network(_pooled_stem(widths[0]), blocks, _head(cin, num_classes, bias=False))


SHUFFLENET_V2_WIDTHS = {
    0.5: [24, 48, 96, 192, 1024],
    1.0: [24, 116, 232, 464, 1024],
    1.5: [24, 176, 352, 704, 1024],
    2.0: [24, 244, 488, 976, 2048],
}


@network(
    "ShuffleNet V2 1× (width_mult 0.5–2.0)",
    width=True,
    references=("Ma et al. 2018, Table 5", "torchvision.models.shufflenet_v2_x1_0"),
)
def shufflenet_v2(width_mult: float = 1.0, num_classes: int = 1000) -> nn.Sequential:
    """Ma et al. 2018, Table 5 (torchvision's shufflenet_v2_x1_0 at width 1.0)."""
    if width_mult not in SHUFFLENET_V2_WIDTHS:
        raise ValueError(
            f"net_shufflenet_v2: width_mult={width_mult} must be one of {', '.join(map(str, SHUFFLENET_V2_WIDTHS))}"
        )
    widths = SHUFFLENET_V2_WIDTHS[width_mult]
    blocks, cin = [], widths[0]
    for s, (out, repeats) in enumerate(zip(widths[1:4], (4, 8, 4), strict=True), start=1):
        for i in range(repeats):
            blocks.append((f"s{s}b{i}", layers.ShuffleNetV2Unit(cin, out, 3, 2 if i == 0 else 1, dense=False)))
            cin = out
    return _network(_pooled_stem(widths[0]), blocks, _head(cin, num_classes, conv=(widths[4], nn.ReLU)))


@network(
    "EfficientNet-B0",
    width=False,
    references=("Tan & Le 2019, Table 1", "torchvision.models.efficientnet_b0"),
)
def efficientnet_b0(num_classes: int = 1000) -> nn.Sequential:
    """Tan & Le 2019, Table 1 (torchvision's efficientnet_b0; stochastic depth is a no-op in eval)."""
    settings = [
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    ]
    blocks = []
    for s, (t, k, stride, cin, out, n) in enumerate(settings, start=1):
        for i in range(n):
            blocks.append(
                (
                    f"s{s}b{i}",
                    layers.MBConv(cin if i == 0 else out, out, k, stride if i == 0 else 1, t, 0.25, dense=False),
                )
            )
    stem = layers.conv_bn(3, 32, 3, stride=2, act=nn.SiLU)
    return _network(stem, blocks, _head(320, num_classes, dropout=0.2, conv=(1280, nn.SiLU)))


def _resnet(groups: int, width_per_group: int, num_classes: int) -> nn.Sequential:
    """He et al. 2016 / Xie et al. 2017: 7×7/2 stem and max-pool, bottleneck stages of 3/4/6/3, pool, FC."""
    stem = nn.Sequential(
        OrderedDict([("conv", layers.conv_bn(3, 64, 7, stride=2)), ("pool", nn.MaxPool2d(3, stride=2, padding=1))])
    )
    blocks, cin = [], 64
    for s, (out, repeats) in enumerate(zip((256, 512, 1024, 2048), (3, 4, 6, 3), strict=True), start=1):
        for i in range(repeats):
            stride = 2 if i == 0 and s > 1 else 1
            blocks.append((f"s{s}b{i}", layers.Bottleneck(cin, out, stride, groups, width_per_group, dense=False)))
            cin = out
    return _network(stem, blocks, _head(cin, num_classes))


@network(
    "ResNeXt-50 (32×4d)",
    width=False,
    references=("Xie et al. 2017", "torchvision.models.resnext50_32x4d"),
)
def resnext50_32x4d(num_classes: int = 1000) -> nn.Sequential:
    return _resnet(32, 4, num_classes)


@network(
    "ResNet-50 (v1.5: stride on the 3×3)", width=False, references=("He et al. 2016", "torchvision.models.resnet50")
)
def resnet50(num_classes: int = 1000) -> nn.Sequential:
    return _resnet(1, 64, num_classes)
