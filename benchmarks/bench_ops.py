"""Every convolution op (standard, grouped, depthwise, pointwise, depthwise-separable, shuffle, partial)."""

from .common import GRID, energy, latency, peak_memory

if GRID.has("ops"):  # the paper grids have no ops

    class Latency(latency("ops")):
        """Seconds per call (samples of blocks of back-to-back calls; see bench_lib.measure)."""

    class PeakMemory(peak_memory("ops")):
        """Peak bytes live during one call (see bench_lib.measure.MemoryMeasurement)."""

    class Energy(energy("ops")):
        """Joules per item (NVML on NVIDIA GPUs, RAPL on Linux CPUs)."""
