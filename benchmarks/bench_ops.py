"""Every convolution op (standard, grouped, depthwise, pointwise, depthwise-separable, shuffle, partial)."""

from .common import GRID, Benchmark

if GRID.has("ops"):  # the paper grids have no ops

    class Latency(Benchmark):
        """Seconds per call (samples of blocks of back-to-back calls; see bench_lib.measure)."""

        suite, metric, unit = "ops", "latency", "seconds"
        params = GRID.params("ops")

        def track_latency(self, *params):
            return self.measure()

    class PeakMemory(Benchmark):
        """Peak bytes live during one call (see bench_lib.measure.MemoryMeasurement)."""

        suite, metric, unit = "ops", "peak_memory", "bytes"
        params = GRID.params("ops")

        def track_peak_memory(self, *params):
            return self.measure()

    class Energy(Benchmark):
        """Joules per item (NVML on NVIDIA GPUs, RAPL on Linux CPUs)."""

        suite, metric, unit = "ops", "energy", "joules"
        params = GRID.params("ops")

        def track_energy(self, *params):
            return self.measure()
