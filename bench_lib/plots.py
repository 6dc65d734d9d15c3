"""Figures and tables for the notebooks and the report. Each takes the DataFrame of :func:`bench_lib.results.load`.

Every function copes with missing data: it returns ``None`` and the notebook prints :func:`no_data`'s
message instead of failing. Tables are DataFrames; figures are matplotlib Figures.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # headless: notebooks and the report run without a display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

LATEST_KEYS = ["machine", "device", "layout", "dtype", "mode", "batch", "case"]


def no_data(what: str, df: pd.DataFrame | None = None) -> str:
    where = ""
    if df is not None and not df.empty and "machine" in df:
        where = f" (machines: {', '.join(sorted(df['machine'].dropna().unique()))})"
    return f"No data for {what} in these results{where}."


def latest(df: pd.DataFrame, metric: str = "latency") -> pd.DataFrame:
    """The newest successful result of each combination for ``metric`` (asv's files, current version)."""
    if df.empty:
        return df
    d = df[(df["metric"] == metric) & (df["status"] == "ok")]
    if "source" in d:
        d = d[d["source"] == "asv"]
    if "current_version" in d and d["current_version"].any():
        d = d[d["current_version"]]
    d = d.sort_values("run_date")
    return d.drop_duplicates(LATEST_KEYS, keep="last")


def panel_label(d: pd.DataFrame) -> pd.Series:
    return d["machine"] + " · " + d["device"] + " · " + d["layout"]


def speedup_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per non-dense case with both latencies measured: speedup vs FLOP reduction and the gap."""
    d = latest(df)
    d = d[d["speedup"].notna() & ~d["is_dense"]].copy()
    if d.empty:
        return d
    d["efficiency"] = d["speedup"] / d["flop_reduction"]  # 1 = the FLOP cut fully paid off
    cols = [
        "machine",
        "device",
        "layout",
        "mode",
        "batch",
        "case",
        "flop_reduction",
        "speedup",
        "efficiency",
        "latency_s",
        "achieved_flops_per_s",
        "roofline_fraction",
    ]
    return d[cols].sort_values("efficiency").reset_index(drop=True)


def flops_vs_latency(df: pd.DataFrame, mode: str = "inference", batch: int | None = None):
    """Measured speedup against theoretical FLOP reduction, log-log, one panel per machine/device/layout."""
    t = speedup_table(df)
    if t.empty:
        return None
    t = t[(t["mode"] == mode) & np.isfinite(t["flop_reduction"])]
    if batch is not None:
        t = t[t["batch"] == batch]
    if t.empty:
        return None
    t = t.assign(
        panel=panel_label(t),
        workload=t["case"].str.split("(").str[0].str.split("@").str[0],
        batch_label="batch " + t["batch"].astype(str),
    )
    panels = sorted(t["panel"].unique())
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 5.2 * nrows), squeeze=False)
    lo = min(t["speedup"].min(), 1.0) / 1.5
    hi = max(t["flop_reduction"].max(), t["speedup"].max()) * 1.5
    for ax, panel in zip(axes.flat, panels, strict=False):
        p = t[t["panel"] == panel]
        sns.scatterplot(
            data=p,
            x="flop_reduction",
            y="speedup",
            hue="workload",
            style="batch_label",
            s=70,
            ax=ax,
            legend=ax is axes.flat[0],
        )
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="ideal: speedup = FLOP reduction")
        ax.axhline(1.0, color="grey", lw=0.8)
        for _, r in p.iterrows():
            ax.annotate(
                r["workload"],
                (r["flop_reduction"], r["speedup"]),
                fontsize=7,
                alpha=0.8,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlim=(lo, hi),
            ylim=(lo, hi),
            title=f"{panel} ({mode})",
            xlabel="theoretical FLOP reduction vs dense (×)",
            ylabel="measured speedup vs dense (×)",
        )
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if axes.flat[0].get_legend() is not None:
        axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Was the FLOP cut worth it? Below the diagonal, the hardware did not deliver it.")
    fig.tight_layout()
    return fig


def roofline_points(df: pd.DataFrame) -> pd.DataFrame:
    d = latest(df)
    d = d[d["achieved_flops_per_s"].notna() & (d["theory_flops"] > 0)]
    return d


def roofline_plot(df: pd.DataFrame, peaks: dict[tuple[str, str], object]):
    """Each case at (intensity, achieved FLOP/s) under its device's measured roofline."""
    d = roofline_points(df)
    if d.empty:
        return None
    d = d.assign(panel=d["machine"] + " · " + d["device"], family=d["case"].str.split("(").str[0].str.split("@").str[0])
    panels = sorted(d["panel"].unique())
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 5.2 * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        p = d[d["panel"] == panel]
        sns.scatterplot(
            data=p,
            x="theory_intensity_flops_per_byte",
            y="achieved_flops_per_s",
            hue="family",
            style="mode",
            ax=ax,
            s=50,
            legend=ax is axes.flat[0],
        )
        machine, device = panel.split(" · ")
        peak = peaks.get((machine, device))
        if peak is not None and "float32" in peak.gemm_flops_per_s:
            x = np.logspace(
                np.log10(max(p["theory_intensity_flops_per_byte"].min() / 2, 1e-2)),
                np.log10(p["theory_intensity_flops_per_byte"].max() * 2),
                100,
            )
            roof = np.minimum(peak.compute_flops_per_s("float32"), x * peak.copy_bytes_per_s)
            ax.plot(x, roof, "k-", lw=1.2, label="measured roofline (best of GEMM and 3×3 conv; copy)")
        ax.set(
            xscale="log",
            yscale="log",
            title=panel,
            xlabel="arithmetic intensity (FLOPs / byte of min traffic)",
            ylabel="achieved FLOP/s",
        )
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    first = axes.flat[0]
    if first.get_legend() is not None:  # one legend, outside the panels
        handles, labels = first.get_legend_handles_labels()
        first.get_legend().remove()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.tight_layout()
    return fig


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


def layout_plot(df: pd.DataFrame):
    t = layout_table(df)
    if t.empty:
        return None
    t = t.assign(label=t["machine"] + " · " + t["device"] + " · b" + t["batch"].astype(str) + " · " + t["mode"])
    height = max(4.0, 0.22 * t["case"].nunique() + 1.5)
    fig, ax = plt.subplots(figsize=(10, height))
    sns.stripplot(data=t, y="case", x="channels_last_speedup", hue="label", ax=ax, size=6)
    ax.axvline(1.0, color="k", lw=1)
    ax.set(xscale="log", xlabel="channels_last speedup over NCHW (×, >1: channels_last faster)", ylabel="")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


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


def thread_plot(df: pd.DataFrame):
    t = thread_table(df)
    if t.empty:
        return None
    t = t.assign(
        family=t["case"].str.split("(").str[0].str.split("@").str[0],
        label="b" + t["batch"].astype(str) + " · " + t["mode"],
    )
    fig, ax = plt.subplots(figsize=(10, max(4.0, 0.3 * t["family"].nunique() + 1.5)))
    sns.stripplot(data=t, y="family", x="parallel_efficiency", hue="label", ax=ax, size=6)
    ax.axvline(1.0, color="k", lw=1)
    ax.set(xlabel="parallel efficiency (speedup over cpu-1t / threads)", ylabel="", xlim=(0, 1.3))
    fig.tight_layout()
    return fig


def energy_table(df: pd.DataFrame) -> pd.DataFrame:
    d = latest(df, "energy")
    return (
        d[["machine", "device", "layout", "mode", "batch", "case", "energy_j_per_item", "theory_flops"]].reset_index(
            drop=True
        )
        if not d.empty
        else d
    )


def memory_table(df: pd.DataFrame) -> pd.DataFrame:
    """Peak bytes of one call next to theory's minimum (input + weights + output) and their ratio."""
    d = latest(df, "peak_memory")
    if d.empty:
        return d
    d = d.assign(peak_over_min_bytes=d["peak_bytes"] / d["theory_min_bytes"])
    return (
        d[
            [
                "machine",
                "device",
                "layout",
                "mode",
                "batch",
                "case",
                "peak_bytes",
                "theory_min_bytes",
                "peak_over_min_bytes",
            ]
        ]
        .sort_values("peak_over_min_bytes")
        .reset_index(drop=True)
    )


def memory_plot(df: pd.DataFrame):
    t = memory_table(df)
    if t.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    sns.scatterplot(data=t, x="theory_min_bytes", y="peak_bytes", hue="mode", style="layout", ax=ax)
    lo, hi = t["theory_min_bytes"].min() / 2, t["peak_bytes"].max() * 2
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="peak = input + weights + output")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="theory: minimum bytes (input + weights + output)",
        ylabel="measured peak bytes of one call",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def energy_plot(df: pd.DataFrame):
    t = energy_table(df)
    if t.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    sns.scatterplot(
        data=t.assign(flops_per_item=t["theory_flops"] / t["batch"]),
        x="flops_per_item",
        y="energy_j_per_item",
        hue="device",
        style="mode",
        ax=ax,
    )
    ax.set(xscale="log", yscale="log", xlabel="theoretical FLOPs per item", ylabel="measured joules per item")
    fig.tight_layout()
    return fig


def machines_table(df: pd.DataFrame) -> pd.DataFrame:
    """The same cases across machines and devices: latency, achieved FLOP/s, and the fastest variant per stage."""
    d = latest(df)
    if d.empty:
        return d
    d = d.assign(target=d["machine"] + " · " + d["device"])
    return d.pivot_table(
        index=["case", "layout", "mode", "batch"], columns="target", values="latency_s", aggfunc="median"
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
    out["worst_case"] = g.apply(lambda x: x.loc[x["efficiency"].idxmin(), "case"], include_groups=False)
    out["best_case"] = g.apply(lambda x: x.loc[x["efficiency"].idxmax(), "case"], include_groups=False)
    return out.reset_index()


def png(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards, so notebooks do not also draw it)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def show(obj, what: str, df: pd.DataFrame | None = None, max_rows: int = 40) -> None:
    """Display a figure or a table in a notebook, or say plainly that there is no data for it."""
    from IPython.display import HTML, Image, Markdown, display

    if obj is None or (isinstance(obj, pd.DataFrame) and obj.empty):
        display(Markdown(f"**{no_data(what, df)}**"))
    elif isinstance(obj, pd.DataFrame):
        display(HTML(obj.head(max_rows).to_html(index=False, float_format=lambda x: f"{x:.4g}")))
        if len(obj) > max_rows:
            display(Markdown(f"*{len(obj) - max_rows} more rows not shown.*"))
    else:
        display(Image(png(obj)))


def cached_peaks(df: pd.DataFrame, results_dir: str) -> dict[tuple[str, str], object]:
    """Each (machine, device)'s newest cached roofline peaks, None where none were measured."""
    from bench_lib import roofline

    if df.empty:
        return {}
    pairs = df[["machine", "device"]].dropna().drop_duplicates().itertuples(index=False)
    return {(m, d): roofline.load_cached(d, results_dir, m) for m, d in pairs}


def roofline_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every case's achieved FLOP/s and the fraction of its device's roofline, lowest fraction first."""
    t = roofline_points(df)
    cols = [
        "machine",
        "device",
        "layout",
        "mode",
        "batch",
        "case",
        "theory_intensity_flops_per_byte",
        "achieved_flops_per_s",
        "roofline_fraction",
    ]
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


def network_plot(df: pd.DataFrame, mode: str = "inference"):
    """Latency (batch 1) and throughput (largest batch) against MACs per image, log-log, iso-FLOP/s lines."""
    t = network_table(df)
    t = t[t["mode"] == mode] if not t.empty else t
    if t.empty:
        return None
    t = t.assign(panel=t["machine"] + " · " + t["device"] + " · " + t["layout"])
    panels = sorted(t["panel"].unique())
    fig, axes = plt.subplots(len(panels), 2, figsize=(13, 4.8 * len(panels)), squeeze=False)
    for row, panel in zip(axes, panels, strict=True):
        p = t[t["panel"] == panel]
        for ax, batch, y, label in (
            (row[0], p["batch"].min(), "latency_s", "latency per call (s)"),
            (row[1], p["batch"].max(), "items_per_s", "throughput (images/s)"),
        ):
            q = p[p["batch"] == batch]
            ax.scatter(q["macs_per_item"], q[y])
            for _, r in q.iterrows():
                ax.annotate(
                    r["workload"].removeprefix("net_"),
                    (r["macs_per_item"], r[y]),
                    fontsize=8,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
            x = np.logspace(np.log10(q["macs_per_item"].min() / 2), np.log10(q["macs_per_item"].max() * 2), 50)
            for rate in (1e9, 1e10, 1e11, 1e12, 1e13):  # iso-FLOP/s: FLOPs = 2 × MACs
                line = 2 * x * batch / rate if y == "latency_s" else rate / (2 * x)
                ax.plot(x, line, color="grey", lw=0.6, ls=":")
                ax.annotate(f"{rate / 1e9:g} GFLOP/s", (x[-1], line[-1]), fontsize=6, color="grey")
            lo, hi = q[y].min() / 3, q[y].max() * 3
            ax.set(
                xscale="log",
                yscale="log",
                ylim=(lo, hi),
                xlabel="MACs per image",
                ylabel=label,
                title=f"{panel}, batch {batch}",
            )
    fig.tight_layout()
    return fig


def breakdown_plot(bdf: pd.DataFrame):
    """For each network: each block's share of the time against its share of the MACs."""
    if bdf.empty:
        return None
    b = bdf.assign(
        network=bdf["case"].str.split("@").str[0].str.removeprefix("net_"),
        panel=bdf["machine"] + " · " + bdf["device"] + " · " + bdf["layout"],
    )
    panels = sorted(b["panel"].unique())
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 5.5 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        p = b[b["panel"] == panel]
        sns.scatterplot(data=p, x="macs_share", y="time_share", hue="network", ax=ax, s=35)
        hi = max(p["macs_share"].max(), p["time_share"].max()) * 1.1
        ax.plot([0, hi], [0, hi], "k--", lw=1, label="time share = MAC share")
        ax.set(
            xlim=(0, hi),
            ylim=(0, hi),
            xlabel="share of the network's MACs",
            ylabel="share of its time",
            title=f"{panel}: above the diagonal, a block costs more time than its FLOPs say",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def breakdown_table(bdf: pd.DataFrame) -> pd.DataFrame:
    """The blocks whose time share most exceeds their MAC share, per network."""
    if bdf.empty:
        return bdf
    t = bdf.assign(time_over_macs=bdf["time_share"] / bdf["macs_share"].where(bdf["macs_share"] > 0))
    cols = ["machine", "device", "layout", "case", "part", "part_s", "time_share", "macs_share", "time_over_macs"]
    return t.sort_values("time_over_macs", ascending=False)[cols].reset_index(drop=True)
