"""A/B runs: the sides, the interleaving order, the paired statistic, the store's rows and compare's answer."""

import itertools
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench_lib.analysis import ab_compare, compare, paired, verdicts
from bench_lib.errors import ArgumentError
from bench_lib.measure import intervals
from bench_lib.store import records
from bench_lib.suite import ab
from bench_lib.suite.combination import Combination

ROOT = Path(__file__).resolve().parents[1]


# --- sides -------------------------------------------------------------------------------------------------


def test_two_pythons_are_sides_a_and_b_and_a_relative_path_is_made_absolute(tmp_path, monkeypatch):
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    monkeypatch.chdir(tmp_path)
    found = ab.sides(["venv/bin/python", sys.executable], [])
    assert [s.label for s in found] == ["A", "B"]
    assert found[0].python == str(link)  # absolute, the link kept (a venv's python is a link)
    assert found[1].python == sys.executable


def test_a_side_variable_makes_a_side_on_the_first_interpreter():
    found = ab.sides([], ["A", "B:THP_MEM_ALLOC_ENABLE=0", "B:LD_PRELOAD=/usr/lib/x.so"], default="/bin/py")
    assert found == [
        ab.Side("A", "/bin/py"),
        ab.Side("B", "/bin/py", (("THP_MEM_ALLOC_ENABLE", "0"), ("LD_PRELOAD", "/usr/lib/x.so"))),
    ]
    assert found[1].env_name("base") == "base THP_MEM_ALLOC_ENABLE=0 LD_PRELOAD=_usr_lib_x.so"  # a path part
    slowed = ab.sides([], ["B:CONVBENCH_SLOWDOWN=^depthwise\\(=1.05"], default="/bin/py")
    assert slowed[0].variables == (("CONVBENCH_SLOWDOWN", "^depthwise\\(=1.05"),)  # the first = splits


@pytest.mark.parametrize(
    "spec, message",
    [
        ("1A", "the label must be a letter"),
        ("B:NOVALUE", "write LABEL:VAR=VALUE"),
        ("B:1X=2", "write LABEL:VAR=VALUE"),
        ("B:CONVBENCH_EVENTS=/tmp/x", "CONVBENCH_EVENTS is set by convbench for each side"),
    ],
)
def test_a_bad_side_is_an_argument_error_naming_the_flag(spec, message):
    with pytest.raises(ArgumentError, match=r"^--side .*" + message):
        ab.sides([], [spec])


def test_a_missing_python_is_named():
    with pytest.raises(ArgumentError, match="--python nowhere/bin/python does not exist"):
        ab.sides([sys.executable, "nowhere/bin/python"], [])


# --- the order -------------------------------------------------------------------------------------------


def _combos(n: int, metric: str = "latency") -> list[Combination]:
    params = ("cpu-1t", "nchw", "float32", "inference")
    return [Combination("ops", metric, f"depthwise(in={8 * (i + 1)},k=3)@14x14", 1, *params) for i in range(n)]


def test_each_side_goes_first_equally_often():
    """Over the pairs of one combination each side opens first equally often, and at any pair about half the
    combinations start with each side."""
    firsts = pd.DataFrame(
        [(p, i, ab.first_side(p, i, 2)) for p in range(6) for i in range(5)], columns=["pair", "combination", "side"]
    )
    assert (firsts.groupby("combination")["side"].mean() == 0.5).all()
    assert (firsts.groupby("pair")["side"].sum().between(2, 3)).all()
    assert [ab.first_side(p, 0, 3) for p in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("n_sides", [2, 3, 4, 5])
def test_no_side_samples_after_itself_and_every_side_takes_every_place(n_sides):
    """The order of the samples within a pair, round after round: never the same side twice in a row, and
    over a cycle (one round for two sides, ``n`` rounds for more) every side once in every place."""
    cycle = 1 if n_sides == 2 else n_sides
    stream = [s for r in range(3 * cycle) for s in ab.turn_order(n_sides, r)]
    assert all(a != b for a, b in itertools.pairwise(stream))
    for r0 in range(0, 3 * cycle, cycle):
        rounds = [ab.turn_order(n_sides, r) for r in range(r0, r0 + cycle)]
        assert all(sorted(r) == list(range(n_sides)) for r in rounds)
        if n_sides > 2:
            assert all(sorted(place) == list(range(n_sides)) for place in zip(*rounds, strict=True))


# --- the paired statistic ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 11, 20])
def test_the_signed_rank_null_is_scipys_exact_distribution(n):
    null = paired.signed_rank_null(n)
    assert null.sum() == pytest.approx(1.0)
    d = np.arange(1, n + 1) * np.where(np.arange(n) % 3 == 0, -1, 1)  # W+ = sum of the positive ranks
    w_plus = int(np.arange(1, n + 1)[d > 0].sum())
    w = min(w_plus, n * (n + 1) // 2 - w_plus)
    exact = 2 * null[: w + 1].sum()
    assert exact == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)


def test_the_interval_needs_eleven_pairs_at_the_default_alpha():
    assert paired.critical_rank(10, 0.001) == 0  # 2 / 2^10 > 0.001: no interval
    assert paired.critical_rank(11, 0.001) == 1
    assert paired.critical_rank(12, 0.001) == 2
    assert math.isinf(paired.judge(np.zeros(10), 0.001, "signed-rank")["detectable"])
    assert math.isinf(paired.judge(np.zeros(1), 0.001, "t")["detectable"])  # t: from 2 pairs
    assert math.isinf(paired.judge(np.arange(10.0), 0.001, "sign")["detectable"])  # 2 / 2^10 > 0.001
    assert math.isfinite(paired.judge(np.arange(11.0), 0.001, "sign")["detectable"])
    assert math.isfinite(paired.judge(np.arange(10.0), 0.001)["detectable"])  # the default: t decides alone


@pytest.mark.parametrize("test", list(paired.TESTS))
def test_pure_noise_crosses_the_interval_at_alpha(test):
    """20,000 synthetic sets of 12 pairs without effect: the share whose interval excludes 0 is the test's
    level (alpha = 0.05 to be measurable here; the signed-rank test's exact level is 2 P(W+ < k)). The
    intersection of t and sign intervals at alpha/2 each excludes 0 where either does: at least t's 0.025,
    at most the sum of the two levels."""
    rng = np.random.default_rng(1)
    d = rng.normal(0.0, 0.03, size=(20000, 12))
    hits = 0
    for row in d:
        _, low, high = paired.TESTS[test](row, 0.05)
        hits += low > 0 or high < 0
    sign_at_half = 2 * stats.binom.cdf(1, 12, 0.5)  # 12 pairs at 0.025: the 2nd smallest and largest d
    levels = {
        "signed-rank": (2 * paired.signed_rank_null(12)[: paired.critical_rank(12, 0.05)].sum(),) * 2,
        "sign": (2 * stats.binom.cdf(2, 12, 0.5),) * 2,  # 12 pairs at 0.05: the 3rd smallest and largest d
        "t": (0.05, 0.05),
        "t+sign": (0.025, 0.025 + sign_at_half),
    }
    least, most = levels[test]
    assert most <= 0.05
    assert least - 0.006 <= hits / len(d) <= most + 0.006


def test_the_interval_is_where_the_t_and_sign_intervals_at_half_alpha_meet():
    """With 20 pairs at alpha 0.001 the sign interval runs from the 3rd smallest to the 3rd largest d; the t
    interval is at alpha 0.0005; the combined one is their intersection, its estimate the median."""
    d = np.array([-0.03, -0.02, -0.011, -0.01, -0.005, -0.004, -0.003, -0.002, -0.001, 0.0,
                  0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.01, 0.012, 0.02, 0.2])  # fmt: skip
    _, low_t, high_t = intervals.paired_t(d, 0.0005)
    median, low_s, high_s = intervals.sign_interval(d, 0.0005)
    assert (low_s, high_s) == (-0.011, 0.012)
    assert low_t < low_s and high_s < high_t  # the wild pair (0.2) widens t beyond the sign interval
    assert intervals.paired_interval(d, 0.001) == (median, low_s, 0.012) == (0.0, -0.011, 0.012)
    calm = d[:-1]
    _, low_t, high_t = intervals.paired_t(calm, 0.0005)
    _, low, high = intervals.paired_interval(calm, 0.001)
    assert low == max(low_t, intervals.sign_interval(calm, 0.0005)[1]) and high == high_t  # t the narrower


def test_below_twelve_pairs_the_t_interval_at_half_alpha_decides_alone():
    d = np.array([0.01, -0.004, 0.003, 0.0, -0.002, 0.006, 0.001, -0.001, 0.002, 0.004])
    assert math.isinf(intervals.sign_interval(d, 0.0005)[1])
    assert intervals.paired_interval(d, 0.001)[1:] == intervals.paired_t(d, 0.0005)[1:]
    assert intervals.verdict(d, 0.001, 1.05) == verdicts.UNCHANGED


def test_where_the_two_intervals_do_not_meet_nothing_is_shown():
    d = np.r_[np.full(85, 0.001), np.full(15, 1.0)]  # skewed: the median's interval and the mean's lie apart
    _, low_t, high_t = intervals.paired_t(d, 0.0005)
    _, low_s, high_s = intervals.sign_interval(d, 0.0005)
    assert high_t < low_s or high_s < low_t
    _, low, high = intervals.paired_interval(d, 0.001)
    assert (low, high) == (-math.inf, math.inf)
    assert intervals.verdict(d, 0.001, 1.05) == verdicts.INCONCLUSIVE


def test_the_combined_interval_is_narrow_with_wild_pairs_and_with_normal_ones_and_keeps_its_level():
    """4,000 synthetic A/A combinations of 20 pairs, each pair's log ratio N(0, 0.01), at alpha 0.05 (to
    be measurable). With one pair in ten a process at another level for its life (±0.3) the combined interval
    is less than half as wide as t's in the median and decides nearly every combination ``unchanged``,
    where t decides far fewer; with normal pairs alone it is narrower than the sign test's. Either way it
    excludes 0 at most at alpha."""
    rng = np.random.default_rng(11)
    sets, n = 4000, 20
    calm = rng.normal(0.0, 0.01, size=(sets, n))
    wild = calm.copy()
    hit = rng.random((sets, n)) < 0.1
    wild[hit] += rng.choice([-0.3, 0.3], size=hit.sum())
    for d, kind in ((wild, "wild"), (calm, "calm")):
        width = {name: [] for name in ("t", "sign", "t+sign")}
        unchanged = dict.fromkeys(width, 0)
        excluded = 0
        for row in d:
            for name in width:
                _, low, high = paired.TESTS[name](row, 0.05)
                width[name].append(high - low)
                unchanged[name] += verdicts.by_interval(low, high, 1.05) == verdicts.UNCHANGED
            excluded += low > 0 or high < 0  # the last: t+sign
        median = {name: np.median(w) for name, w in width.items()}
        if kind == "wild":
            assert median["t+sign"] < median["t"] / 2
            assert unchanged["t+sign"] > 0.99 * sets > 0.9 * sets > unchanged["t"]
        else:
            assert median["t+sign"] < median["sign"]
        assert excluded / sets <= 0.05


def test_a_known_effect_is_found_and_estimated():
    rng = np.random.default_rng(2)
    d = np.log(1.08) + rng.normal(0.0, 0.01, size=16)
    judged = paired.judge(d, 0.001)
    assert judged["low"] > 0 and abs(judged["change"] - np.log(1.08)) < 0.01
    assert verdicts.by_interval(judged["low"], judged["high"], 1.05) == verdicts.SLOWER


EDGE = math.log(1.05)


@pytest.mark.parametrize(
    "low, high, verdict",
    [
        (0.01, 0.06, verdicts.SLOWER),  # real, and reaches the factor
        (0.06, 0.10, verdicts.SLOWER),
        (0.01, EDGE, verdicts.SLOWER),  # reaching it exactly is enough
        (0.01, 0.04, verdicts.UNCHANGED),  # real, but a change of the factor is excluded
        (-0.01, 0.04, verdicts.UNCHANGED),
        (-0.04, -0.01, verdicts.UNCHANGED),
        (-0.01, 0.06, verdicts.INCONCLUSIVE),  # holds 0 and reaches beyond the factor
        (-0.06, 0.01, verdicts.INCONCLUSIVE),
        (-0.06, -0.01, verdicts.FASTER),
        (-math.inf, math.inf, verdicts.INCONCLUSIVE),
        (0.0, 0.06, verdicts.INCONCLUSIVE),  # 0 on the interval's edge: not shown real
    ],
)
def test_the_paired_verdict_reads_the_interval(low, high, verdict):
    assert verdicts.by_interval(low, high, 1.05) == verdict


def test_a_change_of_the_factor_is_called_where_its_estimate_beyond_the_factor_is_a_coin_toss():
    """5,000 synthetic A/B combinations of 20 pairs, each pair's log ratio ln 1.05 + N(0, 0.03): intervals
    of about ±2.6 % at alpha 0.001, as measured on this VM's quiet A/A runs. The interval rule finds the 5 %
    change in practically all of them; the estimate-beyond-the-factor rule (:func:`verdicts.pairwise`) in
    about half. Without the change, the interval rule calls none."""
    rng = np.random.default_rng(7)
    found = {"interval": 0, "estimate": 0, "noise": 0}
    sets = 5000
    for row in rng.normal(0.0, 0.03, size=(sets, 20)):
        judged = paired.judge(row + EDGE, 0.001)
        found["interval"] += verdicts.by_interval(judged["low"], judged["high"], 1.05) == verdicts.SLOWER
        found["estimate"] += verdicts.pairwise(judged["change"], judged["detectable"], 1.05) == verdicts.SLOWER
        null = paired.judge(row, 0.001)
        found["noise"] += verdicts.by_interval(null["low"], null["high"], 1.05) in (verdicts.SLOWER, verdicts.FASTER)
    assert found["interval"] / sets > 0.99
    assert 0.4 < found["estimate"] / sets < 0.6
    assert found["noise"] <= 0.001 * sets * 3  # 5 expected at most (alpha); 15 allows for chance


def test_one_wild_pair_in_twenty_moves_the_robust_intervals_a_little_and_the_t_interval_a_lot():
    """At 20 pairs and alpha 0.001 the signed-rank interval's ends are the 22nd smallest and largest of 210
    Walsh averages: a wild pair moves its end by the 20 averages it takes part in, never to itself; the
    sign interval's ends move by one order statistic, and so do the combined interval's."""
    rng = np.random.default_rng(3)
    d = rng.normal(0.0, 0.01, size=20)
    calm = paired.judge(d, 0.001, "signed-rank")
    d[5] = 0.4  # one process in another state
    hl, t = paired.judge(d, 0.001, "signed-rank"), paired.judge(d, 0.001, "t")
    assert calm["detectable"] < hl["detectable"] < 0.03 < 0.05 < t["detectable"]
    assert hl["low"] < 0 < hl["high"] < 0.03  # not a change
    both = paired.judge(d, 0.001)
    assert both["low"] < 0 < both["high"] < 0.03 and both["detectable"] < 0.03
    assert verdicts.by_interval(both["low"], both["high"], 1.05) == verdicts.UNCHANGED
    assert verdicts.by_interval(t["low"], t["high"], 1.05) == verdicts.INCONCLUSIVE
    assert intervals.decided([d], 0.001, 1.05)  # a run's look reads the same interval: it closes here


# --- the store and compare ---------------------------------------------------------------------------------


def _ab_rows(effects: dict[str, float], pairs: int = 12, drift: float = 0.3, seed: int = 4) -> pd.DataFrame:
    """Per-round rows of one A/B run: side B is ``effect`` slower than A on each case; every pair shares
    a drift of up to ±``drift`` (log), far above the effects, and the processes' own noise is 1 %."""
    rng = np.random.default_rng(seed)
    rows = []
    for case, effect in effects.items():
        for pair in range(pairs):
            shared = rng.uniform(-drift, drift)
            for side, extra in (("A", 0.0), ("B", math.log1p(effect))):
                value = 1e-3 * math.exp(shared + extra + rng.normal(0, 0.01))
                rows.append(
                    {
                        "run_id": "r1",
                        "machine": "vm",
                        "hardware_id": "h",
                        "started_at": pd.Timestamp("2026-12-02", tz="UTC"),
                        "commit_hash": "c",
                        "env_name": f"env-{side}",
                        "torch_version": "2.13.0+cpu" if side == "B" else "2.12.1+cu128",
                        "suite_version": "1",
                        "unit": "seconds",
                        "suite": "ops",
                        "metric": "latency",
                        "case": case,
                        "batch": 1,
                        "device": "cpu-1t",
                        "layout": "nchw",
                        "dtype": "float32",
                        "mode": "inference",
                        "round": pair,
                        "status": "ok",
                        "reason": None,
                        "value": value * 1.01,
                        "min": value,
                        "injected": None,
                        "side": side,
                        "pair": pair,
                    }
                )
    return pd.DataFrame(rows)


def test_compare_pairs_the_sides_and_the_shared_drift_cancels():
    rows = _ab_rows({"a(x=1)@8x8": 0.0, "b(x=1)@8x8": 0.0, "c(x=1)@8x8": 0.10, "d(x=1)@8x8": -0.10})
    table, note = compare.compare(rows, "torch=2.12.1", "torch=2.13.0")
    verdict = dict(zip(table["case"], table["verdict"], strict=True))
    assert verdict == {
        "a(x=1)@8x8": verdicts.UNCHANGED,
        "b(x=1)@8x8": verdicts.UNCHANGED,
        "c(x=1)@8x8": verdicts.SLOWER,
        "d(x=1)@8x8": verdicts.FASTER,
    }
    assert note.startswith("paired: 1 A/B run(s), side A vs side B")
    # 12 pairs of processes with 1 % noise each, under a shared drift of up to ±30 %: a few percent at most
    assert (table["pairs"] == 12).all() and (table["detectable"] < 0.04).all()
    c = table.set_index("case").loc["c(x=1)@8x8"]
    assert c["low"] > 0.05 and c["high"] < 0.15 and c["ratio"] == pytest.approx(1.10, abs=0.02)


def test_the_json_of_a_paired_comparison():
    rows = _ab_rows({"a(x=1)@8x8": 0.0})
    table, note = compare.compare(rows, "side=A", "side=B")
    out = json.loads(compare.render(table, note, "json"))
    (row,) = out["rows"]
    assert {"verdict", "change", "ratio", "detectable", "low", "high", "pairs", "noise_source"} <= set(row)
    assert row["noise_source"] == "paired: 12 pairs" and row["verdict"] == verdicts.UNCHANGED
    assert out["rule"].startswith("paired verdicts read the interval at 0.999 confidence: slower or faster where")


def test_a_pairs_ratio_is_the_median_of_its_rounds_ratios_where_its_samples_were_interleaved():
    ln2 = math.log(2)
    # B's sample twice A's in two of three rounds; the processes' medians equal
    assert intervals.pair_log_ratio(2.0, 2.0, [1.0, 2.0, 3.0], [2.0, 4.0, 1.5]) == pytest.approx(ln2)
    assert intervals.pair_log_ratio(2.0, 2.0) == 0.0  # no samples: the values'
    assert intervals.pair_log_ratio(1.0, 2.0, [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0]) == pytest.approx(ln2)  # 3 rounds
    assert intervals.pair_log_ratio(1.0, 3.0, [1.0, 0.0], [2.0, 2.0]) == pytest.approx(math.log(3))  # a 0: values'
    assert intervals.pair_log_ratio(1.0, 3.0, [], [2.0]) == pytest.approx(math.log(3))
    assert math.isnan(intervals.pair_log_ratio(math.nan, 1.0)) and math.isnan(intervals.pair_log_ratio(0.0, 1.0))


def test_compare_reads_an_interleaved_pair_by_its_rounds_and_a_plain_pair_by_its_medians():
    rows = _ab_rows({"a(x=1)@8x8": 0.0}, pairs=4)
    rows["value"] = 2e-3
    rows["samples"] = [[1e-3, 2e-3, 3e-3] if side == "A" else [2e-3, 4e-3, 1.5e-3] for side in rows["side"]]
    plain = rows.assign(suite="plain")
    table, note = compare.compare(pd.concat([rows, plain]), "side=A", "side=B")
    verdict = dict(zip(table["suite"], table["verdict"], strict=True))
    assert verdict == {"ops": verdicts.SLOWER, "plain": verdicts.UNCHANGED}
    assert table.set_index("suite").loc["ops", "ratio"] == pytest.approx(2.0)
    assert "the median of its rounds' log ratios" in note


REAL_PAIR = "20261202T144422Z-2ae5019a-941c4f455a"  # torch 2.12.1 vs 2.13.0, turns A B B A (of before)
AA_ROTATED = "20261206T194051Z-516336e9-37a14afdfa"  # A/A, AMD EPYC VM, turns A B A B, sequential


@pytest.mark.parametrize("run_id, by", [(AA_ROTATED, "rounds"), (REAL_PAIR, "medians")])
def test_convbench_compare_reads_an_ab_run_from_the_store_by_its_order(run_id, by, capsys):
    """Two committed runs through the command: a run of turns where no sample follows its own side's
    (it records ``sequential``) is read by the median of each pair's rounds' log ratios, from the store's
    ``samples``; a run of the order of before by its processes' medians. The estimate is the median of the
    pairs' log ratios. The report's section alike."""
    from bench_lib.analysis import report
    from bench_lib.cli import main
    from bench_lib.store.query import Store

    selectors = ["--baseline", f"run={run_id},side=A", "--candidate", f"run={run_id},side=B", "--json"]
    assert main(["compare", "--results", str(ROOT / "results"), *selectors]) in (0, 1)
    table = pd.DataFrame(json.loads(capsys.readouterr().out)["rows"])
    store = Store(ROOT / "results" / "store")
    rows = store.frame("measurements")
    rows = rows[(rows["run_id"] == run_id) & (rows["suite"] == "ops") & (rows["status"] == "ok")]
    key = ["case", "batch", "layout", "dtype", "mode"]
    m = rows[rows["side"] == "A"].merge(rows[rows["side"] == "B"], on=[*key, "pair"], suffixes=("_a", "_b"))
    pairs = zip(m["value_a"], m["value_b"], m["samples_a"], m["samples_b"], strict=True)
    m["rounds"] = [intervals.pair_log_ratio(a, b, list(x), list(y)) for a, b, x, y in pairs]
    m["medians"] = np.log(m["value_b"]) - np.log(m["value_a"])
    expected = m.groupby(key)[["rounds", "medians"]].median().add_prefix("by_").reset_index().merge(table, on=key)
    assert len(expected) == len(table) == 56
    assert np.allclose(np.log(expected["ratio"]), expected[f"by_{by}"], rtol=0, atol=1e-9)
    assert (abs(expected["by_rounds"] - expected["by_medians"]) > 1e-3).sum() >= 10  # the two readings differ
    counts = ", ".join(f"{n} {v}" for v, n in table["verdict"].value_counts().items())
    assert f"run {run_id} on vm: side B / side A</h3><p>{counts}." in report._ab_section(store, None).body


def test_selecting_one_side_twice_is_refused():
    rows = _ab_rows({"a(x=1)@8x8": 0.0})
    with pytest.raises(ArgumentError, match="both select side A of A/B run r1"):
        compare.compare(rows, "side=A", "run=r1")


def test_the_sides_differences_are_named():
    rows = _ab_rows({"a(x=1)@8x8": 0.0})
    sides = [
        {"label": "A", "variables": {}, "identity": {"torch_version": "2.12.1+cu128", "onednn_version": "3.7.1"}},
        {
            "label": "B",
            "variables": {"X": "1"},
            "identity": {"torch_version": "2.13.0+cpu", "onednn_version": "3.12.0"},
        },
    ]
    runs = pd.DataFrame({"run_id": ["r1"], "sides": [json.dumps(sides)]})
    _, note = compare.compare(rows, "side=A", "side=B", runs=runs)
    assert note.endswith(
        "the sides differ in torch_version 2.12.1+cu128 → 2.13.0+cpu; onednn_version 3.7.1 → 3.12.0; X (unset) → 1"
    )


def test_ab_events_become_rows_with_their_side_pair_and_environment():
    run = {
        "run_id": "r1",
        "env_name": "x vs y",
        "sides": [{"label": "A", "env_name": "env-a"}, {"label": "B", "env_name": "env-b"}],
    }
    combo = Combination("ops", "latency", "depthwise(in=8,k=3)@14x14", 1, "cpu-1t", "nchw", "float32", "inference")
    events = []
    for pair in range(2):
        for side in ("B", "A") if pair else ("A", "B"):
            e = {**combo.as_event(), "pid": 100 + len(events), "status": "ok", "side": side, "pair": pair}
            events.append({**e, "measurement": {"median_s": 1e-3, "min_s": 1e-3, "samples_s": [1e-3]}})
    rows = records.measurement_rows(run, events)
    got = sorted((r["side"], r["pair"], r["round"], r["env_name"]) for r in rows)
    assert got == [("A", 0, 0, "env-a"), ("A", 1, 1, "env-a"), ("B", 0, 0, "env-b"), ("B", 1, 1, "env-b")]


def test_ab_runs_stay_out_of_the_history_verdicts_read():
    runs = pd.DataFrame(
        {
            "run_id": ["plain", "ab"],
            "state": ["complete", "complete"],
            "grid": ["default", "default"],
            "hardware_id": ["h", "h"],
            "env_name": ["e", "e vs e"],
            "started_at": pd.to_datetime(["2026-12-01", "2026-12-02"], utc=True),
            "sides": [None, "[]"],
        }
    )
    assert list(verdicts.window(runs)["run_id"]) == ["plain"]
    assert ab_compare.shared_runs(pd.DataFrame(), pd.DataFrame()) == set()


# --- a real A/B run ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_ab_run_interleaves_two_sides_and_a_side_variable_reaches_its_workers(tmp_path):
    """``--python`` relative, a second side with a planted slowdown, two pairs of one smoke combination."""
    from tests.test_asv_end_to_end import make_project

    project = make_project(tmp_path)
    python = os.path.relpath(sys.executable, project)
    env = {**os.environ, "CONVBENCH_MACHINE": "ab-box", "HOME": str(project), "CONVBENCH_LOCK_DIR": str(project)}
    cmd = [sys.executable, "-m", "bench_lib.cli", "run", "--project", str(project), "--grid", "smoke"]
    cmd += ["--bench", r"bench_ops\.Latency.*depthwise", "--device", "cpu-1t", "--pairs", "2"]
    cmd += ["--python", python, "--side", r"B:CONVBENCH_SLOWDOWN=^depthwise\(=2", "--side", "B:THP_MEM_ALLOC_ENABLE=1"]
    out = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "A/B run, at most 2 pairs of processes per combination" in out.stdout
    from bench_lib.store.query import Store

    store = Store(project / "results" / "store")
    (run,) = store.runs().itertuples()
    sides = json.loads(run.sides)
    assert [s["label"] for s in sides] == ["A", "B"] and run.pairs == 2
    assert sides[1]["variables"] == {"CONVBENCH_SLOWDOWN": r"^depthwise\(=2", "THP_MEM_ALLOC_ENABLE": "1"}
    assert sides[0]["identity"]["torch_version"] == __import__("torch").__version__
    # the run asks its workers for huge pages; an A/B side has PyTorch's default unless it sets its own
    assert [s["identity"]["thp_mem_alloc_enable"] for s in sides] == [None, "1"]
    rows = store.frame("measurements").sort_values(["pair", "side"])
    rows = rows[rows["suite"] == "ops"]
    # one process a side and pair (the sides close at once, so their events' order within a pair is free)
    assert list(zip(rows["side"], rows["pair"], strict=True)) == [("A", 0), ("B", 0), ("A", 1), ("B", 1)]
    assert rows["status"].eq("ok").all()
    assert rows.loc[rows["side"] == "B", "injected"].str.startswith("slowdown x2").all()
    assert rows.loc[rows["side"] == "A", "injected"].isna().all()


def test_the_pinned_cpus_are_the_last_of_the_allowed_as_many_as_the_devices_threads():
    from bench_lib.measure import devices

    assert devices.pinned_cpus(1, {0, 1}) == {1}
    assert devices.pinned_cpus(2, {0, 3, 5, 7}) == {5, 7}
    assert devices.pinned_cpus(2, {0, 1}) is None  # every allowed CPU: nothing to pin
    assert devices.pinned_cpus(None, {0, 1, 2}) is None  # a GPU: its host thread is not pinned


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin one process to one of them")
def test_a_sides_process_samples_on_the_pinned_cpu(tmp_path, monkeypatch):
    """A real process of one side (forked here as its server forks it): set up and warmed up on every CPU,
    then moved onto the shared one before its first sample, and no sooner."""
    from bench_lib.suite import ab_server
    from bench_lib.suite.grids import grid

    for name, value in {"CONVBENCH_GRID": "smoke", "CONVBENCH_DEVICES": "cpu-1t"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONVBENCH_EVENTS", str(tmp_path / "events.jsonl"))
    combo = next(c for c in grid("smoke", ["cpu-1t"]).combinations("ops", "latency") if c.device == "cpu-1t")
    request = {"combination": combo.as_event(), "pair": 0, "timeout_s": 120.0}
    assert ab_server._interleaved("open", request)["status"] == "ready"
    pid, allowed = ab_server._open[0].pid, os.sched_getaffinity(0)
    assert os.sched_getaffinity(pid) == allowed
    assert ab_server._interleaved("sample", {"warm": 1})["status"] == "ok"
    assert os.sched_getaffinity(pid) == {max(allowed)}
    assert ab_server._interleaved("close", {})["status"] == "ok"


class FakeServer:
    """A side's server as :func:`ab.interleave` sees it: ``open`` answers ready (block 2) or ``status``,
    each sample takes ``per_call_s`` per call; every request is logged with the side's label."""

    def __init__(self, label: str, log: list, per_call_s: float = 0.01, status: str = "ready", dies_at: int = -1):
        self.label, self.log, self.per_call_s, self.status, self.dies_at = label, log, per_call_s, status, dies_at
        self.samples, self.block, self.multiple, self.requests = 0, 2, 1, []

    def send(self, request: dict) -> None:
        self.pending = self.ask(request)

    def receive(self) -> dict:
        return self.pending

    def ask(self, request: dict) -> dict:
        self.log.append((self.label, request["op"]))
        self.requests.append(request)
        if request["op"] == "open":
            return {"status": self.status, "block": self.block, "multiple": self.multiple}
        if request["op"] == "block":
            assert request["calls"] % self.multiple == 0
            self.block = request["calls"]
        if request["op"] == "sample":
            self.samples += 1
            if self.samples == self.dies_at:
                return {"status": "died: killed by SIGSEGV"}
            return {"status": "ok", "seconds_per_call": self.per_call_s}
        return {"status": "ok"}


def test_a_pairs_samples_alternate_until_both_sides_have_a_process_worth():
    log: list = []
    a, b = FakeServer("A", log), FakeServer("B", log, per_call_s=0.02)
    timing = {"samples": 4, "min_samples": 2, "min_time_s": 0.05, "max_time_s": 1.0}
    ab.interleave([a, b], _combos(1)[0], 0, timing)
    assert log[:2] == [("A", "open"), ("B", "open")] and log[-2:] == [("A", "close"), ("B", "close")]
    samples = "".join(label for label, op in log if op == "sample")
    assert samples == "ABABABAB"  # 4 samples each: A has 4 x 2 x 10 ms = 80 ms >= 50 ms, and B more
    assert a.samples == b.samples == 4
    warm = {r.get("warm") for r in a.requests + b.requests if r["op"] == "sample"}
    assert warm == {1}  # every turn warms its caches with one untimed call before its clock starts


def test_a_turns_untimed_calls_run_before_its_timed_block():
    from bench_lib.measure import timing

    calls = []
    sampler = timing.Sampler(lambda: calls.append(1), timing.HOST_CLOCK)
    sampler.timer, sampler.block = timing.HOST_CLOCK.block_timer(), 3
    sampler.sample(warm_calls=2)
    sampler.sample()
    assert len(calls) == 2 + 3 + 3 and len(sampler.taken) == 2  # untimed calls are never a sample


def test_three_sides_take_equal_samples_in_whole_cycles():
    log: list = []
    sides = [FakeServer(x, log) for x in "ABC"]
    ab.interleave(sides, _combos(1)[0], 0, {"samples": 4, "min_samples": 2, "min_time_s": 0.0, "max_time_s": 1.0})
    samples = "".join(label for label, op in log if op == "sample")
    assert samples == "ABCBCACAB" * 1 + "ABCBCACAB"  # 4 would do; whole cycles of 3 rounds: 6
    assert sides[0].samples == sides[1].samples == sides[2].samples == 6


@pytest.mark.parametrize(
    "blocks, multiples, common",
    [((3, 20), (1, 20), 20), ((25, 20), (1, 20), 40), ((7, 7), (1, 1), 7), ((4, 9), (2, 3), 12), ((5, 2), (1, 1), 5)],
)
def test_the_sides_of_a_pair_time_the_same_calls_per_sample(blocks, multiples, common):
    """The largest block, rounded up to a multiple of every side's period; only a side whose block changes
    is asked to."""
    log: list = []
    a, b = FakeServer("A", log), FakeServer("B", log)
    (a.block, b.block), (a.multiple, b.multiple) = blocks, multiples
    ab.interleave([a, b], _combos(1)[0], 0, {"samples": 2, "min_samples": 2, "max_time_s": 1.0})
    assert a.block == b.block == common
    asked = [label for label, op in log if op == "block"]
    assert asked == [x for x, n in zip("AB", blocks, strict=True) if n != common]


def test_the_sides_open_and_close_at_once():
    """Every side is asked to open before any reply is read (their processes set up and warm up side by
    side), and likewise to close; the samples go one side at a time."""
    said: list = []

    class Recording(FakeServer):
        def send(self, request: dict) -> None:
            said.append(("send", self.label, request["op"]))
            super().send(request)

        def receive(self) -> dict:
            said.append(("receive", self.label))
            return super().receive()

    sides = [Recording(x, []) for x in "ABC"]
    ab.interleave(sides, _combos(1)[0], 0, {"samples": 3, "min_samples": 2, "min_time_s": 0.0, "max_time_s": 1.0})
    at_once = [("send", "A"), ("send", "B"), ("send", "C"), ("receive", "A"), ("receive", "B"), ("receive", "C")]
    assert [x[:2] for x in said[:6]] == at_once and {x[2] for x in said[:3]} == {"open"}
    assert [x[:2] for x in said[-6:]] == at_once and {x[2] for x in said[-6:-3]} == {"close"}
    assert len(said) == 12 and all(s.samples == 3 for s in sides)


def test_a_side_that_is_skipped_or_dies_leaves_the_other_to_finish():
    log: list = []
    skipped, b = FakeServer("A", log, status="skipped"), FakeServer("B", log)
    timing = {"samples": 3, "min_samples": 2, "min_time_s": 0.0, "max_time_s": 1.0}
    ab.interleave([skipped, b], _combos(1)[0], 0, timing)
    assert [op for label, op in log if label == "A"] == ["open"] and b.samples == 3
    log.clear()
    dying, b = FakeServer("A", log, dies_at=2), FakeServer("B", log)
    ab.interleave([dying, b], _combos(1)[0], 0, timing)
    assert dying.samples == 2 and b.samples == 3 and ("A", "close") not in log


def test_the_report_shows_an_ab_run_with_its_figure_and_table(tmp_path):
    from test_readme_commands import _ab_example

    from bench_lib.analysis import report

    _ab_example(tmp_path / "results")
    index, _ = report.build(str(tmp_path / "results"), str(tmp_path / "report"), publish=False, run_notebooks=False)
    page = index.read_text()
    section = page[page.index("<section id='ab'>") :]
    section = section[: section.index("</section>")]
    assert "A/B runs: environments side by side" in section
    assert "side B / side A" in section and "1 slower, 1 unchanged" in section
    assert "the sides differ in torch_version 2.12.1+cu130 → 2.13.0+cpu" in section
    assert "data-figure=" in section  # the ratio figure


@pytest.mark.parametrize(
    "wanted, version, matches",
    [
        ("2.13", "2.13.0+cpu", True),
        ("2.13.0", "2.13.0+cpu", True),
        ("2.13.0+cu130", "2.13.0+cpu", False),
        ("2.1", "2.12.1", False),
        ("2.12.1", "2.12.1", True),
    ],
)
def test_a_torch_selector_matches_releases_and_builds_by_component(wanted, version, matches):
    assert compare.version_matches(wanted, version) is matches


def test_an_env_selector_finds_the_ab_runs_that_hold_that_environment():
    sides = json.dumps([{"label": "A", "env_name": "torch-2.12.1"}, {"label": "B", "env_name": "torch-2.13.0"}])
    runs = pd.DataFrame(
        {
            "run_id": ["plain", "ab"],
            "env_name": ["torch-2.13.0", "torch-2.12.1 vs torch-2.13.0"],
            "sides": [None, sides],
            "started_at": pd.to_datetime(["2026-12-01", "2026-12-02"], utc=True),
        }
    )
    assert list(compare.Selector.parse("env=torch-2.12.1").select_runs(runs)["run_id"]) == ["ab"]
    assert sorted(compare.Selector.parse("env=torch-2.13.0").select_runs(runs)["run_id"]) == ["ab", "plain"]


def test_the_run_help_states_the_default_pairs():
    from bench_lib import cli

    text = " ".join(cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help().split())
    assert f"(default {intervals.DEFAULT_PAIRS}; at least 2)" in text


def test_the_sides_summaries_merge_by_a_rule_for_every_field():
    """Every field of Summary is added, counted, labelled by side, shared or given (a new field must say
    which, or this fails); failures and findings keep their side's name."""
    import dataclasses

    from bench_lib.suite import summary

    classified = summary.ADDED + summary.COUNTED + summary.LABELLED + summary.SHARED + summary.GIVEN
    assert sorted(classified) == sorted(f.name for f in dataclasses.fields(summary.Summary))
    a = summary.Summary(3, 2, {"no cuda": 1}, [("x", "boom")], {"big": 2}, 0, 10.0, 1.5, multimodal=[("y", "2 modes")])
    b = summary.Summary(3, 3, {"no cuda": 1, "other": 1}, [], {"big": 2}, 1, 10.0, 2.5, abandoned=1)
    m = summary.merge([a, b], ["A", "B"], run_level_s=0.7)
    assert (m.selected, m.ok, m.missing, m.abandoned, m.combinations_s) == (6, 5, 1, 1, 4.0)
    assert m.skipped == {"no cuda": 2, "other": 1} and m.excluded == {"big": 2} and m.wall_s == 10.0
    assert m.failed == [("side A: x", "boom")] and m.multimodal == [("side A: y", "2 modes")]
    assert m.run_level_s == 0.7


def test_stopping_a_server_collects_it_instead_of_waiting_out_the_grace(tmp_path, monkeypatch):
    """A side's server ends at SIGTERM; stop() collects it as it ends and returns, instead of polling its
    group (an ended child not yet collected still counts as one) for the whole 5 s grace, 50 polls of
    0.1 s: every pass restarts every server, and that wait was 10 s of each 60 s pass with two sides."""
    from bench_lib.suite import guard

    polls = []
    real_sleep = guard.time.sleep

    def sleep(seconds: float) -> None:
        if seconds == 0.1:  # terminate_group's poll (Popen.wait sleeps other lengths)
            polls.append(seconds)
        real_sleep(seconds)

    with open(tmp_path / "log", "w") as log:
        child = guard.Child(["sleep", "60"], tmp_path, dict(os.environ), log, pipes=True)
        monkeypatch.setattr(guard.time, "sleep", sleep)
        child.stop()
    assert child.proc.returncode == -signal.SIGTERM
    assert len(polls) <= 3
