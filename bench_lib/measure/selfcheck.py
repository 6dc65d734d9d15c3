"""Self-checks that print figures: is convbench's timing as good as torch.utils.benchmark's?

Not unit tests: their outcome depends on the machine. ``convbench selfcheck timing`` prints each
workload's ratio (convbench median / torch.utils.benchmark median), the median ratio, and the timer's
own overhead per sample; it exits 1 when a workload's median ratio is outside ±3%.
"""

from __future__ import annotations

import statistics

import torch
import torch.utils.benchmark as tub

from bench_lib.measure import harness, metrics
from bench_lib.measure.task import Task

# ~20 us to ~20 ms per call on one core of a 2020s x86 CPU
TIMING_CASES: list[tuple[str, dict]] = [
    ("channel_shuffle", {"in_channels": 116, "groups": 2, "height": 28, "width": 28}),
    ("depthwise", {"in_channels": 32, "height": 28, "width": 28}),
    ("pointwise", {"in_channels": 64, "out_channels": 64, "height": 28, "width": 28}),
    ("depthwise", {"in_channels": 64, "height": 56, "width": 56}),
    ("grouped", {"in_channels": 64, "out_channels": 128, "groups": 4, "height": 56, "width": 56}),
    ("depthwise_separable", {"in_channels": 64, "out_channels": 128, "height": 56, "width": 56}),
    ("standard", {"in_channels": 64, "out_channels": 64, "height": 56, "width": 56}),
    ("mbconv", {"height": 56, "width": 56}),
    ("resnext_bottleneck", {"height": 56, "width": 56}),
    ("standard", {"in_channels": 128, "out_channels": 128, "batch": 4, "height": 56, "width": 56}),
]
TOLERANCE = 0.03
SETTINGS = metrics.Settings(timing={"samples": 15, "max_time_s": 0.5})


def timing(rounds: int = 3, device: str = "cpu-1t") -> int:
    prepared = []
    for name, kw in TIMING_CASES:
        prepared.append(harness.prepare(Task.of(name, device=device, **kw)))
    ratios: list[list[float]] = [[] for _ in prepared]
    ours: list[list[float]] = [[] for _ in prepared]
    theirs: list[list[float]] = [[] for _ in prepared]
    overheads: list[float] = []
    for _ in range(rounds):  # interleaved: each round times every workload with both timers
        for i, p in enumerate(prepared):
            m = metrics.measure(p, "latency", SETTINGS).result
            with p.grad_mode():
                t = tub.Timer(stmt="step()", globals={"step": p.step}, num_threads=torch.get_num_threads())
                ref = t.blocked_autorange(min_run_time=0.5)
            ours[i].append(m.median_s)
            theirs[i].append(ref.median)
            ratios[i].append(m.median_s / ref.median)
            overheads.append(m.timer_overhead_s)
    print(
        f"convbench timing vs torch.utils.benchmark.Timer.blocked_autorange, {device}, {rounds} rounds "
        f"interleaved, torch {torch.__version__}"
    )
    print(f"  {'case':55s} {'convbench':>11s} {'torch':>11s} {'ratio':>7s}  per-round ratios")
    medians = []
    for p, o, t, r in zip(prepared, ours, theirs, ratios, strict=True):
        med = statistics.median(r)
        medians.append(med)
        flag = "" if abs(med - 1) <= TOLERANCE else "  OUTSIDE ±3%"
        print(
            f"  {p.context['case']:55s} {statistics.median(o) * 1e6:9.1f}us {statistics.median(t) * 1e6:9.1f}us "
            f"{med:7.3f}  {' '.join(f'{x:.3f}' for x in r)}{flag}"
        )
    print(f"  median ratio {statistics.median(medians):.3f}; range {min(medians):.3f} … {max(medians):.3f}")
    print(f"  timer overhead per sample (sync + perf_counter): median {statistics.median(overheads) * 1e9:.0f} ns")
    bad = sum(abs(m - 1) > TOLERANCE for m in medians)
    print(f"  {len(medians) - bad} of {len(medians)} within ±{TOLERANCE:.0%}")
    return 0 if bad == 0 else 1
