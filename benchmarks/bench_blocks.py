"""Every block (MobileNet V1/V2, ShuffleNet V1/V2, MBConv, ResNeXt) and the dense ResNet baselines."""

from .common import GRID, energy, latency, peak_memory

if GRID.has("blocks"):  # the paper grids have no blocks

    class Latency(latency("blocks")):
        """Seconds per call (samples of blocks of back-to-back calls; see bench_lib.measure)."""

    class PeakMemory(peak_memory("blocks")):
        """Peak bytes live during one call (see bench_lib.measure.MemoryMeasurement)."""

    class Energy(energy("blocks")):
        """Joules per item (NVML on NVIDIA GPUs, RAPL on Linux CPUs)."""
