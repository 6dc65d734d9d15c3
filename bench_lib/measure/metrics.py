"""The measuring service: one prepared target and one metric in, one :class:`Record` out.

Every caller measures through :func:`measure`: ``convbench measure``, the asv worker (one metric per call),
the canary, the roofline's peaks and the networks' per-part breakdowns. A metric is one :class:`Metric`
entry in :data:`METRICS` (pyperf's ``WorkerTask`` and torch.utils.benchmark's single measurement loop are
the models): its unit, whether it runs once per round (process), when it can run on a device, and how it
runs. Adding a metric is one ``@metric`` function here, plus its test; the asv suite, the runner and the
CLI read the table.

A target is anything with ``step`` (one call), ``backend``, ``context`` and ``grad_mode()``: a prepared
workload (:class:`bench_lib.measure.harness.Prepared`) or a plain :class:`Call`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from bench_lib.measure import energy, memory
from bench_lib.measure.devices import Backend
from bench_lib.measure.timing import time_callable

# Energy sizes its window from the seconds per call: a short timing first where the caller has none.
ENERGY_TIMING = {"samples": 5, "max_time_s": 0.2, "max_warmup_s": 0.2}


class Target(Protocol):
    """What a metric measures: a prepared workload (:class:`harness.Prepared`) or a plain :class:`Call`."""

    step: Callable[[], Any]
    backend: Backend
    context: dict[str, Any]

    def grad_mode(self) -> contextlib.AbstractContextManager[None]: ...

    def tensors(self) -> list[torch.Tensor]: ...


@dataclass
class Call:
    """A plain call to measure (the canary's GEMM, a roofline copy, one part of a network): no module, no
    reference check; run without autograd."""

    step: Callable[[], Any]
    backend: Backend
    context: dict[str, Any] = field(default_factory=dict)

    def tensors(self) -> list[torch.Tensor]:
        """None stays resident between calls that convbench made (the call's own closure aside)."""
        return []

    @contextlib.contextmanager
    def grad_mode(self) -> Iterator[None]:
        with torch.inference_mode():
            yield


@dataclass(frozen=True)
class Settings:
    """How to measure: ``timing`` (keyword arguments of :func:`time_callable`), ``block_multiple`` (a planted
    slowdown's period), ``seconds_per_call`` (energy: sizes its window; None: :data:`ENERGY_TIMING` first)."""

    timing: Mapping[str, float] = field(default_factory=dict)
    block_multiple: int = 1
    seconds_per_call: float | None = None


@dataclass(frozen=True)
class Record:
    """One metric of one target: ``value`` in the metric's unit (what asv stores), ``result`` the reading
    itself (a Measurement, MemoryMeasurement or EnergyMeasurement), ``fields`` the details an event keeps,
    ``measure_s`` the seconds inside the measuring window."""

    metric: str
    value: Any
    result: Any
    fields: dict[str, Any]
    measure_s: float


def _always(backend: Backend) -> tuple[bool, str]:
    return True, ""


@dataclass(frozen=True)
class Metric:
    """One metric: asv's ``unit`` and benchmark class name, ``per_round`` (runs in every round's process, or
    once), ``run(target, settings)`` → (value, result, fields), ``read(fields)`` → (the value the store keeps,
    in ``unit``; its statistics by store column) from an event's fields, and ``available(backend)`` → (ok,
    why not: a phrase such as "no energy meter: ..."). One measurement of everything
    (:mod:`bench_lib.measure.single`) shows the reading's ``headline`` field (per call, with its unit) at the top
    and the whole reading under ``detail`` (None: the reading's fields all at the top); the analysis's tidy
    table holds its stored value in ``column`` (named with its unit: :mod:`bench_lib.analysis.results`)."""

    name: str
    unit: str
    asv_class: str
    per_round: bool
    run: Callable[[Any, Settings], tuple[Any, Any, dict[str, Any]]]
    read: Callable[[Mapping[str, Any]], tuple[Any, dict[str, Any]]]
    headline: str
    detail: str | None
    column: str
    available: Callable[[Backend], tuple[bool, str]] = _always


METRICS: dict[str, Metric] = {}


def metric(
    name: str,
    unit: str,
    asv_class: str,
    *,
    per_round: bool,
    read,
    headline: str,
    detail: str | None,
    column: str,
    available=_always,
):
    """Register the decorated ``run(target, settings)`` as the metric ``name``."""

    def decorate(run):
        METRICS[name] = Metric(name, unit, asv_class, per_round, run, read, headline, detail, column, available)
        return run

    return decorate


def get(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"metric={name!r} is not valid; accepted: {', '.join(METRICS)}") from None


def measure(target: Target, name: str, settings: Settings | None = None) -> Record:
    """Measure metric ``name`` of ``target`` in one window; RuntimeError where it gives no reading."""
    m = get(name)
    started = time.perf_counter()
    value, result, fields = m.run(target, settings or Settings())
    return Record(name, value, result, fields, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# the metrics, in the order the suite runs them


def _read_latency(fields: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The median seconds per call, and the samples' statistics the store keeps beside it."""
    m = fields.get("measurement") or {}
    samples = m.get("samples_s")
    stats = {
        "q25": m.get("q25_s"),
        "q75": m.get("q75_s"),
        "min": m.get("min_s"),
        "n_samples": len(samples) if isinstance(samples, list) else None,
        "number": m.get("block"),
        "noisy": m.get("noisy"),
        "samples": samples,
    }
    return m.get("median_s"), stats


@metric(
    "latency",
    "seconds",
    "Latency",
    per_round=True,
    read=_read_latency,
    headline="median_s",
    detail=None,
    column="latency_s",
)
def _latency(target: Target, settings: Settings):
    """Seconds per call: samples of blocks of back-to-back calls (:func:`time_callable`)."""
    with target.grad_mode():
        m = time_callable(
            target.step,
            target.backend,
            context=target.context,
            **{"block_multiple": settings.block_multiple, **settings.timing},
        )
    return {"samples": list(m.samples_s), "number": m.block}, m, {"measurement": m.summary()}


@metric(
    "peak_memory",
    "bytes",
    "PeakMemory",
    per_round=False,
    read=lambda f: ((f.get("memory") or {}).get("peak_bytes"), {}),
    headline="peak_bytes",
    detail="memory",
    column="peak_bytes",
)
def _peak_memory(target: Target, settings: Settings):
    """Peak bytes live during one call (deterministic: measured once)."""
    mem = memory.measure_memory(target)
    if mem.peak_bytes is None:
        raise RuntimeError(mem.note or "no peak memory reading")
    return mem.peak_bytes, mem, {"memory": mem.summary()}


def _energy_available(backend: Backend) -> tuple[bool, str]:
    ok, why = backend.available()
    if ok:
        ok, why = energy.meter_of(backend.spec).available()
    return ok, "" if ok else f"no energy meter: {why}"


@metric(
    "energy",
    "joules",
    "Energy",
    per_round=False,
    read=lambda f: (f.get("energy_j_per_item"), {}),
    headline="energy_j_per_call",
    detail="energy",
    column="energy_j_per_item",
    available=_energy_available,
)
def _energy(target: Target, settings: Settings):
    """Joules per item (the asv value) and per call, over a window of at least a second of calls."""
    seconds = settings.seconds_per_call
    if seconds is None:
        seconds = measure(target, "latency", Settings(timing=ENERGY_TIMING)).result.median_s
    backend = target.backend
    with target.grad_mode():
        e = energy.energy_per_call(
            target.step, backend.synchronize, energy.meter_of(backend.spec), seconds_per_call=seconds
        )
    per_item = e.energy_j_per_call / target.context["batch"]
    return per_item, e, {"energy": e.summary(), "energy_j_per_item": per_item}
