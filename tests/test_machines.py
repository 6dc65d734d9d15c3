"""Comparing machines and devices: ratios, intervals, verdicts and summaries on data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench_lib.analysis import compare, machines, verdicts
from bench_lib.errors import ArgumentError

CASES = {
    "grouped(in=64,g=4)@56x56": "grouped",
    "depthwise(in=64)@56x56": "depthwise",
    "standard(in=64,out=64,k=3)@56x56": "standard",
}


def _rows(machine: str, hardware: str, device: str, latency: dict[str, float], runs: int, spread: float = 0.01):
    """Rows of ``runs`` runs on one machine and device: each case's latency times a run factor that repeats
    (1 - spread, 1, 1 + spread), one round each."""
    out = []
    factors = [1 - spread, 1.0, 1 + spread]
    for i in range(runs):
        for case, value in latency.items():
            v = value * factors[i % 3]
            out.append(
                {
                    **{"run_id": f"{machine}-{device}-{i}", "machine": machine, "hardware_id": hardware},
                    **{"env_name": "env", "suite_version": "1", "unit": "seconds", "suite": "ops"},
                    **{"metric": "latency", "case": case, "batch": 1, "device": device, "layout": "nchw"},
                    **{"dtype": "float32", "mode": "inference", "round": 0, "status": "ok", "value": v, "min": v},
                    **{"injected": None, "kernel": "aten::mkldnn_convolution", "reason": None, "side": None},
                    **{"pair": None, "commit_hash": "c", "torch_version": "2.13.0"},
                    "started_at": pd.Timestamp("2026-12-01", tz="UTC") + pd.Timedelta(hours=i),
                }
            )
    return pd.DataFrame(out)


def test_the_verdict_reads_the_interval_of_the_speed_ratio():
    edge = math.log(1.05)
    assert machines.verdict(math.log(1.5), math.log(2.5), 1.05) == verdicts.FASTER
    assert machines.verdict(-math.log(2.5), -math.log(1.5), 1.05) == verdicts.SLOWER
    assert machines.verdict(-edge / 2, edge / 2, 1.05) == machines.SAME_SPEED
    assert machines.verdict(-edge / 2, 2 * edge, 1.05) == verdicts.INCONCLUSIVE
    assert machines.verdict(0.001, edge / 2, 1.05) == machines.SAME_SPEED  # real, but below the factor
    assert machines.verdict(-math.inf, math.inf, 1.05) == verdicts.INCONCLUSIVE


def test_the_interval_is_t_times_the_two_sides_standard_error():
    lo, hi = machines.interval(math.log(2), 0.1, 4, 0.2, 5, 7, 0.05)
    half = stats.t.ppf(0.975, 7) * math.sqrt(0.1**2 / 4 + 0.2**2 / 5)
    assert lo == pytest.approx(math.log(2) - half) and hi == pytest.approx(math.log(2) + half)
    assert machines.interval(0.0, math.nan, 3, 0.1, 3, 5, 0.05) == (-math.inf, math.inf)


def test_a_summary_is_the_geometric_mean_with_the_larger_of_spread_and_measurement_noise():
    table = pd.DataFrame(
        {
            "ratio": [2.0, 8.0, 1.0],
            "se": [0.01, 0.01, 0.5],
            "df": [10.0, 10.0, 10.0],
            "verdict": [verdicts.FASTER, verdicts.FASTER, verdicts.INCONCLUSIVE],
            "family": ["grouped", "grouped", "standard"],
            "stage": ["56x56"] * 3,
            "mode": ["inference"] * 3,
            "dtype": ["float32"] * 3,
        }
    )
    s = machines.summaries(table, 0.05).set_index(["by", "value"])
    g = s.loc[("family", "grouped")]
    assert g["ratio"] == pytest.approx(4.0) and g["combinations"] == 2 and g["faster"] == 2
    d = np.log([2.0, 8.0])
    half = stats.t.ppf(0.975, 1) * np.std(d, ddof=1) / math.sqrt(2)  # the spread dominates
    assert g["low"] == pytest.approx(4.0 * math.exp(-half)) and g["high"] == pytest.approx(4.0 * math.exp(half))
    one = s.loc[("family", "standard")]  # one combination: its own measurement noise
    assert one["high"] == pytest.approx(math.exp(stats.t.ppf(0.975, 10) * 0.5))
    overall = s.loc[("overall", "all")]
    assert overall["combinations"] == 3 and overall["ratio"] == pytest.approx(16 ** (1 / 3))
    assert overall["inconclusive"] == 1


def test_compare_across_machines_says_which_is_faster_by_how_much():
    slow = {"grouped(in=64,g=4)@56x56": 1e-3, "depthwise(in=64)@56x56": 4e-4, "standard(in=64,out=64,k=3)@56x56": 2e-3}
    fast = {k: v / 2 for k, v in slow.items()}
    fast["grouped(in=64,g=4)@56x56"] = 1e-3 * 1.001  # the same speed
    only = {"pointwise(in=64,out=64)@56x56": 1e-4}
    rows = pd.concat([_rows("a", "h1", "cpu-1t", slow, 6), _rows("b", "h2", "cpu-1t", {**fast, **only}, 6)])
    table, note = compare.compare(rows, "machine=a", "machine=b")
    by_case = table.set_index("case")
    assert by_case.loc["depthwise(in=64)@56x56", "ratio"] == pytest.approx(2.0)
    assert by_case.loc["depthwise(in=64)@56x56", "verdict"] == verdicts.FASTER
    assert by_case.loc["standard(in=64,out=64,k=3)@56x56", "verdict"] == verdicts.FASTER
    assert by_case.loc["grouped(in=64,g=4)@56x56", "verdict"] == machines.SAME_SPEED
    assert by_case.loc["pointwise(in=64,out=64)@56x56", "verdict"] == machines.ONLY_CANDIDATE
    assert by_case.loc["depthwise(in=64)@56x56", "vs_dense_candidate"] == pytest.approx(2e-3 / 4e-4)
    assert "across hardware" in note
    text = compare.render(table, note)
    assert "NaN" not in text and "only on the candidate (not run on the other side" in text
    assert "b cpu-1t runs at " in text


def test_two_devices_of_one_machine_compare_through_the_same_code():
    cpu = {"grouped(in=64,g=4)@56x56": 1e-3, "depthwise(in=64)@56x56": 4e-4}
    gpu = {k: v / 10 for k, v in cpu.items()}
    rows = pd.concat([_rows("m", "h", "cpu-1t", cpu, 4), _rows("m", "h", "cuda:0", gpu, 4)])
    table, _ = compare.compare(rows, "device=cpu-1t", "device=cuda:0")
    assert list(table["ratio"].round(6)) == [10.0, 10.0]
    assert set(table["device_baseline"]) == {"cpu-1t"} and set(table["device_candidate"]) == {"cuda:0"}
    assert set(table["verdict"]) == {verdicts.FASTER}


def test_a_selector_that_matches_nothing_names_what_exists():
    rows = _rows("m", "h", "cpu-1t", {"grouped(in=64,g=4)@56x56": 1e-3}, 3)
    with pytest.raises(ArgumentError, match=r"selector 'device=cuda:9': device=cuda:9 matches nothing; seen: cpu-1t"):
        compare.compare(rows, "device=cpu-1t", "device=cuda:9")


def test_the_scoreboard_ranks_each_machine_and_device_against_the_reference():
    from bench_lib.analysis import scoreboard

    base = {"grouped(in=64,g=4)@56x56": 1e-3, "depthwise(in=64)@56x56": 4e-4}
    parts = [
        _rows("a", "h1", "cpu-1t", base, 4),
        _rows("a", "h1", "cpu-2t", {k: v / 2 for k, v in base.items()}, 4),
        _rows("b", "h2", "cpu-1t", {k: v / 4 for k, v in base.items()}, 4),
    ]
    rows = pd.concat(parts, ignore_index=True)
    rows["run_date"] = rows["started_at"]
    runs = rows[["run_id", "started_at"]].drop_duplicates().assign(fingerprint='{"cpu_model": "X"}')
    scored = scoreboard.board(rows, runs, {}, None, "common", 1.05, 0.001)
    table, note = scored.table, scored.note
    assert list(zip(table["machine"], table["device"], table["rank"], strict=True)) == [
        ("b", "cpu-1t", 1),
        ("a", "cpu-2t", 2),
        ("a", "cpu-1t", 3),
    ]
    assert list(table["score"].round(6)) == [4.0, 2.0, 1.0] and set(table["combinations"]) == {2}
    assert "reference a cpu-1t = 1" in note and note.startswith("workload set common-")
    table = scoreboard.board(rows, runs, {}, "b:cpu-1t", "common", 1.05, 0.001).table
    assert list(table["score"].round(6)) == [1.0, 0.5, 0.25]
    with pytest.raises(ArgumentError, match=r"--reference c: no such machine·device ran the set; present: a:cpu-1t"):
        scoreboard.board(rows, runs, {}, "c", "common", 1.05, 0.001)
    with pytest.raises(ArgumentError, match="--set compare: no machine·device in the store ran any of the set"):
        scoreboard.board(rows, runs, {}, None, "compare", 1.05, 0.001)


def test_the_scoreboard_gives_each_kinds_median_fraction_of_its_own_roof_over_the_set():
    from bench_lib.analysis import scoreboard

    base = {"grouped(in=64,g=4)@56x56": 1e-3, "depthwise(in=64)@56x56": 4e-4}
    rows = pd.concat([_rows("a", "h1", "cpu-1t", base, 3), _rows("b", "h2", "cpu-1t", base, 3)], ignore_index=True)
    rows["run_date"] = rows["started_at"]
    runs = rows[["run_id", "started_at"]].drop_duplicates().assign(fingerprint="{}")
    derived = rows.assign(roofline_fraction=[0.1, 0.2, 0.3, 0.5, 0.9, 0.4, *[math.nan] * 6])
    outside = derived.iloc[:1].assign(case="standard(in=64,out=64,k=3)@56x56", roofline_fraction=0.99)  # not in the set
    table = scoreboard.board(rows, runs, {}, None, "common", 1.05, 0.001, pd.concat([derived, outside])).table
    by = table.set_index("machine")
    assert by.loc["a", "roof_op"] == pytest.approx(0.35) and "roof_op" not in by.columns[by.loc["b"].notna()]
    assert "35 %" in scoreboard.render(table, "note", "text")
