"""``convbench run``'s options and their checks (each bad value an ArgumentError naming its flag), and the
fault injection the workers will see.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_lib.errors import ArgumentError
from bench_lib.measure import devices, gpu_clocks
from bench_lib.suite import grids, guard


@dataclass
class RunOptions:
    grid: str = "default"
    devices: list[str] | None = None
    bench: str | None = None
    pythons: list[str] = field(default_factory=list)  # --python: one (or none) for a run, more for an A/B run
    sides: list[str] = field(default_factory=list)  # --side LABEL[:VAR=VALUE]: A/B sides and their variables
    pairs: int | None = None  # A/B: the most pairs of processes per combination; None: intervals.DEFAULT_PAIRS
    budget_s: float | None = None  # A/B: the run's seconds, after which no pair starts; None: no budget
    launch_method: str = "forkserver"
    chunk_size: int = 200
    rounds: int | None = None  # latency processes per combination (asv's rounds); None: the grid's
    plain_rounds: int | None = None  # fresh processes per plain-suite combination; None: --rounds or the grid's
    project: str | None = None
    progress: bool = True
    peaks: bool = True  # measure the roofline peaks of every device with the run (not for smoke)
    breakdowns: bool = True  # per-block times of each network at batch 1 (the store's breakdowns table)
    wait_s: float = 3600.0  # how long to wait for another run holding the machine lock
    lock_gpu_clocks: str = "none"  # none, base, max or MHz: the SM clock of the run's GPUs (gpu_clocks)


def _check_devices(specs: list[str]) -> None:
    for spec in specs:
        try:
            devices.parse_spec(spec)
        except ValueError as e:
            raise ArgumentError(f"--device {spec!r}: {e}") from None
    twice = sorted({s for s in specs if specs.count(s) > 1})
    if twice:
        raise ArgumentError(f"--device {twice[0]} is given twice; name each device once")


def check_options(opts: RunOptions) -> str:
    """Refuse bad options with a ArgumentError naming the option; return the interpreter to benchmark."""
    # absolute, links kept: a venv's python is a link to the base interpreter, and asv runs elsewhere
    python = os.path.abspath(opts.pythons[0]) if opts.pythons else sys.executable
    if not Path(python).exists():
        raise ArgumentError(f"--python {opts.pythons[0]} does not exist")
    if opts.grid not in grids.GRIDS:
        raise ArgumentError(f"--grid {opts.grid!r} is not a grid; accepted: {', '.join(grids.GRIDS)}")
    for name, value in (("--rounds", opts.rounds), ("--chunk-size", opts.chunk_size)):
        if value is not None and value < 1:
            raise ArgumentError(f"{name} {value} must be at least 1")
    if not (opts.wait_s >= 0 and math.isfinite(opts.wait_s)):
        raise ArgumentError(f"--wait {opts.wait_s} must be a number of seconds, at least 0")
    if opts.launch_method not in guard.LAUNCH_METHODS:
        raise ArgumentError(f"--launch-method {opts.launch_method!r}; accepted: {', '.join(guard.LAUNCH_METHODS)}")
    try:
        gpu_clocks.parse_target(opts.lock_gpu_clocks)
    except ValueError as e:
        raise ArgumentError(f"--lock-gpu-clocks {opts.lock_gpu_clocks!r}: {e}") from None
    if opts.devices:
        _check_devices(opts.devices)
    if opts.bench:
        try:
            re.compile(opts.bench)
        except re.error as e:
            raise ArgumentError(f"--bench {opts.bench!r} is not a regular expression: {e}") from None
    return python


def faults() -> dict[str, Any]:
    """The fault injection this run's workers will see (``CONVBENCH_FAIL``, ``CONVBENCH_SLOWDOWN``), checked:
    a ArgumentError naming the variable where one is malformed."""
    from bench_lib.suite import worker

    found: dict[str, Any] = {}
    fail = os.environ.get("CONVBENCH_FAIL")
    if fail:
        try:
            re.compile(fail)
        except re.error as e:
            raise ArgumentError(f"CONVBENCH_FAIL={fail!r} is not a regular expression: {e}") from None
        found["fail"] = fail
    try:
        planted = worker.slowdown()
    except ValueError as e:
        raise ArgumentError(str(e)) from None
    if planted:
        found["slowdown"] = {"pattern": planted.pattern, "factor": planted.factor}
    return found
