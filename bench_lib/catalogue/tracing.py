"""Tracing a module's cost without running it: its output shape and one :class:`LayerCost` per leaf.

:func:`trace` propagates an input shape through a module: a module with ``trace_costs`` (every one in
:mod:`bench_lib.catalogue.layers`) traces itself, a ``Sequential`` its children in turn, and a torch leaf
(conv, linear, batch norm, activations, pools, flatten) the entry of ``LEAF_TRACERS`` for its class. The
counting rules are :mod:`bench_lib.catalogue.layers`' (``docs/costs.md`` says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def join(prefix: str, name: str) -> str:
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


def expect_channels(name: str, shape: Shape, channels: int) -> None:
    if len(shape) < 2 or shape[1] != channels:
        raise ShapeError(f"layer '{name}' expects {channels} input channels, got shape {tuple(shape)}")


def elementwise(name: str, kind: str, shape: Shape, ops_per_element: int = 1) -> LayerCost:
    n = numel(shape)
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
            shape, child_layers = trace(child, shape, join(prefix, child_name))
            layers += child_layers
        return shape, layers
    for cls in type(module).__mro__:
        if cls in _LEAF_TRACERS:
            return _LEAF_TRACERS[cls](module, shape, prefix)
    raise TypeError(f"cannot trace module of type {type(module).__name__} at '{prefix}'")


def _trace_linear(module: nn.Linear, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    expect_channels(prefix, shape, module.in_features)
    out = (shape[0], module.out_features)
    params = sum(p.numel() for p in module.parameters())
    bias_ops = numel(out) if module.bias is not None else 0
    macs = shape[0] * module.in_features * module.out_features
    cost = LayerCost(prefix, "linear", shape, out, params, macs, bias_ops, numel(shape), numel(out))
    return out, [cost]


def _trace_batchnorm(module: nn.BatchNorm2d, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    expect_channels(prefix, shape, module.num_features)
    cost = elementwise(prefix, "batchnorm", shape, 2)
    params = sum(p.numel() for p in module.parameters())
    return shape, [LayerCost(**{**cost.__dict__, "params": params})]


def _trace_activation(module: nn.Module, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    return shape, [elementwise(prefix, "activation", shape)]


def _trace_nothing(module: nn.Module, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    return shape, []  # identity, dropout: no work counted


def _trace_pool(module: nn.MaxPool2d | nn.AvgPool2d, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    ho, wo = _spatial_out(prefix, shape, module.kernel_size, module.stride, module.padding)
    out = (shape[0], shape[1], ho, wo)
    kh, kw = _pair(module.kernel_size)
    cost = LayerCost(prefix, "pool", shape, out, 0, 0, kh * kw * numel(out), numel(shape), numel(out))
    return out, [cost]


def _trace_global_pool(module: nn.AdaptiveAvgPool2d, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    if _pair(module.output_size) != (1, 1):
        raise TypeError(f"cannot trace {module!r}: only global pooling (output_size=1) is supported")
    out = (shape[0], shape[1], 1, 1)
    return out, [LayerCost(prefix, "pool", shape, out, 0, 0, numel(shape), numel(shape), numel(out))]


def _trace_flatten(module: nn.Flatten, shape: Shape, prefix: str) -> tuple[Shape, list[LayerCost]]:
    return (shape[0], numel(shape[1:])), []


def _trace_conv(conv: nn.Conv2d, shape: Shape, name: str) -> tuple[Shape, list[LayerCost]]:
    expect_channels(name, shape, conv.in_channels)
    ho, wo = _spatial_out(name, shape, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    out = (shape[0], conv.out_channels, ho, wo)
    kh, kw = conv.kernel_size
    macs = numel(out) * (conv.in_channels // conv.groups) * kh * kw
    params = conv.weight.numel() + (conv.bias.numel() if conv.bias is not None else 0)
    bias_ops = numel(out) if conv.bias is not None else 0
    return out, [
        LayerCost(
            name,
            "conv",
            shape,
            out,
            params=params,
            macs=macs,
            elementwise_ops=bias_ops,
            in_elements=numel(shape),
            out_elements=numel(out),
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
