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
from dataclasses import dataclass

import torch
from torch import nn

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerCost:
    """Cost of one leaf layer. Counts are totals over the batch; element counts, not bytes."""

    name: str
    kind: str
    in_shape: Shape
    out_shape: Shape
    params: int = 0
    macs: int = 0
    elementwise_ops: int = 0
    in_elements: int = 0
    out_elements: int = 0

    @property
    def train_macs(self) -> int:
        return 3 * self.macs

    def min_bytes(self, itemsize: int) -> int:
        """Bytes to read input and weights once and write output once."""
        return (self.in_elements + self.params + self.out_elements) * itemsize


class ShapeError(ValueError):
    """A spatial size or channel count a layer cannot take (a ValueError naming the rule)."""


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one spatial axis (PyTorch's floor rule)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _spatial_out(name: str, shape: Shape, kernel, stride, padding, dilation=1) -> tuple[int, int]:
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    h, w = shape[2], shape[3]
    ho = conv_output_size(h, kh, sh, ph, dh)
    wo = conv_output_size(w, kw, sw, pw, dw)
    if ho < 1 or wo < 1:
        axis, size, k, p = ("height", h, kh, ph) if ho < 1 else ("width", w, kw, pw)
        where = f" at layer '{name}'" if name else ""
        raise ShapeError(
            f"{axis}={size}{where} is too small for kernel_size={k} with padding={p}: the output would be empty"
        )
    return ho, wo


def _expect_channels(name: str, shape: Shape, channels: int) -> None:
    if len(shape) < 2 or shape[1] != channels:
        raise ShapeError(f"layer '{name}' expects {channels} input channels, got shape {tuple(shape)}")


def _elementwise(name: str, kind: str, shape: Shape, ops_per_element: int = 1) -> LayerCost:
    n = _numel(shape)
    return LayerCost(name, kind, shape, shape, elementwise_ops=ops_per_element * n, in_elements=n, out_elements=n)


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Sigmoid, nn.Hardswish, nn.Hardsigmoid, nn.GELU)


def trace(module: nn.Module, shape: Shape, prefix: str = "") -> tuple[Shape, list[LayerCost]]:
    """Propagate ``shape`` through ``module``; return the output shape and each leaf's cost.

    A module with ``trace_costs`` traces itself; a ``Sequential`` traces its children in turn; a torch
    leaf is traced by the entry of ``_LEAF_TRACERS`` for its class (or a base class).
    Raises :class:`ShapeError` (a ``ValueError``) when a layer cannot take the shape.
    """
    shape = tuple(int(d) for d in shape)
    if hasattr(module, "trace_costs"):
        return module.trace_costs(shape, prefix)
    if isinstance(module, nn.Sequential):
        layers: list[LayerCost] = []
        for child_name, child in module.named_children():
            shape, child_layers = trace(child, shape, _join(prefix, child_name))
            layers += child_layers
        return shape, layers
    for cls in type(module).__mro__:
        if cls in _LEAF_TRACERS:
            return _LEAF_TRACERS[cls](module, shape, prefix)
    raise TypeError(f"cannot trace module of type {type(module).__name__} at '{prefix}'")


def _trace_linear(module: nn.Linear, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    _expect_channels(prefix, shape, module.in_features)
    out = (shape[0], module.out_features)
    params = sum(p.numel() for p in module.parameters())
    bias_ops = _numel(out) if module.bias is not None else 0
    macs = shape[0] * module.in_features * module.out_features
    cost = LayerCost(prefix, "linear", shape, out, params, macs, bias_ops, _numel(shape), _numel(out))
    return out, [cost]


def _trace_batchnorm(module: nn.BatchNorm2d, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    _expect_channels(prefix, shape, module.num_features)
    cost = _elementwise(prefix, "batchnorm", shape, 2)
    params = sum(p.numel() for p in module.parameters())
    return shape, [LayerCost(**{**cost.__dict__, "params": params})]


def _trace_activation(module: nn.Module, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    return shape, [_elementwise(prefix, "activation", shape)]


def _trace_nothing(module: nn.Module, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    return shape, []  # identity, dropout: no work counted


def _trace_pool(module: nn.MaxPool2d | nn.AvgPool2d, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    ho, wo = _spatial_out(prefix, shape, module.kernel_size, module.stride, module.padding)
    out = (shape[0], shape[1], ho, wo)
    kh, kw = _pair(module.kernel_size)
    cost = LayerCost(prefix, "pool", shape, out, 0, 0, kh * kw * _numel(out), _numel(shape), _numel(out))
    return out, [cost]


def _trace_global_pool(module: nn.AdaptiveAvgPool2d, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    if _pair(module.output_size) != (1, 1):
        raise TypeError(f"cannot trace {module!r}: only global pooling (output_size=1) is supported")
    out = (shape[0], shape[1], 1, 1)
    return out, [LayerCost(prefix, "pool", shape, out, 0, 0, _numel(shape), _numel(shape), _numel(out))]


def _trace_flatten(module: nn.Flatten, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    return (shape[0], _numel(shape[1:])), []


def _trace_conv(conv: nn.Conv2d, shape: Shape, name: str) -> tuple[Shape, list[LayerCost]]:
    _expect_channels(name, shape, conv.in_channels)
    ho, wo = _spatial_out(name, shape, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    out = (shape[0], conv.out_channels, ho, wo)
    kh, kw = conv.kernel_size
    macs = _numel(out) * (conv.in_channels // conv.groups) * kh * kw
    params = conv.weight.numel() + (conv.bias.numel() if conv.bias is not None else 0)
    bias_ops = _numel(out) if conv.bias is not None else 0
    return out, [
        LayerCost(
            name,
            "conv",
            shape,
            out,
            params=params,
            macs=macs,
            elementwise_ops=bias_ops,
            in_elements=_numel(shape),
            out_elements=_numel(out),
        )
    ]


_LEAF_TRACERS = {
    nn.Conv2d: _trace_conv,
    nn.Linear: _trace_linear,
    nn.BatchNorm2d: _trace_batchnorm,
    **dict.fromkeys(_ACTIVATIONS, _trace_activation),
    nn.Identity: _trace_nothing,
    nn.Dropout: _trace_nothing,
    nn.MaxPool2d: _trace_pool,
    nn.AvgPool2d: _trace_pool,
    nn.AdaptiveAvgPool2d: _trace_global_pool,
    nn.Flatten: _trace_flatten,
}


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
        return shape, [_elementwise(prefix, "shuffle", shape)]

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def _concat_cost(name: str, shapes: Sequence[Shape]) -> tuple[Shape, LayerCost]:
    first = shapes[0]
    for s in shapes[1:]:
        if s[0] != first[0] or s[2:] != first[2:]:
            raise ShapeError(f"layer '{name}': cannot concatenate shapes {[tuple(x) for x in shapes]}")
    out = (first[0], sum(s[1] for s in shapes), *first[2:])
    n = _numel(out)
    return out, LayerCost(name, "concat", out, out, elementwise_ops=n, in_elements=n, out_elements=n)


def _add_cost(name: str, a: Shape, b: Shape, kind: str = "add") -> LayerCost:
    if tuple(a) != tuple(b):
        raise ShapeError(f"layer '{name}': cannot add shapes {tuple(a)} and {tuple(b)}")
    n = _numel(a)
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
        shape, dw = trace(self.depthwise, shape, _join(prefix, "depthwise"))
        shape, pw = trace(self.pointwise, shape, _join(prefix, "pointwise"))
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
        _expect_channels(prefix, shape, self.conv_channels + self.untouched_channels)
        part = (shape[0], self.conv_channels, *shape[2:])
        conv_out, layers = trace(self.conv, part, _join(prefix, "conv"))
        untouched = (shape[0], self.untouched_channels, *shape[2:])
        out, cat = _concat_cost(_join(prefix, "cat"), [conv_out, untouched])
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
        shape, a = trace(self.depthwise, shape, _join(prefix, "depthwise"))
        shape, b = trace(self.pointwise, shape, _join(prefix, "pointwise"))
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
        out, layers = trace(self.body, shape, _join(prefix, "body"))
        if self.use_residual:
            short = shape
            if self.shortcut is not None:
                short, short_layers = trace(self.shortcut, shape, _join(prefix, "shortcut"))
                layers += short_layers
            layers.append(_add_cost(_join(prefix, "add"), out, short))
        if self.post_act is not None:
            out, act = trace(self.post_act, out, _join(prefix, "post_act"))
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
            s, child_layers = trace(getattr(self, child), s, _join(prefix, child))
            layers += child_layers
        n = _numel(shape)
        layers.append(
            LayerCost(
                _join(prefix, "scale"),
                "mul",
                shape,
                shape,
                elementwise_ops=n,
                in_elements=n + _numel(s),
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
            out, more = trace(m, out, _join(prefix, name))
            layers += more
        if self.pool is None:
            layers.append(_add_cost(_join(prefix, "add"), out, shape))
            out, act = trace(self.act, out, _join(prefix, "act"))
            return out, layers + act
        out, act = trace(self.act, out, _join(prefix, "act"))
        pooled, pool = trace(self.pool, shape, _join(prefix, "pool"))
        out, cat = _concat_cost(_join(prefix, "cat"), [pooled, out])
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
            right_out, right = trace(self.right, half, _join(prefix, "right"))
        else:
            left_out, layers = trace(self.left, shape, _join(prefix, "left"))
            right_out, right = trace(self.right, shape, _join(prefix, "right"))
        out, cat = _concat_cost(_join(prefix, "cat"), [left_out, right_out])
        out, shuffle = trace(self.shuffle, out, _join(prefix, "shuffle"))
        return out, [*layers, *right, cat, *shuffle]
