"""How much a benchmark moves on its own, and what a change must exceed to be called one. Pure functions.

Everything works on the natural log of a latency, so a change is a ratio and noise is relative
(``exp(x) - 1`` turns a log change into the percentage users read).

The unit of evidence is the process (a round) and the run, never a sample: samples inside one process
share its allocator, its kernel choice and its minute of the machine, and the spread that matters lives
between processes and between minutes. So:

1. A run's value is the median of its rounds' values (each round: the median of its samples).
2. A combination's noise ``sigma`` is the standard deviation of its run values on this machine, estimated
   robustly from the history (:func:`history_sigma`: the median absolute successive difference, which a
   step in the series does not inflate), or, without history, from the spread of its rounds
   (:func:`rounds_sigma`: an estimate of the same thing that misses slow drifts, so it is labelled).
3. Few runs give a poor estimate, so each is moderated toward the typical noise of its machine and device
   (:func:`moderate`, empirical Bayes as in limma): ``s² ← (d·s² + d0·s0²) / (d + d0)`` with ``d0 = PRIOR_DF``.
4. A change is told from noise by a t quantile at the chosen confidence: :func:`detectable` is the
   smallest change (relative) that could have been called, the row's minimum detectable effect.
5. :func:`judge` gives the verdict: beyond both the requested factor and the detectable effect: slower or
   faster; below it, ``unchanged`` only where the requested factor was detectable, else ``inconclusive``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

# 1.4826 × MAD estimates the standard deviation of normal data; successive differences have √2 × sigma.
MAD_TO_SIGMA = 1.4826
PRIOR_DF = 4.0  # weight of the machine-and-device noise in each combination's moderated estimate, in runs
MIN_HISTORY_RUNS = 3  # below this a history says nothing about a combination's own noise

VERDICTS_COMPARE = ("slower", "faster", "unchanged", "inconclusive")


def log_change(baseline: float, candidate: float) -> float:
    """ln(candidate / baseline): symmetric, additive, and a ratio once exponentiated."""
    return math.log(candidate) - math.log(baseline)


def percent(log_value: float) -> float:
    """A log change as a relative change: 0.0953 → 0.10 (10 %)."""
    return math.expm1(log_value)


def history_sigma(run_values: np.ndarray) -> tuple[float, float]:
    """(sigma, degrees of freedom) of run-to-run noise from one series of log run values, in time order.

    sigma = 1.4826 × median |v[i+1] − v[i]| / √2: successive differences cancel any level, so a step in
    the series spoils one difference, not the estimate. NaN with fewer than :data:`MIN_HISTORY_RUNS` runs.
    """
    v = np.asarray(run_values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < MIN_HISTORY_RUNS:
        return math.nan, 0.0
    diffs = np.abs(np.diff(v))
    return float(MAD_TO_SIGMA * np.median(diffs) / math.sqrt(2)), float(len(diffs) - 1)


def rounds_sigma(round_values: list[np.ndarray]) -> tuple[float, float]:
    """(sigma of one run's value, degrees of freedom) from the rounds of one or more runs (log values).

    The rounds' pooled standard deviation around their run's mean, divided by √(rounds per run): what a
    run's value would vary by if runs differed only as their rounds do. NaN where no run has 2 rounds.
    """
    squares, df, sizes = 0.0, 0, []
    for r in round_values:
        r = np.asarray(r, dtype=float)
        r = r[np.isfinite(r)]
        if len(r) >= 2:
            squares += float(np.sum((r - r.mean()) ** 2))
            df += len(r) - 1
            sizes.append(len(r))
    if not df:
        return math.nan, 0.0
    return math.sqrt(squares / df) / math.sqrt(np.mean(sizes)), float(df)


def prior(sigmas: np.ndarray) -> float:
    """The typical noise of a set of combinations (one machine and device): the median of their sigmas."""
    s = np.asarray(sigmas, dtype=float)
    s = s[np.isfinite(s) & (s > 0)]
    return float(np.median(s)) if len(s) else math.nan


def moderate(sigma: float, df: float, prior_sigma: float, prior_df: float = PRIOR_DF) -> tuple[float, float]:
    """(sigma, df) moderated toward ``prior_sigma``: ``√((df·σ² + d0·σ0²) / (df + d0))``, df + d0."""
    if not np.isfinite(prior_sigma):
        return sigma, df
    if not np.isfinite(sigma) or df <= 0:
        return prior_sigma, prior_df
    return math.sqrt((df * sigma**2 + prior_df * prior_sigma**2) / (df + prior_df)), df + prior_df


def t_quantile(alpha: float, df: float) -> float:
    """The two-sided critical value of Student's t at confidence 1 − alpha (normal where df is unknown)."""
    return float(stats.t.ppf(1 - alpha / 2, df) if df > 0 else stats.norm.ppf(1 - alpha / 2))


def standard_error(sigma_b: float, n_b: float, sigma_c: float, n_c: float) -> float:
    """The standard error of (candidate − baseline) medians of n_c and n_b runs: √(σb²/nb + σc²/nc)."""
    return math.sqrt(sigma_b**2 / n_b + sigma_c**2 / n_c)


def detectable(se: float, df: float, alpha: float) -> float:
    """The smallest log change called significant at ``alpha``: t(1 − alpha/2, df) × standard error
    (infinite where the noise is unknown)."""
    if not np.isfinite(se):
        return math.inf
    return t_quantile(alpha, df) * se


def judge(change: float, detectable_change: float, factor: float) -> str:
    """``slower``/``faster`` when |change| exceeds both ln(factor) and the detectable change (all logs);
    otherwise ``unchanged`` if a change of ``factor`` was detectable, else ``inconclusive``."""
    threshold = max(math.log(factor), detectable_change)
    if change >= threshold:
        return "slower"
    if change <= -threshold:
        return "faster"
    return "inconclusive" if detectable_change > math.log(factor) else "unchanged"


def gateable(detectable_change: float, factor: float) -> bool:
    """Stable enough to gate at ``factor``: a change of that size would be seen (TorchBench's stability
    qualification, stated as a detectable effect instead of a spread)."""
    return detectable_change <= math.log(factor)
