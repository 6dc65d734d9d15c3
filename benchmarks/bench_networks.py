"""Whole networks built from the catalogue's blocks: MobileNet V1/V2, ShuffleNet V1/V2, EfficientNet-B0,
ResNeXt-50 and ResNet-50 at 224×224: Latency, PeakMemory and Energy (see benchmarks/common.py)."""

from .common import benchmark_classes

globals().update(benchmark_classes("networks", __name__))
