"""The report's "Machines and devices" section: the scoreboard, a heatmap of families, speed against energy.

Everything here reads :func:`bench_lib.analysis.scoreboard.from_store` (the scores ``convbench machines``
prints, over the same workload set and reference), so the page and the command never disagree:

- the scoreboard: rank, score with its interval, per kind and dtype, fraction of its own roof, hardware;
- a heatmap of machine·device × family: the geometric-mean speed relative to the reference, the hover
  giving its interval, the combinations it covers and the kernels that machine·device ran;
- where some machine·device measured energy, a scatter of score against joules per inference (the others
  named with why they have none);
- the latencies themselves, one column per machine·device, each column in one unit, ``not run`` where
  that machine·device did not run the combination.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from bench_lib.analysis import machines, scoreboard, tables, units, verdicts
from bench_lib.errors import ArgumentError

NOT_RUN = "not run"


def scored(store, machines_: list[str] | None) -> tuple[scoreboard.Board | None, str]:
    """The scoreboard over the compare grid's set, else over what every machine·device ran; (None, why)
    where neither has a combination."""
    whys = []
    for set_name in scoreboard.SETS:
        try:
            return scoreboard.from_store(store, machines_, None, set_name, verdicts.FACTOR, verdicts.ALPHA), ""
        except ArgumentError as e:
            whys.append(str(e))
    return None, "; ".join(whys)


def latency_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each combination's newest latency, one column per machine·device (``<target> (<unit>)``, one unit
    per column, three significant digits), ``not run`` where that target has none."""
    d = tables.latest(df)
    if d.empty:
        return d
    d = d.assign(target=d["machine"] + " · " + d["device"])
    keys = ["case", "dtype", "layout", "mode", "batch"]
    wide = d.pivot_table(index=keys, columns="target", values="latency_s", aggfunc="median")
    out = wide.index.to_frame(index=False)
    for target in wide.columns:
        values = wide[target].to_numpy(dtype=float)
        scale, unit = units.column_scale("latency_s", pd.Series(values)) or (1.0, "s")
        out[f"{target} ({unit})"] = [f"{v / scale:.3g}" if np.isfinite(v) else NOT_RUN for v in values]
    return out


def _shown(board: scoreboard.Board) -> pd.DataFrame:
    """The scoreboard's columns for the page, ratios as ``1.9x``, fractions as percentages."""
    t = board.table
    show = pd.DataFrame({"rank": t["rank"], "machine · device": t["machine"] + " · " + t["device"]})
    show["score"] = t["score"].map(machines.times_or)
    show["interval"] = [machines.span(lo, hi, "-") for lo, hi in zip(t["low"], t["high"], strict=True)]
    show["combinations"] = t["combinations"]
    for col in [c for c in ("op", "block", "network", "float32", "bfloat16", "float16") if c in t]:
        show[col] = t[col].map(machines.times_or)
    for col in [f"roof_{k}" for k in ("op", "block", "composite", "network") if f"roof_{k}" in t]:
        show[f"{col.removeprefix('roof_')} of own roof"] = t[col].map(units.fraction).replace("", "-")
    for col in ("cpu_model", "cpu_capability", "threads", "gpus", "peak_gflop_per_s", "copy_gb_per_s", "energy"):
        if col in t:
            show[col.replace("_", " ")] = t[col].map(lambda x: "-" if x is None or x != x else x)
    return show


def heatmap(board: scoreboard.Board):
    """Families × machine·device, coloured by the speed relative to the reference (``not run`` where a
    machine·device ran none of a family's combinations that the reference ran)."""
    from bench_lib.analysis import interactive

    f = board.families
    if f.empty:
        return None
    f = f.assign(col=f["machine"] + " · " + f["device"])
    grid = pd.MultiIndex.from_product([sorted(f["family"].unique()), sorted(f["col"].unique())], names=["row", "col"])
    f = f.set_index(["family", "col"]).reindex(grid)
    long = pd.DataFrame(
        {
            "row": grid.get_level_values("row"),
            "col": grid.get_level_values("col"),
            "v": f["ratio"].to_numpy(dtype=float),
            "interval": [machines.span(lo, hi, "-") for lo, hi in zip(f["low"], f["high"], strict=True)],
            "combinations": [str(int(n)) if n == n else "0" for n in f["combinations"]],
            "kernels": f["kernels"].fillna("not run").to_numpy(),
        }
    )
    ref = board.table[board.table["reference"]].iloc[0]
    hover = {"interval": "@interval", "combinations": "@combinations", "kernels": "@kernels"}
    title = f"Speed relative to {ref['machine']} · {ref['device']} (geometric mean per family)"
    return interactive.heatmap(long, "speed vs the reference", title, hover, "family")


def energy_scatter(board: scoreboard.Board):
    """Score against joules per inference, one point per machine·device that measured energy."""
    from bench_lib.analysis import interactive

    t = board.table
    if "energy_j_per_item" not in t or not t["energy_j_per_item"].notna().any():
        return None
    have = t[t["energy_j_per_item"].notna()]
    return interactive.speed_energy(have["machine"] + " · " + have["device"], have["score"], have["energy_j_per_item"])


def section(store, machines_: list[str] | None, df: pd.DataFrame) -> tuple[str, dict[str, object]]:
    """The section's HTML (figures as ``{{name}}`` placeholders) and its figures."""
    board, why = scored(store, machines_)
    latencies = latency_table(df) if not df.empty else pd.DataFrame()
    from bench_lib.analysis import interactive

    lat = "<h3>Latencies</h3>" + interactive.table(latencies) if not latencies.empty else ""
    if board is None:
        return f"<p class='note'>No scores: {html.escape(why)}.</p>{lat}", {}
    heat, energy = heatmap(board), energy_scatter(board)
    no_meter = "No speed-against-energy figure: no machine·device measured energy (the energy column says why)."
    body = (
        f"<p class='note'>{html.escape(board.note)}. Above 1: faster than the reference. Per kind and dtype: the "
        "same geometric mean over those combinations; 'of own roof': the median fraction of the roofline its "
        "own peaks allow.</p>"
        + interactive.table(_shown(board), page_length=25)
        + ("{{machines_heat}}" if heat else "")
        + ("{{machines_energy}}" if energy else "")
        + ("" if energy else f"<p class='note'>{no_meter}</p>")
        + lat
    )
    return body, {"machines_heat": heat, "machines_energy": energy}
