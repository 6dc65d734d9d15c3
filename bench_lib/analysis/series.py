"""From the store's per-round rows to what verdicts test: one value per run, series of runs, their noise.

- :func:`run_values`: one row per run and combination: its value for verdicts (the fastest sample of its
  fastest round, as a log), the rounds themselves, how many were ok, and whether a fault was injected.

Why the fastest and not the median: on a shared machine a process is either left alone or slowed by
neighbours, often by 1.5-3×, and which one it gets changes from process to process. The median of five
rounds then flips between modes from run to run; the fastest sample of the fastest round is what the
code costs when nothing interferes. On the development VM, over four runs of identical code (5 rounds
each, 112 op latencies), the run-to-run standard deviation of the log value was 0.087 (median over
combinations) with the median of round medians and 0.020 with the best round minimum (docs/verdicts.md).
- :func:`noise_table`: per series (machine, environment, method version, combination), the run-to-run
  noise from the history and from the rounds, each moderated toward its machine and device
  (:mod:`bench_lib.analysis.noise` has the statistics and why).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench_lib.analysis import noise

COMBINATION = ["suite", "metric", "case", "batch", "device", "layout", "dtype", "mode"]
SERIES = ["machine", "env_name", "suite_version", *COMBINATION]  # one line of a machine's history
# the store's columns verdicts read
READ = [
    *("run_id", "machine", "hardware_id", "started_at", "commit_hash", "env_name", "torch_version"),
    *("suite_version", "unit", *COMBINATION, "round", "status", "reason", "value", "min", "injected"),
]


def run_values(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run and combination (``rows``: the store's per-round rows, ``machine`` already the
    display name): ``value`` (the run's best round minimum, in the unit: each round's fastest sample, or its
    value where it kept no samples, and the fastest round), ``log_value``, ``round_logs`` (each ok round's
    log), ``n_rounds``, ``status`` (ok if any round was), ``reason``, ``injected``."""
    if rows.empty:
        return pd.DataFrame(columns=[*SERIES, "run_id", "started_at", "value", "log_value", "round_logs", "status"])
    rows = rows.copy()
    if "injected" not in rows:
        rows["injected"] = None
    best = rows["min"].where(rows["min"].gt(0), rows["value"]) if "min" in rows else rows["value"]
    ok = rows["status"].eq("ok") & best.gt(0)
    rows["log"] = np.where(ok, np.log(best.where(ok, 1.0)), np.nan)
    keys = [*SERIES, "run_id"]
    grouped = rows.groupby(keys, dropna=False, sort=False)
    out = grouped.agg(
        started_at=("started_at", "first"),
        hardware_id=("hardware_id", "first"),
        commit_hash=("commit_hash", "first"),
        torch_version=("torch_version", "first"),
        unit=("unit", "first"),
        log_value=("log", "min"),
        n_rounds=("log", "count"),
        reason=("reason", "last"),
        injected=("injected", "first"),
    )
    out["round_logs"] = grouped["log"].agg(lambda s: s.dropna().to_numpy())
    out["value"] = np.exp(out["log_value"])
    any_ok = grouped["status"].agg(lambda s: "ok" if (s == "ok").any() else s.iloc[-1])
    out["status"] = any_ok
    return out.reset_index()


def noise_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per series: ``history_sigma`` / ``history_df`` (successive run values, time order), ``rounds_sigma``
    / ``rounds_df`` (the rounds of its runs), ``n_runs``, and ``sigma`` / ``df`` / ``noise_source``: the
    history's where it has :data:`noise.MIN_HISTORY_RUNS` ok runs, else the rounds', moderated toward the
    median of its machine and device's sigmas of the same source."""
    ok = runs[runs["status"] == "ok"].sort_values("started_at")
    rows = []
    for key, g in ok.groupby(SERIES, dropna=False, sort=False):
        hs, hdf = noise.history_sigma(g["log_value"].to_numpy())
        rs, rdf = noise.rounds_sigma(list(g["round_logs"]))
        rows.append((*key, len(g), hs, hdf, rs, rdf))
    table = pd.DataFrame(rows, columns=[*SERIES, "n_runs", "history_sigma", "history_df", "rounds_sigma", "rounds_df"])
    if table.empty:
        return table.assign(sigma=[], df=[], noise_source=[])
    by = ["machine", "env_name", "device"]
    table["history_prior"] = table.groupby(by, dropna=False)["history_sigma"].transform(noise.prior)
    table["rounds_prior"] = table.groupby(by, dropna=False)["rounds_sigma"].transform(noise.prior)
    sigma, df, source = [], [], []
    for r in table.itertuples(index=False):
        if np.isfinite(r.history_sigma):
            s, d = noise.moderate(r.history_sigma, r.history_df, r.history_prior)
            src = f"history of {r.n_runs} runs"
        elif np.isfinite(r.rounds_sigma) or np.isfinite(r.rounds_prior):
            s, d = noise.moderate(r.rounds_sigma, r.rounds_df, r.rounds_prior)
            src = "rounds only (no history: slow drifts unseen)"
        else:
            s, d, src = math.nan, 0.0, "none (one round, no history)"
        sigma.append(s)
        df.append(d)
        source.append(src)
    return table.assign(sigma=sigma, df=df, noise_source=source)
