"""Whole networks built from the catalogue's blocks: MobileNet V1/V2, ShuffleNet V1/V2, EfficientNet-B0,
ResNeXt-50 and ResNet-50 at 224×224."""

from .common import GRID, Benchmark

if GRID.has("networks"):

    class Latency(Benchmark):
        """Seconds per call (a batch of 224×224 images)."""

        suite, metric, unit = "networks", "latency", "seconds"
        params = GRID.params("networks")

        def track_latency(self, *params):
            return self.measure()

    class PeakMemory(Benchmark):
        """Peak bytes live during one call."""

        suite, metric, unit = "networks", "peak_memory", "bytes"
        params = GRID.params("networks")

        def track_peak_memory(self, *params):
            return self.measure()

    class Energy(Benchmark):
        """Joules per image."""

        suite, metric, unit = "networks", "energy", "joules"
        params = GRID.params("networks")

        def track_energy(self, *params):
            return self.measure()
