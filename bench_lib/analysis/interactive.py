"""Interactive figures and tables for the HTML report: Bokeh plots (hover on any point shows what it is;
no static labels) and DataTables tables through itables (sort, filter, page). Both embed their JavaScript
once in the page, so the report works offline.

Each figure function takes a table of :mod:`bench_lib.analysis.tables` and returns a Bokeh model, or
``None`` where there is no data. Static figures (PNG, notebooks) stay in :mod:`bench_lib.analysis.figures`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from bokeh.embed import components
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, HoverTool, Legend, LegendItem, Span
from bokeh.palettes import Category10_10, Category20_20
from bokeh.plotting import figure
from bokeh.resources import Resources

from bench_lib.analysis import units
from bench_lib.analysis.tables import panel_label

PANEL_PX = (560, 420)  # width, height of one panel
MAX_PANELS = 8  # panels per figure; a fleet's report names the rest (pass --machine to see them)
MAX_TABLE_ROWS = 2000  # rows embedded per table (the first, in the table's order); export has all
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def family(case: pd.Series) -> pd.Series:
    """``depthwise(in=64,k=3)@56x56`` → ``depthwise``: the workload, what a colour stands for."""
    return case.str.split("(").str[0].str.split("@").str[0]


def colours(names) -> dict[str, str]:
    palette = Category10_10 if len(names) <= 10 else Category20_20
    return dict(zip(sorted(names), itertools.cycle(palette), strict=False))


def _hover_columns(t: pd.DataFrame) -> dict[str, list[str]]:
    """Text columns every point carries for its tooltip, in human units."""
    text = {
        "case_text": t["case"],
        "where": t["machine"] + " · " + t["device"] + " · " + t["layout"],
        "dtype_text": t.get("dtype", pd.Series("", index=t.index)).fillna(""),
        "batch_text": t["batch"].astype(str),
        "mode_text": t["mode"],
        "latency_text": t["latency_s"].map(units.seconds),
        "kernel_text": _kernel_text(t),
    }
    if "theory_flops" in t:
        text["flops_text"] = t["theory_flops"].map(lambda v: units.decimal(v, "FLOP"))
    for column, f in (
        ("flop_reduction", units.ratio),
        ("speedup", units.ratio),
        ("efficiency", units.fraction),
        ("roofline_fraction", units.fraction),
        ("achieved_flops_per_s", lambda v: units.decimal(v, "FLOP/s")),
        ("achieved_bytes_per_s", lambda v: units.decimal(v, "B/s")),
        ("memory_roof_bytes_per_s", lambda v: units.decimal(v, "B/s")),
        ("memory_level_bytes", units.size),
        ("theory_min_bytes", units.size),
    ):
        if column in t:
            text[f"{column}_text"] = t[column].map(f)
    return {k: list(v) for k, v in text.items()}


def _kernel_text(t: pd.DataFrame) -> pd.Series:
    """The kernel that ran, a fallback named as such ("-" where none was recorded)."""
    kernel = t["kernel"] if "kernel" in t else pd.Series(None, index=t.index, dtype=object)
    fallback = t["kernel_fallback"] if "kernel_fallback" in t else pd.Series(None, index=t.index, dtype=object)
    text = kernel.where(kernel.notna(), "-").astype(str)
    return text.where(fallback.isna(), text + " (FALLBACK: " + fallback.astype(str) + ")")


TOOLTIP_BASE = [
    ("case", "@case_text"),
    ("where", "@where"),
    ("dtype · batch · mode", "@dtype_text · @batch_text · @mode_text"),
    ("latency", "@latency_text"),
    ("kernel", "@kernel_text"),
]


def _panel(title: str, x_label: str, y_label: str, **kwargs):
    p = figure(
        title=title,
        width=PANEL_PX[0],
        height=PANEL_PX[1],
        tools=TOOLS,
        x_axis_label=x_label,
        y_axis_label=y_label,
        **kwargs,
    )
    p.toolbar.logo = None
    return p


def _grid(panels: list) -> object:
    return gridplot(panels, ncols=2, merge_tools=False) if len(panels) > 1 else panels[0]


def _speedup_points(p, rows: pd.DataFrame, colour: dict[str, str]):
    """The points of one speedup panel and their hover; the renderer. One renderer per panel, coloured per
    point (a renderer per family made a fleet's page 4x the models to build and serialise); the legend
    still names each family's colour."""
    source = ColumnDataSource(
        {
            "x": rows["flop_reduction"],
            "y": rows["speedup"],
            "family": rows["family"],
            "colour": rows["family"].map(colour),
            **_hover_columns(rows),
        }
    )
    renderer = p.scatter("x", "y", source=source, size=8, alpha=0.8, color="colour")
    tooltips = [
        *TOOLTIP_BASE,
        ("theory", "@flops_text, @flop_reduction_text fewer FLOPs than dense"),
        ("speedup", "@speedup_text (efficiency @efficiency_text)"),
    ]
    p.add_tools(HoverTool(renderers=[renderer], tooltips=tooltips))
    return renderer


def speedup_scatter(t: pd.DataFrame, mode: str = "inference"):
    """Measured speedup vs theoretical FLOP reduction (log-log), one panel per machine · device · layout,
    colour = workload family; the diagonal is the whole FLOP cut delivered. ``t``: a speedup table."""
    if t.empty:
        return None
    t = t[(t["mode"] == mode) & np.isfinite(t["flop_reduction"]) & (t["flop_reduction"] > 0)]
    if t.empty:
        return None
    t = t.assign(family=family(t["case"]), panel=panel_label(t))
    colour = colours(t["family"].unique())
    lo = min(t["speedup"].min(), 1.0) / 1.5
    hi = max(t["flop_reduction"].max(), t["speedup"].max()) * 1.5
    panels = []
    for i, (panel, p_rows) in enumerate(itertools.islice(t.groupby("panel", sort=True), MAX_PANELS)):
        p = _panel(
            f"{panel} ({mode})",
            "theoretical FLOP reduction vs dense (×)",
            "measured speedup vs dense (×)",
            x_axis_type="log",
            y_axis_type="log",
            x_range=(lo, hi),
            y_range=(lo, hi),
        )
        # only the first panel carries the legend (the colours are the same in all): legend items are models
        # a fleet's page would otherwise build and serialise once per panel
        named = {"legend_label": "whole FLOP cut delivered"} if i == 0 else {}
        p.line([lo, hi], [lo, hi], line_dash="dashed", color="black", **named)
        p.add_layout(Span(location=1.0, dimension="width", line_color="grey", line_width=1))
        p_rows = p_rows.sort_values("family", kind="stable")  # the legend indexes the source's rows
        points_renderer = _speedup_points(p, p_rows, colour)
        if i == 0:
            _legend(p, points_renderer, p_rows["family"])
        panels.append(p)
    return _grid(panels)


def _legend(p, renderer, names: pd.Series, location: str = "top_left") -> None:
    """One legend entry per distinct name of ``names`` (the renderer's rows), in their order in the data.
    Not clickable: a panel's points share one renderer (a renderer per family or level made a fleet's page
    several times the models to build and serialise), so there is nothing to hide apart."""
    first = pd.Series(range(len(names))).groupby(names.to_numpy(), sort=False).first()
    items = [LegendItem(label=str(name), renderers=[renderer], index=int(i)) for name, i in first.items()]
    if not p.legend:
        p.add_layout(Legend(), "center")
    p.legend[0].items = list(p.legend[0].items) + items
    p.legend.location = location
    p.legend.label_text_font_size = "8pt"
    p.legend.background_fill_alpha = 0.6


def _roofline_points(p, rows: pd.DataFrame, colour: dict):
    """The cases of one roofline panel, coloured by the level their working set fits, and their hover."""
    source = ColumnDataSource(
        {
            "x": rows["theory_intensity_flops_per_byte"],
            "y": rows["achieved_flops_per_s"] / 1e9,
            "colour": rows["memory_level_bytes"].map(colour),
        }
        | _hover_columns(rows)
    )
    renderer = p.scatter("x", "y", source=source, size=7, alpha=0.75, color="colour")
    tooltips = [
        *TOOLTIP_BASE,
        ("achieved", "@achieved_flops_per_s_text, @achieved_bytes_per_s_text"),
        ("working set", "@theory_min_bytes_text: roof @memory_roof_bytes_per_s_text"),
        ("of the roof", "@roofline_fraction_text"),
    ]
    p.add_tools(HoverTool(renderers=[renderer], tooltips=tooltips))
    return renderer


def roofline(points: pd.DataFrame, peaks: dict) -> object | None:
    """Achieved FLOP/s against arithmetic intensity (FLOPs per minimum byte), one panel per machine ·
    device: the compute roof, one memory roof per measured level (a copy whose working set fits it) in
    that level's colour, and every case coloured by the level its working set fits. The legend gives each
    level its roof's bandwidth; hovering a roof names it. ``peaks``: (machine, device) → Peaks."""
    if points.empty:
        return None
    points = points[points["memory_level_bytes"].notna()]
    if points.empty:
        return None
    points = points.assign(level=points["memory_level_bytes"].map(lambda b: f"fits a {units.size(b)} copy"))
    # one colour per level in every panel; each panel's legend lists the levels it has
    order = points.sort_values("memory_level_bytes")["memory_level_bytes"].unique()
    colour = dict(zip(order, itertools.cycle(Category10_10), strict=False))
    panels = []
    targets = itertools.islice(points.groupby(["machine", "device"], sort=True), MAX_PANELS)
    for (machine, device), rows in targets:
        peak = peaks.get((machine, device))
        x = rows["theory_intensity_flops_per_byte"]
        p = _panel(
            f"{machine} · {device}: cache-aware roofline",
            "arithmetic intensity (FLOPs per byte of input, weights and output)",
            "achieved GFLOP/s",
            x_axis_type="log",
            y_axis_type="log",
        )
        roofs, roof_items = {}, []
        if peak is not None:
            bounds = (float(x.min()) / 2, float(x.max()) * 2)
            roofs, roof_items = _roofs(p, peak, bounds, set(rows["memory_level_bytes"]), colour)
        rows = rows.sort_values("memory_level_bytes", kind="stable")  # the legend lists levels smallest first
        points_renderer = _roofline_points(p, rows, colour)
        roof_words = {size: f" · roof {words}" for size, words in roofs.items()}
        legend = rows["level"] + rows["memory_level_bytes"].map(roof_words).fillna("")
        _legend(p, points_renderer, legend, location="bottom_right")
        p.legend[0].items = list(p.legend[0].items) + roof_items
        panels.append(p)
    return _grid(panels)


def _roofs(p, peak, bounds: tuple[float, float], used: set[float], colour: dict) -> tuple[dict, list]:
    """Draw the compute roof (best of GEMM and dense conv, float32) and the memory roof of each level a
    point of the panel fits (``used``: their copy sizes), plus the largest (DRAM), each in its level's
    colour (``colour``: copy size → colour; grey for a level no point fits). Return each drawn level's
    bandwidth in words, and legend entries for the compute roof and the levels no point fits."""
    compute = peak.compute_flops_per_s("float32") if "float32" in peak.gemm_flops_per_s else None
    sizes = sorted(peak.copy_levels_bytes_per_s) or [peak.copy_bytes]
    shown = sorted({s for s in sizes if s in used} | {sizes[-1]})
    xs = np.geomspace(*bounds, 50)
    bandwidth = {size: peak.memory_bytes_per_s(size) for size in shown}
    ys = [bandwidth[s] * xs if compute is None else np.minimum(bandwidth[s] * xs, compute) for s in shown]
    words = {size: units.decimal(bandwidth[size], "B/s") for size in shown}
    # one renderer for every memory roof (a renderer per level made a fleet's page slow)
    source = ColumnDataSource(
        {
            "xs": [list(xs)] * len(shown),
            "ys": [list(y / 1e9) for y in ys],
            "colour": [colour.get(s, "grey") for s in shown],
            "roof": [f"{units.size(s)} copy: {words[s]}" for s in shown],
        }
    )
    lines = p.multi_line("xs", "ys", source=source, color="colour", line_dash="dotted", line_width=2, alpha=0.8)
    p.add_tools(HoverTool(renderers=[lines], tooltips=[("memory roof", "@roof")], line_policy="nearest"))
    items = [
        LegendItem(label=f"{units.size(s)} copy (no case fits only it) · roof {words[s]}", renderers=[lines], index=i)
        for i, s in enumerate(shown)
        if s not in used
    ]
    if compute is not None:
        roof = p.line(list(bounds), [compute / 1e9] * 2, line_color="black", line_dash="dashed")
        items.append(LegendItem(label=f"compute roof · {units.decimal(compute, 'FLOP/s')}", renderers=[roof]))
    return words, items


def bandwidth_bars(t: pd.DataFrame):
    """Data-movement ops (zero FLOPs): achieved bandwidth beside the roof of the level their working set
    fits, one bar per case and target. ``t``: :func:`bench_lib.analysis.tables.data_movement_table`."""
    if t.empty:
        return None
    targets = t[["machine", "device"]].drop_duplicates().sort_values(["machine", "device"]).head(MAX_PANELS)
    t = t.merge(targets, on=["machine", "device"])  # as many targets as a figure has panels
    where = t["device"] if t["machine"].nunique() == 1 else t["machine"] + " · " + t["device"]
    label = t["case"] + " · " + where + " · " + t["layout"] + " · " + t["dtype"].fillna("") + " · b"
    t = t.assign(label=label + t["batch"].astype(str) + np.where(t["mode"] == "training", " · training", ""))
    t = t.drop_duplicates("label").sort_values("bandwidth_fraction")
    source = ColumnDataSource(
        {
            "label": t["label"],
            "achieved": t["achieved_bytes_per_s"] / 1e9,
            "roof": t["memory_roof_bytes_per_s"] / 1e9,
            "fraction": t["bandwidth_fraction"] * 100,
        }
        | _hover_columns(t)
    )
    p = figure(
        y_range=list(t["label"]),
        width=1100,
        height=max(260, 18 * len(t) + 80),
        tools=TOOLS,
        title="Data-movement ops: achieved bandwidth (bars) against the roof of their cache level (ticks)",
        x_axis_label="GB/s (bytes of input + output per second)",
    )
    p.toolbar.logo = None
    p.hbar(y="label", right="achieved", height=0.7, source=source, color=Category10_10[0], alpha=0.8)
    p.scatter("roof", "label", source=source, marker="dash", size=18, color="black", line_width=2)
    p.add_tools(
        HoverTool(
            tooltips=[
                *TOOLTIP_BASE,
                ("moved", "@theory_min_bytes_text"),
                ("bandwidth", "@achieved_bytes_per_s_text of @memory_roof_bytes_per_s_text (@fraction{0.0} %)"),
            ]
        )
    )
    return p


HEAT_PALETTE = ["#b2182b", "#ef8a62", "#fddbc7", "#f7f7f7", "#d1e5f0", "#67a9cf", "#2166ac"]  # slower … faster


NOT_RUN_COLOUR = "#e6e6e6"


def heatmap(long: pd.DataFrame, value: str, title: str, hover: dict[str, str] | None = None, row_label="row"):
    """Cells of ``long`` (``row``, ``col``, ratio ``v``, and the columns ``hover`` names: label → ``@column``)
    coloured on a log scale around 1 (blue above, red below), the ratio written in each; a cell without a
    ratio is grey and says ``not run``."""
    v = long["v"].to_numpy(dtype=float)
    if long.empty or not np.isfinite(v).any():
        return None
    logs = np.log2(np.clip(np.nan_to_num(v, nan=1.0), 1 / 64, 64))
    span = max(float(np.abs(logs).max()), 1e-9)
    top = len(HEAT_PALETTE) - 1
    index = np.clip(np.round((logs / span + 1) / 2 * top), 0, top).astype(int)
    data = {c: long[c].fillna("-").tolist() for c in long.columns if c != "v"}
    data["text"] = [units.ratio(x) if np.isfinite(x) else "not run" for x in v]
    data["colour"] = [HEAT_PALETTE[i] if np.isfinite(x) else NOT_RUN_COLOUR for i, x in zip(index, v, strict=True)]
    rows, cols = list(dict.fromkeys(long["row"])), list(dict.fromkeys(long["col"]))
    p = figure(
        x_range=cols,
        y_range=list(reversed(rows)),
        width=min(1300, max(420, 150 * len(cols) + 260)),
        height=max(260, 24 * len(rows) + 100),
        tools="hover,save",
        tooltips=[(row_label, "@row"), ("on", "@col"), (value, "@text"), *(hover or {}).items()],
        title=title,
        x_axis_location="above",
    )
    p.toolbar.logo = None
    source = ColumnDataSource(data)
    p.rect("col", "row", 1, 1, source=source, fill_color="colour", line_color="white")
    p.text("col", "row", text="text", source=source, text_align="center", text_baseline="middle", text_font_size="8pt")
    p.grid.visible = False
    return p


def speed_energy(labels: pd.Series, score: pd.Series, joules: pd.Series):
    """One point per machine·device: its score (speed relative to the reference) against joules per
    inference; up and to the left is better on both."""
    source = ColumnDataSource(
        {
            "label": labels.tolist(),
            "score": score.tolist(),
            "joules": joules.tolist(),
            "score_text": score.map(units.ratio).tolist(),
            "joules_text": joules.map(lambda j: f"{j:.3g} J").tolist(),
        }
    )
    p = _panel("Speed against energy", "score (speed relative to the reference)", "joules per inference")
    p.scatter("score", "joules", source=source, size=10)
    p.add_tools(HoverTool(tooltips=[("on", "@label"), ("score", "@score_text"), ("energy", "@joules_text")]))
    return p


def series_plot(s: pd.DataFrame, row: dict):
    """One combination's run values in time order (``s``: started_at, value), the band of the runs before
    the judged ones shaded, the detected step marked; ``row``: its regressions verdict."""
    if s.empty:
        return None
    scale, unit = units.column_scale("value_s", s["value"]) or (1.0, "s")
    source = ColumnDataSource(
        {
            "x": pd.to_datetime(s["started_at"], utc=True).dt.tz_localize(None),
            "y": s["value"] / scale,
            "run": s["run_id"],
            "value_text": s["value"].map(units.seconds),
        }
    )
    where = f"{row['case']} · {row['device']} · {row['layout']} · b{row['batch']}"
    title = f"{row['verdict']}: {where} ({row['change']:+.1%})"
    p = _panel(title, "run", f"best round minimum ({unit})", x_axis_type="datetime")
    p.width, p.height = 520, 300
    p.title.text_font_size = "8pt"
    p.line("x", "y", source=source, color="grey")
    p.scatter("x", "y", source=source, size=7, color=Category10_10[0])
    center, width = row.get("band_center"), row.get("band_log")
    if center is not None and math.isfinite(center) and math.isfinite(width):
        for edge in (center - width, center + width):
            y = math.exp(edge) / scale
            p.add_layout(Span(location=y, dimension="width", line_color="orange", line_dash="dashed"))
    if row.get("first_run") is not None:
        first = s.loc[s["run_id"] == row["first_run"], "started_at"]
        if len(first):
            p.add_layout(
                Span(
                    location=pd.Timestamp(first.iloc[0]).tz_convert(None),
                    dimension="height",
                    line_color="red",
                    line_width=2,
                )
            )
    p.add_tools(HoverTool(tooltips=[("run", "@run"), ("value", "@value_text")]))
    return p


VERDICT_COLOURS = {"slower": "#b2182b", "faster": "#2166ac", "unchanged": "#555555", "inconclusive": "#bbbbbb"}


def ratio_intervals(t: pd.DataFrame, title: str):
    """An A/B comparison (``t``: :func:`bench_lib.analysis.compare.compare` rows of a paired comparison):
    each combination's ratio candidate / baseline with its interval, sorted, coloured by verdict; hover
    names the combination. None where no row has a ratio."""
    t = t[np.isfinite(t["ratio"])].sort_values("ratio").reset_index(drop=True)
    if t.empty:
        return None
    low = (1 + t["low"]).where(np.isfinite(t["low"]), t["ratio"])
    high = (1 + t["high"]).where(np.isfinite(t["high"]), t["ratio"])
    source = ColumnDataSource(
        {
            "x": np.arange(len(t)),
            "ratio": t["ratio"],
            "low": low,
            "high": high,
            "colour": t["verdict"].map(VERDICT_COLOURS).fillna("#000000"),
            "what": [f"{r.case} · {r.device} · {r.layout} · {r.dtype} · b{r.batch}" for r in t.itertuples()],
            "verdict": t["verdict"],
            "interval": [f"{a - 1:+.1%} … {b - 1:+.1%}" for a, b in zip(low, high, strict=True)],
        }
    )
    p = _panel(title, "combination (sorted by ratio)", "candidate / baseline", y_axis_type="log")
    p.width = max(PANEL_PX[0], min(1300, 12 * len(t)))
    p.title.text_font_size = "9pt"
    p.segment("x", "low", "x", "high", source=source, color="colour", line_width=2)
    dots = p.scatter("x", "ratio", source=source, size=6, color="colour")
    p.add_layout(Span(location=1.0, dimension="width", line_color="black", line_dash="dashed"))
    p.add_tools(
        HoverTool(
            renderers=[dots],
            tooltips=[("", "@what"), ("verdict", "@verdict"), ("ratio", "@ratio{0.000}"), ("interval", "@interval")],
        )
    )
    return p


def embed(models: dict[str, object]) -> tuple[str, dict[str, str]]:
    """(one script for all figures, name → div), from :func:`bokeh.embed.components`."""
    models = {k: v for k, v in models.items() if v is not None}
    if not models:
        return "", {}
    script, divs = components(models)
    return script, divs


def scripts() -> str:
    """The JavaScript of Bokeh's core and of DataTables, inline: the page loads nothing from the network."""
    from itables import options
    from itables.javascript import generate_init_offline_itables_html

    bokeh = Resources(mode="inline", components=["bokeh"]).render_js()
    return bokeh + generate_init_offline_itables_html(options.dt_bundle)


def table(df: pd.DataFrame, caption: str | None = None, page_length: int = 10) -> str:
    """``df`` in human units (:func:`units.humanize`) as a sortable, filterable, paged DataTable."""
    from itables import to_html_datatable

    if df.empty:
        return ""
    if len(df) > MAX_TABLE_ROWS:
        left = f"the first {MAX_TABLE_ROWS} of {len(df)} rows (convbench export --out FILE has every row)"
        caption, df = f"{caption}: {left}" if caption else left, df.head(MAX_TABLE_ROWS)
    return to_html_datatable(
        units.humanize(df.reset_index(drop=True)),
        caption=caption,
        connected=False,
        showIndex=False,
        pageLength=page_length,
        lengthMenu=[10, 25, 100, -1],
        scrollX=True,
        classes="display compact",
        display_logo_when_loading=False,
        maxBytes=0,
    )
