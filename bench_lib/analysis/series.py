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

import numpy as np
import pandas as pd

from bench_lib.analysis import noise

COMBINATION = ["suite", "metric", "case", "batch", "device", "layout", "dtype", "mode"]
SERIES = ["machine", "env_name", "suite_version", *COMBINATION]  # one line of a machine's history
# the store's columns verdicts read
READ = [
    *("run_id", "machine", "hardware_id", "started_at", "commit_hash", "env_name", "torch_version"),
    *("suite_version", "unit", *COMBINATION, "round", "status", "reason", "value", "min", "injected"),
    *("side", "pair", "kernel"),
]
# an A/B run's rows also need their samples: an interleaved pair's log ratio is the median of its rounds'
# (bench_lib.measure.intervals.pair_log_ratio), sample k of each side
READ_PAIRED = [*READ, "samples"]


def run_values(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run and combination (``rows``: the store's per-round rows, ``machine`` already the
    display name): ``value`` (the run's best round minimum, in the unit: each round's fastest sample, or its
    value where it kept no samples, and the fastest round), ``log_value``, ``n_rounds`` (ok rounds),
    ``round_squares`` (their logs' sum of squared deviations from their mean), ``status`` (ok if any round
    was), ``reason``, ``injected``. Vectorised: a fleet's week is over a million runs × combinations."""
    if rows.empty:
        columns = ["run_id", "started_at", "value", "log_value", "n_rounds", "round_squares", "status"]
        return pd.DataFrame(columns=[*SERIES, *columns])
    rows = rows.copy()
    for column in ("injected", "kernel"):
        if column not in rows:
            rows[column] = None
    best = rows["min"].where(rows["min"].gt(0), rows["value"]) if "min" in rows else rows["value"]
    ok = rows["status"].eq("ok") & best.gt(0)
    rows["log"] = np.where(ok, np.log(best.where(ok, 1.0)), np.nan)
    rows["is_ok"] = rows["status"].eq("ok")
    out = rows.groupby([*SERIES, "run_id"], dropna=False, sort=False).agg(
        started_at=("started_at", "first"),
        hardware_id=("hardware_id", "first"),
        commit_hash=("commit_hash", "first"),
        torch_version=("torch_version", "first"),
        unit=("unit", "first"),
        log_value=("log", "min"),
        n_rounds=("log", "count"),
        round_var=("log", "var"),
        reason=("reason", "last"),
        injected=("injected", "first"),
        kernel=("kernel", "first"),
        any_ok=("is_ok", "any"),
        last_status=("status", "last"),
    )
    # each run's sum of squared deviations of its ok rounds' logs around their mean (noise from the rounds)
    out["round_squares"] = (out.pop("round_var") * (out["n_rounds"] - 1)).fillna(0.0)
    out["value"] = np.exp(out["log_value"])
    out["status"] = np.where(out.pop("any_ok"), "ok", out.pop("last_status"))
    return out.reset_index()


def ordered(runs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The ok run values (``runs``: :func:`run_values`) with each series' runs together and in time order,
    each row's series code (0 … G − 1) and the first row of each series (G of them)."""
    ok = runs[runs["status"] == "ok"].sort_values("started_at", kind="stable")
    codes = ok.groupby(SERIES, dropna=False, sort=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    ok, codes = ok.iloc[order].reset_index(drop=True), codes[order]
    firsts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.array([], dtype=int)
    return ok, codes, firsts


def noise_table(runs: pd.DataFrame, order: tuple | None = None) -> pd.DataFrame:
    """Per series: ``history_sigma`` / ``history_df`` (successive run values, time order), ``rounds_sigma``
    / ``rounds_df`` (the rounds of its runs), ``n_runs``, and ``sigma`` / ``df`` / ``noise_source``: the
    history's where it has :data:`noise.MIN_HISTORY_RUNS` ok runs, else the rounds', moderated toward the
    median of its machine and device's sigmas of the same source. ``order``: :func:`ordered` of ``runs``
    where the caller has it (its rows are then the series in that order)."""
    ok, codes, firsts = order if order is not None else ordered(runs)
    table = ok.loc[firsts, SERIES].reset_index(drop=True)
    if table.empty:
        return table.assign(sigma=[], df=[], noise_source=[])
    table["n_runs"] = np.bincount(codes)
    table["history_sigma"], table["history_df"] = noise.history_sigmas(codes, ok["log_value"].to_numpy())
    squares, sizes = ok["round_squares"].to_numpy(), ok["n_rounds"].to_numpy()
    table["rounds_sigma"], table["rounds_df"] = noise.pooled_rounds_sigma(codes, squares, sizes)
    by = ["machine", "env_name", "device"]
    table["history_prior"] = table.groupby(by, dropna=False)["history_sigma"].transform(noise.prior)
    table["rounds_prior"] = table.groupby(by, dropna=False)["rounds_sigma"].transform(noise.prior)
    hs, hd = noise.moderate(table["history_sigma"], table["history_df"], table["history_prior"])
    rs, rd = noise.moderate(table["rounds_sigma"], table["rounds_df"], table["rounds_prior"])
    history = np.isfinite(table["history_sigma"].to_numpy())
    rounds = np.isfinite(table["rounds_sigma"].to_numpy()) | np.isfinite(table["rounds_prior"].to_numpy())
    table["sigma"] = np.where(history, hs, np.where(rounds, rs, np.nan))
    table["df"] = np.where(history, hd, np.where(rounds, rd, 0.0))
    table["noise_source"] = np.where(
        history,
        "history of " + table["n_runs"].astype(str) + " runs",
        np.where(rounds, "rounds only (no history: slow drifts unseen)", "none (one round, no history)"),
    )
    return table
