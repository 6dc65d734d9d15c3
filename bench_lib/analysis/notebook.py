"""What every analysis notebook starts with: load the results once, keep the chosen machines, and show a
figure or a table (or say plainly that there is none)."""

from __future__ import annotations

import html

import pandas as pd

from bench_lib.analysis import figures, results, tables


def load(results_dir: str, machines: list[str] | None = None, **kwargs) -> pd.DataFrame:
    """:func:`bench_lib.analysis.results.load`, then only ``machines`` (all if empty); prints what it found."""
    df = results.load(results_dir, machines=machines or None, **kwargs)
    print(f"{len(df)} results from {df['machine'].nunique() if not df.empty else 0} machine(s)")
    return df


def show(obj, what: str, df: pd.DataFrame | None = None, max_rows: int = 40) -> None:
    """Display a figure or a table in a notebook, or say plainly that there is no data for it."""
    from IPython.display import HTML, Image, Markdown, display

    if obj is None or (isinstance(obj, pd.DataFrame) and obj.empty):
        display(Markdown(f"**{html.escape(tables.no_data(what, df))}**"))  # store strings are text, not HTML
    elif isinstance(obj, pd.DataFrame):
        display(HTML(obj.head(max_rows).to_html(index=False, float_format=lambda x: f"{x:.4g}")))
        if len(obj) > max_rows:
            display(Markdown(f"*{len(obj) - max_rows} more rows not shown.*"))
    else:
        display(Image(figures.png(obj)))


def newest_peaks(df: pd.DataFrame, results_dir: str) -> dict:
    """:func:`bench_lib.analysis.results.newest_peaks`: the roofline peaks measured with these results."""
    return results.newest_peaks(df, results_dir)


def load_breakdowns(results_dir: str, machines: list[str] | None = None) -> pd.DataFrame:
    """:func:`bench_lib.analysis.results.load_breakdowns`, only ``machines`` (all if empty)."""
    bdf = results.load_breakdowns(results_dir)
    if machines and not bdf.empty:
        bdf = bdf[bdf["machine"].isin(machines)]
    return bdf
