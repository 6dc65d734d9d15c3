"""The paired test of an A/B run: per combination, the log ratios of its pairs of processes. Pure functions.

An A/B run (:mod:`bench_lib.suite.ab`) measures each combination in pairs of processes, one per side, back
to back; a pair shares its minute of the machine, so the log ratio ``d = ln(candidate) − ln(baseline)`` of
a pair is free of the drift that separates pairs. The pairs are independent draws of ``d``:

1. Each pair gives one ``d`` (:func:`bench_lib.measure.intervals.pair_log_ratio`): where its processes'
   samples were interleaved in turns where no sample follows its own side's (runs that record
   ``sequential``, from 2026-12-05 on), the median over the pair's rounds of the two samples' log ratio;
   else the log ratio of the processes' values, the medians of their samples (:data:`VALUE`). The rounds'
   median spread least on A/A runs (docs/ab.md, "Which value per pair").
2. The change's interval is the intersection of Student's t interval on the mean of ``d`` and the sign
   test's on its median, each at confidence ``1 − alpha/2`` (:func:`bench_lib.measure.intervals.
   paired_interval`, the test the runner's looks use too); the estimate is the median of ``d``. Chosen on
   A/A runs (docs/ab.md, "Which test") over each alone and over the signed-rank test's Hodges-Lehmann
   interval (:func:`hodges_lehmann`): a process slower than its partner for its life (as huge pages made them
   on a VM: docs/ab.md, "Huge pages and the wild pairs") makes one wild pair, which widens a t interval by
   its whole size and moves the sign interval by one order statistic, while with near-normal pairs the t
   interval is the narrower; the intersection is no wider than the narrower of the two, combination by
   combination, at the price of alpha split between them. On the A/A runs of 2026-12-06 it decided more
   combinations than t, the sign test or the signed-rank test alone, and no test called any A/A combination
   slower or faster.
3. ``detectable`` is the interval's half-width (the larger side): the smallest change the comparison
   could have called; the verdict reads the interval itself (:func:`bench_lib.analysis.verdicts.by_interval`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from bench_lib.measure.intervals import MIN_PAIRS, paired_interval, paired_t, sign_interval

VALUE = "value"  # the store's column a process contributes: the median of its samples (seconds per call)


@functools.lru_cache(maxsize=256)
def signed_rank_null(n: int) -> np.ndarray:
    """P(W+ = w), w = 0 … n(n+1)/2, for n pairs with no effect (each sign ±1 with chance ½): the exact
    distribution of Wilcoxon's signed-rank statistic, by counting subsets of ranks 1 … n."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return counts / 2.0**n


def critical_rank(n: int, alpha: float) -> int:
    """The largest ``k`` with P(W+ < k) ≤ alpha / 2: the interval runs from the k-th smallest to the
    k-th largest Walsh average (1-based); 0 where no interval at that confidence exists for ``n`` pairs."""
    cumulative = np.cumsum(signed_rank_null(n))
    return int(np.searchsorted(cumulative, alpha / 2, side="right"))


def walsh_averages(d: np.ndarray) -> np.ndarray:
    """Every (d_i + d_j) / 2 with i ≤ j, sorted: n(n+1)/2 of them."""
    i, j = np.triu_indices(len(d))
    return np.sort((d[i] + d[j]) / 2.0)


def hodges_lehmann(d, alpha: float) -> tuple[float, float, float]:
    """(estimate, low, high) of the shift of the log ratios ``d`` (NaN dropped): the median of the Walsh
    averages and the signed-rank interval at confidence ``1 − alpha`` (infinite where ``n`` is too small;
    at alpha 0.001 it needs 11 pairs). Measured against :func:`paired_t` in docs/ab.md."""
    d = np.asarray(d, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < MIN_PAIRS:
        return (float(d[0]) if len(d) else math.nan), -math.inf, math.inf
    walsh = walsh_averages(d)
    k = critical_rank(len(d), alpha)
    if k < 1:
        return float(np.median(walsh)), -math.inf, math.inf
    return float(np.median(walsh)), float(walsh[k - 1]), float(walsh[-k])


TESTS = {"signed-rank": hodges_lehmann, "t": paired_t, "sign": sign_interval, "t+sign": paired_interval}
DEFAULT_TEST = "t+sign"
DESCRIPTION = {
    "t": "mean and t interval",
    "signed-rank": "Hodges-Lehmann estimate and signed-rank interval",
    "sign": "median and sign-test interval",
    "t+sign": "median, and the intersection of the t and sign-test intervals at alpha/2 each",
}


def judge(d, alpha: float, test: str = DEFAULT_TEST) -> dict[str, float]:
    """The row of one combination: ``change`` (log), ``low``/``high`` (log interval), ``detectable`` (the
    interval's larger half-width, log) and ``pairs``."""
    estimate, low, high = TESTS[test](d, alpha)
    detectable = max(estimate - low, high - estimate) if math.isfinite(low) and math.isfinite(high) else math.inf
    n = int(np.isfinite(np.asarray(d, dtype=float)).sum())
    return {"change": estimate, "low": low, "high": high, "detectable": detectable, "pairs": n}
