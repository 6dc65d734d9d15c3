"""Every block (MobileNet V1/V2, ShuffleNet V1/V2, MBConv, ResNeXt) and the dense ResNet baselines."""

from .common import GRID, Benchmark

if GRID.has("blocks"):  # the paper grids have no blocks

    class Latency(Benchmark):
        """Seconds per call (samples of blocks of back-to-back calls; see bench_lib.measure)."""

        suite, metric, unit = "blocks", "latency", "seconds"
        params = GRID.params("blocks")

        def track_latency(self, *params):
            return self.measure()

    class PeakMemory(Benchmark):
        """Peak bytes live during one call (see bench_lib.measure.MemoryMeasurement)."""

        suite, metric, unit = "blocks", "peak_memory", "bytes"
        params = GRID.params("blocks")

        def track_peak_memory(self, *params):
            return self.measure()

    class Energy(Benchmark):
        """Joules per item (NVML on NVIDIA GPUs, RAPL on Linux CPUs)."""

        suite, metric, unit = "blocks", "energy", "joules"
        params = GRID.params("blocks")

        def track_energy(self, *params):
            return self.measure()
