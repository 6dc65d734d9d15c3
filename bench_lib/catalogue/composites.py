"""Composites for the paper reproductions: a pair of 1×1 convs and ``stack``, depth copies of one op."""

from __future__ import annotations

from typing import Any

from torch import nn

from bench_lib.catalogue.registry import (
    Param,
    Params,
    dense_equivalent,
    get,
    names,
    resolve,
    workload,
)


@workload(
    kind="composite",
    summary="1×1 conv c1→c2 then 1×1 conv c2→c1, bias-free (ShuffleNet V2's guideline-1 block)",
    params={"in_channels": Param(int, 128, 1, "c1"), "mid_channels": Param(int, 128, 1, "c2")},
    references=("Ma et al. 2018 (ShuffleNet V2), Table 1",),
)
def pointwise_pair(p: Params) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(p["in_channels"], p["mid_channels"], 1, bias=False),
        nn.Conv2d(p["mid_channels"], p["in_channels"], 1, bias=False),
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


@workload(
    kind="composite",
    summary="depth copies of one op (or pointwise_pair) in sequence: the papers' benchmark networks",
    params={"op": Param(str, "grouped", None, "the stacked workload"), "depth": Param(int, 10, 1, "copies")},
    dense=_stack_dense,
    nested=_stack_inner,
    references=("Ma et al. 2018, Tables 1-2", "Chen et al. 2023 (FasterNet), Table 1"),
)
def stack(p: Params) -> nn.Module:
    return _make_stack(p)
