"""Tables behind the notebooks and the report: pure functions of the DataFrame of
:func:`bench_lib.analysis.results.load`, returning DataFrames (empty where there is no data).
No plotting here: :mod:`bench_lib.analysis.figures` draws from these tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench_lib.analysis import units

# env_name: two torch versions side by side are two results, never one mixed table
LATEST_KEYS = ["machine", "env_name", "device", "layout", "dtype", "mode", "batch", "case"]
ROW_KEYS = ["machine", "device", "layout", "mode", "batch", "case"]  # what a table's row names


def no_data(what: str, df: pd.DataFrame | None = None) -> str:
    where = ""
    if df is not None and not df.empty and "machine" in df:
        where = f" (machines: {', '.join(sorted(df['machine'].dropna().unique()))})"
    return f"No data for {what} in these results{where}."


def latest(df: pd.DataFrame, metric: str = "latency") -> pd.DataFrame:
    """The newest successful result of each combination for ``metric`` (current method version)."""
    if df.empty:
        return df
    d = df[(df["metric"] == metric) & (df["status"] == "ok")]
    if "current_version" in d and d["current_version"].any():
        d = d[d["current_version"]]
    d = d.sort_values("run_date")
    return d.drop_duplicates(LATEST_KEYS, keep="last")


def panel_label(d: pd.DataFrame) -> pd.Series:
    return d["machine"] + " · " + d["device"] + " · " + d["layout"]


KERNEL_COLUMNS = ("kernel", "kernel_fallback")  # which kernel ran (latency rows since schema 4)


def speedup_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per non-dense case with both latencies measured: speedup vs FLOP reduction and the gap.
    Zero-FLOP ops (an infinite reduction) are left out: :func:`data_movement_table` judges them."""
    d = latest(df)
    d = d[d["speedup"].notna() & ~d["is_dense"] & np.isfinite(d["flop_reduction"])].copy()
    if d.empty:
        return d
    d["efficiency"] = d["speedup"] / d["flop_reduction"]  # 1 = the FLOP cut fully paid off
    cols = [
        "machine",
        "env_name",
        "device",
        "layout",
        "dtype",
        "mode",
        "batch",
        "case",
        "theory_flops",
        "flop_reduction",
        "speedup",
        "efficiency",
        "latency_s",
        "achieved_flops_per_s",
        "roofline_fraction",
    ]
    cols += [c for c in KERNEL_COLUMNS if c in d]
    return d[cols].sort_values("efficiency").reset_index(drop=True)


def roofline_points(df: pd.DataFrame) -> pd.DataFrame:
    d = latest(df)
    d = d[d["achieved_flops_per_s"].notna() & (d["theory_flops"] > 0)]
    return d


def layout_table(df: pd.DataFrame) -> pd.DataFrame:
    """channels_last speedup over NCHW (latency NCHW / latency channels_last) per case and device."""
    d = latest(df)
    keys = ["machine", "device", "mode", "batch", "case"]
    w = d.pivot_table(index=keys, columns="layout", values="latency_s", aggfunc="median")
    if not {"nchw", "channels_last"} <= set(w.columns):
        return pd.DataFrame()
    w = w.dropna(subset=["nchw", "channels_last"])
    w["channels_last_speedup"] = w["nchw"] / w["channels_last"]
    return w.reset_index().sort_values("channels_last_speedup")


def thread_table(df: pd.DataFrame) -> pd.DataFrame:
    """CPU thread scaling: speedup of cpu-Nt over cpu-1t and parallel efficiency (speedup / N)."""
    d = latest(df)
    d = d[d["device"].str.startswith("cpu-")]
    if d.empty or d["device"].nunique() < 2:
        return pd.DataFrame()
    d = d.assign(threads=d["device"].str.extract(r"cpu-(\d+)t")[0].astype(int))
    keys = ["machine", "layout", "mode", "batch", "case"]
    one = d[d["threads"] == 1].set_index(keys)["latency_s"]
    many = d[d["threads"] > 1]
    out = many.join(one.rename("latency_1t_s"), on=keys)
    out = out[out["latency_1t_s"].notna()]
    out = out.assign(thread_speedup=out["latency_1t_s"] / out["latency_s"])
    out = out.assign(parallel_efficiency=out["thread_speedup"] / out["threads"])
    return (
        out[[*keys, "threads", "latency_1t_s", "latency_s", "thread_speedup", "parallel_efficiency"]]
        .sort_values("parallel_efficiency")
        .reset_index(drop=True)
    )


def energy_table(df: pd.DataFrame) -> pd.DataFrame:
    d = latest(df, "energy")
    return d[[*ROW_KEYS, "energy_j_per_item", "theory_flops"]].reset_index(drop=True) if not d.empty else d


def memory_table(df: pd.DataFrame) -> pd.DataFrame:
    """Peak bytes of one call next to theory's minimum (input + weights + output) and their ratio."""
    d = latest(df, "peak_memory")
    if d.empty:
        return d
    d = d.assign(peak_over_min_bytes=d["peak_bytes"] / d["theory_min_bytes"])
    return (
        d[
            [
                *ROW_KEYS,
                "peak_bytes",
                "theory_min_bytes",
                "peak_over_min_bytes",
            ]
        ]
        .sort_values("peak_over_min_bytes")
        .reset_index(drop=True)
    )


def machines_table(df: pd.DataFrame) -> pd.DataFrame:
    """The same cases across machines and devices: latency, achieved FLOP/s, and the fastest variant per stage."""
    d = latest(df)
    if d.empty:
        return d
    d = d.assign(target=d["machine"] + " · " + d["device"])
    return d.pivot_table(
        index=["case", "dtype", "layout", "mode", "batch"], columns="target", values="latency_s", aggfunc="median"
    ).reset_index()


def winners_table(df: pd.DataFrame) -> pd.DataFrame:
    """For each machine, device, stage shape and batch: which op is fastest, and by how much over standard."""
    d = latest(df)
    d = d[d["workload"].isin(["standard", "grouped", "depthwise_separable", "partial"]) & (d["mode"] == "inference")]
    if d.empty:
        return d
    keys = ["machine", "device", "layout", "batch", "height"]
    best = d.loc[d.groupby(keys)["latency_s"].idxmin()]
    return best[[*keys, "case", "latency_s", "speedup"]].reset_index(drop=True)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """The report's headline: per machine and device, how much of the FLOP cut the hardware delivered."""
    t = speedup_table(df)
    if t.empty:
        return t
    t = t[np.isfinite(t["flop_reduction"])]
    g = t.groupby(["machine", "device", "layout", "mode"])
    out = g.agg(
        cases=("case", "count"),
        median_flop_reduction=("flop_reduction", "median"),
        median_speedup=("speedup", "median"),
        median_efficiency=("efficiency", "median"),
    )
    for end, pick in (("worst", "idxmin"), ("best", "idxmax")):
        at = g["efficiency"].agg(pick)
        out[f"{end}_case"] = t.loc[at, "case"].to_numpy()
        out[f"{end}_efficiency"] = t.loc[at, "efficiency"].to_numpy()
    return out.reset_index()


def headline(summary: pd.DataFrame) -> list[str]:
    """The summary in words, one sentence per machine, device, layout and mode (``summary``:
    :func:`summary_table`)."""
    return [
        f"{r.machine} · {r.device} · {r.layout} · {r.mode}: the variants cut FLOPs by a median "
        f"{units.ratio(r.median_flop_reduction)} and run a median {units.ratio(r.median_speedup)} faster than "
        f"their dense equivalents: {units.fraction(r.median_efficiency)} of the cut delivered ({r.cases} cases). "
        f"Worst: {r.worst_case} ({units.fraction(r.worst_efficiency)}); best: {r.best_case} "
        f"({units.fraction(r.best_efficiency)})."
        for r in summary.itertuples(index=False)
    ]


def data_movement_table(df: pd.DataFrame) -> pd.DataFrame:
    """Zero-FLOP ops (channel shuffle): achieved bandwidth (minimum bytes per second) against the roof of
    the cache level their working set fits, lowest fraction first."""
    d = latest(df)
    d = d[(d["theory_flops"] == 0) & d["latency_s"].notna() & d["memory_roof_bytes_per_s"].notna()]
    if d.empty:
        return d
    d = d.assign(bandwidth_fraction=d["achieved_bytes_per_s"] / d["memory_roof_bytes_per_s"])
    cols = ["machine", "device", "layout", "dtype", "mode", "batch", "case", "theory_min_bytes", "latency_s"]
    cols += ["achieved_bytes_per_s", "memory_level_bytes", "memory_roof_bytes_per_s", "bandwidth_fraction"]
    return d[cols].sort_values("bandwidth_fraction").reset_index(drop=True)


def roofline_levels(df: pd.DataFrame) -> pd.DataFrame:
    """Per machine, device, op family and stage size: which roof bounds it (``compute``, or the memory
    level its working set fits), over its latest rows; ``rows`` says how many agree out of ``of``."""
    d = latest(df)
    d = d[d["roofline_bound"].notna()] if not d.empty else d
    if d.empty:
        return d
    level = d["memory_level_bytes"].map(lambda b: f"memory (fits a {units.size(b)} copy)")
    d = d.assign(roof=np.where(d["roofline_bound"] == "compute", "compute", level))
    keys = ["machine", "device", "workload", "height"]
    counts = d.groupby([*keys, "roof"]).size().rename("rows").reset_index()
    top = counts.sort_values("rows", ascending=False).drop_duplicates(keys)
    top = top.join(counts.groupby(keys)["rows"].sum().rename("of"), on=keys)
    return top.sort_values(keys).reset_index(drop=True)


def roofline_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every case's achieved FLOP/s and the fraction of its device's roofline, lowest fraction first."""
    t = roofline_points(df)
    cols = [
        *ROW_KEYS,
        "theory_intensity_flops_per_byte",
        "achieved_flops_per_s",
        "roofline_fraction",
    ]
    cols += [c for c in KERNEL_COLUMNS if c in t]
    return t[cols].sort_values("roofline_fraction").reset_index(drop=True) if not t.empty else t


def network_table(df: pd.DataFrame, baseline: str = "net_resnet50") -> pd.DataFrame:
    """Each network's MACs, latency, throughput, achieved FLOP/s, and its speedup over ResNet-50 beside
    its FLOP reduction (same machine, device, layout, batch and mode)."""
    d = latest(df)
    d = d[d["workload"].fillna("").str.startswith("net_")]
    if d.empty:
        return d
    keys = ["machine", "device", "layout", "mode", "batch"]
    base = d[d["workload"] == baseline].set_index(keys)[["latency_s", "theory_flops"]]
    d = d.join(base.rename(columns={"latency_s": "baseline_latency_s", "theory_flops": "baseline_flops"}), on=keys)
    d = d.assign(
        macs_per_item=d["theory_macs"] / d["batch"],
        speedup_vs_resnet50=d["baseline_latency_s"] / d["latency_s"],
        flop_reduction_vs_resnet50=d["baseline_flops"] / d["theory_flops"],
    )
    cols = [
        *keys,
        "workload",
        "macs_per_item",
        "latency_s",
        "items_per_s",
        "achieved_flops_per_s",
        "speedup_vs_resnet50",
        "flop_reduction_vs_resnet50",
    ]
    return d[cols].sort_values([*keys, "macs_per_item"]).reset_index(drop=True)


def breakdown_table(bdf: pd.DataFrame) -> pd.DataFrame:
    """The blocks whose time share most exceeds their MAC share, per network."""
    if bdf.empty:
        return bdf
    t = bdf.assign(time_over_macs=bdf["time_share"] / bdf["macs_share"].where(bdf["macs_share"] > 0))
    cols = ["machine", "device", "layout", "case", "part", "part_s", "time_share", "macs_share", "time_over_macs"]
    return t.sort_values("time_over_macs", ascending=False)[cols].reset_index(drop=True)


def markdown_table(show: pd.DataFrame, cols: list[str]) -> str:
    """``show``'s ``cols`` as a Markdown table (cells as text, ``|`` escaped)."""
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for _, r in show.iterrows()]
    return "\n".join(lines)
