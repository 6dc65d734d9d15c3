"""What every convbench asv benchmark shares. All logic lives in ``bench_lib.suite``; this file only adapts it.

The grid is chosen at import by ``CONVBENCH_GRID`` (smoke, default, nightly, full, papers...), the same at
discovery and run. A combination that cannot run raises ``NotImplementedError`` in ``setup``: asv records
it as skipped. Each ``bench_<suite>.py`` holds one class per metric of the grid, made here from the
metric table (:data:`bench_lib.measure.metrics.METRICS`): ``Latency.track_latency`` (seconds per call),
``PeakMemory.track_peak_memory`` (bytes), ``Energy.track_energy`` (joules per item), each with
``suite``, ``metric``, ``unit`` and ``params`` (the grid's: case, batch, device, layout, dtype, mode).
"""

from bench_lib.measure import metrics
from bench_lib.suite import worker
from bench_lib.suite.combination import PARAM_NAMES, SUITE_VERSION, Combination
from bench_lib.suite.grids import grid

GRID = grid()


class Benchmark:
    """Base of every benchmark class: the parameter names, the method version, setup and measure."""

    suite: str
    metric: str
    param_names = list(PARAM_NAMES)  # noqa: RUF012 (asv reads a list)
    version = SUITE_VERSION
    timeout = 600

    def setup(self, *params):
        self.ready = worker.setup(Combination.of(self.suite, self.metric, params))

    def teardown(self, *params):
        self.ready = None

    def measure(self):
        return worker.track(self.ready)


def _track(self, *params):
    return self.measure()


def benchmark_classes(suite: str, module: str) -> dict[str, type]:
    """One asv benchmark class per metric of the grid for ``suite`` (none where the grid has no such suite),
    named as the metric's entry says, its method ``track_<metric>``; to be placed in ``module``'s globals."""
    if not GRID.has(suite):
        return {}
    classes = {}
    for name in GRID.metrics:
        m = metrics.get(name)
        attributes = {"suite": suite, "metric": name, "unit": m.unit, "params": GRID.params(suite)}
        attributes.update({f"track_{name}": _track, "__module__": module, "__doc__": m.run.__doc__})
        classes[m.asv_class] = type(m.asv_class, (Benchmark,), attributes)
    return classes
