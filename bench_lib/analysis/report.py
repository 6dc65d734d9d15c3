"""``convbench report``: one self-contained, interactive HTML page from the results, plus the executed
notebooks.

The page (``report/index.html``) answers at a glance: per machine and device, how much of the FLOP cut the
hardware delivered, in words; then what changed since the history (``convbench regressions``' verdicts
with their bands and each flagged series plotted with its step); the speedup-vs-FLOP-reduction scatter
(inference and training), the cache-aware roofline with the level bounding each op family, the
data-movement ops by bandwidth, machines side by side, and every row in sortable, filterable tables.
Figures are Bokeh (hover on a point shows what it is), tables DataTables through itables; both are
embedded once, so the file loads nothing from the network.

The notebooks in ``analysis/`` take papermill-style parameters (a cell tagged ``parameters``; the values
are injected in a cell after it, tagged ``injected-parameters``, as papermill does), are executed with
nbclient (one progress line each) and written as static pages under ``report/notebooks/``. ``asv
publish`` then writes asv's own site into ``html/``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench_lib import __version__
from bench_lib.analysis import verdicts
from bench_lib.analysis.notebook_pages import document, progress, run_all
from bench_lib.errors import ArgumentError
from bench_lib.files import write_atomic
from bench_lib.store import redact

# The page's tables read each machine's newest month folders only, as many as hold RECENT_RUNS of its runs
# (a fleet-year holds thousands of run files); "what changed" judges the runs ``convbench regressions`` does.
RECENT_RUNS = 10
SERIES_PLOTS = 12  # flagged series plotted at most


@dataclass
class Section:
    """One part of the page: its anchor, title, HTML (figures as ``{{name}}`` placeholders) and figures."""

    anchor: str
    title: str
    body: str
    figures: dict[str, object] = field(default_factory=dict)


def build(
    results_dir: str = "results",
    out_dir: str = "report",
    analysis_dir: str = "analysis",
    machines: list[str] | None = None,
    publish: bool = True,
    run_notebooks: bool = True,
) -> tuple[Path, list[str]]:
    """Write ``out_dir/index.html`` (and, with ``run_notebooks``, the executed notebooks beside it); return
    its path and any notebook errors. Prints one progress line per step on stderr."""
    from bench_lib.analysis import results

    started = time.monotonic()
    results_abs = results_dir if "://" in results_dir else str(Path(results_dir).resolve())  # a URL stays one
    store = results.store_of(results_abs)  # refuses a folder without results, before any notebook
    df = results.load(store, machines=machines, recent=RECENT_RUNS)
    peaks = results.newest_peaks(df, store) if not df.empty else {}
    sections = [
        _glance(df),
        _what_changed(store, machines),
        _ab_section(store, machines),
        _processes_section(store, machines),
        *_figures(df, peaks),
        _machines(store, machines, df),
        _all_rows(df),
    ]
    progress(f"page sections from {len(df)} results", started)
    out = Path(out_dir)
    problems, links = [], []
    if run_notebooks:
        problems, links = run_all(analysis_dir, out / "notebooks", results_abs, machines)
    sections.append(_notebook_links(links, run_notebooks))
    write_atomic(out / "index.html", _page(df, sections, results_abs))
    progress(f"wrote {out / 'index.html'} ({(out / 'index.html').stat().st_size / 2**20:.1f} MiB)", started)
    if publish:
        _asv_publish(results_abs)
    return out / "index.html", problems


def _glance(df: pd.DataFrame) -> Section:
    from bench_lib.analysis import interactive, tables

    summary = tables.summary_table(df) if not df.empty else pd.DataFrame()
    if summary.empty:
        return Section("glance", "At a glance", "<p class='note'>No dense/variant pairs measured yet.</p>")
    first = summary.sort_values(["mode", "machine", "device", "layout"])
    items = "".join(f"<li>{html.escape(s)}</li>" for s in tables.headline(first))
    body = (
        "<p class='note'>Speedup = latency of the dense equivalent / latency of the variant (same machine, "
        "device, layout, dtype, mode and batch); efficiency = speedup / theoretical FLOP reduction (100 % = the "
        f"FLOP cut fully paid off).</p><ul class='headline'>{items}</ul>"
        + interactive.table(summary.drop(columns=["worst_case", "best_case"]), page_length=25)
    )
    return Section("glance", "At a glance: how much of the FLOP cut did the hardware deliver?", body)


def _what_changed(store, machines: list[str] | None, factor: float = verdicts.FACTOR, alpha: float = verdicts.ALPHA):
    """The newest runs against their history: ``convbench regressions``' verdicts on the same runs (latency
    series), counts per machine and device, the flagged ones in a table and plotted."""
    from bench_lib.analysis import interactive, regressions, results, series

    chosen = regressions.selected_runs(store, machines)
    runs = series.run_values(results.rounds_of_runs(store, chosen, series.READ, metric="latency", categorical=True))
    table, changes = regressions.scan(runs, factor, alpha)
    if table.empty:
        return Section("changed", "What changed", "<p class='note'>No runs with latencies in these results.</p>")
    table = table[table["suite"] != "canary"]
    counts = table.groupby(["machine", "device", "verdict"]).size().unstack(fill_value=0)
    short = table[table["n_runs"] < regressions.MIN_RUNS].groupby(["machine", "device"]).size()
    counts = (
        counts.assign(**{f"of them, under {regressions.MIN_RUNS} runs of history": short})
        .fillna(0)
        .astype(int)
        .reset_index()
    )
    flagged = table[table["verdict"].isin([*verdicts.FLAGS, verdicts.MACHINE_CHANGED])]
    body = [
        f"<p>{len(table)} latency series, each judged at its newest run against the runs before it on the same "
        f"machine (up to {verdicts.WINDOW_RUNS} runs). A series is flagged when its newest run leaves its band: beyond "
        f"{factor - 1:.0%} and beyond what its own run-to-run noise explains at 1 − {alpha:g}. Two newest runs "
        "beyond it make a <span class='regression'>regression</span> or an <span class='improvement'>improvement"
        "</span>, one a <span class='suspect'>suspect</span>; <em>inconclusive</em> means the noise (or too "
        f"short a history: {regressions.MIN_RUNS} runs at least) could hide a change of that size. "
        "docs/verdicts.md gives the share of series flagged on identical code.</p>",
        interactive.table(counts, page_length=10),
    ]
    moved = changes[changes["changed"]] if not changes.empty else changes
    for m in moved.itertuples():
        body.append(
            f"<p class='suspect'>machine changed: {html.escape(str(m.machine))} {html.escape(str(m.device))} "
            f"in run {html.escape(str(m.run_id))} (canary {math.expm1(m.canary_shift):+.1%})</p>"
        )
    figures = {}
    if flagged.empty:
        body.append("<p>Nothing flagged in the newest runs.</p>")
    else:
        shown = flagged.assign(size=flagged["change"].abs()).sort_values("size", ascending=False)
        cols = ["verdict", "change", "change_low", "change_high", "detectable", "confirmations", "first_run"]
        cols += ["machine", "case", "batch", "device", "layout", "dtype", "mode", "injected", "kernels"]
        body.append(interactive.table(shown[[c for c in cols if c in shown]], page_length=10))
        for i, r in enumerate(shown.head(SERIES_PLOTS).to_dict("records")):
            s = _series_of(runs, r)
            figures[f"series{i}"] = interactive.series_plot(s, _with_band(s, r))
        body.append("<div class='figure'>" + "".join(f"{{{{{k}}}}}" for k in figures) + "</div>")
    return Section("changed", "What changed since the history", "\n".join(body), figures)


AB_RUNS = 3  # A/B runs shown, newest first


def _ab_section(store, machines: list[str] | None) -> Section:
    """The newest A/B runs: per run, side A against each other side (``convbench compare``'s paired
    verdicts): counts, the figure of ratios with their intervals, and the table."""
    from bench_lib.analysis import compare, interactive, results, series

    runs = store.runs(keys=store.machine_keys(machines))
    runs = runs[verdicts.is_ab(runs)].sort_values("started_at", ascending=False).head(AB_RUNS)
    if runs.empty:
        text = "<p class='note'>No A/B run in these results (<code>convbench run --python A --python B</code>).</p>"
        return Section("ab", "A/B runs", text)
    body, figures = [AB_INTRO], {}
    for i, run in enumerate(runs.itertuples()):
        rows = results.rounds_of_runs(store, runs[runs["run_id"] == run.run_id], series.READ_PAIRED)
        labels = [s["label"] for s in json.loads(run.sides)]
        for label in labels[1:]:
            table, note = compare.compare(
                rows, f"run={run.run_id},side={labels[0]}", f"run={run.run_id},side={label}", runs=runs
            )
            key = f"ab{i}{label}"
            title = f"run {run.run_id} on {run.machine}: side {label} / side {labels[0]}"
            figures[key] = interactive.ratio_intervals(table, title) if not table.empty else None
            counts = ", ".join(f"{n} {v}" for v, n in table["verdict"].value_counts().items())
            body.append(f"<h3>{html.escape(title)}</h3><p>{html.escape(counts)}. {html.escape(note)}.</p>")
            body.append(f"<div class='figure'>{{{{{key}}}}}</div>" if figures[key] is not None else "")
            cols = ["verdict", "change", "low", "high", "detectable", "pairs", "case", "batch", "device", "layout"]
            cols += ["dtype", "mode", "baseline", "candidate", "unit", "injected", "kernels"]
            body.append(interactive.table(table[[c for c in cols if c in table]], page_length=10))
    return Section("ab", "A/B runs: environments side by side", "\n".join(body), figures)


AB_INTRO = (
    "<p>Each A/B run measures its sides interleaved: for every combination, pairs of processes, one per side, "
    "taking their samples alternately. The ratio is side / side A (the median of the pairs' ratios; a "
    "pair's ratio is the median of its rounds' ratios, sample k of each side; in runs before 2026-12-05, the "
    "ratio of its processes' medians), the bar the interval where its t and sign-test intervals meet, at the "
    "verdict's confidence; <em>slower</em> and <em>faster</em> "
    "have an interval that excludes no change and reaches the factor, <em>unchanged</em> one that lies within "
    "the factor. docs/ab.md gives the rates measured on identical environments (A/A).</p>"
)


def _processes_section(store, machines: list[str] | None) -> Section:
    """The newest run of each machine and environment: its multimodal combinations (processes in separate
    modes) and its allocator-sensitive ones (the plain suite's fresh processes slower than steady)."""
    from bench_lib.analysis import interactive, processes, results, series

    chosen = verdicts.window(store.runs(keys=store.machine_keys(machines)), size=1)
    rows = results.rounds_of_runs(store, chosen, [*series.READ, "page_faults_per_call"], metric="latency")
    found = processes.findings(rows) if not rows.empty else pd.DataFrame()
    title = "Processes: modes and the allocator state"
    if found.empty:
        return Section("processes", title, f"<p class='note'>{PROCESSES_NONE}</p>")
    flagged = found["multimodal"] | found.get("allocator_sensitive", pd.Series(False, index=found.index)).eq(True)
    found = found[flagged].sort_values(["suite", "case", "dtype"])
    counts = (
        f"{int(found['multimodal'].sum())} multimodal, "
        f"{int(found.get('allocator_sensitive', pd.Series(dtype=bool)).eq(True).sum())} allocator-sensitive "
        f"combination(s) in the newest run of each machine and environment."
    )
    cols = ["machine", "env_name", "suite", "case", "batch", "device", "layout", "dtype", "processes", "modes"]
    cols += ["steady_s", "slow", "faults_fast", "faults_slow", "kernels"]
    body = PROCESSES_INTRO + f"<p>{html.escape(counts)}</p>" + interactive.table(found[[c for c in cols if c in found]])
    return Section("processes", title, body)


PROCESSES_INTRO = (
    "<p>Each latency round is a process of its own. A combination whose processes' values fall into separate "
    "modes (neighbours more than 20 % apart) is <em>multimodal</em>: which mode a process lands in is decided "
    "per process (its allocator state, its memory layout), so one process's number is not the whole story. "
    "The <em>plain</em> suite runs the ops at 56x56 in fresh interpreters under glibc's defaults, as a user's "
    "script runs them; it is <em>allocator-sensitive</em> where some of those processes ran 1.2x or more "
    "slower than the same op under the steady policy (<code>slow</code> of <code>processes</code>). "
    "<code>faults_fast</code> and <code>faults_slow</code> are the page faults per call of the fastest mode and "
    "of the others: docs/allocator.md says what predicts the mode.</p>"
)
PROCESSES_NONE = "No combination with three or more processes in the newest runs (the nightly grid has five)."


def _series_of(runs: pd.DataFrame, row: dict) -> pd.DataFrame:
    from bench_lib.analysis import series

    mask = pd.Series(True, index=runs.index)
    for k in series.SERIES:
        mask &= runs[k].eq(row[k]) if pd.notna(row[k]) else runs[k].isna()
    return runs[mask & runs["status"].eq("ok")].sort_values("started_at")


def _with_band(s: pd.DataFrame, row: dict) -> dict:
    """``row`` plus the band it was judged against (``s``: its series): the median of the runs before its
    step (log) and the band's half-width (log of 1 + detectable)."""
    first = row["first_run"] if row["first_run"] is not None else s["run_id"].iloc[-1]
    before = s[s["started_at"] < s.loc[s["run_id"] == first, "started_at"].min()]["log_value"]
    center = float(before.median()) if len(before) else math.nan
    return {**row, "band_center": center, "band_log": math.log1p(row["detectable"])}


def _many_targets(df: pd.DataFrame) -> str:
    """A note where a figure cannot show every machine · device target of ``df`` ("" where it can)."""
    from bench_lib.analysis import interactive

    targets = df.groupby(["machine", "device"]).ngroups if not df.empty else 0
    if targets <= interactive.MAX_PANELS // 2:
        return ""
    return (
        f"<p class='note'>{targets} machine · device targets: each figure shows its first "
        f"{interactive.MAX_PANELS} panels; pass --machine to see the others.</p>"
    )


def _figures(df: pd.DataFrame, peaks: dict) -> list[Section]:
    from bench_lib.analysis import interactive, tables

    speedups = tables.speedup_table(df) if not df.empty else pd.DataFrame()
    inference, training = (interactive.speedup_scatter(speedups, mode) for mode in ("inference", "training"))

    def none(what: str) -> str:  # machine names come from the store: escaped like every stored string
        return f"<p class='note'>{html.escape(tables.no_data(what, df))}</p>"

    roof = interactive.roofline(tables.roofline_points(df), peaks) if not df.empty else None
    levels = tables.roofline_levels(df) if not df.empty else pd.DataFrame()
    levels = levels[levels["height"].isin([56, 7])] if not levels.empty else levels
    moving = tables.data_movement_table(df) if not df.empty else pd.DataFrame()
    return [
        Section(
            "speedup",
            "Measured speedup vs theoretical FLOP reduction",
            "<p class='note'>On the dashed diagonal the hardware delivers the whole FLOP cut; below it, part of "
            "the cut is lost. Hover a point for its case; the legend names each family's colour.</p>"
            + _many_targets(df)
            + ("{{inference}}" if inference else none("inference speedup pairs")),
            {"inference": inference},
        ),
        Section(
            "training",
            "Training (forward + backward)",
            "{{training}}" if training else none("training speedup pairs"),
            {"training": training},
        ),
        Section(
            "roofline",
            "Cache-aware roofline",
            "<p class='note'>Each case against the roof its working set implies: the bandwidth of the smallest "
            "measured copy that holds its input, weights and output (L1- to DRAM-sized copies, per device and "
            "thread count), and the best of a GEMM and dense convolutions for compute. Which roof bounds each "
            "op family at the 56² and 7² stages:</p>"
            + ("{{roofline}}" if roof else none("the roofline"))
            + interactive.table(levels, page_length=25),
            {"roofline": roof},
        ),
        Section(
            "movement",
            "Data-movement ops: bandwidth, not FLOPs",
            "<p class='note'>Zero-FLOP ops (channel shuffle) do no arithmetic: their question is how close "
            "they get to the bandwidth of the cache level their data fits.</p>"
            + ("{{movement}}" if not moving.empty else none("zero-FLOP ops"))
            + interactive.table(moving),
            {"movement": interactive.bandwidth_bars(moving)},
        ),
    ]


def _machines(store, machines: list[str] | None, df: pd.DataFrame) -> Section:
    from bench_lib.analysis import machines_section

    body, figures = machines_section.section(store, machines, df)
    return Section("machines", "Machines and devices: which is faster, by how much, why", body, figures)


def _all_rows(df: pd.DataFrame) -> Section:
    from bench_lib.analysis import interactive, tables

    if df.empty:
        return Section("rows", "Every result", "")
    body = (
        "<h3>Speedup pairs (lowest efficiency first)</h3>"
        + interactive.table(tables.speedup_table(df))
        + "<h3>Roofline (lowest fraction first)</h3>"
        + interactive.table(tables.roofline_table(df))
        + "<h3>Peak memory of one call</h3>"
        + interactive.table(tables.memory_table(df))
    )
    return Section("rows", "Every result", body)


def _notebook_links(links: list[tuple[str, str, int]], ran: bool) -> Section:
    if not ran:
        return Section("notebooks", "Notebooks", "<p class='note'>Not executed (--no-notebooks).</p>")
    items = "".join(
        f"<li><a href='{href}'>{html.escape(name)}</a>{f' ({n} errors)' if n else ''}</li>" for href, name, n in links
    )
    return Section("notebooks", "Notebooks (static figures, executed on these results)", f"<ul>{items}</ul>")


def _page(df: pd.DataFrame, sections: list[Section], results_dir: str) -> str:
    from bench_lib.analysis import interactive

    script, divs = interactive.embed({k: v for s in sections for k, v in s.figures.items()})
    body = []
    for s in sections:
        text = s.body
        for name in s.figures:
            text = text.replace(
                f"{{{{{name}}}}}", f"<div class='figure' data-figure='{name}'>{divs.get(name, '')}</div>"
            )
        body.append(f"<section id='{s.anchor}'><h2>{html.escape(s.title)}</h2>\n{text}</section>")
    nav = "".join(f"<a href='#{s.anchor}'>{html.escape(s.title.split(':')[0])}</a>" for s in sections)
    machines = ", ".join(sorted(df["machine"].unique())) if not df.empty else "none"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f"<h1>convbench report</h1><p class='note'>Results: {html.escape(redact(results_dir))} · machines: "
        f"{html.escape(machines)} · built {stamp} with convbench {__version__}.</p><nav>{nav}</nav>"
    )
    return document("convbench report", head + "\n".join(body), interactive.scripts() + script)


def _asv_publish(results_dir: str) -> None:
    """asv's files rebuilt from the store into this project's asv results folder, then ``asv publish``.

    The project is the convbench checkout the command runs in (its ``asv.conf.json``), never a folder
    next to the results: a shared store's checkout is another machine's files. asv runs isolated
    (``python -I``: neither the working directory nor ``PYTHON*`` variables reach its imports)."""
    from bench_lib.store import asv_files, store_path
    from bench_lib.store.query import Store
    from bench_lib.suite.runner import project_root

    try:
        project = project_root()
    except ArgumentError:
        print("report: no asv.conf.json here or above: asv publish skipped", file=sys.stderr)
        return
    conf = project / "asv.conf.json"
    asv_dir = asv_files.inside(project, json.loads(conf.read_text()).get("results_dir", "results/asv"))
    asv_files.write(Store(store_path(results_dir)), asv_dir)
    out = subprocess.run(
        [sys.executable, "-I", "-m", "asv", "publish", "--config", str(conf)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
    )
    if out.returncode != 0:
        print(
            f"asv publish failed (the report is still written):\n{out.stdout[-2000:]}{out.stderr[-2000:]}",
            file=sys.stderr,
        )
