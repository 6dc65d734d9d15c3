"""The verdict rule, its words and its defaults: ``compare``, ``regressions`` and the report decide here.

One decision, called both ways (asv's ``_is_result_better`` is the model). All changes are natural logs
of a ratio (candidate over baseline, newest over the history), so a band is symmetric:

1. ``band = max(ln factor, detectable)``: a change is only called beyond the requested factor *and*
   beyond what the noise could produce by chance (``detectable``, at confidence 1 − alpha).
2. :func:`direction`: +1 when ``change > band`` (slower), −1 when ``change < −band`` (faster), else 0.
3. A change within the band is ``unchanged`` when the band is the factor itself (a change of that size
   would have been seen), else ``inconclusive`` (the noise could hide it): :func:`quiet`.

``compare`` names the directions ``slower``/``faster`` (:func:`pairwise`); ``regressions`` asks the same
question of the newest run (``suspect``) and of the two newest (``regression``/``improvement``, HUD-style
persistence). The runs each verdict reads are chosen once (:func:`window`), so the report's "what
changed" and ``convbench regressions`` judge the same runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from bench_lib.errors import ArgumentError
from bench_lib.measure.intervals import ALPHA, FACTOR, FASTER, INCONCLUSIVE, SLOWER, UNCHANGED, by_interval

__all__ = ["ALPHA", "FACTOR", "FASTER", "INCONCLUSIVE", "SLOWER", "UNCHANGED", "by_interval"]

if TYPE_CHECKING:  # the CLI reads the defaults at start-up: no pandas import for that
    import pandas as pd

WINDOW_RUNS = 30  # the newest runs of each machine and environment a verdict reads (a month of nights)
BAND_TOLERANCE = 1e-12  # a band within this of ln(factor) is the factor itself (floating-point slack)

# the vocabulary (the paired interval's four words, its rule and the house's factor and alpha: intervals)
REGRESSION, IMPROVEMENT, SUSPECT, MACHINE_CHANGED = "regression", "improvement", "suspect", "machine changed"
NEW_FAILURE, FIXED = "new failure", "fixed"
KERNEL_CHANGED = "kernel changed"
FLAGS = (REGRESSION, SUSPECT, IMPROVEMENT)  # what regressions flags in a series
FAILING = frozenset({SLOWER, NEW_FAILURE, REGRESSION})  # a verdict that fails the job (exit code 1)
JUDGED_STATES = ("complete", "interrupted")  # runs a verdict reads (a running one is not finished)
# A regression (improvement) persists: the newest this many runs all beyond the band of the runs before them,
# the same way (PyTorch HUD's rule; one run beyond it is a suspect)
PERSISTENT_RUNS = 2


def check(factor: float, alpha: float) -> None:
    """ArgumentError naming ``--factor`` or ``--alpha`` and its accepted range."""
    if not factor >= 1:
        raise ArgumentError(f"--factor {factor} must be at least 1 (e.g. 1.05 for 5%)")
    if not 0 < alpha < 1:
        raise ArgumentError(f"--alpha {alpha} is out of range (accepted: between 0 and 1, e.g. 0.001)")


def band(detectable, factor: float):
    """The half-width a change must exceed: ``max(ln factor, detectable)`` (logs; float or array)."""
    return np.maximum(math.log(factor), detectable)


def direction(change, width):
    """+1 where ``change > width`` (slower), −1 where ``change < −width`` (faster), else 0 (NaN: 0)."""
    change, width = np.asarray(change, dtype=float), np.asarray(width, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(change > width, 1, np.where(change < -width, -1, 0))


def quiet(width, factor: float):
    """The verdict within the band: ``unchanged`` where the band is the factor, else ``inconclusive``."""
    return np.where(np.asarray(width, dtype=float) <= math.log(factor) + BAND_TOLERANCE, UNCHANGED, INCONCLUSIVE)


def pairwise(change, detectable, factor: float):
    """compare's verdict: ``slower``/``faster`` beyond :func:`band`, else :func:`quiet` (float or array)."""
    width = band(detectable, factor)
    d = direction(change, width)
    out = np.where(d > 0, SLOWER, np.where(d < 0, FASTER, quiet(width, factor)))
    return str(out) if out.ndim == 0 else out


def persistent(beyond) -> tuple[np.ndarray, np.ndarray]:
    """(regression, improvement) per row of ``beyond``: :func:`direction` of each series' newest
    :data:`PERSISTENT_RUNS` runs against the band of the runs before them; all +1, all −1."""
    beyond = np.asarray(beyond)
    return (beyond > 0).all(axis=1), (beyond < 0).all(axis=1)


def exit_code(verdicts: Iterable[str]) -> int:
    """1 when any verdict fails the job (:data:`FAILING`), else 0."""
    return 1 if FAILING.intersection(verdicts) else 0


def window(runs: pd.DataFrame, size: int = WINDOW_RUNS) -> pd.DataFrame:
    """The runs a verdict reads: finished (complete or interrupted) grid runs, the newest ``size`` of each
    machine (hardware id) and environment. A/B runs are judged by their own pairs (``compare``), never as
    a night of a series."""
    judged = runs[runs["state"].isin(JUDGED_STATES) & (runs["grid"] != "peaks") & ~is_ab(runs)]
    return judged.sort_values("started_at").groupby(["hardware_id", "env_name"], dropna=False).tail(size)


def is_ab(runs: pd.DataFrame) -> pd.Series:
    """Which of the store's ``runs`` are A/B runs (they name their sides)."""
    import pandas as pd

    return runs["sides"].notna() if "sides" in runs else pd.Series(False, index=runs.index)


def kernel_note(before: str | None, after: str | None) -> str | None:
    """What the kernels say of a change: ``kernel changed: A → B`` where the two sides ran different kernels,
    ``same kernel: A`` where they ran the same (a change then points at the machine, the allocator or the
    build, not the dispatcher), None where a side has no kernel recorded."""
    if not isinstance(before, str) or not isinstance(after, str):
        return None
    return f"same kernel: {before}" if before == after else f"{KERNEL_CHANGED}: {before} → {after}"
