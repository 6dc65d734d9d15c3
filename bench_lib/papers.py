"""Paper reproductions: ShuffleNet V2's guidelines G1 and G2 (Tables 1–2) and FasterNet's Table 1.

The setups and published numbers are in ``shared/reference/costs.md``. Each table is a list of rows, each
row a ``stack`` case of the catalogue (so theory, measure and the asv suite treat it like any workload).

Verdict rule, stated once and applied to every table: a claim compares two rows (or, for FasterNet, two
operators' average throughput). The difference counts only if it exceeds the *noise band*, the sum of the
two measurements' relative interquartile ranges (IQR / median, from their own samples). Then:
"reproduced" when the difference is beyond the band in the paper's direction, "not reproduced" when it is
beyond the band the other way, "inconclusive: the difference is within the noise" otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench_lib.cases import Case

PAPERS = {"shufflenetv2": ("shufflenetv2-g1", "shufflenetv2-g2"), "fasternet": ("fasternet-t1",)}
BATCH = {"cpu": 1, "cuda": 32, "mps": 32}  # single-image CPU latency, GPU throughput (FasterNet: batch 32)


def nearest_valid_width(c: int, g: int) -> int:
    """The multiple of ``g`` whose 1×1 group-conv FLOPs (∝ width² / g) are closest to those of width ``c``."""
    if c % g == 0:
        return c
    lower, upper = (c // g) * g, (c // g + 1) * g
    return min((w for w in (lower, upper) if w > 0), key=lambda w: (abs(w * w - c * c), w))


@dataclass(frozen=True)
class Row:
    table: str
    column: str  # the paper's column: "GPU", "ARM", "CPU"
    label: str
    case: str
    published: float  # published speed (batches/s or images/s) or G mult-adds/s
    paper_width: int | None = None  # ShuffleNet V2 G2: the paper's width where it is not divisible by g


def shufflenetv2_g1() -> list[Row]:
    rows = []
    sets = {
        "GPU": ([(128, 128), (90, 180), (52, 312), (36, 432)], [1480, 1296, 876, 748]),
        "ARM": ([(32, 32), (22, 44), (13, 78), (9, 108)], [76.2, 72.9, 69.1, 57.6]),
    }
    for column, (pairs, speeds) in sets.items():
        for (c1, c2), speed in zip(pairs, speeds, strict=True):
            ratio = f"1:{round(c2 / c1)}"
            case = f"stack(op=pointwise_pair,depth=10,in={c1},mid={c2})@56x56"
            rows.append(Row("shufflenetv2-g1", column, f"c1:c2 = {ratio} ({c1},{c2})", str(Case.parse(case)), speed))
    return rows


def shufflenetv2_g2() -> list[Row]:
    rows = []
    sets = {
        "GPU": ([128, 180, 256, 360], [2451, 1725, 1026, 634]),
        "CPU": ([64, 90, 128, 180], [40.0, 35.0, 32.9, 27.8]),
    }
    for column, (widths, speeds) in sets.items():
        for g, c, speed in zip((1, 2, 4, 8), widths, speeds, strict=True):
            w = nearest_valid_width(c, g)
            case = f"stack(op=grouped,depth=10,in={w},out={w},k=1,g={g},bias=false)@56x56"
            label = f"g={g}, c={c}" + (f" (runs c={w})" if w != c else "")
            rows.append(Row("shufflenetv2-g2", column, label, str(Case.parse(case)), speed, c if w != c else None))
    return rows


FASTERNET_STAGES = [(96, 56), (192, 28), (384, 14), (768, 7)]
FASTERNET_OPS = {
    "Conv 3×3": ("standard", "k=3,bias=false", 71.89),
    "GConv 3×3 (g=16)": ("grouped", "k=3,g=16,bias=false", 25.93),
    "DWConv 3×3": ("depthwise", "k=3,bias=false", 6.42),
    "PConv 3×3 (1/4)": ("partial", "k=3,r=4", 39.91),
}


def fasternet_t1() -> list[Row]:
    rows = []
    for label, (op, extra, gmacs) in FASTERNET_OPS.items():
        for c, s in FASTERNET_STAGES:
            out = f",out={c}" if op in ("standard", "grouped") else ""
            case = f"stack(op={op},depth=10,in={c}{out},{extra})@{s}x{s}"
            rows.append(Row("fasternet-t1", "CPU", f"{label} @ {c}×{s}²", str(Case.parse(case)), gmacs))
    return rows


TABLES = {"shufflenetv2-g1": shufflenetv2_g1, "shufflenetv2-g2": shufflenetv2_g2, "fasternet-t1": fasternet_t1}


def rows(tables: tuple[str, ...] | None = None) -> list[Row]:
    return [r for name, make in TABLES.items() if tables is None or name in tables for r in make()]


def cases(tables: tuple[str, ...] | None = None) -> list[str]:
    return list(dict.fromkeys(r.case for r in rows(tables)))


def _relative_iqr(samples) -> float:
    if not samples or len(samples) < 2:
        return math.nan
    q25, q75 = np.percentile(samples, [25, 75])
    return float((q75 - q25) / np.median(samples))


def _measured(df: pd.DataFrame) -> pd.DataFrame:
    from bench_lib import plots

    d = plots.latest(df)
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
    if gain > band:
        return "reproduced"
    if gain < -band:
        return "not reproduced"
    return "inconclusive: the difference is within the noise"


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
