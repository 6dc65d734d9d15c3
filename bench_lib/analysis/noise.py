"""How much a benchmark moves on its own, and what a change must exceed to be called one. Pure functions.

Everything works on the natural log of a latency, so a change is a ratio and noise is relative
(``exp(x) - 1`` turns a log change into the percentage users read).

The unit of evidence is the process (a round) and the run, never a sample: samples inside one process
share its allocator, its kernel choice and its minute of the machine, and the spread that matters lives
between processes and between minutes. So:

1. A run's value is one number per run (:mod:`bench_lib.analysis.series` says which and why: the fastest
   sample of its fastest round); the rounds of a run are separate processes.
2. A combination's noise ``sigma`` is the standard deviation of its run values on this machine, estimated
   robustly from the history (:func:`history_sigma`: the median absolute successive difference, which a
   step in the series does not inflate), or, without history, from the spread of its rounds
   (:func:`rounds_sigma`: an estimate of the same thing that misses slow drifts, so it is labelled).
3. Few runs give a poor estimate, so each is moderated toward the typical noise of its machine and device
   (:func:`moderate`, empirical Bayes as in limma): ``s² ← (d·s² + d0·s0²) / (d + d0)`` with ``d0 = PRIOR_DF``.
4. A change is told from noise by a t quantile at the chosen confidence: :func:`detectable` is the
   smallest change (relative) that could have been called, the row's minimum detectable effect.
5. The verdict itself (beyond both the requested factor and the detectable effect) is drawn in one place
   for every command: :mod:`bench_lib.analysis.verdicts`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench_lib.measure.intervals import t_critical

# 1.4826 × MAD estimates the standard deviation of normal data; successive differences have √2 × sigma.
MAD_TO_SIGMA = 1.4826
PRIOR_DF = 4.0  # weight of the machine-and-device noise in each combination's moderated estimate, in runs
MIN_HISTORY_RUNS = 3  # below this a history says nothing about a combination's own noise
# Degrees of freedom of that median-based sigma from n runs: 0.42 (n − 1) + 0.7, not n − 2. A median uses
# the data less efficiently than a standard deviation, and successive differences share their runs. Fitted
# by simulation (pure normal series, n = 4 to 30, 400,000 each): the df whose t quantile matches the
# simulated 99.5 % and 99.95 % quantiles of a new difference over its estimated sigma (tests pin the rate).
MAD_DF_PER_RUN = 0.42
MAD_DF_OFFSET = 0.7


def percent(log_value: float) -> float:
    """A log change as a relative change: 0.0953 → 0.10 (10 %)."""
    return math.expm1(log_value)


def history_sigma(run_values: np.ndarray) -> tuple[float, float]:
    """(sigma, degrees of freedom) of run-to-run noise from one series of log run values, in time order.

    sigma = 1.4826 × median |v[i+1] − v[i]| / √2: successive differences cancel any level, so a step in
    the series spoils one difference, not the estimate. NaN with fewer than :data:`MIN_HISTORY_RUNS` runs.
    """
    v = np.asarray(run_values, dtype=float)
    if not len(v):
        return math.nan, 0.0
    sigma, df = history_sigmas(np.zeros(len(v), dtype=int), v)
    return float(sigma[0]), float(df[0])


def rounds_sigma(round_values: list[np.ndarray]) -> tuple[float, float]:
    """(sigma of one run's value, degrees of freedom) from the rounds of one or more runs (log values).

    The rounds' pooled standard deviation around their run's mean, divided by √(rounds per run): what a
    run's value would vary by if runs differed only as their rounds do. NaN where no run has 2 rounds.
    """
    kept = [r[np.isfinite(r)] for r in (np.asarray(r, dtype=float) for r in round_values)]
    squares = np.array([float(np.sum((r - r.mean()) ** 2)) if len(r) else 0.0 for r in kept])
    sigma, df = pooled_rounds_sigma(np.zeros(len(kept), dtype=int), squares, np.array([len(r) for r in kept]))
    return (float(sigma[0]), float(df[0])) if len(kept) else (math.nan, 0.0)


def pooled_rounds_sigma(codes: np.ndarray, squares: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rounds_sigma` of many series at once, from each run's sum of squared deviations of its round
    logs around their mean (``squares``) and its number of ok rounds (``sizes``); ``codes`` (0 … G − 1)
    says which series each run belongs to. Runs with fewer than 2 rounds do not count."""
    codes, sizes = np.asarray(codes), np.asarray(sizes, dtype=float)
    counted = sizes >= 2
    n = int(codes.max()) + 1 if len(codes) else 0
    ss = np.bincount(codes, np.where(counted, squares, 0.0), minlength=n)
    df = np.bincount(codes, np.where(counted, sizes - 1, 0.0), minlength=n)
    runs = np.bincount(codes, counted.astype(float), minlength=n)
    mean_size = np.bincount(codes, np.where(counted, sizes, 0.0), minlength=n) / np.maximum(runs, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.where(df > 0, np.sqrt(ss / df) / np.sqrt(mean_size), np.nan)
    return sigma, df


def history_sigmas(codes: np.ndarray, values: np.ndarray, n_series: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`history_sigma` of many series at once: ``values`` (log run values) grouped by ``codes``
    (0 … G − 1, each series' runs contiguous and in time order); non-finite values are left out."""
    codes, values = np.asarray(codes), np.asarray(values, dtype=float)
    n = n_series if n_series is not None else int(codes.max()) + 1 if len(codes) else 0
    keep = np.isfinite(values)
    codes, values = codes[keep], values[keep]
    same = codes[1:] == codes[:-1]
    diffs = pd.Series(np.abs(np.diff(values))[same]).groupby(codes[1:][same]).median()
    median = diffs.reindex(range(n)).to_numpy()
    runs = np.bincount(codes, minlength=n)
    enough = runs >= MIN_HISTORY_RUNS
    df = MAD_DF_PER_RUN * (runs - 1) + MAD_DF_OFFSET
    return np.where(enough, MAD_TO_SIGMA * median / math.sqrt(2), np.nan), np.where(enough, df, 0.0)


def prior(sigmas: np.ndarray) -> float:
    """The typical noise of a set of combinations (one machine and device): the median of their sigmas."""
    s = np.asarray(sigmas, dtype=float)
    s = s[np.isfinite(s) & (s > 0)]
    return float(np.median(s)) if len(s) else math.nan


def moderate(sigma, df, prior_sigma, prior_df: float = PRIOR_DF):
    """(sigma, df) moderated toward ``prior_sigma``: ``√((df·σ² + d0·σ0²) / (df + d0))``, df + d0; the prior
    alone where the own estimate is missing, the own alone where the prior is. Floats or arrays."""
    s, d, p = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (sigma, df, prior_sigma)))
    own = np.isfinite(s) & (d > 0)
    with np.errstate(invalid="ignore"):
        mixed = np.sqrt((d * s**2 + prior_df * p**2) / (d + prior_df))
    known = np.isfinite(p)
    out_s = np.where(known, np.where(own, mixed, p), s)
    out_d = np.where(known, np.where(own, d + prior_df, prior_df), d)
    return (float(out_s), float(out_d)) if out_s.ndim == 0 else (out_s, out_d)


def t_quantile(alpha: float, df):
    """The two-sided critical value of Student's t at confidence 1 − alpha (normal where df is unknown).
    Float or array ``df`` (degrees of freedom here take few distinct values: each is computed once)."""
    if np.ndim(df) == 0:
        return t_critical(float(alpha), float(df))
    d = np.asarray(df, dtype=float)
    values, inverse = np.unique(d, return_inverse=True)
    return np.array([t_critical(float(alpha), float(v)) for v in values])[inverse.reshape(d.shape)]


def standard_error(sigma_b: float, n_b: float, sigma_c: float, n_c: float) -> float:
    """The standard error of (candidate − baseline) medians of n_c and n_b runs: √(σb²/nb + σc²/nc)."""
    return math.sqrt(sigma_b**2 / n_b + sigma_c**2 / n_c)


def detectable(se: float, df: float, alpha: float) -> float:
    """The smallest log change called significant at ``alpha``: t(1 − alpha/2, df) × standard error
    (infinite where the noise is unknown)."""
    if not np.isfinite(se):
        return math.inf
    return t_quantile(alpha, df) * se
