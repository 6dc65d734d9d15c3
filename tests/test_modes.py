"""Per-process modes and fresh processes: the allocator state a user's process really has."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from bench_lib.analysis import modes
from bench_lib.measure import allocator, fresh


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
    import torch

    before = allocator.heap_state()
    big = torch.empty(64 * 2**20 // 4)  # 64 MiB: above glibc's largest dynamic mmap threshold (32 MiB)
    during = allocator.heap_state()
    del big
    assert during.mapped_bytes - before.mapped_bytes >= 64 * 2**20
    assert during.mapped_chunks == before.mapped_chunks + 1


def test_fresh_processes_each_give_a_record_with_what_they_had():
    spec = fresh.ProcessSpec(
        "depthwise", {"in_channels": 8}, height=16, width=16, timing={"samples": 5, "max_time_s": 0.1}
    )
    records = fresh.run(spec, 2)
    assert len(records) == 2 and len({r["pid"] for r in records}) == 2  # two processes
    for r in records:
        assert r["median_s"] > 0 and r["samples"] >= 5 and r["page_faults_per_call"] >= 0
        assert r["allocator"].startswith("glibc defaults, no mallopt (plain)") or "preloaded" in r["allocator"]
        assert set(r["page_offset_bytes"]) == {"input", "weight", "output"}
        assert all(0 <= v < 4096 for v in r["page_offset_bytes"].values())
        assert r["kernel"].startswith("aten::")


def test_a_failing_fresh_process_is_a_record_with_its_error():
    spec = fresh.ProcessSpec("depthwise", {"in_channels": 8}, height=16, width=16, allocator="warm", checked_error=0.0)
    (record,) = fresh.run(spec, 1)
    assert record["error"].startswith("the process failed (exit 1): ValueError: allocator='warm' is not valid")
    with pytest.raises(RuntimeError, match="the reference check the process failed"):
        fresh.check(fresh.ProcessSpec("nonesuch"))


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
