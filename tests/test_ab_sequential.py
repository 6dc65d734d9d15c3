"""Sequential sampling of A/B runs: the looks, their confidence, and the error rates under optional
stopping on synthetic pairs with known answers (bench_lib.measure.intervals, bench_lib.suite.ab_sequential)."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pandas as pd
import pytest

from bench_lib.measure import intervals
from bench_lib.suite import ab_sequential
from bench_lib.suite.combination import Combination


@pytest.mark.parametrize(
    "most, expected",
    [(40, (16, 40)), (100, (16, 32, 64, 100)), (60, (16, 32, 60)), (21, (16, 21)), (20, (20,)), (2, (2,))],
)
def test_the_looks_double_from_sixteen_pairs_and_end_at_the_most(most, expected):
    assert intervals.looks(most) == expected


def test_every_interval_of_a_sequential_run_is_at_alpha_over_its_looks():
    assert intervals.look_alpha(0.001, 40) == pytest.approx(0.0005)
    assert intervals.look_alpha(0.001, 100) == pytest.approx(0.00025)
    assert intervals.look_alpha(0.001, 20) == 0.001  # one look: the fixed-sample interval


def _combos(n: int) -> list[Combination]:
    return [
        Combination("ops", "latency", f"depthwise(in={i + 1},k=3)@14x14", 1, "cpu-1t", "nchw", "float32", "inference")
        for i in range(n)
    ]


def _events(combos, ratios: np.ndarray, pairs: int, labels=("A", "B")) -> list[dict]:
    """Events of ``pairs`` pairs: side A's median 1 ms, B's 1 ms × exp(ratio) (one row of ``ratios`` per
    combination and pair)."""
    out = []
    for i, c in enumerate(combos):
        for p in range(pairs):
            for label, value in zip(labels, (1e-3, 1e-3 * math.exp(ratios[i, p])), strict=False):
                out.append(
                    {**c.as_event(), "status": "ok", "side": label, "pair": p, "measurement": {"median_s": value}}
                )
    return out


def _run(combos, ratios: np.ndarray, seq: ab_sequential.Sequential, until: int | None = None) -> dict[int, int]:
    """Walk the passes as the runner does (every open combination gets the pass's pair; a look after it),
    ``until`` pairs where a budget ends the run; return combination → the pairs it got."""
    got = {}
    for pair in range(until or seq.max_pairs):
        todo = seq.open(pair, lambda c: seq.max_pairs)
        for i in todo:
            got[i] = pair + 1
        if pair + 1 in seq.looks[:-1]:
            seq.look(pair + 1, functools.partial(_events, combos, ratios, pair + 1))
    return got


def _verdicts(ratios: np.ndarray, got: dict[int, int], alpha: float) -> list[str]:
    return [intervals.verdict(ratios[i, :n], alpha, intervals.FACTOR) for i, n in got.items()]


def test_identical_sides_are_flagged_at_most_alpha_under_optional_stopping_and_would_be_more_uncorrected():
    """4,000 A/A combinations, pairs spreading by 12 % (so that many stay undecided for several looks), at
    most 100 pairs (looks at 16, 32, 64, 100), alpha 0.05: judged at alpha / 4 at every look, at most 5 % are
    called slower or faster; judged at alpha at every look (no correction), more than alpha are: the
    correction is what keeps the rate."""
    rng = np.random.default_rng(7)
    n, alpha, most = 4000, 0.05, 100
    ratios = rng.normal(0.0, 0.12, size=(n, most))
    combos = _combos(n)
    rates = {}
    for name, corrected in (("corrected", True), ("naive", False)):
        seq = ab_sequential.Sequential(combos, ["A", "B"], most, alpha=alpha)
        if not corrected:
            seq.look_alpha = alpha  # the same alpha at every look
        got = _run(combos, ratios, seq)
        look = intervals.look_alpha(alpha, most) if corrected else alpha
        said = _verdicts(ratios, got, look)
        rates[name] = sum(v in (intervals.SLOWER, intervals.FASTER) for v in said) / n
    assert rates["corrected"] <= alpha
    assert rates["naive"] > alpha


@pytest.mark.parametrize("interval", [intervals.paired_interval, intervals.paired_t], ids=["t+sign", "t"])
def test_a_run_a_budget_ends_spends_what_its_looks_left_and_keeps_the_rate(interval):
    """The same 4,000 A/A combinations (12 % spread, at most 100 pairs, alpha 0.05), the run ended by its
    budget after 12, 20, 40 or 70 pairs: a combination decided at a look is judged at alpha / 4, one still
    open at the end at what its looks left (all of alpha before the first look). At most alpha are flagged
    at every cut, by the interval convbench reads (t and sign intersected) and by t alone. By t alone,
    whose level is exactly alpha, giving the end all of alpha whatever the looks spent flags more than
    alpha; the intersection, each half at alpha / 2, stays below its level on normal pairs either way."""
    rng = np.random.default_rng(5)
    n, alpha, most = 4000, 0.05, 100
    ratios = rng.normal(0.0, 0.12, size=(n, most))
    combos = _combos(n)
    look = intervals.look_alpha(alpha, most)
    naive_rates = []
    for cut in (12, 20, 40, 70):
        seq = ab_sequential.Sequential(combos, ["A", "B"], most, alpha=alpha)
        got = _run(combos, ratios, seq, until=cut)
        flagged = {"spent": 0, "naive": 0}
        for i, k in got.items():
            spent = look if i in seq.closed else intervals.end_alpha(alpha, seq.looks, k)
            naive = look if i in seq.closed else alpha
            for name, a in (("spent", spent), ("naive", naive)):
                _, low, high = interval(ratios[i, :k], a)
                flagged[name] += intervals.by_interval(low, high, intervals.FACTOR) in (
                    intervals.SLOWER,
                    intervals.FASTER,
                )
        assert flagged["spent"] / n <= alpha, cut
        naive_rates.append(flagged["naive"] / n)
    if interval is intervals.paired_t:
        assert max(naive_rates) > alpha


def test_what_the_looks_leave_is_exact():
    assert intervals.end_alpha(0.001, (16, 40), 14) == 0.001  # ended before the first look: all of alpha
    assert intervals.end_alpha(0.001, (16, 40), 16) == intervals.end_alpha(0.001, (16, 40), 20) == 0.0005
    assert intervals.end_alpha(0.001, (16, 40), 40) == 0.0005  # the last look is the end itself
    assert intervals.end_alpha(0.001, (16, 32, 64, 100), 50) == pytest.approx(0.0005)
    assert intervals.judged_alpha(0.001, (16, 40), 16) == 0.0005  # it may have been decided at the look
    assert intervals.judged_alpha(0.001, (16, 40), 15) == 0.001
    # a look the run skipped spent nothing
    assert intervals.end_alpha(0.001, (16, 40), 20, skipped=(16,)) == 0.001
    assert intervals.judged_alpha(0.001, (16, 40), 16, skipped=(16,)) == 0.001
    assert intervals.end_alpha(0.001, (16, 32, 64, 100), 50, skipped=(32,)) == pytest.approx(0.00075)


@pytest.mark.parametrize(
    "elapsed_s, budget_s, taken",
    [(400.0, 900.0, True), (450.0, 900.0, True), (451.0, 900.0, False), (800.0, 900.0, False), (1e6, None, True)],
)
def test_a_look_is_taken_only_where_the_budget_leaves_as_many_passes_again(elapsed_s, budget_s, taken):
    assert intervals.worth_a_look(elapsed_s, budget_s) is taken


def test_a_look_the_budget_leaves_no_room_after_is_skipped_and_recorded():
    """15 minutes, the look at 16 reached after 12: skipped (no combination closes, the record says so,
    and compare then judges the run's combinations at all of alpha); reached after 7: taken."""
    combos = _combos(1)
    events = _events(combos, np.zeros((1, 16)), 16)
    late = ab_sequential.Sequential(combos, ["A", "B"], 40, budget_s=900.0, started=0.0)
    assert late.look(16, lambda: events, now=720.0) == [] and late.skipped == [16]
    assert late.as_dict()["skipped"] == [16] and "look at 16 skipped" in late.describe()
    early = ab_sequential.Sequential(combos, ["A", "B"], 40, budget_s=900.0, started=0.0)
    assert early.look(16, lambda: events, now=420.0) == [0] and early.skipped == []


def test_a_real_change_of_the_factor_is_found_and_decided_combinations_stop_early():
    """1,000 combinations slowed by 6 %, 1,000 unchanged, pairs spreading by 2 %, at most 40 pairs at alpha
    0.001: at least 99 % of the slowed are called slower, none of the unchanged ones is flagged, and most
    stop at the first look (16 pairs) instead of taking all 40."""
    rng = np.random.default_rng(11)
    n = 1000
    ratios = np.vstack([rng.normal(math.log(1.06), 0.02, size=(n, 40)), rng.normal(0.0, 0.02, size=(n, 40))])
    combos = _combos(2 * n)
    seq = ab_sequential.Sequential(combos, ["A", "B"], 40)
    got = _run(combos, ratios, seq)
    said = _verdicts(ratios, got, intervals.look_alpha(intervals.ALPHA, 40))
    assert sum(v == intervals.SLOWER for v in said[:n]) >= 0.99 * n
    assert not any(v in (intervals.SLOWER, intervals.FASTER) for v in said[n:])
    assert np.median(list(got.values())) < 40
    assert sum(p < 40 for p in seq.closed.values()) == len(seq.closed)


def test_a_combination_a_side_never_measured_closes_at_the_first_look():
    combos = _combos(2)
    seq = ab_sequential.Sequential(combos, ["A", "B"], 40)
    events = _events(combos, np.zeros((2, 16)), 16)
    events = [e for e in events if not (e["side"] == "B" and e["params"]["case"] == combos[1].case)]
    assert seq.look(15, lambda: events) == []  # not a look
    assert seq.look(16, lambda: events, cut_short=True) == [] and not seq.closed  # a pass the budget cut: the end
    assert seq.look(16, lambda: events) == [0, 1]  # 0: decided unchanged (no spread at all); 1: B never measured it


def test_three_sides_close_only_once_every_comparison_is_decided():
    one, two = ab_sequential.Process(1.0), ab_sequential.Process(2.0)
    by_side = {"A": {0: one, 1: one}, "B": {0: one, 1: one}, "C": {0: two}}
    ratios = ab_sequential.side_ratios(by_side, ["A", "B", "C"])
    assert ratios == [[0.0, 0.0], [pytest.approx(math.log(2))], [pytest.approx(math.log(2))]]
    assert not intervals.decided(ratios, 0.001, 1.05)  # A vs C has one pair: no interval yet
    assert ab_sequential.side_ratios({"A": {0: one}, "B": {}}, ["A", "B"]) is None


def test_a_look_reads_an_interleaved_pair_by_its_rounds():
    """Equal medians (2 ms), but B's sample is twice A's in two of three rounds: the look's ratio is the
    rounds' median, ln 2; a plain-suite pair (fresh interpreters, one after the other) keeps its medians'."""
    c = _combos(1)[0]
    plain = Combination("plain", *list(c.as_dict().values())[1:])
    events = [
        {**x.as_event(), "status": "ok", "side": side, "pair": 0, "measurement": {"median_s": 2.0, "samples_s": s}}
        for x in (c, plain)
        for side, s in (("A", [1.0, 2.0, 3.0]), ("B", [2.0, 4.0, 1.5]))
    ]
    values = ab_sequential.values_by_side(events)
    assert values[c]["B"][0] == ab_sequential.Process(2.0, [2.0, 4.0, 1.5])
    assert ab_sequential.side_ratios(values[c], ["A", "B"]) == [[pytest.approx(math.log(2))]]
    assert ab_sequential.side_ratios(values[plain], ["A", "B"]) == [[0.0]]


def test_the_budget_ends_the_walk_only_once_spent():
    seq = ab_sequential.Sequential(_combos(1), ["A", "B"], 20, budget_s=60.0, started=1000.0)
    assert not seq.out_of_time(1059.0) and seq.out_of_time(1060.0)
    assert not ab_sequential.Sequential(_combos(1), ["A", "B"], 20, started=0.0).out_of_time(1e9)


def test_the_run_record_says_the_looks_and_their_confidence():
    seq = ab_sequential.Sequential(_combos(1), ["A", "B"], 40, budget_s=900.0)
    said = seq.as_dict()
    assert said.pop("look_alpha") == pytest.approx(0.0005)
    assert said == {"looks": [16, 40], "alpha": 0.001, "factor": 1.05, "budget_s": 900.0, "skipped": []}


def test_compare_judges_a_sequential_run_at_what_its_looks_left():
    """The same pairs, judged as a run without looks and as a sequential run of looks (16, 40): with 16
    pairs (a look) the second interval is the paired interval at alpha / 2, wider than the first's at
    alpha, and the note says so; with 14 (the budget ended the run before the first look) the two are the
    same."""
    from bench_lib.analysis import ab_compare, noise, paired
    from tests.test_ab import _ab_rows

    rows = _ab_rows({"c(x=1)@8x8": 0.03}, pairs=16)
    b, c = rows[rows["side"] == "A"], rows[rows["side"] == "B"]
    plain = pd.DataFrame({"run_id": ["r1"], "sides": [None], "sequential": [None]})
    looked = plain.assign(sequential=[json.dumps({"looks": [16, 40], "alpha": 0.001})])
    fixed, fixed_note = ab_compare.compare(b, c, 1.05, 0.001, plain)
    seq, seq_note = ab_compare.compare(b, c, 1.05, 0.001, looked)
    d = np.log(c.sort_values("pair")["value"].to_numpy()) - np.log(b.sort_values("pair")["value"].to_numpy())
    for table, alpha in ((fixed, 0.001), (seq, 0.0005)):
        expected = paired.judge(d, alpha)
        assert table["low"].iloc[0] == pytest.approx(noise.percent(expected["low"]), rel=1e-9)
        assert table["high"].iloc[0] == pytest.approx(noise.percent(expected["high"]), rel=1e-9)
    assert seq["detectable"].iloc[0] > fixed["detectable"].iloc[0]
    assert "sequential" not in fixed_note
    assert "sequential (looks at 16, 40 pairs): each interval at what its run's looks left of alpha 0.001" in seq_note
    short = rows[rows["pair"] < 14]
    b, c = short[short["side"] == "A"], short[short["side"] == "B"]
    assert ab_compare.compare(b, c, 1.05, 0.001, looked)[0]["detectable"].iloc[0] == pytest.approx(
        ab_compare.compare(b, c, 1.05, 0.001, plain)[0]["detectable"].iloc[0], rel=1e-12
    )
    # the look at 16 skipped (the budget left too little after it): the 16 pairs are judged at all of alpha
    skipped = plain.assign(sequential=[json.dumps({"looks": [16, 40], "alpha": 0.001, "skipped": [16]})])
    b, c = rows[rows["side"] == "A"], rows[rows["side"] == "B"]
    table, note = ab_compare.compare(b, c, 1.05, 0.001, skipped)
    assert table["detectable"].iloc[0] == pytest.approx(fixed["detectable"].iloc[0], rel=1e-12)
    assert "looks at 16, 40 pairs, 16 skipped" in note
