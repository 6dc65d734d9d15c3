"""Measurements a run makes once, outside asv: the roofline peaks, the canaries at its start and end,
and the networks' per-part breakdowns.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench_lib.measure import devices
from bench_lib.suite import grids


def measure_peaks(specs: list[str]) -> tuple[list[Any], float]:
    """Roofline peaks of every available device, measured with the run (a few seconds per device), and the
    seconds spent measuring them."""
    from bench_lib.measure import roofline

    found, spent_s = [], 0.0
    for spec in specs:
        if not devices.backend(spec).available()[0]:
            continue
        started = time.perf_counter()
        peaks = roofline.measure_peaks(spec)
        spent_s += time.perf_counter() - started
        found.append(peaks)
        print(
            f"  roofline peaks of {spec}: {peaks.compute_flops_per_s('float32') / 1e9:.1f} GFLOP/s, "
            f"{peaks.copy_bytes_per_s / 1e9:.1f} GB/s (DRAM copy)",
            flush=True,
        )
    return found, spent_s


def canary(specs: list[str], events_path: Path, when: str) -> float:
    """Time the canary on every available device and append it to the events as suite ``canary`` (process
    ``canary-start`` or ``canary-end``): :func:`bench_lib.suite.worker.canary`; return the seconds inside
    its windows. A failure here is reported, not fatal."""
    from bench_lib.suite import worker

    spent_s = 0.0
    os.environ["CONVBENCH_EVENTS"] = str(events_path)
    try:
        for spec in specs:
            try:
                timed, spent = worker.canary(spec, when)
            except Exception as e:  # the run's results stand without it
                print(f"  canary on {spec} failed: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            spent_s += spent
            if timed:
                shown = ", ".join(f"{c.case.split('(')[0]} {r.result.median_s * 1e3:.2f} ms" for c, r in timed)
                print(f"  canary at the {when} on {spec}: {shown}", flush=True)
    finally:
        os.environ.pop("CONVBENCH_EVENTS", None)
    return spent_s


def measure_breakdowns(grid: grids.Grid) -> tuple[list[dict[str, Any]], float]:
    """Each network's per-part times (batch 1, inference, the grid's first layout) on each available device,
    and the seconds spent timing them (building the networks is not counted); a failure here is reported,
    not fatal."""
    import torch

    from bench_lib.measure import breakdown, harness
    from bench_lib.measure.task import Task

    found, spent_s = [], 0.0
    for spec in grid.devices:
        if not devices.backend(spec).available()[0]:
            continue
        for case_text in grid.cases["networks"]:
            layout = grid.layouts[0]  # NCHW: the breakdown's shares barely move with the layout
            try:
                prepared = harness.prepare(Task(case_text, device=spec, layout=layout))
                started = time.perf_counter()
                rows = breakdown.breakdown(prepared)
                spent_s += time.perf_counter() - started
            except Exception as e:  # the run's results stand without it
                print(f"  breakdown of {case_text} on {spec} failed: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            found.append(
                {
                    "device": spec,
                    "layout": layout,
                    "case": case_text,
                    "batch": 1,
                    "torch_version": torch.__version__,
                    "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "method": "per-part replay",
                    "parts": rows,
                }
            )
        print(f"  per-block breakdowns of {len(grid.cases['networks'])} networks on {spec}", flush=True)
    return found, spent_s
