"""The paired interval of an A/B comparison and its verdict, at a fixed number of pairs or looked at as the
pairs come (sequential sampling). Pure functions: the A/B runner (:mod:`bench_lib.suite.ab`) stops a
combination with them while it measures, and ``convbench compare`` (:mod:`bench_lib.analysis.ab_compare`)
judges with the same ones afterwards.

**The interval.** A pair's log ratio ``d = ln(candidate) − ln(baseline)`` (:func:`pair_log_ratio`: the
median of its rounds' log ratios where its samples were interleaved) is free of the drift that separates
pairs; the pairs are independent draws of ``d``. The change's interval is the **intersection of two
intervals, each at confidence 1 − alpha/2** (:func:`paired_interval`): Student's t on their mean, with
n − 1 degrees of freedom (:func:`paired_t`), and the sign test's on their median (:func:`sign_interval`).
Both cover the change at once with chance 1 − alpha at least (the union bound), so their intersection does
too, whatever the pairs' distribution (for t, near normal; the sign test assumes nothing but
independence). Each covers the other's weakness: a wild pair (a process slower than its partner for its
life, 20-45 % off on a memory-bound op, as PyTorch's huge pages made them on a VM) widens the t interval by
its whole size and moves the sign interval by one order statistic; with few pairs (below 12 at alpha 0.001)
the sign test has no interval and t decides alone. The estimate is the pairs' median, within the interval.
Chosen on A/A runs: docs/ab.md ("Which test").

**The verdict** (:func:`by_interval`): ``slower`` where the interval lies above 0 and reaches ``ln
factor``, ``faster`` the mirror image, ``unchanged`` where it lies within ``±ln factor``, ``inconclusive``
otherwise.

**Sequential looks.** A run of at most ``max_pairs`` pairs looks at a combination's interval at the pair
counts of :func:`looks` (the first at :data:`FIRST_LOOK` pairs, each next about :data:`LOOK_GROWTH` times
the last, ``max_pairs`` the last) and stops measuring it once the verdict is not ``inconclusive``; a budget
of minutes may end it between looks. Alpha is spent as it is used (Bonferroni spending): every look
spends ``alpha / K`` with ``K = len(looks(max_pairs))`` (:func:`look_alpha`), and the interval where the
run ended a combination still open gets what its looks left (:func:`end_alpha`): all of alpha where the
run ended before the first look, ``alpha / K`` at ``max_pairs``. A run with a budget takes a look only
where the budget leaves time for as many passes again (:func:`worth_a_look`); a look not taken spends
nothing. The confidences a combination is judged
at sum to alpha at most, so by the union bound the chance that any interval it was judged by misses the
true change is at most alpha, whatever the stopping rule (the looks' pair counts are fixed in advance, and
where a budget ends the run depends on the clock, not on the combination's values). Identical sides are
then called ``slower`` or ``faster`` with chance alpha at most, and a real change of the factor called
``unchanged`` with chance alpha at most (valid under optional stopping, and conservative, since the looks
share their pairs).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

SLOWER, FASTER, UNCHANGED, INCONCLUSIVE = "slower", "faster", "unchanged", "inconclusive"
FACTOR = 1.05  # the smallest change worth a verdict (relative): 5 %
# Chance per row that noise alone is called a change, where the noise estimate is right. A comparison has
# hundreds of rows; the rates measured on identical code: docs/verdicts.md, docs/ab.md.
ALPHA = 0.001
# The most pairs of an A/B run when --pairs is not given; why: docs/ab.md ("How many pairs").
DEFAULT_PAIRS = 40
MIN_PAIRS = 2  # below this no interval exists at any confidence
# Pairs at a sequential run's first look, and the growth of the looks after it. Late and few: every look
# widens every interval (alpha is split over them), and at 16 pairs a typical combination of the op latency
# grid is already measured to about ±1.3 % (docs/ab.md, "Sequential sampling").
FIRST_LOOK = 16
LOOK_GROWTH = 2.0


@functools.lru_cache(maxsize=1024)
def t_critical(alpha: float, df: float) -> float:
    """The two-sided critical value of Student's t at confidence 1 − alpha (the normal's where df ≤ 0)."""
    from scipy import special  # here: the CLI reads this module's defaults at start-up

    return float(special.stdtrit(df, 1 - alpha / 2) if df > 0 else special.ndtri(1 - alpha / 2))


def paired_t(d, alpha: float) -> tuple[float, float, float]:
    """(mean, low, high) of ``d`` by Student's t with n − 1 degrees of freedom (NaN dropped; infinite with
    fewer than :data:`MIN_PAIRS` pairs)."""
    d = np.asarray(d, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < MIN_PAIRS:
        return (float(d[0]) if len(d) else math.nan), -math.inf, math.inf
    mean = float(d.mean())
    half = t_critical(alpha, len(d) - 1) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return mean, mean - half, mean + half


def sign_interval(d, alpha: float) -> tuple[float, float, float]:
    """(median, low, high) of ``d`` (NaN dropped): the sign test's interval at confidence 1 − alpha, from
    the k-th smallest to the k-th largest ``d``, ``k`` the largest with P(Bin(n, ½) < k) ≤ alpha / 2.
    Distribution-free, and robust to k − 1 wild pairs on each side. Infinite where no ``k`` ≥ 1 exists:
    fewer than 11 pairs at alpha 0.001 (2 / 2^n > alpha)."""
    d = np.asarray(d, dtype=float)
    d = np.sort(d[np.isfinite(d)])
    if len(d) < MIN_PAIRS:
        return (float(d[0]) if len(d) else math.nan), -math.inf, math.inf
    k = _sign_rank(len(d), alpha)
    if k < 1:
        return float(np.median(d)), -math.inf, math.inf
    return float(np.median(d)), float(d[k - 1]), float(d[-k])


@functools.lru_cache(maxsize=1024)
def _sign_rank(n: int, alpha: float) -> int:
    """The largest k with P(Bin(n, ½) < k) ≤ alpha / 2 (0 where none is ≥ 1)."""
    from scipy import special  # here: the CLI reads this module's defaults at start-up

    cumulative = special.bdtr(np.arange(n + 1), n, 0.5)  # P(Bin(n, ½) ≤ i)
    return int(np.searchsorted(cumulative, alpha / 2, side="right"))


def paired_interval(d, alpha: float) -> tuple[float, float, float]:
    """(estimate, low, high) of the change from the pairs' log ratios ``d`` at confidence 1 − alpha: the
    intersection of the t interval (:func:`paired_t`) and the sign interval (:func:`sign_interval`), each
    at 1 − alpha/2 (see the module docstring). The estimate is the median of ``d``, held within the
    interval. Infinite where the two intervals do not meet: one of them has missed, and nothing is shown."""
    _, low_t, high_t = paired_t(d, alpha / 2)
    median, low_s, high_s = sign_interval(d, alpha / 2)
    low, high = max(low_t, low_s), min(high_t, high_s)
    if not low <= high:
        return median, -math.inf, math.inf
    return min(max(median, low), high), low, high


def pair_log_ratio(baseline_s: float, candidate_s: float, baseline_samples=None, candidate_samples=None) -> float:
    """One pair's ``d``: ``ln(candidate) − ln(baseline)`` of its two processes (seconds per call).

    Where both processes' samples are given in rounds (sample ``k`` of each side taken in round ``k`` of the
    pair, a few milliseconds apart: an interleaved latency pair, :mod:`bench_lib.suite.ab`), ``d`` is the
    **median over the rounds** of ``ln c_k − ln b_k`` (the first ``min(n_b, n_c)`` rounds): a slow moment of
    the machine falls on both samples of a round and cancels in their ratio before the median is taken,
    where the ratio of the two processes' own medians keeps whatever the slow moments did to each median.
    Measured on A/A runs: docs/ab.md ("Which value per pair"). Else (no samples, or a non-positive one) the
    log ratio of the two values. NaN where a value is missing or not positive."""
    if baseline_samples is not None and candidate_samples is not None:
        b = np.asarray(baseline_samples, dtype=float)
        c = np.asarray(candidate_samples, dtype=float)
        n = min(len(b), len(c))
        if n and (b[:n] > 0).all() and (c[:n] > 0).all():
            return float(np.median(np.log(c[:n]) - np.log(b[:n])))
    if not (baseline_s > 0 and candidate_s > 0):  # NaN fails both
        return math.nan
    return math.log(candidate_s) - math.log(baseline_s)


def by_interval(low: float, high: float, factor: float) -> str:
    """The paired comparison's verdict, read off the interval ``[low, high]`` of the change (logs):

    1. ``slower`` where the interval lies above 0 (the change is real at alpha) and reaches ``ln factor``
       (a change that large is what the data say, or within their reach); ``faster`` the mirror image.
    2. ``unchanged`` where the whole interval lies within ``±ln factor`` (equivalence, as in a two one-sided
       test: a change of the factor is excluded), a real but smaller change included.
    3. ``inconclusive`` otherwise: the interval holds 0 and reaches beyond the factor.

    Unlike the unpaired rule (:func:`bench_lib.analysis.verdicts.pairwise`), a real change near the factor
    is called: a true 5 % slowdown measured to ±2.6 % lies above 0 almost always, where its estimate
    exceeds 5 % only half the time. Identical sides are called ``slower`` or ``faster`` with chance alpha
    at most, the rate of an interval missing 0."""
    edge = math.log(factor)
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if low > 0 and high >= edge:
        return SLOWER
    if high < 0 and low <= -edge:
        return FASTER
    if -edge < low and high < edge:
        return UNCHANGED
    return INCONCLUSIVE


def looks(max_pairs: int) -> tuple[int, ...]:
    """The pair counts at which a sequential run of at most ``max_pairs`` pairs judges a combination:
    :data:`FIRST_LOOK`, then each about :data:`LOOK_GROWTH` times the one before (rounded up), and
    ``max_pairs`` last (a look closer than a quarter of the growth to it is dropped). ``looks(40)`` is
    (16, 40), ``looks(100)`` (16, 32, 64, 100); ``looks(20)`` and below: ``(max_pairs,)``."""
    found: list[int] = []
    n = FIRST_LOOK
    while n * (1 + (LOOK_GROWTH - 1) / 4) < max_pairs:
        found.append(n)
        n = math.ceil(n * LOOK_GROWTH)
    return (*found, max_pairs)


def look_alpha(alpha: float, max_pairs: int) -> float:
    """The confidence of every interval of a sequential run of at most ``max_pairs`` pairs: ``alpha`` split
    equally over its looks (see the module docstring)."""
    return alpha / len(looks(max_pairs))


def end_alpha(alpha: float, at: Sequence[int], pairs: int, skipped: Sequence[int] = ()) -> float:
    """The confidence of a combination's interval where its run ended it still open after ``pairs`` pairs:
    ``alpha`` less what the looks ``at`` it went through spent (:func:`look_alpha` each; the last look,
    ``max_pairs``, is the end itself; a look the run ``skipped`` spent nothing). ``end_alpha(a, (16, 40),
    14)`` is ``a``, at 20 or 40 pairs ``a / 2``, at 20 with the look at 16 skipped ``a``."""
    spent = sum(1 for n in at[:-1] if n <= pairs and n not in skipped)
    return alpha - spent * alpha / len(at)


def judged_alpha(alpha: float, at: Sequence[int], pairs: int, skipped: Sequence[int] = ()) -> float:
    """The confidence to judge a combination of a sequential run with looks ``at`` (``skipped`` not taken)
    afterwards, from the pairs it was measured in: ``alpha / K`` where that count is a look taken (it may
    have been decided there), else :func:`end_alpha`."""
    taken = pairs in at and pairs not in skipped
    return alpha / len(at) if taken else end_alpha(alpha, at, pairs, skipped)


def worth_a_look(elapsed_s: float, budget_s: float | None) -> bool:
    """Whether a run with a budget of ``budget_s`` seconds should take a look reached after ``elapsed_s``:
    only where, at the pace so far, the budget leaves time for as many passes again as it has had (the
    pairs could double, as the looks do): ``budget_s − elapsed_s ≥ elapsed_s``. A look spends
    ``alpha / K`` for every combination, and every interval after it is wider for it; the pairs it frees
    pay for that only where many passes are left to spend them on (docs/ab.md, "Sequential sampling").
    Without a budget every look is taken. Whether a look is taken depends on the clock, never on the
    combinations' values, so the spending stays valid: a look not taken spends nothing
    (:func:`end_alpha`)."""
    if budget_s is None:
        return True
    return budget_s - elapsed_s >= elapsed_s  # passes left at this pace >= passes so far


def verdict(d, alpha: float, factor: float) -> str:
    """The verdict of the log ratios ``d`` at confidence 1 − ``alpha`` (already the look's), read off
    :func:`paired_interval`."""
    _, low, high = paired_interval(d, alpha)
    return by_interval(low, high, factor)


def decided(ratios: Sequence, alpha: float, factor: float) -> bool:
    """Whether a combination of a sequential run can stop: every comparison between its sides (``ratios``,
    one array of log ratios per pair of sides) has a verdict other than ``inconclusive`` at the look's
    ``alpha``."""
    return all(verdict(d, alpha, factor) != INCONCLUSIVE for d in ratios)
