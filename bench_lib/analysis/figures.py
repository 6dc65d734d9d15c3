"""Figures for the notebooks and the report, drawn from :mod:`bench_lib.analysis.tables`.

Each returns a matplotlib Figure, or ``None`` where there is no data (the notebook then prints
:func:`bench_lib.analysis.tables.no_data`'s message). Importing this module selects no backend: the
notebooks and the report run headless under the Agg backend they choose.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench_lib.analysis.tables import (
    energy_table,
    layout_table,
    memory_table,
    network_table,
    panel_label,
    roofline_points,
    speedup_table,
    thread_table,
)


def _reduction_panel(ax, p: pd.DataFrame, limits: tuple[float, float], title: str, legend: bool) -> None:
    """One panel of :func:`flops_vs_latency`: its points, named, the ideal diagonal and the line of no
    speedup, on log axes from ``limits[0]`` to ``limits[1]`` both ways."""
    lo, hi = limits
    sns.scatterplot(
        data=p, x="flop_reduction", y="speedup", hue="workload", style="batch_label", s=70, ax=ax, legend=legend
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
        title=title,
        xlabel="theoretical FLOP reduction vs dense (×)",
        ylabel="measured speedup vs dense (×)",
    )


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
        _reduction_panel(ax, t[t["panel"] == panel], (lo, hi), f"{panel} ({mode})", legend=ax is axes.flat[0])
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if axes.flat[0].get_legend() is not None:
        axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Was the FLOP cut worth it? Below the diagonal, the hardware did not deliver it.")
    fig.tight_layout()
    return fig


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


def png(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards, so notebooks do not also draw it)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


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
