"""Comparing hardware: is this machine or device faster, for which workloads, by how much?

Two machines (or two devices of one machine: ``cpu-1t`` against ``cuda:0``) ran at different times, so
nothing pairs their samples. Each side's evidence is its own runs of a combination: one value per run (its
best round minimum, :func:`bench_lib.analysis.series.run_values`), their median, and its own run-to-run
noise (from that side's history in the store, else from its rounds: :func:`series.noise_table`). Per
combination both sides ran:

- ``ratio``: the candidate's speed over the baseline's (baseline latency / candidate latency; above 1 the
  candidate is faster), ``d = ln ratio``;
- its interval at confidence 1 − alpha: ``d ± t(df) × √(σb²/nb + σc²/nc)``, ``df`` the smaller side's;
- ``verdict`` (:func:`verdict`): ``faster`` / ``slower`` where the interval excludes 1 and reaches the
  factor, ``same speed`` where it lies within [1/factor, factor] (a difference of the factor would have
  been seen and none was), else ``inconclusive``;
- beside it, each side's latency relative to its own dense equivalent in the same run (``vs_dense_*``):
  whether the FLOP cut pays off on that hardware.

:func:`summaries` gives the geometric-mean ratio per family, stage, mode, dtype and overall, over the
combinations both sides ran, with an interval and the wins, losses and ties.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench_lib.analysis import noise, verdicts
from bench_lib.catalogue import registry

SAME_SPEED = "same speed"
ONLY_BASELINE, ONLY_CANDIDATE = "only on the baseline", "only on the candidate"
SUMMARY_BY = ("family", "stage", "mode", "dtype")  # the summaries' dimensions, then "overall"


def family(case_text: str) -> str:
    """The family a case belongs to: the workload's name (``grouped``, ``mbconv``, ``net_mobilenet_v2``, or
    the canary's), with `` (dense)`` for a block or network built with its dense equivalents."""
    text = str(case_text)
    name = text.split("(", 1)[0].split("@", 1)[0]
    return name + (" (dense)" if "dense=true" in text.lower() else "")


def kind(case_text: str) -> str:
    """``op``, ``block``, ``composite``, ``network`` (the workload's registered kind), or ``canary``."""
    name = family(case_text).removesuffix(" (dense)")
    return registry.get(name).kind if name in registry.names() else "canary"


def verdict(low: float, high: float, factor: float) -> str:
    """The verdict read off the interval ``[low, high]`` of ``ln ratio`` (candidate speed over baseline's):
    :func:`verdicts.by_interval` on the latency change (its mirror image), ``unchanged`` said as
    ``same speed``."""
    said = verdicts.by_interval(-high, -low, factor)  # a latency change is minus the log speed ratio
    return {verdicts.SLOWER: verdicts.SLOWER, verdicts.FASTER: verdicts.FASTER, verdicts.UNCHANGED: SAME_SPEED}.get(
        said, verdicts.INCONCLUSIVE
    )


def interval(d: float, sb: float, nb: int, sc: float, nc: int, df: float, alpha: float) -> tuple[float, float]:
    """The interval of ``d`` (a log ratio of two sides' medians of ``nb`` and ``nc`` runs with run-to-run noise
    ``sb`` and ``sc``) at confidence 1 − alpha; (−inf, inf) where a side's noise is unknown."""
    if not (np.isfinite(sb) and np.isfinite(sc)) or nb < 1 or nc < 1:
        return -math.inf, math.inf
    half = float(noise.t_quantile(alpha, df)) * noise.standard_error(sb, nb, sc, nc)
    return d - half, d + half


def count(n) -> int:
    """A run count read from a merged row: 0 where that side has none (NaN)."""
    return int(n) if isinstance(n, (int, float)) and np.isfinite(n) else 0


def row(r: dict, sides: tuple[tuple, tuple], factor: float, alpha: float) -> dict:
    """One combination across hardware: ``r`` holds each side's ``log_value``, ``n_runs``, ``status`` (suffixes
    ``_b``, ``_c``); ``sides``: each side's (sigma, df, noise source)."""
    (sb, db, src_b), (sc, dc, src_c) = sides
    nb, nc = max(count(r.get("n_runs_b")), 1), max(count(r.get("n_runs_c")), 1)
    se = noise.standard_error(sb, nb, sc, nc)
    out = {"ratio": math.nan, "low": math.nan, "high": math.nan, "noise_source": f"{src_b} / {src_c}"}
    out.update(se=se, df=min(db, dc))  # what the summaries' intervals read
    status_b, status_c = r.get("status_b"), r.get("status_c")
    if not isinstance(status_b, str) or not isinstance(status_c, str):
        return {**out, "verdict": ONLY_CANDIDATE if isinstance(status_c, str) else ONLY_BASELINE}
    if r.get("suite_version_b") != r.get("suite_version_c"):
        return {**out, "verdict": f"not comparable: method version {r['suite_version_b']} vs {r['suite_version_c']}"}
    if status_b != "ok" or status_c != "ok":
        return {**out, "verdict": f"{status_b} / {status_c}"}
    d = r["log_value_b"] - r["log_value_c"]
    lo, hi = interval(d, sb, nb, sc, nc, min(db, dc), alpha)
    return {**out, "ratio": math.exp(d), "low": math.exp(lo), "high": math.exp(hi), "verdict": verdict(lo, hi, factor)}


def _mean_interval(d: np.ndarray, se: np.ndarray, df: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """The geometric mean of ratios (``d``: their logs) with its interval at 1 − alpha: the mean's standard
    error is the larger of the spread across the combinations (√(var/k), t with k − 1 df) and their own
    measurement noise (√(Σ se²)/k, t with the smallest df), so one combination or identical ones still
    carry their measurement's uncertainty."""
    k = len(d)
    mean = float(np.mean(d))
    measured = math.sqrt(float(np.sum(se**2))) / k
    spread = float(np.std(d, ddof=1)) / math.sqrt(k) if k > 1 else 0.0
    if spread >= measured and k > 1:
        half = float(noise.t_quantile(alpha, k - 1)) * spread
    else:
        half = float(noise.t_quantile(alpha, float(np.min(df)))) * measured if np.isfinite(measured) else math.inf
    return mean, mean - half, mean + half


def summaries(table: pd.DataFrame, alpha: float, by: tuple[str, ...] = SUMMARY_BY) -> pd.DataFrame:
    """Per value of each dimension in ``by`` and overall: ``combinations`` both sides ran with a ratio, the
    geometric-mean ``ratio`` and its ``low``/``high`` (:func:`_mean_interval`), ``faster``, ``slower``,
    ``same`` (verdict counts) and ``inconclusive``. ``table``: rows of :func:`row` with ``se``, ``df``."""
    ok = table[np.isfinite(table["ratio"].to_numpy(dtype=float))] if not table.empty else table
    out = []
    groups = [(dim, value, g) for dim in by for value, g in ok.groupby(dim, sort=True)] if not ok.empty else []
    groups.append(("overall", "all", ok))
    for dim, value, g in groups:
        if g.empty:
            continue
        d = np.log(g["ratio"].to_numpy(dtype=float))
        mean, lo, hi = _mean_interval(d, g["se"].to_numpy(dtype=float), g["df"].to_numpy(dtype=float), alpha)
        counts = g["verdict"].value_counts()
        out.append(
            {
                "by": dim,
                "value": str(value),
                "combinations": len(g),
                "ratio": math.exp(mean),
                "low": math.exp(lo),
                "high": math.exp(hi),
                "faster": int(counts.get(verdicts.FASTER, 0)),
                "slower": int(counts.get(verdicts.SLOWER, 0)),
                "same": int(counts.get(SAME_SPEED, 0)),
                "inconclusive": int(counts.get(verdicts.INCONCLUSIVE, 0)),
            }
        )
    return pd.DataFrame(out)


def times(ratio: float) -> str:
    """A speed ratio as people say it: ``1.9x``, ``0.87x``."""
    return f"{ratio:.2g}x" if ratio < 10 else f"{ratio:.0f}x"


def in_words(summary: pd.DataFrame, baseline: str, candidate: str) -> list[str]:
    """What stands out, in sentences: the overall ratio, then the families where the candidate gains most and
    least (each with its interval), where they differ."""
    if summary.empty:
        return []
    lines = []
    overall = summary[summary["by"] == "overall"].iloc[0]
    lines.append(
        f"{candidate} runs at {times(overall['ratio'])} the speed of {baseline} over {overall['combinations']} "
        f"combinations both ran ({times(overall['low'])} to {times(overall['high'])}): faster in "
        f"{overall['faster']}, slower in {overall['slower']}, the same in {overall['same']}."
    )
    fams = summary[summary["by"] == "family"].sort_values("ratio")
    if len(fams) >= 2 and fams["ratio"].iloc[-1] / fams["ratio"].iloc[0] > 1.1:
        best, worst = fams.iloc[-1], fams.iloc[0]
        lines.append(
            f"Most on {best['value']} ({times(best['ratio'])}, {times(best['low'])} to {times(best['high'])}), "
            f"least on {worst['value']} ({times(worst['ratio'])}, {times(worst['low'])} to {times(worst['high'])})."
        )
    dtypes = summary[summary["by"] == "dtype"].sort_values("ratio")
    if len(dtypes) >= 2:
        lines.append("By dtype: " + ", ".join(f"{r['value']} {times(r['ratio'])}" for _, r in dtypes.iterrows()) + ".")
    return lines


def seconds(value: float) -> str:
    """Seconds in a unit a person reads at a glance: ``543 us``, ``1.14 ms``, ``2.3 s``; ``not run``."""
    if not isinstance(value, float) or not np.isfinite(value):
        return "not run"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def times_or(value, missing: str = "-") -> str:
    """:func:`times` of a finite number, else ``missing``."""
    ok = isinstance(value, (int, float)) and np.isfinite(value)
    return times(float(value)) if ok else missing


def span(low: float, high: float, missing: str = "unknown") -> str:
    """An interval of speed ratios, ``0.5x … 2x``; ``missing`` where either end is not finite."""
    return f"{times(low)} … {times(high)}" if np.isfinite(low) and np.isfinite(high) else missing


def _label(table: pd.DataFrame, side: str) -> str:
    both = table[np.isfinite(table["ratio"].to_numpy(dtype=float))]
    where = both[[f"machine_{side}", f"device_{side}"]].dropna().drop_duplicates()
    return "; ".join(f"{m} {d}" for m, d in where.itertuples(index=False, name=None)) or side


def render(table: pd.DataFrame, note: str, fmt: str, factor: float, alpha: float) -> str:
    """A comparison across hardware: the words, the rows (ratio, interval, verdict, both latencies in
    human units, each side against its dense equivalent, the kernels) and the summaries."""
    import json

    from bench_lib.analysis import tables

    rule = (
        f"faster or slower where the interval ({1 - alpha:.3g} confidence) of the speed ratio excludes 1 and "
        f"reaches {factor:g}x, same speed where it lies within 1/{factor:g} … {factor:g} (false alarms measured "
        "on this machine against itself: docs/machines.md)"
    )
    summary = summaries(table, alpha)
    words = in_words(summary, _label(table, "baseline"), _label(table, "candidate"))
    if fmt == "json":
        rows = json.loads(table.drop(columns=["se", "df"], errors="ignore").to_json(orient="records"))
        body = {"note": note, "rule": rule, "factor": factor, "alpha": alpha, "words": words, "rows": rows}
        return json.dumps({**body, "summaries": json.loads(summary.to_json(orient="records"))}, indent=2)
    if table.empty:
        return f"No combination on either side. ({note})"
    one_sided = table["verdict"].isin([ONLY_BASELINE, ONLY_CANDIDATE])
    show = table[~one_sided].copy()
    show["ratio"] = show["ratio"].map(lambda x: times(x) if np.isfinite(x) else "-")
    show["interval"] = [span(lo, hi) for lo, hi in zip(show["low"], show["high"], strict=True)]
    for col in ("baseline", "candidate"):
        show[col] = show[col].map(seconds) if (show["unit"] == "seconds").all() else show[col]
    for col in ("vs_dense_baseline", "vs_dense_candidate"):
        if col in show:
            show[col] = show[col].map(lambda x: times(x) if isinstance(x, float) and np.isfinite(x) else "-")
    cols = ["verdict", "ratio", "interval", "case", "batch", "layout", "dtype", "mode"]
    cols += ["device_baseline", "device_candidate"] if "device" not in show else ["device"]
    cols += ["baseline", "candidate", "vs_dense_baseline", "vs_dense_candidate", "runs", "kernels"]
    cols = [c for c in cols if c in show and (c != "kernels" or show[c].notna().any())]
    sums = summary.copy()
    sums["ratio"] = sums["ratio"].map(times)
    sums["interval"] = [span(lo, hi) for lo, hi in zip(summary["low"], summary["high"], strict=True)]
    sum_cols = ["by", "value", "combinations", "ratio", "interval", "faster", "slower", "same", "inconclusive"]
    counts = table["verdict"].value_counts().to_dict()
    head = f"{len(table)} combinations: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + f". {note}. {rule}."
    head += "".join(f"\n{line}" for line in words)
    tail = _one_sided(table[one_sided])
    if fmt == "markdown":
        parts = [head, tables.markdown_table(show, cols), tables.markdown_table(sums, sum_cols), tail]
        return "\n\n".join(p for p in parts if p)
    return "\n".join([head, show[cols].to_string(index=False), "", sums[sum_cols].to_string(index=False), tail])


def _one_sided(rows: pd.DataFrame) -> str:
    """The combinations one side did not run, counted by family (``--json`` lists each)."""
    lines = []
    for verdict_, g in rows.groupby("verdict", sort=True):
        counts = g["family"].value_counts().sort_index()
        what = ", ".join(f"{family_} {n}" for family_, n in counts.items())
        lines.append(f"{verdict_} (not run on the other side, listed with --json): {len(g)} ({what})")
    return "\n".join(lines)
