"""The ops again as a user's script runs them: each process a fresh interpreter under glibc's defaults
(allocator ``plain``: no ``mallopt``, no fork server), so each process's value shows the allocator state it
ended up in: Latency only (see benchmarks/common.py and bench_lib.measure.fresh)."""

from .common import benchmark_classes

globals().update(benchmark_classes("plain", __name__))
