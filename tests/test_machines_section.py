"""The report's machines section: the scoreboard, the family heatmap with its hover, speed against energy,
and latencies in one unit per column with ``not run`` where a machine·device did not run a combination."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from test_store import DENSE, GROUPED, event, run

from bench_lib.analysis import machines_section, results
from bench_lib.store import store_path
from bench_lib.store.writer import RunWriter

DEPTHWISE = "depthwise(in=64,k=3,bias=false)@14x14"


def _store(root, energy: bool = True):
    """laptop: dense 1 ms, grouped 0.4 ms, depthwise 0.2 ms; gpu-box: 4x faster, no depthwise, energy
    0.5 J per inference on each op where ``energy``; three nights each with a ±1 % wobble."""
    where = store_path(root)
    for machine, hw, scale in (("laptop", "1" * 12, 1.0), ("gpu-box", "2" * 12, 0.25)):
        for night in range(3):
            hour = "01" if machine == "laptop" else "02"  # the laptop ran first: the reference
            r = run(f"2026112{night}T{hour}0000Z-{hw[:8]}-00000{night}", machine=machine, hw=hw)
            r["started_at"] = f"2026-11-2{night}T{hour}:00:00+00:00"
            wobble = 1 + 0.01 * (night - 1)
            cases = {DENSE: 1e-3, GROUPED: 4e-4, **({DEPTHWISE: 2e-4} if machine == "laptop" else {})}
            events = [event(c, median=v * scale * wobble, kernel="aten::mkldnn_convolution") for c, v in cases.items()]
            if energy and machine == "gpu-box":
                events += [event(c, metric="energy", energy_j_per_item=0.5) for c in cases]
            RunWriter(where, r).save(r, events)
    return results.store_of(root)


def test_the_section_scores_ranks_and_draws_the_families_with_their_interval_and_kernels(tmp_path):
    store = _store(tmp_path)
    board, why = machines_section.scored(store, None)
    assert why == "" and list(board.table["machine"]) == ["gpu-box", "laptop"]
    assert board.table["score"].round(6).tolist() == [4.0, 1.0]
    heat = machines_section.heatmap(board)
    source = heat.renderers[0].data_source.data
    assert sorted(set(source["row"])) == ["grouped", "standard"]  # depthwise: only the laptop ran it
    assert set(source["kernels"]) == {"aten::mkldnn_convolution"} and all("…" in i for i in source["interval"])
    tooltips = dict(heat.toolbar.tools[0].tooltips)
    assert tooltips["kernels"] == "@kernels" and tooltips["interval"] == "@interval"


def test_speed_against_energy_is_drawn_only_where_a_meter_ran(tmp_path):
    board, _ = machines_section.scored(_store(tmp_path / "a"), None)
    figure = machines_section.energy_scatter(board)
    data = figure.renderers[0].data_source.data
    assert data["label"] == ["gpu-box · cpu-1t"] and data["joules"] == [0.5] and np.allclose(data["score"], [4.0])
    board, _ = machines_section.scored(_store(tmp_path / "b", energy=False), None)
    assert machines_section.energy_scatter(board) is None


def test_latencies_take_one_unit_per_column_and_say_not_run():
    df = pd.DataFrame(
        {
            "machine": ["a", "a", "b"],
            "device": ["cpu-1t"] * 3,
            "case": ["x@7x7", "y@7x7", "x@7x7"],
            "dtype": ["float32"] * 3,
            "layout": ["nchw"] * 3,
            "mode": ["inference"] * 3,
            "batch": [1] * 3,
            "metric": ["latency"] * 3,
            "status": ["ok"] * 3,
            "latency_s": [2.5e-5, 3.1e-3, 0.0123],
            "value": [2.5e-5, 3.1e-3, 0.0123],
            "run_date": pd.Timestamp("2026-11-20", tz="UTC"),
            "env_name": "env",
        }
    )
    t = machines_section.latency_table(df).set_index("case")
    assert t.loc["x@7x7", "a · cpu-1t (ms)"] == "0.025" and t.loc["y@7x7", "a · cpu-1t (ms)"] == "3.1"
    assert t.loc["y@7x7", "b · cpu-1t (ms)"] == "not run" and t.loc["x@7x7", "b · cpu-1t (ms)"] == "12.3"
    assert not any(isinstance(v, float) and math.isnan(v) for v in np.ravel(t.to_numpy()))


def test_a_store_with_nothing_to_score_says_why_instead_of_a_board(tmp_path):
    where = store_path(tmp_path)
    r = run(machine="lonely")
    RunWriter(where, r).save(r, [event(DENSE, status="failed", reason="boom")])
    body, figures = machines_section.section(results.store_of(tmp_path), None, pd.DataFrame())
    assert body.startswith("<p class='note'>No scores: --set compare: no machine·device") and figures == {}
