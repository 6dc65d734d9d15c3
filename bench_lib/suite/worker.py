"""One combination inside the asv worker: ``setup`` prepares it (or skips with the reason), ``track``
measures its metric. Every step reports one line to the events file (``CONVBENCH_EVENTS``).

Environment (the same at asv's discovery and run, which ``convbench run`` guarantees): see
:mod:`bench_lib.suite.grids` for ``CONVBENCH_GRID`` and ``CONVBENCH_DEVICES``;
``CONVBENCH_EVENTS`` is the JSON-lines file that gets one line per step (ok / skipped / failed with the
reason, time spent measuring, the measurement's context), appended atomically; ``CONVBENCH_FAIL`` is a
regular expression: matching cases fail in ``setup`` (fault injection, to check that one failing
combination loses no other result).
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from dataclasses import dataclass
from typing import Any

import torch

from bench_lib.catalogue.cases import Case
from bench_lib.files import append_line
from bench_lib.measure import devices, energy, harness, memory
from bench_lib.suite.combination import METRICS, Combination
from bench_lib.suite.grids import Grid, grid

TRACEBACK_FRAMES = 5  # frames of a failure's traceback kept in its event


@dataclass
class Ready:
    """A prepared combination: what ``setup`` leaves for the ``track_*`` method."""

    combination: Combination
    prepared: harness.Prepared
    grid: Grid


def _event(c: Combination, status: str, **fields: Any) -> None:
    path = os.environ.get("CONVBENCH_EVENTS")
    if path:
        record = {
            **c.as_event(),
            "pid": os.getpid(),
            "time": time.time(),
            "torch_version": torch.__version__,
            "status": status,
            **fields,
        }
        append_line(path, json.dumps(record, default=str))


def _failure(e: BaseException) -> dict[str, str]:
    return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=TRACEBACK_FRAMES)}


def setup(c: Combination) -> Ready:
    """Prepare one combination, or raise ``NotImplementedError`` (asv: skipped) with the reason.

    A wrong result or any other error is logged as a failure and re-raised (asv: failed).
    """
    g = grid()
    try:
        prepared = _prepare(c, g)
    except NotImplementedError as e:
        _event(c, "skipped", reason=str(e))
        raise
    except Exception as e:
        _event(c, "failed", **_failure(e))
        raise
    return Ready(c, prepared, g)


def _prepare(c: Combination, g: Grid) -> harness.Prepared:
    reason = g.excluded(c)
    if reason:
        raise harness.Unsupported(reason)
    inject = os.environ.get("CONVBENCH_FAIL")  # fault injection: proves one failure loses nothing else
    if inject and re.search(inject, c.case):
        raise RuntimeError(f"injected failure: CONVBENCH_FAIL={inject!r} matches {c.case!r}")
    backend = devices.backend(c.device)
    if c.metric == "energy":
        ok, why = backend.available()
        if ok:
            ok, why = _meter(backend).available()
        if not ok:
            raise harness.Unsupported(f"{c.device}: no energy meter: {why}")
    case = Case.parse(c.case)
    return harness.prepare(
        case.workload,
        device=backend,
        layout=c.layout,
        dtype=c.dtype,
        mode=c.mode,
        batch=c.batch,
        height=case.height,
        width=case.width,
        **case.params,
    )


def _meter(backend: devices.Backend) -> energy.Meter:
    return energy.meter_for(backend.spec.kind, backend.spec.index or 0)


def track(ready: Ready) -> Any:
    """Run the combination's metric; return what asv stores (see ``METRICS`` for units)."""
    started = time.perf_counter()
    try:
        value, extra = _run_metric(ready)
    except Exception as e:
        _event(ready.combination, "failed", **_failure(e), measure_s=time.perf_counter() - started)
        raise
    _event(ready.combination, "ok", measure_s=time.perf_counter() - started, **extra)
    return value


def _run_metric(ready: Ready) -> tuple[Any, dict[str, Any]]:
    prepared, metric = ready.prepared, ready.combination.metric
    if metric == "latency":
        m = harness.time_prepared(prepared, **ready.grid.timing)
        return {"samples": list(m.samples_s), "number": m.block}, {"measurement": m.summary()}
    if metric == "peak_memory":
        mem = memory.measure_memory(prepared)
        if mem.peak_bytes is None:
            raise RuntimeError(mem.note or "no peak memory reading")
        return mem.peak_bytes, {"memory": mem.summary()}
    if metric == "energy":
        timing = harness.time_prepared(prepared, samples=5, max_time_s=0.2, max_warmup_s=0.2)
        with prepared.grad_mode():
            e = energy.energy_per_call(
                prepared.step, prepared.backend.synchronize, _meter(prepared.backend), seconds_per_call=timing.median_s
            )
        per_item = e.energy_j_per_call / prepared.context["batch"]
        return per_item, {"energy": e.summary(), "energy_j_per_item": per_item}
    raise ValueError(f"metric={metric!r} is not valid; accepted: {', '.join(METRICS)}")
