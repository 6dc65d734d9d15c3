"""Grids and skips for the asv suites. All logic lives in bench_lib.suite; this file only adapts it to asv.

The grid is chosen at import by CONVBENCH_GRID (smoke, default, nightly, full), the same at discovery
and run. A combination that cannot run raises NotImplementedError in setup: asv records it as skipped.
"""

from bench_lib import suite

GRID = suite.grid()


def _make(metric: str, suite_name: str) -> type:
    """A benchmark class tracking one metric over one suite's grid."""

    class Benchmark:
        params = GRID.params(suite_name)
        param_names = suite.PARAM_NAMES
        unit = suite.METRICS[metric]
        version = suite.SUITE_VERSION
        timeout = 600

        def setup(self, *params):
            self.combination = suite.setup_combination(metric, suite_name, *params)

        def teardown(self, *params):
            self.combination = None

    return Benchmark


class _Latency:
    def track_latency(self, *params):
        return suite.track(self.combination)


class _PeakMemory:
    def track_peak_memory(self, *params):
        return suite.track(self.combination)


class _Energy:
    def track_energy(self, *params):
        return suite.track(self.combination)


def latency(suite_name: str) -> type:
    return type("Latency", (_Latency, _make("latency", suite_name)), {})


def peak_memory(suite_name: str) -> type:
    return type("PeakMemory", (_PeakMemory, _make("peak_memory", suite_name)), {})


def energy(suite_name: str) -> type:
    return type("Energy", (_Energy, _make("energy", suite_name)), {})
