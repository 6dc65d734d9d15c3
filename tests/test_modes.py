"""Per-process modes and fresh processes: the allocator state a user's process really has."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from bench_lib.measure import allocator, fresh, modes
from bench_lib.measure.task import Task


def test_two_modes_are_found_with_their_shares():
    values = [0.6e-3, 0.61e-3, 2.0e-3, 1.9e-3, 2.1e-3, 2.05e-3, 1.95e-3, 2.2e-3, 1.85e-3, 2.0e-3, 2.0e-3, 2.1e-3]
    found = modes.find(values)
    assert [m.processes for m in found] == [2, 10]
    assert found[0].value_s == pytest.approx(0.605e-3) and found[1].value_s == pytest.approx(2.0e-3)
    assert modes.is_multimodal(found)
    assert modes.describe(found) == "2 modes: 605 us in 2 of 12 processes, 2 ms in 10"


def test_a_spread_of_a_few_percent_is_one_mode():
    rng = np.random.default_rng(0)
    found = modes.find(1e-3 * np.exp(rng.normal(0, 0.03, size=12)))
    assert len(found) == 1 and found[0].processes == 12
    assert modes.describe(found) == f"1 mode: {modes._seconds(found[0].value_s)} in 12 processes"
    assert not modes.is_multimodal(found)


def test_the_gap_is_a_ratio_between_neighbours():
    assert len(modes.find([1.0, 1.19])) == 1  # 19 % apart
    assert len(modes.find([1.0, 1.21])) == 2  # 21 % apart
    assert len(modes.find([1.0, 1.1, 1.2, 1.3, 1.4, 1.5])) == 1  # a slope, no gap
    assert [m.processes for m in modes.find([1.0, 3.0, 9.0, math.nan, 0.0])] == [1, 1, 1]  # NaN and 0 dropped
    assert modes.find([]) == [] and modes.describe([]) == "no process measured"
    assert not modes.is_multimodal(modes.find([1.0, 3.0]))  # two processes never make modes


def test_the_slow_share_is_counted_past_the_boundary_of_both_sets():
    before, after = [0.6] * 12, [0.6, 0.6] + [2.0] * 10
    edge = modes.boundary(before, after)
    assert edge == 2.0
    assert modes.slow_count(before, edge) == (0, 12) and modes.slow_count(after, edge) == (10, 12)
    assert modes.boundary([1.0, 1.01], [1.02]) is None


def test_the_share_test_is_fishers_exact_test():
    assert modes.share_test(0, 12, 10, 12) == pytest.approx(stats.fisher_exact([[0, 12], [10, 2]]).pvalue)
    assert modes.share_test(0, 12, 10, 12) < 0.001  # the 0 of 12 against 10 of 12
    assert modes.share_test(5, 12, 6, 12) == pytest.approx(1.0)
    assert modes.share_test(0, 0, 3, 4) == 1.0


def test_plain_sets_nothing_and_refuses_another_policy_before_it():
    code = (
        "from bench_lib.measure import allocator\n"
        "print(allocator.apply('plain'))\n"
        "allocator.apply('steady')\n"
        "try:\n"
        "    allocator.apply('plain')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    assert first.startswith("glibc defaults, no mallopt (plain)") or "preloaded" in first
    assert second == "allocator='plain' needs a fresh process: this one is already under 'steady'"


@pytest.mark.skipif(allocator.heap_state() is None, reason="no glibc mallinfo2 here (glibc < 2.33, or not glibc)")
def test_the_heap_state_sees_a_large_buffer_mapped_on_its_own():
    """In a fresh process (this one may be under steady: nothing mapped on its own there)."""
    code = (
        "import torch\n"
        "from bench_lib.measure import allocator\n"
        "before = allocator.heap_state()\n"
        "big = torch.empty(64 * 2**20 // 4)  # 64 MiB: above glibc's largest dynamic mmap threshold (32 MiB)\n"
        "during = allocator.heap_state()\n"
        "print(during.mapped_bytes - before.mapped_bytes, during.mapped_chunks - before.mapped_chunks)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    grown, chunks = map(int, out.stdout.split())
    assert grown >= 64 * 2**20 and chunks == 1


def test_fresh_processes_each_give_a_record_with_what_they_had():
    task = Task.of("depthwise", in_channels=8, height=16, width=16, allocator="plain")
    spec = fresh.ProcessSpec(task, timing={"samples": 5, "max_time_s": 0.1})
    records = fresh.run(spec, 2)
    assert len(records) == 2 and len({r["pid"] for r in records}) == 2  # two processes
    for r in records:
        assert r["median_s"] > 0 and r["samples"] >= 5 and r["page_faults_per_call"] >= 0
        assert r["allocator"].startswith("glibc defaults, no mallopt (plain)") or "preloaded" in r["allocator"]
        assert set(r["page_offset_bytes"]) == {"input", "weight", "output"}
        assert all(0 <= v < 4096 for v in r["page_offset_bytes"].values())
        assert r["kernel"].startswith("aten::")


def test_a_failing_fresh_process_is_a_record_with_its_error():
    spec = fresh.ProcessSpec(
        Task.of("depthwise", in_channels=8, height=16, width=16, allocator="warm"), checked_error=0.0
    )
    (record,) = fresh.run(spec, 1)
    assert record["error"].startswith("the process failed (exit 1): ValueError: allocator='warm' is not valid")
    with pytest.raises(RuntimeError, match="the reference check the process failed"):
        fresh.check(fresh.ProcessSpec(Task("nonesuch@8x8")))


def test_measure_with_processes_prints_each_process_and_the_modes(tmp_path):
    cmd = [sys.executable, "-m", "bench_lib.cli", "measure", "depthwise", "in_channels=8", "--height", "16"]
    cmd += ["--width", "16", "--allocator", "plain", "--processes", "2", "--samples", "5", "--max-time", "0.1"]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert len(found["processes"]) == 2 and sum(m["processes"] for m in found["modes"]) == 2
    assert found["modes_text"].startswith(("1 mode: ", "2 modes: "))
    bad = subprocess.run([*cmd, "--breakdown"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert (
        bad.stderr.strip()
        .splitlines()[-1]
        .endswith("--breakdown is measured in one process: leave out --processes and --allocator plain")
    )


def _latency_event(suite: str, case: str, median_s: float, side: str | None = None) -> dict:
    params = {"case": case, "batch": 1, "device": "cpu-1t", "layout": "nchw", "dtype": "float32", "mode": "inference"}
    event = {"suite": suite, "metric": "latency", "params": params, "status": "ok"}
    return {**event, "measurement": {"median_s": median_s}, **({"side": side} if side else {})}


def test_a_runs_summary_names_multimodal_and_allocator_sensitive_combinations():
    from bench_lib.suite import summary

    case = "grouped(in=64,g=4)@56x56"
    events = [_latency_event("ops", case, v) for v in (0.6e-3, 0.61e-3, 0.59e-3, 0.6e-3, 0.62e-3)]
    events += [_latency_event("plain", case, v) for v in [0.6e-3] * 2 + [2.0e-3] * 10]
    events += [_latency_event("plain", "depthwise(in=64)@56x56", v) for v in [1e-4] * 12]  # no steady: not judged
    events += [_latency_event("canary", case, v) for v in (1e-3, 3e-3, 9e-3)]  # never judged
    multimodal, allocator = summary.process_findings(events)
    assert multimodal == [
        (
            "bench_plain.Latency.track_latency('grouped(in=64,g=4)@56x56', 1, 'cpu-1t', 'nchw', 'float32', "
            "'inference')",
            "2 modes: 600 us in 2 of 12 processes, 2 ms in 10",
        )
    ]
    ((name, text),) = allocator
    assert name.startswith("bench_plain.Latency") and text.startswith(
        "10 of 12 fresh processes 1.2x or more slower than steady (600 us); 2 modes"
    )
    sides = [_latency_event("ops", case, v, side) for side in "AB" for v in (1e-3, 1e-3, 3e-3)]
    found, _ = summary.process_findings(sides)
    assert [name.rsplit(" ", 2)[-2:] for name, _ in found] == [["[side", "A]"], ["[side", "B]"]]


def test_a_fresh_process_that_cannot_run_here_is_a_skip_with_its_reason():
    from bench_lib.measure import harness

    task = Task.of("depthwise", in_channels=8, device="cuda:0", height=16, width=16, allocator="plain")
    spec = fresh.ProcessSpec(task, checked_error=0.0)
    with pytest.raises(harness.Unsupported, match="cuda:0: "):
        fresh.one(spec)


def _rows(env: str, suite: str, values: list[float], faults: list[float] | None = None, run: str = "r1"):
    import pandas as pd

    base = {
        "run_id": run,
        "machine": "vm",
        "hardware_id": "h",
        "env_name": env,
        "suite_version": "1",
        "unit": "seconds",
    }
    base.update(metric="latency", case="grouped(in=64,g=4)@56x56", batch=1, device="cpu-1t", layout="nchw")
    base.update(dtype="float32", mode="inference", status="ok", kernel="aten::mkldnn_convolution", injected=None)
    return pd.DataFrame(
        [
            {
                **base,
                "suite": suite,
                "round": i,
                "value": v,
                "min": v,
                "page_faults_per_call": (faults or [0.0] * 99)[i],
            }
            for i, v in enumerate(values)
        ]
    )


def test_findings_give_each_plain_combination_its_modes_against_steady_and_its_faults():
    import pandas as pd

    from bench_lib.analysis import processes

    plain = _rows("e", "plain", [0.6e-3] * 2 + [2.0e-3] * 10, faults=[0.0] * 2 + [900.0] * 10)
    steady = _rows("e", "ops", [0.6e-3, 0.59e-3, 0.61e-3, 0.6e-3, 0.6e-3])
    found = processes.findings(pd.concat([plain, steady])).set_index("suite")
    assert found.loc["plain", "modes"] == "2 modes: 600 us in 2 of 12 processes, 2 ms in 10"
    assert found.loc["plain", "multimodal"] and found.loc["plain", "allocator_sensitive"]
    assert found.loc["plain", "slow"] == 10 and found.loc["plain", "steady_s"] == pytest.approx(0.6e-3)
    assert (found.loc["plain", "faults_fast"], found.loc["plain", "faults_slow"]) == (0.0, 900.0)
    assert found.loc["plain", "kernels"] == 1
    assert not found.loc["ops", "multimodal"] and found.loc["ops", "processes"] == 5


def test_compare_tests_the_share_of_processes_in_the_slow_mode():
    import pandas as pd

    from bench_lib.analysis import compare, verdicts

    before = _rows("torch-2.12.1", "plain", [0.6e-3] * 12, run="r1").assign(torch_version="2.12.1")
    after = _rows("torch-2.13.0", "plain", [0.6e-3] * 2 + [2.0e-3] * 10, run="r2").assign(torch_version="2.13.0")
    rows = pd.concat([before, after]).assign(
        started_at=pd.Timestamp("2026-12-02", tz="UTC"), commit_hash="c", reason=None, side=None, pair=None
    )
    table, _ = compare.compare(rows, "env=torch-2.12.1", "env=torch-2.13.0")
    (row,) = table.to_dict("records")
    assert row["slow_share"] == f"0/12 → 10/12 (p {modes.share_test(0, 12, 10, 12):.2g})"
    assert row["verdict"] == verdicts.SLOWER  # the fastest process did not move; the share did
    assert compare.verdict_text(table.iloc[0]).endswith(", mode shift)")
    same = pd.concat([before, before.assign(env_name="torch-2.13.0", run_id="r2")]).assign(
        started_at=pd.Timestamp("2026-12-02", tz="UTC"), commit_hash="c", reason=None, side=None, pair=None
    )
    table, _ = compare.compare(same, "env=torch-2.12.1", "env=torch-2.13.0")
    assert table["slow_share"].isna().all()  # one mode on both sides: nothing to count


def test_the_store_keeps_each_process_and_the_report_lists_the_allocator_sensitive_ones(tmp_path):
    from test_store import GROUPED, event, run, save

    from bench_lib.analysis import report, results

    events, pid = [], 0
    for suite, medians in (("ops", [0.6e-3] * 5), ("plain", [0.6e-3] * 2 + [2.0e-3] * 10)):
        for median in medians:
            pid += 1
            e = event(GROUPED, median=median, pid=pid, suite=suite)
            faults = 900.0 if median > 1e-3 else 0.0
            e["measurement"]["page_faults_per_call"] = faults
            if suite == "plain":
                e["process"] = {"pid": 5000 + pid, "heap": {"mapped_bytes": 4 << 20}, "page_faults_per_call": faults}
            events.append(e)
    save(tmp_path / "results", run(), events)
    store = results.store_of(str(tmp_path / "results"))
    rows = store.of_runs("measurements", store.runs(), columns=None).to_pandas()
    plain = rows[rows["suite"] == "plain"]
    assert len(plain) == 12 and plain["page_faults_per_call"].tolist() == [0.0] * 2 + [900.0] * 10
    assert json.loads(plain["process"].iloc[0])["heap"] == {"mapped_bytes": 4 << 20}
    assert rows.loc[rows["suite"] == "ops", "process"].isna().all()
    index, _ = report.build(str(tmp_path / "results"), str(tmp_path / "report"), publish=False, run_notebooks=False)
    page = index.read_text()
    section = page[page.index("<section id='processes'>") :]
    section = section[: section.index("</section>")]
    assert "1 multimodal, 1 allocator-sensitive combination(s)" in section
    assert "2 modes: 600 us in 2 of 12 processes, 2 ms in 10" in section


def test_a_fresh_process_has_the_users_environment_not_the_runs_huge_pages():
    run_set = {"THP_MEM_ALLOC_ENABLE": "1", fresh.RUN_SET_THP: "1", "PATH": "/bin"}
    assert fresh.user_environment(run_set) == {"PATH": "/bin"}
    user_set = {"THP_MEM_ALLOC_ENABLE": "1", "PATH": "/bin"}
    assert fresh.user_environment(user_set) == user_set


def _history(shares: list[int], n: int = 12):
    """Rows of one plain series over runs r0, r1, ...: run i has ``shares[i]`` of its ``n`` processes slow."""
    import pandas as pd

    runs = []
    for i, slow in enumerate(shares):
        values = [0.6e-3 + 1e-6 * k for k in range(n - slow)] + [2.0e-3 + 1e-6 * k for k in range(slow)]
        rows = _rows("torch", "plain", values, run=f"r{i}")
        runs.append(rows.assign(started_at=pd.Timestamp("2026-12-01", tz="UTC") + pd.Timedelta(days=i)))
    return pd.concat(runs, ignore_index=True).assign(machine="m", suite_version="1")


def _judged(rows, verdict: str):
    import pandas as pd

    from bench_lib.analysis import series

    return pd.DataFrame([{**rows.iloc[0][series.SERIES].to_dict(), "verdict": verdict}])


def test_regressions_call_a_mode_shift_in_the_newest_two_runs_a_regression():
    from bench_lib.analysis import processes, verdicts

    shifted = _history([0, 0, 0, 12, 12])
    (row,) = processes.in_history(_judged(shifted, verdicts.INCONCLUSIVE), shifted, 0.001, 4).to_dict("records")
    assert row["verdict"] == verdicts.REGRESSION
    p = modes.share_test(0, 36, 12, 12)
    assert row["slow_share"] == f"0/36 → 12/12, 12/12 (p {p:.2g}, {p:.2g})"
    newest = _history([0, 0, 0, 0, 12])
    assert processes.in_history(_judged(newest, verdicts.UNCHANGED), newest, 0.001, 4)["verdict"][0] == "suspect"
    back = _history([12, 12, 12, 0, 0])
    assert processes.in_history(_judged(back, verdicts.UNCHANGED), back, 0.001, 4)["verdict"][0] == "improvement"


def test_regressions_leave_a_steady_share_and_a_short_history_alone():
    from bench_lib.analysis import processes, verdicts

    same = _history([8, 7, 9, 8, 8])  # identical code in two modes: the shares wander, they do not move
    (row,) = processes.in_history(_judged(same, verdicts.UNCHANGED), same, 0.001, 4).to_dict("records")
    assert row["verdict"] == verdicts.UNCHANGED and row["slow_share"].startswith("24/36 → 8/12, 8/12")
    short = _history([0, 0, 12])
    assert processes.in_history(_judged(short, verdicts.INCONCLUSIVE), short, 0.001, 4)["verdict"][0] == "inconclusive"
    flagged = _history([0, 0, 0, 11, 12])  # the value saw the newest run only (the 4th's fastest process was fast)
    assert processes.in_history(_judged(flagged, verdicts.SUSPECT), flagged, 0.001, 4)["verdict"][0] == "regression"
    kept = _history([0, 0, 0, 0, 12])  # a suspect by both rules stays one; a value regression is never lowered
    assert processes.in_history(_judged(kept, verdicts.SUSPECT), kept, 0.001, 4)["verdict"][0] == "suspect"
    assert processes.in_history(_judged(kept, verdicts.REGRESSION), kept, 0.001, 4)["verdict"][0] == "regression"


def test_a_plain_process_inside_a_run_starts_with_the_users_environment(tmp_path):
    from bench_lib.suite import ab

    started = {"PATH": "/bin", "HOME": "/home/u", "PYTHONPATH": "/users/own"}
    kept = fresh.keep_user_environment(tmp_path / "user.json", started)
    worker = {**started, "PYTHONPATH": "/project:/users/own", "CONVBENCH_EVENTS": "e", fresh.USER_ENV: kept}
    assert fresh.user_environment(worker) == started  # nothing the run gave its workers
    side = ab.Side("B", "/b/python", (("LD_PRELOAD", "libjemalloc.so"),))
    env = ab.side_environment(worker, side, tmp_path, tmp_path / "project")
    assert env["PYTHONPATH"].startswith(str(tmp_path / "project")) and env["CONVBENCH_SIDE"] == "B"
    assert fresh.user_environment(env) == {**started, "LD_PRELOAD": "libjemalloc.so"}  # the side's own variable
    (tmp_path / "user.json").unlink()  # gone: the fallback, without the run's own huge pages
    assert fresh.user_environment(
        {"A": "1", "THP_MEM_ALLOC_ENABLE": "1", fresh.RUN_SET_THP: "1", fresh.USER_ENV: kept}
    ) == {
        "A": "1",
        fresh.USER_ENV: kept,
    }
