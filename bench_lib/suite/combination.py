"""The identity of one measured thing, carried from the grid to asv, the history and the DataFrame, and
the event a worker reports about it.

A :class:`Combination` is frozen and typed (in the spirit of ``torch.utils.benchmark``'s ``TaskSpec``):
the suite and metric say which asv benchmark measures it, the six parameters which case on which
device. asv's names are derived here and nowhere else: ``benchmarks/bench_<suite>.py`` holds a class
per metric, named as the metric's entry in :data:`bench_lib.measure.metrics.METRICS` says (``Latency``,
``PeakMemory``, ``Energy``), whose method is ``track_<metric>``. An :class:`Event` is one line of a run's
events file: what happened to a combination in one process.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bench_lib import __version__
from bench_lib.files import append_line
from bench_lib.measure.metrics import METRICS as _METRICS
from bench_lib.measure.task import Task

PARAM_NAMES = ("case", "batch", "device", "layout", "dtype", "mode")
METRICS = {name: m.unit for name, m in _METRICS.items()}  # metric → asv unit
SUITES = ("ops", "blocks", "networks", "papers", "plain")
PLAIN = "plain"  # the ops again, each process a fresh interpreter under glibc's defaults (bench_lib.measure.fresh)
METRIC_CLASSES = {name: m.asv_class for name, m in _METRICS.items()}
# The results' method version. Bump the suffix when a benchmark's method changes: results of another
# SUITE_VERSION are never pooled or compared with these.
SUITE_VERSION = f"{__version__}-1"


def benchmark_name(suite: str, metric: str) -> str:
    """asv's name of the benchmark measuring ``metric`` over ``suite``: ``bench_ops.Latency.track_latency``."""
    return f"bench_{suite}.{METRIC_CLASSES[metric]}.track_{metric}"


def metric_of(benchmark: str) -> str:
    """The metric an asv benchmark name measures (``...track_peak_memory`` → ``peak_memory``)."""
    method = benchmark.rsplit(".", 1)[-1]
    return method.removeprefix("track_").removeprefix("time_")


def interleaved(suite: str, metric: str) -> bool:
    """:attr:`Combination.interleaved`, from a row's ``suite`` and ``metric``."""
    return metric == "latency" and suite != PLAIN


@dataclass(frozen=True)
class Combination:
    """One combination: which benchmark (suite, metric) and which parameters (case … mode)."""

    suite: str
    metric: str
    case: str
    batch: int
    device: str
    layout: str
    dtype: str
    mode: str

    @classmethod
    def of(cls, suite: str, metric: str, params: tuple[Any, ...] | list[Any]) -> Combination:
        """From asv's positional parameters, in :data:`PARAM_NAMES` order."""
        if len(params) != len(PARAM_NAMES):
            raise ValueError(f"a combination takes {len(PARAM_NAMES)} parameters ({', '.join(PARAM_NAMES)})")
        return cls(suite, metric, *params)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Combination:
        """From an events/history line (``suite``, ``metric`` and the ``params`` object)."""
        return cls(event["suite"], event["metric"], *(event["params"][k] for k in PARAM_NAMES))

    @property
    def params(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in PARAM_NAMES)

    @property
    def named_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PARAM_NAMES}

    @property
    def benchmark(self) -> str:
        return benchmark_name(self.suite, self.metric)

    @property
    def unit(self) -> str:
        return METRICS[self.metric]

    @property
    def interleaved(self) -> bool:
        """Whether an A/B run measures its pairs interleaved at the sample (:func:`bench_lib.suite.ab.interleave`),
        sample ``k`` of every side in round ``k``: a latency outside the plain suite (whose processes are fresh
        interpreters, measured one after another)."""
        return interleaved(self.suite, self.metric)

    @property
    def asv_name(self) -> str:
        """How asv names this parameter combination when it filters with ``--bench``."""
        return f"{self.benchmark}({', '.join(repr(p) for p in self.params)})"

    def task(self, allocator: str = "steady") -> Task:
        """What this combination measures (:class:`bench_lib.measure.task.Task`), under ``allocator``."""
        where = {"device": self.device, "layout": self.layout, "dtype": self.dtype, "mode": self.mode}
        return Task(self.case, **where, batch=self.batch, allocator=allocator)

    def as_event(self) -> dict[str, Any]:
        """The identity part of an events/history line."""
        return {"metric": self.metric, "suite": self.suite, "params": self.named_params}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """One line of a run's events file: ``status`` (ok, skipped, failed) of ``combination`` in process
    ``pid`` (the canary's: ``canary-start``/``canary-end``), with ``fields``: ``reason`` of a skip,
    ``error`` and ``traceback`` of a failure, ``measure_s`` and the metric's record fields of a measurement,
    ``injected`` where a fault was planted. The store reads these lines (:mod:`bench_lib.store.records`)."""

    combination: Combination
    status: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    pid: int | str = field(default_factory=os.getpid)
    time: float = field(default_factory=time.time)
    torch_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.combination.as_event(),
            "pid": self.pid,
            "time": self.time,
            "torch_version": self.torch_version,
            "status": self.status,
            **self.fields,
        }

    def append_to(self, path: str | os.PathLike) -> None:
        """Append this event as one JSON line (a single write: concurrent workers never interleave)."""
        append_line(path, json.dumps(self.as_dict(), default=str))
