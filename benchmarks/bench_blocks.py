"""Every block (MobileNet V1/V2, ShuffleNet V1/V2, MBConv, ResNeXt) and the dense ResNet baselines:
Latency, PeakMemory and Energy (see benchmarks/common.py)."""

from .common import benchmark_classes

globals().update(benchmark_classes("blocks", __name__))
