"""What each workload should cost, without running it.

Conventions (``docs/costs.md``): a MAC is one multiply-accumulate and FLOPs = 2 × MACs;
only convolutions and linear layers count as MACs; bias, BN, activations, SE multiplies, residual adds,
shuffles and concats are ``elementwise_ops``; ``min_bytes`` reads the input and the weights once and
writes the output once, in the dtype's size. The model is built on PyTorch's ``meta`` device and its
shapes traced layer by layer (:func:`bench_lib.layers.trace`): no memory, no kernels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from bench_lib.catalogue import dtypes, layers, registry
from bench_lib.catalogue.registry import STAGE_SIZE


def dtype_itemsize(dtype: str) -> int:
    """Bytes per element of a dtype name; ValueError naming the accepted ones."""
    return dtypes.get(dtype).itemsize_bytes


# The FLOPs a call does in each mode: inference runs the forward pass, training forward + backward.
WORK_OF_MODE = {"inference": "flops", "training": "train_flops"}


@dataclass(frozen=True)
class Cost:
    """Theoretical cost of one forward pass of a workload over a whole batch.

    Attributes: ``params`` (count), ``macs`` (multiply-accumulates), ``elementwise_ops`` (ops),
    ``min_bytes`` (bytes: input + weights + output once), ``layer_bytes`` (bytes: the same per layer,
    summed, i.e. traffic with no fusion), ``train_macs`` (forward + grad-input + grad-weight MACs),
    ``layers`` (per-layer records whose params, MACs and elementwise ops sum to the totals).
    Derived: ``flops`` = 2 × ``macs``, ``train_flops``, ``intensity`` (FLOPs per byte of ``min_bytes``).
    """

    workload: str
    config: dict[str, Any]
    batch: int
    height: int
    width: int
    dtype: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int
    macs: int
    elementwise_ops: int
    min_bytes: int
    layer_bytes: int
    train_macs: int
    layers: tuple[layers.LayerCost, ...]

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def train_flops(self) -> int:
        return 2 * self.train_macs

    def work_flops(self, mode: str) -> int:
        """The FLOPs one call of ``mode`` does: :data:`WORK_OF_MODE` names the field."""
        return getattr(self, WORK_OF_MODE[mode])

    @property
    def intensity(self) -> float:
        """FLOPs per byte of the minimum traffic."""
        return self.flops / self.min_bytes if self.min_bytes else math.nan

    def summary(self) -> dict[str, Any]:
        """The scalar figures for JSON or a DataFrame row: counts, bytes, ``intensity`` in FLOPs/byte."""
        return {
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "elementwise_ops": self.elementwise_ops,
            "min_bytes": self.min_bytes,
            "layer_bytes": self.layer_bytes,
            "intensity": self.intensity,
            "train_macs": self.train_macs,
            "train_flops": self.train_flops,
        }

    def parts(self) -> dict[str, dict[str, int]]:
        """Totals per top-level part (a network's ``stem``, each block, ``head``), in order."""
        out: dict[str, dict[str, int]] = {}
        for layer in self.layers:
            part = out.setdefault(layer.name.split(".")[0], {"params": 0, "macs": 0, "elementwise_ops": 0})
            part["params"] += layer.params
            part["macs"] += layer.macs
            part["elementwise_ops"] += layer.elementwise_ops
        return out

    def layer_table(self) -> list[dict[str, Any]]:
        itemsize = dtype_itemsize(self.dtype)
        return [
            {
                **asdict(layer),
                "flops": 2 * layer.macs,
                "train_macs": layer.train_macs,
                "min_bytes": layer.min_bytes(itemsize),
            }
            for layer in self.layers
        ]


def cost(
    name: str,
    *,
    batch: int = 1,
    height: int = STAGE_SIZE,
    width: int = STAGE_SIZE,
    dtype: str = "float32",
    **params: Any,
) -> Cost:
    """Cost of ``name`` with ``params`` on a ``batch``×C×``height``×``width`` input in ``dtype``."""
    itemsize = dtype_itemsize(dtype)
    config = registry.resolve(name, **params)
    for key, value in (("batch", batch), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: {key}={value!r} must be a positive integer")
    in_shape, out_shape, weight_count, records = _traced(name, batch, height, width, _frozen(config))
    in_elements = math.prod(in_shape)
    out_elements = math.prod(out_shape)
    return Cost(
        workload=name,
        config=config,
        batch=batch,
        height=height,
        width=width,
        dtype=dtype,
        in_shape=tuple(in_shape),
        out_shape=tuple(out_shape),
        params=weight_count,
        macs=sum(r.macs for r in records),
        elementwise_ops=sum(r.elementwise_ops for r in records),
        min_bytes=(in_elements + weight_count + out_elements) * itemsize,
        layer_bytes=sum(r.min_bytes(itemsize) for r in records),
        train_macs=sum(r.train_macs for r in records),
        layers=tuple(records),
    )


def _frozen(config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(config.items()))


def _traced(
    name: str, batch: int, height: int, width: int, config: tuple[tuple[str, Any], ...]
) -> tuple[tuple[int, ...], tuple[int, ...], int, tuple[layers.LayerCost, ...]]:
    """(input shape, output shape, parameter count, per-layer records): the dtype-free part of a cost,
    traced once per workload, config and shape by :func:`registry.trace` (the report asks for each case in
    every dtype and for every dense equivalent many variants share)."""
    kwargs = dict(config)
    in_shape = (batch, registry.in_channels(name, **kwargs), height, width)
    out_shape, weight_count, records = registry.trace(name, in_shape, **kwargs)
    traced = sum(r.params for r in records)
    if traced != weight_count:  # a block whose trace misses a parameterised layer would under-count
        raise AssertionError(f"{name}: traced {traced} params but the module holds {weight_count}")
    return in_shape, out_shape, weight_count, records


def reduction(
    name: str,
    *,
    batch: int = 1,
    height: int = STAGE_SIZE,
    width: int = STAGE_SIZE,
    dtype: str = "float32",
    **params: Any,
) -> dict[str, Any]:
    """FLOP and parameter reduction factors against the dense equivalent (dense / this).

    Keys: ``flop_reduction`` and ``param_reduction`` (dimensionless factors; ``inf`` when this workload
    has none, e.g. a channel shuffle), ``dense_workload`` and ``dense_params`` (what it was compared with).
    """
    this = cost(name, batch=batch, height=height, width=width, dtype=dtype, **params)
    dense_name, dense_params = registry.dense_equivalent(name, **params)
    dense = cost(dense_name, batch=batch, height=height, width=width, dtype=dtype, **dense_params)
    return {
        "flop_reduction": _ratio(dense.flops, this.flops),
        "param_reduction": _ratio(dense.params, this.params),
        "dense_workload": dense_name,
        "dense_params": dense_params,
    }


def _ratio(dense: int, this: int) -> float:
    if this == 0:
        return math.inf if dense else 1.0
    return dense / this
