"""The modules convbench's workloads are built from, each able to trace its own cost.

Every module here (and every torch leaf module the workloads use) can be *traced*: given an input
shape, :func:`trace` returns the output shape and one :class:`LayerCost` per leaf layer, without
running anything. The modules' ``forward`` and their ``trace_costs`` sit side by side so the
structure is written once; :mod:`bench_lib.catalogue.theory` sums the records.

Counting rules (``docs/costs.md`` says why):

- ``macs``: multiply-accumulates of convolutions and linear layers only (bias excluded).
- ``elementwise_ops``: everything else, one op per output element and step: bias add 1, batch norm 2
  (scale and shift), activation 1, residual add 1, SE multiply 1, shuffle or concat move 1,
  an average pool k×k k² per output element, a global average pool 1 per input element.
- ``train_macs``: forward + grad-input + grad-weight = 3 × ``macs`` for every conv and linear,
  grouped ones included (each group's gradients are as large as its forward).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from bench_lib.catalogue.tracing import (  # noqa: F401  (trace, LayerCost, ShapeError: read as layers.* too)
    LayerCost,
    Shape,
    ShapeError,
    conv_output_size,
    elementwise,
    expect_channels,
    join,
    numel,
    trace,
)


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    padding: int | None = None,
    bias: bool = False,
    dense: bool = False,
) -> nn.Conv2d:
    """A Conv2d with 'same'-style padding by default; ``dense=True`` forces groups=1."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2 if padding is None else padding,
        groups=1 if dense else groups,
        bias=bias,
    )


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU,
    dense: bool = False,
) -> nn.Sequential:
    """Conv (bias-free) → BatchNorm → activation, as every block here uses."""
    layers = [
        conv(in_channels, out_channels, kernel_size, stride=stride, groups=groups, dense=dense),
        nn.BatchNorm2d(out_channels),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: (N, G·C', H, W) → (N, G, C', H, W) → transpose → flatten."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def trace_costs(self, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
        if shape[1] % self.groups:
            raise ShapeError(f"layer '{prefix}': {shape[1]} channels are not divisible by groups={self.groups}")
        return shape, [elementwise(prefix, "shuffle", shape)]

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def _concat_cost(name: str, shapes: Sequence[Shape]) -> tuple[Shape, LayerCost]:
    first = shapes[0]
    for s in shapes[1:]:
        if s[0] != first[0] or s[2:] != first[2:]:
            raise ShapeError(f"layer '{name}': cannot concatenate shapes {[tuple(x) for x in shapes]}")
    out = (first[0], sum(s[1] for s in shapes), *first[2:])
    n = numel(out)
    return out, LayerCost(name, "concat", out, out, elementwise_ops=n, in_elements=n, out_elements=n)


def _add_cost(name: str, a: Shape, b: Shape, kind: str = "add") -> LayerCost:
    if tuple(a) != tuple(b):
        raise ShapeError(f"layer '{name}': cannot add shapes {tuple(a)} and {tuple(b)}")
    n = numel(a)
    return LayerCost(name, kind, a, a, elementwise_ops=n, in_elements=2 * n, out_elements=n)


class DepthwiseSeparable(nn.Module):
    """Depthwise K×K then pointwise 1×1 (MobileNet V1's factorisation, no BN between)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, bias: bool):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.bias = stride, padding, bias  # kept to be rebuilt (user_script)
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size, stride, padding, groups=in_channels, bias=bias
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))

    def trace_costs(self, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
        shape, dw = trace(self.depthwise, shape, join(prefix, "depthwise"))
        shape, pw = trace(self.pointwise, shape, join(prefix, "pointwise"))
        return shape, dw + pw


class PartialConv(nn.Module):
    """FasterNet's PConv: a K×K conv on the first C/partial_ratio channels, the rest untouched."""

    def __init__(self, in_channels: int, kernel_size: int, partial_ratio: int, bias: bool):
        super().__init__()
        self.in_channels, self.kernel_size = in_channels, kernel_size  # kept to be rebuilt (user_script)
        self.partial_ratio, self.bias = partial_ratio, bias
        self.conv_channels = in_channels // partial_ratio
        self.untouched_channels = in_channels - self.conv_channels
        self.conv = nn.Conv2d(self.conv_channels, self.conv_channels, kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = torch.split(x, [self.conv_channels, self.untouched_channels], dim=1)
        return torch.cat((self.conv(x1), x2), dim=1)

    def trace_costs(self, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
        expect_channels(prefix, shape, self.conv_channels + self.untouched_channels)
        part = (shape[0], self.conv_channels, *shape[2:])
        conv_out, layers = trace(self.conv, part, join(prefix, "conv"))
        untouched = (shape[0], self.untouched_channels, *shape[2:])
        out, cat = _concat_cost(join(prefix, "cat"), [conv_out, untouched])
        return out, [*layers, cat]


class MobileNetV1Block(nn.Module):
    """Depthwise K×K → BN → ReLU → pointwise 1×1 → BN → ReLU (Howard et al. 2017, Fig. 3)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, dense: bool):
        super().__init__()
        self.depthwise = conv_bn(in_channels, in_channels, kernel_size, stride=stride, groups=in_channels, dense=dense)
        self.pointwise = conv_bn(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))

    def trace_costs(self, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
        shape, a = trace(self.depthwise, shape, join(prefix, "depthwise"))
        shape, b = trace(self.pointwise, shape, join(prefix, "pointwise"))
        return shape, a + b


class _ResidualBlock(nn.Module):
    """A body, an optional shortcut module, and an add (then an optional activation)."""

    body: nn.Module
    shortcut: nn.Module | None
    use_residual: bool
    post_act: nn.Module | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.use_residual:
            out = out + (self.shortcut(x) if self.shortcut is not None else x)
        if self.post_act is not None:
            out = self.post_act(out)
        return out

    def trace_costs(self, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
        out, layers = trace(self.body, shape, join(prefix, "body"))
        if self.use_residual:
            short = shape
            if self.shortcut is not None:
                short, short_layers = trace(self.shortcut, shape, join(prefix, "shortcut"))
                layers += short_layers
            layers.append(_add_cost(join(prefix, "add"), out, short))
        if self.post_act is not None:
            out, act = trace(self.post_act, out, join(prefix, "post_act"))
            layers += act
        return out, layers


class InvertedResidual(_ResidualBlock):
    """MobileNet V2: 1×1 expansion (if expand_ratio > 1) → depthwise K×K → linear 1×1 projection.

    ReLU6 after expansion and depthwise; residual iff stride 1 and in_channels == out_channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        dense: bool,
    ):
        super().__init__()
        hidden = in_channels * expand_ratio
        layers = expand_depthwise(in_channels, hidden, kernel_size, stride, nn.ReLU6, dense)
        layers["project"] = conv_bn(hidden, out_channels, 1, act=None)
        self.body = layers_from(layers)
        self.shortcut = None
        self.use_residual = stride == 1 and in_channels == out_channels
        self.post_act = None


def expand_depthwise(
    in_channels: int, hidden: int, kernel_size: int, stride: int, act: type[nn.Module], dense: bool
) -> dict[str, nn.Module]:
    """The shared start of MobileNet V2's and EfficientNet's blocks: 1×1 expansion (when hidden differs
    from in_channels) then a depthwise K×K with the stride, each with BN and ``act``."""
    layers: dict[str, nn.Module] = {}
    if hidden != in_channels:
        layers["expand"] = conv_bn(in_channels, hidden, 1, act=act)
    layers["depthwise"] = conv_bn(hidden, hidden, kernel_size, stride=stride, groups=hidden, act=act, dense=dense)
    return layers


def layers_from(named: dict[str, nn.Module]) -> nn.Sequential:
    """An nn.Sequential whose children keep the given names."""
    return nn.Sequential(OrderedDict(named))


class SqueezeExcite(nn.Module):
    """Global pool → 1×1 reduce (bias) → SiLU → 1×1 expand (bias) → sigmoid → scale the input."""

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1, bias=True)
        self.act = nn.SiLU()
        self.expand = nn.Conv2d(squeeze_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * scale

    def trace_costs(self, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
        layers: list[LayerCost] = []
        s = shape
        for child in ("pool", "reduce", "act", "expand", "gate"):
            s, child_layers = trace(getattr(self, child), s, join(prefix, child))
            layers += child_layers
        n = numel(shape)
        layers.append(
            LayerCost(
                join(prefix, "scale"),
                "mul",
                shape,
                shape,
                elementwise_ops=n,
                in_elements=n + numel(s),
                out_elements=n,
            )
        )
        return shape, layers


class MBConv(_ResidualBlock):
    """EfficientNet's MBConv: expansion → depthwise K×K → squeeze-excitation → linear projection.

    SiLU activations; SE width = max(1, int(in_channels · se_ratio)) as in EfficientNet; residual
    when stride is 1 and in_channels == out_channels (stochastic depth is a no-op in eval).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        se_ratio: float,
        dense: bool,
    ):
        super().__init__()
        hidden = in_channels * expand_ratio
        layers = expand_depthwise(in_channels, hidden, kernel_size, stride, nn.SiLU, dense)
        if se_ratio > 0:
            layers["se"] = SqueezeExcite(hidden, max(1, int(in_channels * se_ratio)))
        layers["project"] = conv_bn(hidden, out_channels, 1, act=None)
        self.body = layers_from(layers)
        self.shortcut = None
        self.use_residual = stride == 1 and in_channels == out_channels
        self.post_act = None


class Bottleneck(_ResidualBlock):
    """ResNet/ResNeXt bottleneck: 1×1 → (grouped) 3×3 with the stride → 1×1, shortcut, add, ReLU.

    width = int(out_channels / 4 · width_per_group / 64) · groups, as torchvision computes it; the
    shortcut is a strided 1×1 conv + BN when the shape changes.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, groups: int, width_per_group: int, dense: bool
    ):
        super().__init__()
        width = bottleneck_width(out_channels, groups, width_per_group)
        self.body = layers_from(
            {
                "reduce": conv_bn(in_channels, width, 1),
                "conv": conv_bn(width, width, 3, stride=stride, groups=groups, dense=dense),
                "expand": conv_bn(width, out_channels, 1, act=None),
            }
        )
        self.shortcut = (
            conv_bn(in_channels, out_channels, 1, stride=stride, act=None)
            if stride != 1 or in_channels != out_channels
            else None
        )
        self.use_residual = True
        self.post_act = nn.ReLU()


def bottleneck_width(out_channels: int, groups: int, width_per_group: int) -> int:
    return int(out_channels / 4 * width_per_group / 64) * groups


class BasicBlock(_ResidualBlock):
    """ResNet basic block: 3×3 with the stride → 3×3, shortcut (1×1 + BN if the shape changes), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = layers_from(
            {
                "conv1": conv_bn(in_channels, out_channels, 3, stride=stride),
                "conv2": conv_bn(out_channels, out_channels, 3, act=None),
            }
        )
        self.shortcut = (
            conv_bn(in_channels, out_channels, 1, stride=stride, act=None)
            if stride != 1 or in_channels != out_channels
            else None
        )
        self.use_residual = True
        self.post_act = nn.ReLU()


class ShuffleNetV1Unit(nn.Module):
    """ShuffleNet V1 unit (Zhang et al. 2018, Fig. 2b/c; Megvii's reference code).

    grouped 1×1 (to out_channels // 4) → BN → ReLU → shuffle → depthwise K×K → BN → grouped 1×1 → BN.
    Stride 1 adds the input then ReLU; stride 2 concatenates a 3×3/2 average-pooled input with the
    ReLU'd branch, whose last conv then produces out_channels − in_channels channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        groups: int,
        first_grouped: bool,
        dense: bool,
    ):
        super().__init__()
        self.stride = stride
        mid = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        g = groups if first_grouped else 1
        self.reduce = conv_bn(in_channels, mid, 1, groups=g, dense=dense)
        self.shuffle = ChannelShuffle(1 if dense else groups)
        self.depthwise = conv_bn(mid, mid, kernel_size, stride=stride, groups=mid, act=None, dense=dense)
        self.expand = conv_bn(mid, branch_out, 1, groups=groups, act=None, dense=dense)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.act = nn.ReLU()

    def _branch(self) -> list[tuple[str, nn.Module]]:
        return [(n, getattr(self, n)) for n in ("reduce", "shuffle", "depthwise", "expand")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for _, m in self._branch():
            out = m(out)
        if self.pool is None:
            return self.act(out + x)
        return torch.cat((self.pool(x), self.act(out)), dim=1)

    def trace_costs(self, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
        out, layers = shape, []
        for name, m in self._branch():
            out, more = trace(m, out, join(prefix, name))
            layers += more
        if self.pool is None:
            layers.append(_add_cost(join(prefix, "add"), out, shape))
            out, act = trace(self.act, out, join(prefix, "act"))
            return out, layers + act
        out, act = trace(self.act, out, join(prefix, "act"))
        pooled, pool = trace(self.pool, shape, join(prefix, "pool"))
        out, cat = _concat_cost(join(prefix, "cat"), [pooled, out])
        return out, [*layers, *act, *pool, cat]


class ShuffleNetV2Unit(nn.Module):
    """ShuffleNet V2 unit (Ma et al. 2018, Fig. 3c/d; torchvision's InvertedResidual).

    Stride 1: split channels in half, 1×1 → BN → ReLU → depthwise K×K → BN → 1×1 → BN → ReLU on the
    second half, concat, shuffle(2). Stride 2: both branches see the whole input (the left one is
    depthwise K×K/2 → BN → 1×1 → BN → ReLU), each yields out_channels / 2.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, dense: bool):
        super().__init__()
        self.stride = stride
        half = out_channels // 2
        if stride > 1:
            self.left = layers_from(
                {
                    "depthwise": conv_bn(
                        in_channels,
                        in_channels,
                        kernel_size,
                        stride=stride,
                        groups=in_channels,
                        act=None,
                        dense=dense,
                    ),
                    "pointwise": conv_bn(in_channels, half, 1),
                }
            )
        else:
            self.left = None
        self.right = layers_from(
            {
                "reduce": conv_bn(in_channels if stride > 1 else half, half, 1),
                "depthwise": conv_bn(half, half, kernel_size, stride=stride, groups=half, act=None, dense=dense),
                "expand": conv_bn(half, half, 1),
            }
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.left is None:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.right(x2)), dim=1)
        else:
            out = torch.cat((self.left(x), self.right(x)), dim=1)
        return self.shuffle(out)

    def trace_costs(self, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
        if self.left is None:
            half = (shape[0], shape[1] // 2, *shape[2:])
            left_out, layers = half, []
            right_out, right = trace(self.right, half, join(prefix, "right"))
        else:
            left_out, layers = trace(self.left, shape, join(prefix, "left"))
            right_out, right = trace(self.right, shape, join(prefix, "right"))
        out, cat = _concat_cost(join(prefix, "cat"), [left_out, right_out])
        out, shuffle = trace(self.shuffle, out, join(prefix, "shuffle"))
        return out, [*layers, *right, cat, *shuffle]
