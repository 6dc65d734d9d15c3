"""Paper reproductions: ShuffleNet V2's G1/G2 benchmark networks and FasterNet's Table 1 (bench_lib.suite.papers)."""

from .common import GRID, Benchmark

if GRID.has("papers"):  # CONVBENCH_GRID=papers, shufflenetv2 or fasternet

    class Latency(Benchmark):
        """Seconds per call of each stacked benchmark network (10 layers or blocks)."""

        suite, metric, unit = "papers", "latency", "seconds"
        params = GRID.params("papers")

        def track_latency(self, *params):
            return self.measure()
