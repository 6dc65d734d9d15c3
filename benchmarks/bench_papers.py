"""Paper reproductions: ShuffleNet V2's G1/G2 benchmark networks and FasterNet's Table 1
(bench_lib.suite.papers): Latency (the paper grids measure nothing else; see benchmarks/common.py)."""

from .common import benchmark_classes

globals().update(benchmark_classes("papers", __name__))
