"""Whole networks built from the catalogue's blocks: MobileNet V1/V2, ShuffleNet V1/V2, EfficientNet-B0,
ResNeXt-50 and ResNet-50 at 224×224."""

from .common import GRID, energy, latency, peak_memory

if GRID.has("networks"):

    class Latency(latency("networks")):
        """Seconds per call (a batch of 224×224 images)."""

    class PeakMemory(peak_memory("networks")):
        """Peak bytes live during one call."""

    class Energy(energy("networks")):
        """Joules per image."""
