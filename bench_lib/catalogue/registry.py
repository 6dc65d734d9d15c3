"""The workload registry: workloads register themselves where they are defined, and everything else
(theory, measure, the asv suite, the CLI, the analysis) finds them here by name. The registry knows no
workload: the definitions live in :mod:`.ops`, :mod:`.blocks`, :mod:`.composites` and :mod:`.networks`,
each a builder decorated with :func:`workload` (timm's ``@register_model`` is the model)::

    >>> from bench_lib.catalogue import registry
    >>> m = registry.build("grouped", in_channels=64, out_channels=128, kernel_size=3, groups=4)
    >>> x = registry.example_input("grouped", batch=1, height=56, width=56, in_channels=64)

Bad parameters raise ``ValueError`` naming the workload, the parameter and the rule.
"""

from __future__ import annotations

import functools
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
    """A registered workload. ``kind``: ``"op"`` (one layer), ``"block"`` (a network block), ``"composite"``
    or ``"network"``.

    ``derive`` fills parameters that default to others (None: nothing to derive); ``check`` raises
    ``ValueError`` for a combination of parameters the workload cannot take (None: any is fine);
    ``dense`` names the dense equivalent (None: a workload with a ``dense`` parameter is itself with
    ``dense=True``, any other is its own); ``stages`` gives the parameters a block takes at each stage
    of an ImageNet network (spatial size → parameters), which the grids run; ``at_stage`` gives an op's
    parameters at a stage of C channels (:data:`STAGE_CHANNELS`), which the grids run.
    """

    name: str
    kind: str
    summary: str
    params: Mapping[str, Param]
    make: Callable[[Params], nn.Module]
    derive: Callable[[Params], None] | None = None
    check: Callable[[Params], None] | None = None
    dense: Callable[[Params], tuple[str, Params]] | None = None
    references: tuple[str, ...] = field(default=())
    stages: Mapping[int, Params] = field(default_factory=dict)
    at_stage: Callable[[int], Params] | None = None
    # For workloads that wrap another (``stack``): resolves the parameters not in ``params``.
    nested: Callable[[Params, dict[str, Any]], Params] | None = None

    def dense_of(self, p: Params) -> tuple[str, Params]:
        if self.dense is not None:
            return self.dense(p)
        return (self.name, {**p, "dense": True}) if "dense" in self.params else (self.name, p)


_REGISTRY: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    if workload.name in _REGISTRY:
        raise ValueError(f"workload {workload.name!r} is registered twice")
    _REGISTRY[workload.name] = workload
    return workload


def workload(*, kind: str, summary: str, params: Mapping[str, Param], name: str | None = None, **fields: Any):
    """Register the decorated builder ``make(params) -> nn.Module`` as a workload named after it."""

    def decorate(make: Callable[[Params], nn.Module]) -> Callable[[Params], nn.Module]:
        register(Workload(name or make.__name__, kind, summary, params, make, **fields))
        return make

    return decorate


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
    if w.derive is not None:
        w.derive(p)
    for key, spec in w.params.items():
        if spec.minimum is not None and p[key] is not None and p[key] < spec.minimum:
            raise ValueError(f"{name}: {key}={p[key]!r} must be at least {spec.minimum:g}")
    if w.check is not None:
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
# The stages of ImageNet-style networks: spatial size → channels (the ops' grid shapes).
STAGE_CHANNELS = {STAGE_SIZE: 64, STAGE_SIZE // 2: 128, STAGE_SIZE // 4: 256, STAGE_SIZE // 8: 512}


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
    return trace(name, in_shape, **params)[0]


def trace(
    name: str, in_shape: tuple[int, ...], **params: Any
) -> tuple[tuple[int, ...], int, tuple[layers.LayerCost, ...]]:
    """(output shape, parameter count, per-layer costs) of the workload on an input of ``in_shape``: built
    on the meta device and traced once per workload, resolved parameters and shape (validating a case and
    its theory share the trace). ValueError where a layer cannot take the shape."""
    config = tuple(sorted(resolve(name, **params).items()))
    return _traced(name, tuple(int(d) for d in in_shape), config)


@functools.lru_cache(maxsize=4096)
def _traced(name: str, in_shape: tuple[int, ...], config: tuple[tuple[str, Any], ...]):
    with torch.device("meta"):
        module = build(name, **dict(config))
    try:
        out, records = layers.trace(module, in_shape)
    except layers.ShapeError as e:
        raise ValueError(f"{name}: {e}") from None
    return tuple(out), sum(p.numel() for p in module.parameters()), tuple(records)


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
    dense_name, dense_params = w.dense_of(resolve(name, **params))
    return dense_name, resolve(dense_name, **dense_params)


# --------------------------------------------------------------------------------------------
# parameter types and checks the definitions share (they name the workload, the parameter and the rule)

IN = Param(int, 64, 1, "input channels")
OUT = Param(int, 64, 1, "output channels")
K = Param(int, 3, 1, "kernel size (square)")
STRIDE = Param(int, 1, 1, "stride")
PAD = Param(int, None, 0, "zero padding (default kernel_size // 2)")
BIAS = Param(bool, True, None, "learnable bias")
DENSE = Param(bool, False, None, "replace every grouped or depthwise conv by a dense one")


def divisible(name: str, p: Params, key: str, by: str, by_value: int | None = None) -> None:
    d = p[by] if by_value is None else by_value
    if p[key] % d:
        raise ValueError(f"{name}: {key}={p[key]} must be divisible by {by}={d}")


def padding_default(p: Params) -> None:
    if "padding" in p and p["padding"] is None:
        p["padding"] = p["kernel_size"] // 2


def odd_kernel(name: str, p: Params) -> None:
    if p["kernel_size"] % 2 == 0:
        raise ValueError(
            f"{name}: kernel_size={p['kernel_size']} must be odd (the block keeps its spatial size at stride 1)"
        )


def stride_in(name: str, p: Params, allowed: tuple[int, ...]) -> None:
    if p["stride"] not in allowed:
        raise ValueError(f"{name}: stride={p['stride']} must be one of {', '.join(map(str, allowed))}")
