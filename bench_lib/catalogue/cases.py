"""A case: one workload with its parameters and spatial size, as a readable, parseable string.

``grouped(in=64,out=128,k=3,g=4)@56x56`` is the ``grouped`` workload with in_channels=64,
out_channels=128, kernel_size=3, groups=4 on a 56×56 input. asv stores it as a string parameter; the
loader parses it back. Parameters not written take the workload's defaults.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench_lib.catalogue import registry

ABBREVIATIONS: dict[str, str] = {
    "in_channels": "in",
    "out_channels": "out",
    "kernel_size": "k",
    "stride": "s",
    "padding": "p",
    "groups": "g",
    "expand_ratio": "t",
    "se_ratio": "se",
    "partial_ratio": "r",
    "width_per_group": "w",
    "first_grouped": "fg",
    "mid_channels": "mid",
}
_FULL_NAMES = {short: full for full, short in ABBREVIATIONS.items()}

_ALWAYS_WRITTEN = ("in_channels", "out_channels", "kernel_size")

_CASE_RE = re.compile(r"^(?P<name>[a-z0-9_]+)(?:\((?P<params>[^()]*)\))?@(?P<h>\d+)x(?P<w>\d+)$")


@dataclass(frozen=True)
class Case:
    """A workload, the parameters given for it (defaults omitted), and the input's height and width."""

    workload: str
    params: dict[str, Any] = field(default_factory=dict)
    height: int = registry.STAGE_SIZE
    width: int = registry.STAGE_SIZE

    def __post_init__(self) -> None:
        # Validate now, so a bad case fails where it is written, not deep in a benchmark.
        _validate(self.workload, tuple(sorted(self.params.items())), self.height, self.width)

    def __str__(self) -> str:
        order = registry.param_names(self.workload, **self.params)
        items = sorted(self.params.items(), key=lambda kv: order.index(kv[0]))
        inner = ",".join(f"{ABBREVIATIONS.get(k, k)}={format_value(v)}" for k, v in items)
        return (
            f"{self.workload}({inner})@{self.height}x{self.width}"
            if inner
            else f"{self.workload}@{self.height}x{self.width}"
        )

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def resolved(self) -> dict[str, Any]:
        """Every parameter of the workload, defaults and derived values included."""
        return registry.resolve(self.workload, **self.params)

    def dense_equivalent(self) -> Case:
        name, params = registry.dense_equivalent(self.workload, **self.params)
        if name == self.workload and "dense" in registry.get(name).params:  # a block: itself, or with dense=true
            same = params == self.resolved
            return self if same else Case(name, {**self.params, "dense": True}, self.height, self.width)
        return Case(name, minimal_params(name, params), self.height, self.width)

    @classmethod
    def parse(cls, text: str) -> Case:
        """Inverse of ``str(case)``; ValueError naming what is malformed."""
        m = _CASE_RE.match(text.strip())
        if not m:
            raise ValueError(
                f"case={text!r} is not of the form name(key=value,...)@HxW, e.g. grouped(in=64,out=128,k=3,g=4)@56x56"
            )
        items = key_values(m.group("params").split(","), f"case={text!r}: parameter") if m.group("params") else []
        params = {_FULL_NAMES.get(key, key): parse_value(value) for key, value in items}
        return cls(m.group("name"), params, int(m.group("h")), int(m.group("w")))


@functools.lru_cache(maxsize=4096)
def _validate(workload: str, params: tuple[tuple[str, Any], ...], height: int, width: int) -> None:
    """Build the workload on the meta device and trace it once per distinct case (a network takes ~14 ms;
    a grid's plan checks each case once per combination)."""
    registry.input_shape(workload, 1, height, width, **dict(params))


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def key_values(items: Iterable[str], what: str) -> list[tuple[str, str]]:
    """``["k=v", ...]`` → ``[("k", "v"), ...]`` (stripped); ValueError ``"{what} 'x' is not key=value"``.

    The one parser of key=value words: case strings, the CLI's workload parameters and compare's selectors.
    """
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what} {item!r} is not key=value")
        out.append((key.strip(), value.strip()))
    return out


def parse_value(text: str) -> Any:
    """``true``/``false`` → bool, integers → int, decimals → float, anything else stays a string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def minimal_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` less the entries equal to what the workload would take without them.

    Channels and kernel size stay written even at their defaults: a case should say its shape.
    """
    kept = dict(params)
    for key in [k for k in params if k not in _ALWAYS_WRITTEN]:
        trial = {k: v for k, v in kept.items() if k != key}
        try:
            if registry.resolve(name, **trial) == registry.resolve(name, **kept):
                kept = trial
        except ValueError:
            continue
    return kept
