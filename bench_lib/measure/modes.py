"""Modes of a combination's per-process values: whether separate processes of one measurement land in
separate states (a kernel, an allocator state, a memory layout), and how a change moves their shares.
Pure functions.

1. :func:`find`: sort the processes' values in logs; a gap between neighbours wider than
   :data:`MODE_GAP` starts a new mode. On this VM one process's median is stable to a few percent (the
   A/A runs' pairs spread by 1.4-3.5 %), while the allocator's modes lie 20 % to 3× apart.
2. :func:`describe`: ``2 modes: 0.60 ms in 2 of 12 processes, 2.00 ms in 10``.
3. :func:`share_test`: whether two sets of processes put different shares in the slow mode (Fisher's exact
   test on the 2 × 2 counts, two-sided): a release that sends 10 of 12 processes to the slow mode where
   its predecessor sent none is a change a user feels, whatever the fastest process shows.
4. :func:`sensitivity`: the plain suite's fresh processes against the same op under ``steady``: how many
   ran :data:`ALLOCATOR_RATIO` or more slower (allocator-sensitive where any did).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MODE_GAP = 1.2  # neighbouring per-process values (sorted) further apart than this ratio are separate modes
MIN_PROCESSES = 3  # fewer processes than this are never called multimodal


@dataclass(frozen=True)
class Mode:
    """One mode: the median of its processes' values (seconds) and how many processes fell in it."""

    value_s: float
    processes: int


def measured(values) -> np.ndarray:
    """``values`` (seconds, one per process) sorted, NaN and non-positive dropped."""
    v = np.sort(np.asarray(values, dtype=float))
    return v[np.isfinite(v) & (v > 0)]


def find(values, gap: float = MODE_GAP) -> list[Mode]:
    """The modes of ``values`` (:func:`measured`), fastest first: split wherever a value exceeds its
    predecessor by more than ``gap`` (a ratio)."""
    v = measured(values)
    if len(v) == 0:
        return []
    cuts = np.flatnonzero(np.diff(np.log(v)) > math.log(gap)) + 1
    return [Mode(float(np.median(part)), len(part)) for part in np.split(v, cuts)]


def is_multimodal(modes: list[Mode]) -> bool:
    """More than one mode among at least :data:`MIN_PROCESSES` processes."""
    return len(modes) > 1 and sum(m.processes for m in modes) >= MIN_PROCESSES


def _seconds(value_s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value_s >= scale:
            return f"{value_s / scale:.3g} {unit}"
    return f"{value_s / 1e-9:.3g} ns"


def describe(modes: list[Mode]) -> str:
    """``1 mode: 0.6 ms in 12 processes`` or ``2 modes: 0.6 ms in 2 of 12 processes, 2 ms in 10``."""
    total = sum(m.processes for m in modes)
    if not modes:
        return "no process measured"
    if len(modes) == 1:
        return f"1 mode: {_seconds(modes[0].value_s)} in {total} processes"
    first, *rest = modes
    parts = [f"{_seconds(first.value_s)} in {first.processes} of {total} processes"]
    parts += [f"{_seconds(m.value_s)} in {m.processes}" for m in rest]
    return f"{len(modes)} modes: " + ", ".join(parts)


def slow_count(values, fast_below_s: float) -> tuple[int, int]:
    """(processes at or above ``fast_below_s``, processes measured): the counts :func:`share_test` reads."""
    v = measured(values)
    return int((v >= fast_below_s).sum()), len(v)


def first_slow(values, gap: float = MODE_GAP) -> float | None:
    """Where the fastest mode of ``values`` ends (seconds: the first value of the second mode), or None
    where they have one mode."""
    v = measured(values)
    modes = find(v, gap)
    return float(v[modes[0].processes]) if len(modes) > 1 else None


def boundary(baseline, candidate, gap: float = MODE_GAP) -> float | None:
    """:func:`first_slow` of both sets' values together."""
    return first_slow(np.concatenate([np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)]), gap)


def share_test(slow_a: int, n_a: int, slow_b: int, n_b: int) -> float:
    """Two-sided p of Fisher's exact test that two sets of processes have the same share in the slow mode
    (``slow_a`` of ``n_a`` against ``slow_b`` of ``n_b``). 1.0 where either set is empty."""
    from scipy import stats

    if n_a == 0 or n_b == 0:
        return 1.0
    return float(stats.fisher_exact([[slow_a, n_a - slow_a], [slow_b, n_b - slow_b]]).pvalue)


ALLOCATOR_RATIO = 1.2  # a plain process this much slower than the steady median ran in a costlier allocator state


@dataclass(frozen=True)
class Sensitivity:
    """A plain-suite combination against the same combination under ``steady`` (the ops suite): how many of
    its fresh processes ran :data:`ALLOCATOR_RATIO` or more slower than the steady median."""

    modes: list[Mode]
    steady_s: float
    slow: int
    processes: int

    @property
    def sensitive(self) -> bool:
        return self.slow > 0

    def describe(self) -> str:
        return (
            f"{self.slow} of {self.processes} fresh processes {ALLOCATOR_RATIO:g}x or more slower than steady "
            f"({_seconds(self.steady_s)}); {describe(self.modes)}"
        )


def sensitivity(plain, steady) -> Sensitivity | None:
    """``plain`` processes' values against the median of ``steady`` ones (seconds); None without both."""
    p, s = measured(plain), measured(steady)
    if len(p) == 0 or len(s) == 0:
        return None
    steady_s = float(np.median(s))
    return Sensitivity(find(p), steady_s, int((p >= ALLOCATOR_RATIO * steady_s).sum()), len(p))
