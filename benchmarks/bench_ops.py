"""Every convolution op (standard, grouped, depthwise, pointwise, depthwise-separable, shuffle, partial):
Latency, PeakMemory and Energy (see benchmarks/common.py)."""

from .common import benchmark_classes

globals().update(benchmark_classes("ops", __name__))
