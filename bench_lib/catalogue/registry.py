"""The workload catalogue: every convolution variant and block convbench can run, registered once.

A workload is a name, typed parameters with defaults, a builder and its dense equivalent. Everything
else (theory, measure, the asv suite, the CLI, the analysis) finds workloads here by name::

    >>> from bench_lib import workloads
    >>> m = workloads.build("grouped", in_channels=64, out_channels=128, kernel_size=3, groups=4)
    >>> x = workloads.example_input("grouped", batch=1, height=56, width=56, in_channels=64)

Bad parameters raise ``ValueError`` naming the workload, the parameter and the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench_lib.catalogue import layers

Params = dict[str, Any]


@dataclass(frozen=True)
class Param:
    """One parameter of a workload: its type, its default (None = derived from the others), its floor."""

    type: type
    default: Any
    minimum: float | None = None
    doc: str = ""


@dataclass(frozen=True)
class Workload:
    """A registered workload. ``kind`` is ``"op"`` (one layer) or ``"block"`` (a network block)."""

    name: str
    kind: str
    summary: str
    params: Mapping[str, Param]
    make: Callable[[Params], nn.Module]
    derive: Callable[[Params], None]
    check: Callable[[Params], None]
    dense: Callable[[Params], tuple[str, Params]]
    references: tuple[str, ...] = field(default=())
    # For workloads that wrap another (``stack``): resolves the parameters not in ``params``.
    nested: Callable[[Params, dict[str, Any]], Params] | None = None


_REGISTRY: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    if workload.name in _REGISTRY:
        raise ValueError(f"workload {workload.name!r} is registered twice")
    _REGISTRY[workload.name] = workload
    return workload


def names(kind: str | None = None) -> list[str]:
    """Registered workload names (of one kind if given), in registration order."""
    return [n for n, w in _REGISTRY.items() if kind is None or w.kind == kind]


def kinds() -> list[str]:
    return list(dict.fromkeys(w.kind for w in _REGISTRY.values()))


def get(name: str) -> Workload:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(_REGISTRY)}") from None


def resolve(name: str, **params: Any) -> Params:
    """All parameters of ``name`` with defaults filled in and derived values computed, validated."""
    w = get(name)
    unknown = sorted(set(params) - set(w.params))
    if unknown and w.nested is None:
        raise ValueError(f"{name}: unknown parameter {unknown[0]!r}; accepted: {', '.join(w.params)}")
    p: Params = {}
    for key, spec in w.params.items():
        value = params.get(key, spec.default)
        if value is not None:
            value = _coerce(name, key, value, spec)
        p[key] = value
    w.derive(p)
    for key, spec in w.params.items():
        if spec.minimum is not None and p[key] is not None and p[key] < spec.minimum:
            raise ValueError(f"{name}: {key}={p[key]!r} must be at least {spec.minimum:g}")
    w.check(p)
    if w.nested is not None:
        p.update(w.nested(p, {k: params[k] for k in unknown}))
    return p


def _coerce(name: str, key: str, value: Any, spec: Param) -> Any:
    if spec.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{name}: {key}={value!r} must be a bool (true/false)")
    if spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: {key}={value!r} must be an integer")
        return value
    if spec.type is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: {key}={value!r} must be a name")
        return value
    if spec.type is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name}: {key}={value!r} must be a number")
        return float(value)
    return value


def param_names(name: str, **params: Any) -> list[str]:
    """The workload's parameter names in their canonical order (a stack's own, then its op's)."""
    w = get(name)
    own = list(w.params)
    if w.nested is not None:
        op = params.get("op", w.params["op"].default)
        return own + [k for k in get(op).params if k not in own]
    return own


def build(name: str, **params: Any) -> nn.Module:
    """Build the workload as an ``nn.Module`` (parameters initialised by torch's defaults)."""
    return get(name).make(resolve(name, **params))


NETWORK_SIZE = 224  # input height and width of whole networks (ImageNet)
STAGE_SIZE = 56  # of everything else: the first stage of an ImageNet network


def default_size(name: str) -> int:
    """The input height and width a workload is measured at unless told otherwise."""
    return NETWORK_SIZE if get(name).kind == "network" else STAGE_SIZE


def in_channels(name: str, **params: Any) -> int:
    """Channels of the workload's input (networks take RGB images)."""
    return resolve(name, **params).get("in_channels", 3)


def input_shape(name: str, batch: int, height: int, width: int, **params: Any) -> tuple[int, int, int, int]:
    """NCHW shape of the workload's input; checks that every layer can take that spatial size."""
    for key, value in (("batch", batch), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: {key}={value!r} must be a positive integer")
    shape = (batch, in_channels(name, **params), height, width)
    output_shape(name, shape, **params)
    return shape


def output_shape(name: str, in_shape: tuple[int, ...], **params: Any) -> tuple[int, ...]:
    """Output shape for an input of ``in_shape``, traced without running (ValueError if impossible)."""
    with torch.device("meta"):
        module = build(name, **params)
    try:
        out, _ = layers.trace(module, tuple(in_shape))
    except layers.ShapeError as e:
        raise ValueError(f"{name}: {e}") from None
    return out


def example_input(
    name: str,
    batch: int,
    height: int,
    width: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    **params: Any,
) -> torch.Tensor:
    """A reproducible standard-normal NCHW input the workload accepts."""
    shape = input_shape(name, batch, height, width, **params)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)


def dense_equivalent(name: str, **params: Any) -> tuple[str, Params]:
    """The dense workload this one replaces: same shapes, every convolution with groups=1.

    For ops it is another op (``depthwise_separable`` → the ``standard`` K×K conv it factorises,
    ``channel_shuffle`` → a dense 1×1 conv, which can express any channel permutation, ``partial`` →
    the ``standard`` K×K conv over all channels); for blocks it is the same block with ``dense=True``.
    A dense workload is its own equivalent.
    """
    w = get(name)
    dense_name, dense_params = w.dense(resolve(name, **params))
    return dense_name, resolve(dense_name, **dense_params)


# --------------------------------------------------------------------------------------------
# parameter checks shared by the registrations


def _divisible(name: str, p: Params, key: str, by: str, by_value: int | None = None) -> None:
    d = p[by] if by_value is None else by_value
    if p[key] % d:
        raise ValueError(f"{name}: {key}={p[key]} must be divisible by {by}={d}")


def _padding_default(p: Params) -> None:
    if "padding" in p and p["padding"] is None:
        p["padding"] = p["kernel_size"] // 2


def _no_derive(p: Params) -> None:
    pass


def _no_check(p: Params) -> None:
    pass


def _odd_kernel(name: str, p: Params) -> None:
    if p["kernel_size"] % 2 == 0:
        raise ValueError(
            f"{name}: kernel_size={p['kernel_size']} must be odd (the block keeps its spatial size at stride 1)"
        )


def _stride_in(name: str, p: Params, allowed: tuple[int, ...]) -> None:
    if p["stride"] not in allowed:
        raise ValueError(f"{name}: stride={p['stride']} must be one of {', '.join(map(str, allowed))}")


def _self_dense(name: str) -> Callable[[Params], tuple[str, Params]]:
    return lambda p: (name, p)


def _block_dense(name: str) -> Callable[[Params], tuple[str, Params]]:
    return lambda p: (name, {**p, "dense": True})


IN = Param(int, 64, 1, "input channels")
OUT = Param(int, 64, 1, "output channels")
K = Param(int, 3, 1, "kernel size (square)")
STRIDE = Param(int, 1, 1, "stride")
PAD = Param(int, None, 0, "zero padding (default kernel_size // 2)")
BIAS = Param(bool, True, None, "learnable bias")
DENSE = Param(bool, False, None, "replace every grouped or depthwise conv by a dense one")


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


register(
    Workload(
        name="standard",
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
        make=lambda p: _conv2d(p, 1),
        derive=_padding_default,
        check=_no_check,
        dense=_self_dense("standard"),
    )
)


def _check_grouped(p: Params) -> None:
    _divisible("grouped", p, "in_channels", "groups")
    _divisible("grouped", p, "out_channels", "groups")


register(
    Workload(
        name="grouped",
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
        make=lambda p: _conv2d(p, p["groups"]),
        derive=_padding_default,
        check=_check_grouped,
        dense=lambda p: _standard_of(p),
        references=("Krizhevsky et al. 2012", "Xie et al. 2017 (ResNeXt)"),
    )
)


def _derive_depthwise(p: Params) -> None:
    _padding_default(p)
    if p["out_channels"] is None:
        p["out_channels"] = p["in_channels"]


register(
    Workload(
        name="depthwise",
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
        make=lambda p: _conv2d(p, p["in_channels"]),
        derive=_derive_depthwise,
        check=lambda p: _divisible("depthwise", p, "out_channels", "in_channels"),
        dense=lambda p: _standard_of(p),
        references=("Howard et al. 2017 (MobileNet)",),
    )
)

register(
    Workload(
        name="pointwise",
        kind="op",
        summary="1×1 convolution",
        params={"in_channels": IN, "out_channels": Param(int, 128, 1), "stride": STRIDE, "bias": BIAS},
        make=lambda p: nn.Conv2d(p["in_channels"], p["out_channels"], 1, stride=p["stride"], bias=p["bias"]),
        derive=_no_derive,
        check=_no_check,
        dense=_self_dense("pointwise"),
    )
)

register(
    Workload(
        name="depthwise_separable",
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
        make=lambda p: layers.DepthwiseSeparable(
            p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"], p["padding"], p["bias"]
        ),
        derive=_padding_default,
        check=_no_check,
        dense=lambda p: _standard_of(p),
        references=("Howard et al. 2017 (MobileNet), Table 3",),
    )
)

register(
    Workload(
        name="channel_shuffle",
        kind="op",
        summary="reshape to (N, G, C/G, H, W), transpose, flatten; dense equivalent: a 1×1 conv C→C",
        params={"in_channels": Param(int, 240, 1), "groups": Param(int, 3, 1)},
        make=lambda p: layers.ChannelShuffle(p["groups"]),
        derive=_no_derive,
        check=lambda p: _divisible("channel_shuffle", p, "in_channels", "groups"),
        dense=lambda p: (
            "pointwise",
            {"in_channels": p["in_channels"], "out_channels": p["in_channels"], "bias": False},
        ),
        references=("Zhang et al. 2018 (ShuffleNet)",),
    )
)


def _check_partial(p: Params) -> None:
    _divisible("partial", p, "in_channels", "partial_ratio")
    _odd_kernel("partial", p)


register(
    Workload(
        name="partial",
        kind="op",
        summary="FasterNet's PConv: K×K conv on the first C/partial_ratio channels, the rest untouched",
        params={
            "in_channels": IN,
            "kernel_size": K,
            "partial_ratio": Param(int, 4, 2, "the conv sees in_channels / partial_ratio channels"),
            "bias": Param(bool, False),
        },
        make=lambda p: layers.PartialConv(p["in_channels"], p["kernel_size"], p["partial_ratio"], p["bias"]),
        derive=_no_derive,
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
    )
)

# --------------------------------------------------------------------------------------------
# blocks

register(
    Workload(
        name="mobilenet_v1",
        kind="block",
        summary="depthwise K×K → BN → ReLU → pointwise → BN → ReLU",
        params={
            "in_channels": IN,
            "out_channels": Param(int, 128, 1),
            "kernel_size": K,
            "stride": STRIDE,
            "dense": DENSE,
        },
        make=lambda p: layers.MobileNetV1Block(
            p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"], p["dense"]
        ),
        derive=_no_derive,
        check=lambda p: _odd_kernel("mobilenet_v1", p),
        dense=_block_dense("mobilenet_v1"),
        references=("Howard et al. 2017, Fig. 3",),
    )
)

register(
    Workload(
        name="inverted_residual",
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
        make=lambda p: layers.InvertedResidual(
            p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"], p["expand_ratio"], p["dense"]
        ),
        derive=_no_derive,
        check=lambda p: _odd_kernel("inverted_residual", p),
        dense=_block_dense("inverted_residual"),
        references=("Sandler et al. 2018 (MobileNet V2), Table 1",),
    )
)


def _check_shufflenet_v1(p: Params) -> None:
    name = "shufflenet_v1_unit"
    _odd_kernel(name, p)
    _stride_in(name, p, (1, 2))
    mid = p["out_channels"] // 4
    if p["out_channels"] % 4:
        raise ValueError(f"{name}: out_channels={p['out_channels']} must be divisible by 4 (bottleneck width)")
    if mid % p["groups"]:
        raise ValueError(f"{name}: out_channels / 4 = {mid} must be divisible by groups={p['groups']}")
    if p["first_grouped"]:
        _divisible(name, p, "in_channels", "groups")
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


register(
    Workload(
        name="shufflenet_v1_unit",
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
        make=lambda p: layers.ShuffleNetV1Unit(
            p["in_channels"],
            p["out_channels"],
            p["kernel_size"],
            p["stride"],
            p["groups"],
            p["first_grouped"],
            p["dense"],
        ),
        derive=_no_derive,
        check=_check_shufflenet_v1,
        dense=_block_dense("shufflenet_v1_unit"),
        references=("Zhang et al. 2018 (ShuffleNet), Fig. 2",),
    )
)


def _check_shufflenet_v2(p: Params) -> None:
    name = "shufflenet_v2_unit"
    _odd_kernel(name, p)
    _stride_in(name, p, (1, 2))
    if p["out_channels"] % 2:
        raise ValueError(f"{name}: out_channels={p['out_channels']} must be even (two branches)")
    if p["stride"] == 1 and p["in_channels"] != p["out_channels"]:
        raise ValueError(
            f"{name}: in_channels={p['in_channels']} must equal out_channels="
            f"{p['out_channels']} at stride 1 (channel split)"
        )


register(
    Workload(
        name="shufflenet_v2_unit",
        kind="block",
        summary="split, 1×1 → depthwise 3×3 → 1×1 on one half, concat, shuffle; stride 2: two branches",
        params={
            "in_channels": Param(int, 116, 1),
            "out_channels": Param(int, 116, 1),
            "kernel_size": K,
            "stride": STRIDE,
            "dense": DENSE,
        },
        make=lambda p: layers.ShuffleNetV2Unit(
            p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"], p["dense"]
        ),
        derive=_no_derive,
        check=_check_shufflenet_v2,
        dense=_block_dense("shufflenet_v2_unit"),
        references=("Ma et al. 2018 (ShuffleNet V2), Fig. 3", "torchvision.models.shufflenetv2"),
    )
)


def _check_mbconv(p: Params) -> None:
    _odd_kernel("mbconv", p)
    if not 0 <= p["se_ratio"] <= 1:
        raise ValueError(f"mbconv: se_ratio={p['se_ratio']} must be between 0 and 1 (0 disables SE)")


register(
    Workload(
        name="mbconv",
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
        make=lambda p: layers.MBConv(
            p["in_channels"],
            p["out_channels"],
            p["kernel_size"],
            p["stride"],
            p["expand_ratio"],
            p["se_ratio"],
            p["dense"],
        ),
        derive=_no_derive,
        check=_check_mbconv,
        dense=_block_dense("mbconv"),
        references=("Tan & Le 2019 (EfficientNet)", "Sandler et al. 2018"),
    )
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


register(
    Workload(
        name="resnext_bottleneck",
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
        make=_make_bottleneck,
        derive=_no_derive,
        check=lambda p: _check_bottleneck("resnext_bottleneck", p),
        dense=_block_dense("resnext_bottleneck"),
        references=("Xie et al. 2017 (ResNeXt)", "torchvision.models.resnet"),
    )
)

register(
    Workload(
        name="resnet_basic",
        kind="block",
        summary="dense baseline: 3×3 → 3×3, residual (projection when shapes differ)",
        params={"in_channels": IN, "out_channels": OUT, "stride": STRIDE},
        make=lambda p: layers.BasicBlock(p["in_channels"], p["out_channels"], p["stride"]),
        derive=_no_derive,
        check=_no_check,
        dense=_self_dense("resnet_basic"),
        references=("He et al. 2016 (ResNet)",),
    )
)


def _resnet_bottleneck(p: Params) -> nn.Module:
    return layers.Bottleneck(p["in_channels"], p["out_channels"], p["stride"], 1, 64, False)


register(
    Workload(
        name="resnet_bottleneck",
        kind="block",
        summary="dense baseline: 1×1 → 3×3 → 1×1 (width out/4), residual (projection when shapes differ)",
        params={"in_channels": Param(int, 256, 1), "out_channels": Param(int, 256, 1), "stride": STRIDE},
        make=_resnet_bottleneck,
        derive=_no_derive,
        check=lambda p: _check_bottleneck("resnet_bottleneck", {**p, "groups": 1, "width_per_group": 64}),
        dense=_self_dense("resnet_bottleneck"),
        references=("He et al. 2016 (ResNet)",),
    )
)

# --------------------------------------------------------------------------------------------
# composites for the paper reproductions

register(
    Workload(
        name="pointwise_pair",
        kind="composite",
        summary="1×1 conv c1→c2 then 1×1 conv c2→c1, bias-free (ShuffleNet V2's guideline-1 block)",
        params={"in_channels": Param(int, 128, 1, "c1"), "mid_channels": Param(int, 128, 1, "c2")},
        make=lambda p: nn.Sequential(
            nn.Conv2d(p["in_channels"], p["mid_channels"], 1, bias=False),
            nn.Conv2d(p["mid_channels"], p["in_channels"], 1, bias=False),
        ),
        derive=_no_derive,
        check=_no_check,
        dense=_self_dense("pointwise_pair"),
        references=("Ma et al. 2018 (ShuffleNet V2), Table 1",),
    )
)


def stackable() -> list[str]:
    return [*names("op"), "pointwise_pair"]


def _stack_inner(p: Params, extra: dict[str, Any]) -> Params:
    op = p["op"]
    if op not in stackable():
        raise ValueError(f"stack: op={op!r} must be one of {', '.join(stackable())}")
    spec = get(op).params
    if "out_channels" in spec and "out_channels" not in extra:  # a stack keeps its width
        extra = {**extra, "out_channels": extra.get("in_channels", spec["in_channels"].default)}
    inner = resolve(op, **extra)
    out = inner.get("out_channels") or inner["in_channels"]
    if out != inner["in_channels"]:
        raise ValueError(
            f"stack: out_channels={out} must equal in_channels={inner['in_channels']} (each layer feeds the next)"
        )
    if inner.get("stride", 1) != 1:
        raise ValueError(f"stack: stride={inner['stride']} must be 1 (the layers keep the spatial size)")
    return inner


def _stack_dense(p: Params) -> tuple[str, Params]:
    inner = {k: v for k, v in p.items() if k not in ("op", "depth")}
    dense_op, dense_params = dense_equivalent(p["op"], **inner)
    return "stack", {"op": dense_op, "depth": p["depth"], **dense_params}


def _make_stack(p: Params) -> nn.Module:
    inner = {k: v for k, v in p.items() if k not in ("op", "depth")}
    return nn.Sequential(*[get(p["op"]).make(inner) for _ in range(p["depth"])])


register(
    Workload(
        name="stack",
        kind="composite",
        summary="depth copies of one op (or pointwise_pair) in sequence: the papers' benchmark networks",
        params={"op": Param(str, "grouped", None, "the stacked workload"), "depth": Param(int, 10, 1, "copies")},
        make=_make_stack,
        derive=_no_derive,
        check=_no_check,
        dense=_stack_dense,
        nested=_stack_inner,
        references=("Ma et al. 2018, Tables 1-2", "Chen et al. 2023 (FasterNet), Table 1"),
    )
)

# --------------------------------------------------------------------------------------------
# whole networks, assembled from the blocks above (bench_lib.networks)


def _register_network(name: str, make: Callable[..., nn.Module], summary: str, width: bool, refs: tuple[str, ...]):
    params: dict[str, Param] = {"num_classes": Param(int, 1000, 1, "classifier outputs")}
    if width:
        params = {"width_mult": Param(float, 1.0, 0.0, "the paper's width multiplier"), **params}
    register(
        Workload(
            name=f"net_{name}",
            kind="network",
            summary=summary,
            params=params,
            make=lambda p: make(**p),
            derive=_no_derive,
            check=_no_check,
            dense=_self_dense(f"net_{name}"),
            references=refs,
        )
    )


def _networks() -> None:
    from bench_lib.catalogue import networks as n

    _register_network(
        "mobilenet_v1", n.mobilenet_v1, "MobileNet V1 (α = width_mult), 224×224", True, ("Howard et al. 2017, Table 1",)
    )
    _register_network(
        "mobilenet_v2",
        n.mobilenet_v2,
        "MobileNet V2 (width_mult), 224×224",
        True,
        ("Sandler et al. 2018, Table 2", "torchvision.models.mobilenet_v2"),
    )
    _register_network(
        "shufflenet_v1",
        n.shufflenet_v1,
        "ShuffleNet V1, g = 3, 1× (width_mult 0.5–2.0)",
        True,
        ("Zhang et al. 2018, Table 1", "megvii-model/ShuffleNet-Series"),
    )
    _register_network(
        "shufflenet_v2",
        n.shufflenet_v2,
        "ShuffleNet V2 1× (width_mult 0.5–2.0)",
        True,
        ("Ma et al. 2018, Table 5", "torchvision.models.shufflenet_v2_x1_0"),
    )
    _register_network(
        "efficientnet_b0",
        n.efficientnet_b0,
        "EfficientNet-B0",
        False,
        ("Tan & Le 2019, Table 1", "torchvision.models.efficientnet_b0"),
    )
    _register_network(
        "resnext50_32x4d",
        n.resnext50_32x4d,
        "ResNeXt-50 (32×4d)",
        False,
        ("Xie et al. 2017", "torchvision.models.resnext50_32x4d"),
    )
    _register_network(
        "resnet50",
        n.resnet50,
        "ResNet-50 (v1.5: stride on the 3×3)",
        False,
        ("He et al. 2016", "torchvision.models.resnet50"),
    )


_networks()
