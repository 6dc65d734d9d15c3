"""Verdicts on synthetic series with known answers: noise estimates, steps, pure noise, a drifting machine,
the vocabulary, the JSON shape and the exit codes of ``convbench compare`` and ``convbench regressions``."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bench_lib.analysis import compare, noise, regressions, series, verdicts
from bench_lib.cli import main
from bench_lib.store.writer import RunWriter

OPS = [f"depthwise(in={c},k=3,bias=false)@14x14" for c in (8, 16, 24, 32, 40, 48, 56, 64)]
OPS += [f"pointwise(in={c},out={c},bias=false)@14x14" for c in (8, 16, 24, 32, 40, 48, 56, 64)]
CANARY = ["canary_gemm(m=512,n=512,k=512)", "canary_conv3x3(in=64,out=64)@56x56"]


def test_history_sigma_recovers_the_noise_and_ignores_a_step():
    rng = np.random.default_rng(1)
    v = rng.normal(0, 0.05, 4001)
    sigma, df = noise.history_sigma(v)
    assert sigma == pytest.approx(0.05, rel=0.05) and df == pytest.approx(0.42 * 4000 + 0.7)
    stepped = np.r_[v[:2000], v[2000:] + 1.0]  # a step moves one successive difference only
    assert noise.history_sigma(stepped)[0] == pytest.approx(sigma, rel=0.01)
    assert math.isnan(noise.history_sigma(v[:2])[0])


@pytest.mark.parametrize("runs", [4, 6, 10, 20])
def test_history_noise_calls_pure_noise_at_the_rate_alpha(runs):
    # a new run against the one before it, judged with the sigma of the history before both: on pure normal
    # noise the share called significant at alpha must be alpha (within sampling error), whatever the history
    alpha, n = 0.01, 200_000
    rng = np.random.default_rng(runs)
    history = rng.normal(0, 1, (n, runs))
    codes = np.repeat(np.arange(n), runs)
    sigma, df = noise.history_sigmas(codes, history.ravel())
    change = rng.normal(0, 1, n) - rng.normal(0, 1, n)
    called = np.abs(change) > noise.t_quantile(alpha, df) * sigma * math.sqrt(2)
    assert 0.0075 < called.mean() < 0.0125, called.mean()


def test_rounds_sigma_is_the_noise_of_a_run_median():
    rng = np.random.default_rng(2)
    runs = [rng.normal(0, 0.04, 4) for _ in range(3000)]
    sigma, df = noise.rounds_sigma(runs)
    assert df == 3000 * 3 and sigma == pytest.approx(0.04 / 2, rel=0.05)


def test_many_series_at_once_give_each_series_its_own_answer():
    # series 0: logs 0, 1, 3 (diffs 1, 2: median 1.5); series 1: 5, 5 (too short); series 2: 2, 2, 2, 6
    codes = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    values = np.array([0.0, 1.0, 3.0, 5.0, 5.0, 2.0, 2.0, 2.0, 6.0])
    sigma, df = noise.history_sigmas(codes, values)
    assert sigma[0] == pytest.approx(noise.MAD_TO_SIGMA * 1.5 / math.sqrt(2)) and df[0] == pytest.approx(0.42 * 2 + 0.7)
    assert math.isnan(sigma[1]) and df[1] == 0
    # diffs 0, 0, 4: the step does not count
    assert sigma[2] == pytest.approx(0.0) and df[2] == pytest.approx(0.42 * 3 + 0.7)
    # rounds: runs of series 0 have logs (0, 2) and (1, 3): squares 2 each, 2 degrees of freedom, 2 per run
    sigma, df = noise.pooled_rounds_sigma(np.array([0, 0, 1]), np.array([2.0, 2.0, 0.0]), np.array([2, 2, 1]))
    assert sigma[0] == pytest.approx(1.0) and df[0] == 2
    assert math.isnan(sigma[1]) and df[1] == 0  # one round says nothing


def _reference_verdict(v: np.ndarray, prior: float, alpha: float, factor: float) -> str:
    """The documented rule for one series, written out plainly and independently of regressions.py: the band
    of the runs before the judged ones is max(ln factor, t(1 - alpha/2, df) x sigma x sqrt(1 + 1/k)) around
    their median, sigma the moderated median successive difference; two newest beyond it on one side are a
    regression or improvement, the newest alone a suspect; fewer than 4 runs are inconclusive."""
    from scipy import stats

    def band(before):
        k = len(before)
        if k >= 3:
            own = 1.4826 * np.median(np.abs(np.diff(before))) / math.sqrt(2)
            own_df = 0.42 * (k - 1) + 0.7
            sigma = math.sqrt((own_df * own**2 + 4 * prior**2) / (own_df + 4))
            df = own_df + 4
        else:
            sigma, df = prior, 4
        width = stats.t.ppf(1 - alpha / 2, df) * sigma * math.sqrt(1 + 1 / k)
        return np.median(before), max(math.log(factor), width)

    if len(v) < 4:
        return "inconclusive"
    if len(v) >= 5:
        center, width = band(v[:-2])
        if (v[-2:] - center > width).all():
            return "regression"
        if (center - v[-2:] > width).all():
            return "improvement"
    center, width = band(v[:-1])
    if abs(v[-1] - center) > width:
        return "suspect"
    return "unchanged" if width <= math.log(factor) + 1e-12 else "inconclusive"


def test_vectorised_verdicts_follow_the_documented_rule_series_by_series():
    rng = np.random.default_rng(5)
    lengths = [2, 3, 4, 5, 6, 9] * 6
    steps = [0.0, 0.5, -0.5, 0.04, 0.12, -0.2]  # the two newest runs move by this much
    sigmas = [0.002, 0.002, 0.002, 0.01, 0.03, 0.08]
    series_ = []
    for i, k in enumerate(lengths):
        step, sigma = steps[i // 6], sigmas[i % 6]
        series_.append(rng.normal(0, sigma, k) + np.r_[np.zeros(k - 2), [step * (i % 2), step]])
    priors = np.array([sigmas[i % 6] for i in range(len(lengths))])
    codes = np.repeat(np.arange(len(lengths)), lengths)
    firsts = np.r_[0, np.cumsum(lengths)[:-1]]
    m = regressions.right_aligned(codes, firsts, np.concatenate(series_))
    many = regressions.judge_many(m, priors, 0.001, 1.05)
    assert list(many["n_runs"]) == lengths
    expected = [_reference_verdict(v, p, 0.001, 1.05) for v, p in zip(series_, priors, strict=True)]
    assert list(many["verdict"]) == expected
    assert {"regression", "improvement", "suspect", "unchanged", "inconclusive"} <= set(expected)  # all reached
    # a clear step (+50 %) at the newest run (even) or the two newest (odd): 3 runs are too few, 4 give a
    # suspect, 5 a regression (a band from 3 runs before the two judged)
    assert list(many["verdict"][6:10]) == ["inconclusive", "inconclusive", "suspect", "regression"]


def test_moderation_pulls_toward_the_prior_by_degrees_of_freedom():
    assert noise.moderate(0.1, 4, 0.2, 4)[0] == pytest.approx(math.sqrt((4 * 0.01 + 4 * 0.04) / 8))
    assert noise.moderate(math.nan, 0, 0.2) == (0.2, noise.PRIOR_DF)
    assert noise.moderate(0.1, 3, math.nan) == (0.1, 3)


def test_detectable_is_t_times_the_standard_error():
    se = noise.standard_error(0.02, 1, 0.02, 1)
    assert se == pytest.approx(0.02 * math.sqrt(2))
    assert noise.detectable(se, 10, 0.01) == pytest.approx(3.169273 * se, rel=1e-5)
    assert noise.detectable(math.nan, 10, 0.01) == math.inf


@pytest.mark.parametrize(
    ("change", "detectable", "verdict"),
    [
        (math.log(1.20), math.log(1.03), "slower"),
        (math.log(0.80), math.log(1.03), "faster"),
        (math.log(1.04), math.log(1.03), "unchanged"),  # significant, but within the factor
        (math.log(1.20), math.log(1.30), "inconclusive"),  # the noise could hide 30%
        (math.log(1.01), math.log(1.30), "inconclusive"),
        (math.log(1.50), math.log(1.30), "slower"),  # beyond even that noise
    ],
)
def test_judge_vocabulary(change, detectable, verdict):
    assert verdicts.pairwise(change, detectable, 1.05) == verdict


def _series(values, sigma=0.02, seed=0):
    rng = np.random.default_rng(seed)
    return np.log(values) + rng.normal(0, sigma, len(values))


def test_a_step_of_known_size_at_a_known_run_is_a_regression_with_its_first_run():
    v = np.r_[_series([1.0] * 12, seed=3), _series([1.25] * 3, seed=4)]
    j = regressions.judge_series(v, 0.02, 0.001, 1.05)
    assert j.verdict == "regression" and j.first_run == 12 and j.confirmations == 3
    assert j.change == pytest.approx(0.25, abs=0.04) and j.change_low < 0.25 < j.change_high


def test_one_run_beyond_the_band_is_a_suspect_and_a_drop_an_improvement():
    v = _series([1.0] * 10, seed=5)
    assert regressions.judge_series(np.r_[v, np.log(1.3)], 0.02, 0.001, 1.05).verdict == "suspect"
    down = np.r_[v, np.log([0.7, 0.7])]
    assert regressions.judge_series(down, 0.02, 0.001, 1.05).verdict == "improvement"


def test_a_small_step_under_large_noise_is_inconclusive_with_its_band():
    v = np.r_[_series([1.0] * 10, sigma=0.15, seed=6), np.log([1.1, 1.1])]
    j = regressions.judge_series(v, 0.15, 0.001, 1.05)
    assert j.verdict == "inconclusive" and j.detectable > 0.10
    quiet = regressions.judge_series(_series([1.0] * 10, sigma=0.005, seed=7), 0.005, 0.001, 1.05)
    assert quiet.verdict == "unchanged" and quiet.detectable == pytest.approx(0.05)


def test_too_short_a_history_is_inconclusive():
    j = regressions.judge_series(np.log([1.0, 2.0]), 0.02, 0.001, 1.05)
    assert j.verdict == "inconclusive" and "2 runs" in j.reason
    # three runs: the newest doubled, but a band from two runs cannot say which level is usual
    j = regressions.judge_series(np.log([1.0, 1.01, 2.0]), 0.02, 0.001, 1.05)
    assert j.verdict == "inconclusive" and "3 runs" in j.reason
    # four: a suspect against a band from the three before it, but not yet a regression
    assert regressions.judge_series(np.log([1.0, 1.01, 0.99, 2.0]), 0.02, 0.001, 1.05).verdict == "suspect"
    assert regressions.judge_series(np.log([1.0, 1.01, 2.0, 2.0]), 0.02, 0.001, 1.05).verdict != "regression"


def test_pure_noise_flags_about_alpha_of_series():
    rng = np.random.default_rng(8)
    flagged = sum(
        regressions.judge_series(rng.normal(0, 0.03, 12), 0.03, 0.01, 1.0).verdict in regressions.FLAGS
        for _ in range(4000)
    )
    assert flagged / 4000 < 0.03  # alpha 0.01 per look, plus the t's own estimate


def _runs_frame(levels_by_run, canary_by_run, sigma=0.01, seed=0, device="cpu-1t"):
    """run_values-shaped rows: OPS × runs with per-run multiplicative levels, plus the canary."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (levels, canary) in enumerate(zip(levels_by_run, canary_by_run, strict=True)):
        run_id = f"r{i:02d}"
        at = pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=i)
        for suite, cases, level in (("ops", OPS, levels), ("canary", CANARY, {c: canary for c in CANARY})):
            for case in cases:
                base = 1e-3 * (1 + OPS.index(case) if case in OPS else 2)
                value = base * level.get(case, 1.0) * math.exp(rng.normal(0, sigma))
                rows.append(
                    {
                        "machine": "box",
                        "env_name": "env",
                        "suite_version": "1",
                        "suite": suite,
                        "metric": "latency",
                        "case": case,
                        "batch": 1,
                        "device": device,
                        "layout": "nchw",
                        "dtype": "float32",
                        "mode": "inference",
                        "run_id": run_id,
                        "started_at": at,
                        "hardware_id": "h",
                        "commit_hash": "c",
                        "torch_version": "t",
                        "unit": "seconds",
                        "round": 0,
                        "status": "ok",
                        "reason": None,
                        "value": value,
                        "injected": None,
                    }
                )
    return pd.DataFrame(rows)


def test_planted_steps_in_one_family_are_found_and_nothing_else():
    slow = {c: 1.25 for c in OPS if c.startswith("depthwise")}
    rows = _runs_frame([{}] * 8 + [slow, slow], [1.0] * 10, sigma=0.005)
    table, machines = regressions.scan(series.run_values(rows), 1.05, 0.001)
    flagged = table[table.verdict != "unchanged"]
    assert set(flagged.case) == {c for c in OPS if c.startswith("depthwise")}
    assert set(flagged.verdict) == {"regression"} and set(flagged.first_run) == {"r08"}
    assert not machines["changed"].any() and regressions.exit_code(table) == 1


def test_the_whole_suite_drifting_with_the_canary_is_the_machine():
    drift = {c: 1.3 for c in OPS}
    rows = _runs_frame([{}] * 8 + [drift, drift], [1.0] * 8 + [1.3, 1.3])
    table, machines = regressions.scan(series.run_values(rows), 1.05, 0.001)
    ops = table[table.suite == "ops"]
    assert set(ops.verdict) == {"machine changed"} and regressions.exit_code(table) == 0
    assert set(machines.loc[machines.changed, "run_id"]) == {"r08", "r09"}
    # the same drift with a quiet canary is the code: regressions
    rows = _runs_frame([{}] * 8 + [drift, drift], [1.0] * 10)
    table, _ = regressions.scan(series.run_values(rows), 1.05, 0.001)
    assert set(table[table.suite == "ops"].verdict) == {"regression"}


def _store(tmp_path, rows: pd.DataFrame):
    for run_id, g in rows.groupby("run_id"):
        run = {
            "run_id": run_id,
            "machine": "box",
            "hardware_id": "h0123456789a",
            "started_at": g.started_at.iloc[0].isoformat(),
            "state": "complete",
            "grid": "default",
            "env_name": "env",
            "suite_version": "1",
            "commit_hash": "c",
        }
        events = [
            {
                "suite": r.suite,
                "metric": "latency",
                "params": {k: getattr(r, k) for k in ("case", "batch", "device", "layout", "dtype", "mode")},
                "pid": 1,
                "time": r.started_at.timestamp(),
                "status": "ok",
                "measurement": {"median_s": r.value, "samples_s": [r.value]},
            }
            for r in g.itertuples()
        ]
        RunWriter(tmp_path / "store", run).save(run, events)
    return tmp_path


def test_regressions_cli_json_shape_and_exit_codes(tmp_path, capsys):
    slow = {c: 1.25 for c in OPS if c.startswith("pointwise")}
    root = _store(tmp_path, _runs_frame([{}] * 8 + [slow, slow], [1.0] * 10))
    assert main(["regressions", "--results", str(root), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert {"rule", "rows", "machine_changes", "factor", "alpha"} <= set(out)
    must = {"machine", "metric", "case", "batch", "device", "layout", "dtype", "mode", "verdict", "change"}
    assert all(must <= set(r) for r in out["rows"])
    said = {verdicts.REGRESSION, verdicts.SUSPECT, verdicts.IMPROVEMENT, verdicts.UNCHANGED, verdicts.INCONCLUSIVE}
    assert {r["verdict"] for r in out["rows"]} <= said | {verdicts.MACHINE_CHANGED}
    hit = [r for r in out["rows"] if r["verdict"] == "regression"]
    assert len(hit) == 8 and {r["first_run"] for r in hit} == {"r08"}
    assert main(["regressions", "--results", str(root), "--since", "2026-11-09"]) == 0  # 2 runs: inconclusive
    assert "inconclusive" in capsys.readouterr().out
    assert main(["regressions", "--results", str(root), "--machine", "nowhere"]) == 2
    assert "--machine nowhere: no such machine" in capsys.readouterr().err
    assert main(["regressions", "--results", str(root), "--since", "last tuesday"]) == 2
    assert "--since 'last tuesday' is not a date" in capsys.readouterr().err


def test_compare_uses_the_history_noise_and_says_inconclusive_where_it_is_too_large(tmp_path, capsys):
    noisy = _runs_frame([{}] * 6, [1.0] * 6, sigma=0.2, seed=11)
    quiet = _runs_frame([{}] * 5 + [{OPS[0]: 1.3}], [1.0] * 6, sigma=0.003, seed=12)
    for frame, expected in ((noisy, {"inconclusive"}), (quiet, {"unchanged", "slower"})):
        frame = frame.assign(machine_name="box", run_date=frame.started_at)
        table, _ = compare.compare(frame, "run=r04", "run=r05", 1.05, 0.01)
        assert set(table.verdict) <= expected | {"inconclusive"} and expected & set(table.verdict)
    slower = table[table.verdict == "slower"]
    assert list(slower.case) == [OPS[0]] and slower.change.iloc[0] == pytest.approx(0.3, abs=0.02)
    root = _store(tmp_path, quiet)
    assert main(["compare", "--results", str(root), "--baseline", "run=r04", "--candidate", "run=r05", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    must = {"machine", "metric", "case", "batch", "device", "layout", "dtype", "mode", "verdict", "change"}
    assert all(must <= set(r) for r in out["rows"]) and {r["verdict"] for r in out["rows"]} <= {
        verdicts.SLOWER,
        verdicts.FASTER,
        verdicts.UNCHANGED,
        verdicts.INCONCLUSIVE,
    }


def test_slowdown_does_factor_times_the_calls_spread_evenly():
    from bench_lib.measure import harness

    calls = []
    step = harness.slowed(lambda: calls.append(1), 1.25)
    per_call = []
    for _ in range(400):
        before = len(calls)
        step()
        per_call.append(len(calls) - before)
    assert len(calls) == 500 and set(per_call) == {1, 2} and per_call[:4] == [1, 1, 1, 2]
    with pytest.raises(ValueError, match="at least 1"):
        harness.slowed(lambda: None, 0.9)


def test_a_slowed_call_releases_its_first_output_before_the_extra_one():
    """As between two ordinary calls: a held output makes the extra call write a second buffer."""
    import weakref

    from bench_lib.measure import harness

    class Out:
        pass

    last: list = [None]
    held = []

    def step():
        held.append(last[0] is not None and last[0]() is not None)
        out = Out()
        last[0] = weakref.ref(out)
        return out

    harness.slowed(step, 2.0)()  # one call: the step twice
    assert held == [False, False]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("depthwise", "write REGEX=FACTOR"),
        ("^depthwise\\(=fast", "factor 'fast' is not a number (accepted: 1 to 100)"),
        ("^depthwise\\(=0.5", "factor 0.5 is out of range (accepted: 1 to 100)"),
        ("(=1.2", "is not a regular expression"),
    ],
)
def test_a_bad_slowdown_is_an_argument_error_naming_the_variable(monkeypatch, capsys, text, message):
    from bench_lib.suite import worker

    with pytest.raises(ValueError, match="CONVBENCH_SLOWDOWN"):
        worker.Slowdown.parse(text)
    monkeypatch.setenv("CONVBENCH_SLOWDOWN", text)
    assert main(["run", "--grid", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "CONVBENCH_SLOWDOWN" in err and message in err


def test_a_slowdown_touches_latency_and_energy_of_matching_cases_only():
    from bench_lib.suite import worker
    from bench_lib.suite.combination import Combination

    s = worker.Slowdown.parse("^depthwise\\(=1.1")
    params = ("depthwise(in=8,k=3,bias=false)@14x14", 1, "cpu-1t", "nchw", "float32", "inference")
    assert s.touches(Combination.of("ops", "latency", params)) and s.touches(Combination.of("ops", "energy", params))
    assert not s.touches(Combination.of("ops", "peak_memory", params))
    other = ("depthwise_separable(in=8,out=8,k=3)@14x14", *params[1:])
    assert not s.touches(Combination.of("ops", "latency", other))
    assert s.describe() == "slowdown x1.1 (CONVBENCH_SLOWDOWN=^depthwise\\(=1.1)"


def test_a_slowed_sample_holds_its_share_of_the_extra_calls():
    """With the min statistic every sample must carry the slowdown: blocks are whole periods of it."""
    from bench_lib.measure import devices, harness, timing

    assert harness.slowdown_period(1.25) == 4 and harness.slowdown_period(1.1) == 10
    assert harness.slowdown_period(2.0) == 1
    m = timing.time_callable(lambda: None, devices.backend("cpu-1t"), samples=3, max_time_s=0.01, block_multiple=7)
    assert m.block % 7 == 0


def test_compare_and_regressions_default_to_the_documented_alpha():
    from bench_lib.cli import build_parser

    parser = build_parser()
    for command in (["compare", "--baseline", "a=b", "--candidate", "a=b"], ["regressions"]):
        assert parser.parse_args(command).alpha == verdicts.ALPHA == 0.001


def test_where_to_add_a_verdict_rule_compare_and_regressions_follow_verdicts_alone(monkeypatch):
    # docs/architecture.md, "Where to add": the rule lives in analysis/verdicts.py only. Turned around there,
    # every command's verdict turns around with it (none keeps a copy of its own).
    original = verdicts.direction
    monkeypatch.setattr(verdicts, "direction", lambda change, width: -original(change, width))
    quiet = _runs_frame([{}] * 5 + [{OPS[0]: 1.3}], [1.0] * 6, sigma=0.003, seed=12)
    table, _ = compare.compare(
        quiet.assign(machine_name="box", run_date=quiet.started_at), "run=r04", "run=r05", 1.05, 0.01
    )
    assert list(table[table.verdict == "faster"].case) == [OPS[0]] and "slower" not in set(table.verdict)
    slow = {c: 1.25 for c in OPS if c.startswith("pointwise")}
    table, _ = regressions.scan(series.run_values(_runs_frame([{}] * 8 + [slow, slow], [1.0] * 10)), 1.05, 0.001)
    assert set(table[table.case.str.startswith("pointwise")].verdict) == {"improvement"}
