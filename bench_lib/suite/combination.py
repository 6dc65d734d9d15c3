"""The identity of one measured thing, carried from the grid to asv, the history and the DataFrame.

A :class:`Combination` is frozen and typed (in the spirit of ``torch.utils.benchmark``'s ``TaskSpec``):
the suite and metric say which asv benchmark measures it, the six parameters which case on which
device. asv's names are derived here and nowhere else: ``benchmarks/bench_<suite>.py`` holds a class
named after the metric (``Latency``, ``PeakMemory``, ``Energy``) whose method is ``track_<metric>``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench_lib import __version__

PARAM_NAMES = ("case", "batch", "device", "layout", "dtype", "mode")
METRICS = {"latency": "seconds", "peak_memory": "bytes", "energy": "joules"}  # metric → asv unit
SUITES = ("ops", "blocks", "networks", "papers")
METRIC_CLASSES = {"latency": "Latency", "peak_memory": "PeakMemory", "energy": "Energy"}
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
    def asv_name(self) -> str:
        """How asv names this parameter combination when it filters with ``--bench``."""
        return f"{self.benchmark}({', '.join(repr(p) for p in self.params)})"

    def as_event(self) -> dict[str, Any]:
        """The identity part of an events/history line."""
        return {"metric": self.metric, "suite": self.suite, "params": self.named_params}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
