"""The analysis tables on synthetic results with known answers."""

import warnings

import numpy as np
import pandas as pd
import pytest
from fake_results import latency_row, machine, peaks, result_file, stored

from bench_lib.analysis import results, tables, units

STANDARD = "standard(in=64,out=64,k=3,bias=false)@14x14"
GROUPED = "grouped(in=64,out=64,k=3,g=4,bias=false)@14x14"
LAT = "bench_ops.Latency.track_latency"


def test_latest_keeps_each_environment_apart(tmp_path):
    # two torch versions side by side on one machine and commit: each keeps its own newest results
    box = machine(tmp_path / "results", "box")
    result_file(
        box,
        "a" * 40,
        "torch-a",
        {LAT: latency_row([1e-3, 5e-4], [STANDARD, GROUPED], samples=[[1e-3] * 5, [5e-4] * 5])},
    )
    result_file(
        box,
        "a" * 40,
        "torch-b",
        {LAT: latency_row([2e-3, 4e-4], [STANDARD, GROUPED], samples=[[2e-3] * 5, [4e-4] * 5])},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = results.load(stored(tmp_path / "results"))
    latest = tables.latest(df)
    assert len(latest) == 4
    speedups = tables.speedup_table(df).set_index("env_name")["speedup"]
    assert speedups.to_dict() == {"torch-a": 2.0, "torch-b": 5.0}


def _frame(rows: list[dict]) -> pd.DataFrame:
    """results.load-shaped rows: only the columns the report's tables read."""
    base = {
        "machine": "box",
        "env_name": "env",
        "device": "cpu-1t",
        "layout": "nchw",
        "dtype": "float32",
        "mode": "inference",
        "batch": 1,
        "metric": "latency",
        "status": "ok",
        "current_version": True,
        "run_date": pd.Timestamp("2026-11-25", tz="UTC"),
        "is_dense": False,
        "achieved_flops_per_s": np.nan,
        "roofline_fraction": np.nan,
    }
    return pd.DataFrame([{**base, **r} for r in rows])


def test_zero_flop_ops_are_judged_by_bandwidth_not_flops():
    shuffle = "channel_shuffle(in=64,g=4)@56x56"
    df = _frame(
        [
            # 1 MB moved in 100 µs: 10 GB/s against a 40 GB/s roof = 25 %
            dict(
                case=shuffle,
                workload="channel_shuffle",
                height=56,
                latency_s=1e-4,
                theory_flops=0.0,
                theory_min_bytes=1e6,
                achieved_bytes_per_s=1e10,
                memory_level_bytes=2**21,
                memory_roof_bytes_per_s=4e10,
                roofline_bound="memory",
                flop_reduction=np.inf,
                speedup=3.0,
            ),
            dict(
                case=GROUPED,
                workload="grouped",
                height=14,
                latency_s=1e-4,
                theory_flops=1e6,
                theory_min_bytes=1e5,
                achieved_bytes_per_s=1e9,
                memory_level_bytes=2**18,
                memory_roof_bytes_per_s=1e11,
                roofline_bound="compute",
                flop_reduction=4.0,
                speedup=2.0,
            ),
        ]
    )
    moving = tables.data_movement_table(df)
    assert list(moving["case"]) == [shuffle] and moving["bandwidth_fraction"].iloc[0] == pytest.approx(0.25)
    assert list(tables.speedup_table(df)["case"]) == [GROUPED]  # an infinite reduction is not a FLOP gap
    levels = tables.roofline_levels(df).set_index("workload")["roof"].to_dict()
    assert levels == {"channel_shuffle": "memory (fits a 2 MiB copy)", "grouped": "compute"}


def test_summary_names_the_worst_and_best_case_with_their_efficiency():
    cases = [("a(x=1)@7x7", 8.0, 2.0), ("b(x=1)@7x7", 8.0, 6.0), ("c(x=1)@7x7", 2.0, 1.0)]
    df = _frame(
        [
            dict(case=c, workload=c[0], height=7, latency_s=1e-3, theory_flops=1e6, flop_reduction=r, speedup=s)
            for c, r, s in cases
        ]
    )
    summary = tables.summary_table(df).iloc[0]
    assert (summary["worst_case"], summary["worst_efficiency"]) == ("a(x=1)@7x7", 0.25)
    assert (summary["best_case"], summary["best_efficiency"]) == ("b(x=1)@7x7", 0.75)
    assert summary["median_efficiency"] == 0.5
    sentence = tables.headline(tables.summary_table(df))[0]
    assert "median 8× " in sentence and "50 % of the cut" in sentence and "Worst: a(x=1)@7x7 (25 %)" in sentence


def test_human_units_keep_numbers_sortable_and_name_the_unit():
    df = pd.DataFrame(
        {
            "latency_s": [1.902e-05, 3.1e-3, 2.0e-5],
            "achieved_flops_per_s": [2.298e10, 1e9, 5e10],
            "peak_bytes": [1572864.0, 2 * 2**20, 3 * 2**20],
            "peak_over_min_bytes": [1.5, 2.0, 1.0],
            "efficiency": [0.2543, 0.5, 1.0],
            "speedup": [2.3456, 1.0, 10.0],
            "batch": [1, 8, 1],
            "change": [0.432, -0.05, 0.0],
        }
    )
    out = units.humanize(df)
    assert list(out.columns) == [
        "latency (µs)",
        "achieved (GFLOP/s)",
        "peak (MiB)",
        "peak over min bytes (×)",
        "efficiency (%)",
        "speedup (×)",
        "batch",
        "change (%)",
    ]
    assert list(out["latency (µs)"]) == [19.0, 3100.0, 20.0]  # the unit of the median, not of the largest
    assert list(out["achieved (GFLOP/s)"]) == [23.0, 1.0, 50.0]
    assert list(out["peak (MiB)"]) == [1.5, 2.0, 3.0] and list(out["efficiency (%)"]) == [25.4, 50.0, 100.0]
    assert list(out["batch"]) == [1, 8, 1] and list(out["change (%)"]) == [43.2, -5.0, 0.0]
    assert (units.seconds(1.902e-5), units.seconds(2.5e-3), units.seconds(1.5)) == ("19 µs", "2.5 ms", "1.5 s")
    assert units.decimal(2.298e10, "FLOP/s") == "23 GFLOP/s" and units.size(1572864) == "1.5 MiB"
    assert units.joules(0.0123) == "12.3 mJ" and units.fraction(0.254) == "25.4 %" and units.seconds(np.nan) == ""


def test_roofline_names_each_roof_in_the_legend_in_its_levels_colour_with_no_text_on_the_plot():
    from bokeh.models import GlyphRenderer, MultiLine, Text

    from bench_lib.analysis import interactive

    peak = peaks(copy_levels_bytes_per_s={2**18: 80e9, 2**21: 40e9, 2**28: 10e9})
    points = pd.DataFrame(
        {
            "machine": "box",
            "device": "cpu-1t",
            "case": ["depthwise(in=64)@56x56", "pointwise(in=64,out=64)@56x56"],
            "layout": "nchw",
            "dtype": "float32",
            "batch": 1,
            "mode": "inference",
            "latency_s": [1e-4, 2e-4],
            "memory_level_bytes": [2**18, 2**21],
            "theory_intensity_flops_per_byte": [2.0, 30.0],
            "achieved_flops_per_s": [5e9, 50e9],
        }
    )
    fig = interactive.roofline(points, {("box", "cpu-1t"): peak})
    labels = [item.label["value"] for item in fig.legend[0].items]
    assert labels == [
        "fits a 256 KiB copy · roof 80 GB/s",
        "fits a 2 MiB copy · roof 40 GB/s",
        "256 MiB copy (no case fits only it) · roof 10 GB/s",
        "compute roof · 100 GFLOP/s",
    ]
    glyphs = [r.glyph for r in fig.renderers if isinstance(r, GlyphRenderer)]
    assert not any(isinstance(g, Text) for g in glyphs)
    roofs = next(r for r in fig.renderers if isinstance(r.glyph, MultiLine)).data_source.data
    dots = next(r for r in fig.renderers if r.glyph.__class__.__name__ == "Scatter").data_source.data
    assert list(roofs["colour"][:2]) == list(dots["colour"]) and roofs["colour"][2] == "grey"
