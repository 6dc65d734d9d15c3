"""What every convbench asv benchmark shares. All logic lives in ``bench_lib.suite``; this file only adapts it.

The grid is chosen at import by ``CONVBENCH_GRID`` (smoke, default, nightly, full, papers...), the same at
discovery and run. A combination that cannot run raises ``NotImplementedError`` in ``setup``: asv records
it as skipped. Each ``bench_<suite>.py`` declares one class per metric, named as
``bench_lib.suite.combination.METRIC_CLASSES`` says, with ``suite``, ``metric`` and ``unit`` spelled out.
"""

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
