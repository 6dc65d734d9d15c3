"""Paper reproductions: ShuffleNet V2's G1/G2 benchmark networks and FasterNet's Table 1 (bench_lib.papers)."""

from .common import GRID, latency

if GRID.has("papers"):  # CONVBENCH_GRID=papers, shufflenetv2 or fasternet

    class Latency(latency("papers")):
        """Seconds per call of each stacked benchmark network (10 layers or blocks)."""
