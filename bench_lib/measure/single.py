"""One task measured here in every metric, as ``convbench measure`` reports it.

:func:`measure_task` runs each metric of the table (:data:`bench_lib.measure.metrics.METRICS`) in its order
on one prepared workload, then adds what the readings mean against this device and the theory: the
fraction of the roofline reached, the FLOP/s achieved, the kernels that ran, and (for a network) the time
of each part. A metric that cannot run here, or was left out, is shown as its ``headline`` field ``None``
with the reason beside it (``<detail>_reason``); a metric's reading that gives seconds per call
(``median_s``) sizes the next one's window (energy's).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench_lib.catalogue import theory
from bench_lib.measure import breakdown, kernels, metrics, roofline
from bench_lib.measure.harness import Prepared
from bench_lib.measure.task import Task


def shown(metric: metrics.Metric, reading: Any) -> dict[str, Any]:
    """A metric's reading as a single measurement shows it: its headline at the top and the whole reading
    under its detail key (the reading's fields at the top where it has none); its context is shown once."""
    summary = {k: v for k, v in reading.summary().items() if k != "context"}
    if metric.detail is None:
        return summary
    return {metric.headline: summary[metric.headline], metric.detail: summary}


def absent(metric: metrics.Metric, why: str) -> dict[str, Any]:
    """A metric not measured: its headline ``None`` and the reason."""
    return {metric.headline: None, f"{metric.detail or metric.name}_reason": why}


def measure_metrics(
    prepared: Prepared, timing: Mapping[str, float], left_out: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every metric of the table on ``prepared``, in order (``left_out``: metric → why it is not asked
    for): the shown fields, and the context the readings were taken in. A metric that gives no reading
    (RuntimeError) is shown with its reason."""
    record: dict[str, Any] = {}
    context = dict(prepared.context)
    seconds_per_call = None
    for m in metrics.METRICS.values():
        ok, why = (False, left_out[m.name]) if m.name in left_out else m.available(prepared.backend)
        if not ok:
            record.update(absent(m, why))
            continue
        settings = metrics.Settings(timing=timing, seconds_per_call=seconds_per_call)
        try:
            reading = metrics.measure(prepared, m.name, settings).result
        except RuntimeError as e:  # no reading (a profiler without memory events...): the others stand
            record.update(absent(m, str(e)))
            continue
        record.update(shown(m, reading))
        seconds_per_call = getattr(reading, "median_s", seconds_per_call)
        context.update(getattr(reading, "context", {}))
    return record, context


def measure_task(
    prepared: Prepared,
    task: Task,
    *,
    timing: Mapping[str, float],
    left_out: Mapping[str, str],
    results_dir: str | Path,
    parts: bool = False,
) -> dict[str, Any]:
    """``task`` (prepared) in every metric, with its roofline fraction (this device's peaks, measured and
    cached in ``results_dir`` where missing), the FLOP/s achieved (theory's FLOPs over the median), the
    kernels and, with ``parts``, each part's time (:func:`bench_lib.measure.breakdown.breakdown`)."""
    record, context = measure_metrics(prepared, timing, left_out)
    median_s = record["median_s"]
    if median_s is None:
        raise RuntimeError(f"no seconds per call were measured: {record.get('latency_reason')}")
    if parts:
        record["breakdown"] = breakdown.breakdown(prepared)
    case = task.parsed
    c = theory.cost(
        case.workload, dtype=task.dtype, batch=task.batch, height=case.height, width=case.width, **case.params
    )
    flops = c.work_flops(task.mode)
    peaks = roofline.peaks_for(task.device, results_dir, dtypes=(task.dtype,))
    record["roofline_fraction"] = peaks.fraction(median_s, flops, c.min_bytes, task.dtype)
    record["achieved_flops_per_s"] = flops / median_s
    record.update(kernels.capture(prepared).fields())
    record["context"] = context
    return record
