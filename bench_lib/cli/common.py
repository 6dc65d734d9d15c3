"""What every subcommand shares: exit-code help, argument types and choices, the results location, JSON output."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from typing import Any

from bench_lib.errors import MEANING, ArgumentError, Exit

EXIT_OK, EXIT_FAILED, EXIT_USAGE = Exit.OK, Exit.FAILED, Exit.USAGE


EXIT_HELP = "exit codes: " + "; ".join(f"{int(e)} {MEANING[e]}" for e in Exit)


def parse_key_values(items: Sequence[str]) -> dict[str, Any]:
    """``["in_channels=64", "bias=false"]`` → ``{"in_channels": 64, "bias": False}``."""
    from bench_lib.catalogue.cases import key_values, parse_value

    try:
        return {key: parse_value(value) for key, value in key_values(items, "parameter")}
    except ValueError as e:
        raise ArgumentError(f"{e}: write key=value") from None


def json_default(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    return str(obj)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=json_default, allow_nan=True))


class Choices(Sequence):
    """argparse ``choices`` read from the module that owns them when first needed (a value to check, an
    error or a help page to print), so that building the parser imports no torch."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def _values(self) -> Sequence[str]:
        import importlib

        return tuple(getattr(importlib.import_module(self.module), self.name))

    def __getitem__(self, i):
        return self._values()[i]

    def __len__(self) -> int:
        return len(self._values())

    def __contains__(self, value: object) -> bool:
        return value in self._values()


CHOICE_HELP = "%(choices)s (default %(default)s)"  # a metavar keeps argparse from reading lazy choices early


GRIDS = Choices("bench_lib.suite.grids", "GRIDS")


DTYPE_CHOICES = Choices("bench_lib.catalogue.dtypes", "DTYPES")


LAYOUT_CHOICES = Choices("bench_lib.measure.devices", "LAYOUTS")


MODE_CHOICES = Choices("bench_lib.measure.devices", "MODES")


def int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer (accepted: {lo} or more)") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{value} is out of range (accepted: {lo} or more)")
        return value

    return parse


def float_in(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False):
    """A finite float in [lo, hi] (open at an end where asked)."""
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number (accepted: {left}{lo:g}, {hi:g}{right})"
            ) from None
        ok = (
            math.isfinite(value)
            and (lo < value if lo_open else lo <= value)
            and (value < hi if hi_open else value <= hi)
        )
        if not ok:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range (accepted: {left}{lo:g}, {hi:g}{right})")
        return value

    return parse


RESULTS_HELP = (
    "results folder or object store URL (default: $CONVBENCH_RESULTS, else the results/ of the project "
    "this is run in, else ./results)"
)


def add_results(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument("--results", metavar="DIR|URL", help=f"{what}; {RESULTS_HELP}" if what else RESULTS_HELP)


def default_results(project: str | None = None) -> str:
    """Where results live unless ``--results`` says: ``$CONVBENCH_RESULTS``, else the ``results/`` of the
    convbench checkout at or above ``project`` (or the working directory), else ``./results``."""
    from bench_lib.files import find_upward

    root = find_upward("asv.conf.json", project)
    return os.environ.get("CONVBENCH_RESULTS") or (str(root / "results") if root else "results")


def add_geometry(p: argparse.ArgumentParser, batch: int = 1) -> None:
    p.add_argument("--batch", type=int_at_least(1), default=batch, help="batch size (default %(default)s)")
    p.add_argument("--height", type=int_at_least(1), help="input height (default 224 for networks, else 56)")
    p.add_argument("--width", type=int_at_least(1), help="input width (default 224 for networks, else 56)")
    p.add_argument("--dtype", default="float32", choices=DTYPE_CHOICES, metavar="DTYPE", help=CHOICE_HELP)


def add_workload(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    p.add_argument("name")
    p.add_argument("params", nargs="*", metavar="key=value")
    return p
