"""Paper reproductions judged: measured beside published for the tables of :mod:`bench_lib.suite.papers`.

Verdict rule, stated once and applied to every table: a claim compares two rows (or, for FasterNet, two
operators' average throughput). The difference counts only if it exceeds the *noise band*, the sum of the
two measurements' relative interquartile ranges (IQR / median, from their own samples). Then:
"reproduced" when the difference is beyond the band in the paper's direction, "not reproduced" when it is
beyond the band the other way, "inconclusive: the difference is within the noise" otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench_lib.analysis.verdicts import direction
from bench_lib.measure.timing import relative_iqr
from bench_lib.suite.papers import TABLES


def _relative_iqr(samples) -> float:
    return relative_iqr(list(samples)) if samples is not None and len(samples) else math.nan


def _measured(df: pd.DataFrame) -> pd.DataFrame:
    from bench_lib.analysis import tables

    d = tables.latest(df)
    return d[d["workload"] == "stack"]


def table(df: pd.DataFrame, name: str, device: str | None = None) -> pd.DataFrame:
    """Measured beside published for one table, on each machine/device that ran it."""
    d = _measured(df)
    if device:
        d = d[d["device"] == device]
    out = []
    for (machine, dev), group in d.groupby(["machine", "device"]):
        by_case = group.set_index("case")
        for column in dict.fromkeys(r.column for r in TABLES[name]()):
            table_rows = [r for r in TABLES[name]() if r.column == column]
            if not all(r.case in by_case.index for r in table_rows):
                continue
            first = by_case.loc[table_rows[0].case]
            for r in table_rows:
                m = by_case.loc[r.case]
                entry = {
                    "machine": machine,
                    "device": dev,
                    "column": column,
                    "row": r.label,
                    "case": r.case,
                    "latency_s": m["latency_s"],
                    "relative_iqr": _relative_iqr(m["samples"]),
                    "theory_macs": m["theory_macs"],
                }
                if name == "fasternet-t1":
                    entry["achieved_gmacs_per_s"] = m["theory_macs"] / m["latency_s"] / 1e9
                    entry["published_average_gmacs_per_s"] = r.published  # the paper gives the four-stage average
                else:
                    entry["measured_relative_speed"] = first["latency_s"] / m["latency_s"]
                    entry["published_relative_speed"] = r.published / table_rows[0].published
                    entry["flops_vs_first_row"] = m["theory_macs"] / first["theory_macs"]
                out.append(entry)
    return pd.DataFrame(out)


def _judge(gain: float, band: float) -> str:
    """``gain``: the relative advantage in the paper's direction (>0 agrees). ``band``: the noise band."""
    if not np.isfinite(gain) or not np.isfinite(band):
        return "inconclusive: no spread to judge the difference by"
    side = direction(gain, band)  # the one rule: beyond the band on one side (bench_lib.analysis.verdicts)
    return (
        "reproduced"
        if side > 0
        else "not reproduced"
        if side < 0
        else "inconclusive: the difference is within the noise"
    )


def verdicts(df: pd.DataFrame, device: str | None = None) -> pd.DataFrame:
    """One line per guideline, table column, machine and device."""
    out = []
    for name, claim in (
        ("shufflenetv2-g1", "G1: equal channel width (1:1) is fastest at fixed FLOPs"),
        ("shufflenetv2-g2", "G2: more groups (g=8) is slower than g=1 at fixed FLOPs"),
    ):
        t = table(df, name, device)
        for (machine, dev, column), g in t.groupby(["machine", "device", "column"]) if not t.empty else []:
            first, last = g.iloc[0], g.iloc[-1]
            gain = first["measured_relative_speed"] / last["measured_relative_speed"] - 1  # first faster: > 0
            band = first["relative_iqr"] + last["relative_iqr"]
            out.append(
                {
                    "guideline": claim,
                    "machine": machine,
                    "device": dev,
                    "column": column,
                    "measured": f"{first['row']} is {gain:+.1%} faster than {last['row']}",
                    "noise_band": band,
                    "verdict": _judge(gain, band),
                }
            )
    t = table(df, "fasternet-t1", device)
    for (machine, dev), g in t.groupby(["machine", "device"]) if not t.empty else []:
        op = g["row"].str.split(" @ ").str[0]
        speed = g.groupby(op)["achieved_gmacs_per_s"].mean()
        spread = g.groupby(op)["relative_iqr"].mean()
        for better, worse in (("PConv 3×3 (1/4)", "GConv 3×3 (g=16)"), ("GConv 3×3 (g=16)", "DWConv 3×3")):
            gain = speed[better] / speed[worse] - 1
            out.append(
                {
                    "guideline": f"FasterNet: {better} reaches more mult-adds/s than {worse}",
                    "machine": machine,
                    "device": dev,
                    "column": "CPU",
                    "measured": f"{speed[better]:.2f} vs {speed[worse]:.2f} G mult-adds/s ({gain:+.1%})",
                    "noise_band": spread[better] + spread[worse],
                    "verdict": _judge(gain, spread[better] + spread[worse]),
                }
            )
    return pd.DataFrame(out)
