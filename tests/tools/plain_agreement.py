"""Does convbench's plain process land in the mode a user's bare script lands in? Shares side by side.

    python tests/tools/plain_agreement.py --python .venvs/torch-2.12.1/bin/python --python .venv/bin/python \
        [--processes 12] [--dtype float32 --dtype bfloat16] [--only grouped]

For each op of the plain suite (the ops at 56x56, batch 1, NCHW, one thread, inference) and each interpreter:
``--processes`` runs of a *bare script*, written here by hand as a user writes it (``nn.Conv2d``,
``nn.Sequential``, a reshape, a split: none of convbench's code; 50 warm-up calls, then 200 calls timed one
by one with ``perf_counter``, median; page faults per timed call), and as many of convbench's plain
processes (:func:`bench_lib.measure.fresh.run`, the user's script that
:mod:`bench_lib.measure.user_script` writes). A process is *slow* at 100 or more minor page faults per
call (docs/allocator.md: the slow mode takes 380-560 per call, the fast one 0-120). Prints, per op, dtype and
interpreter, the slow shares of both and the medians of each mode; the two agree where Fisher's exact test
on the two shares gives p >= 0.05 (and, stricter, where the shares are equal).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scipy import stats

from bench_lib.measure import fresh
from bench_lib.measure.task import Task

SLOW_FAULTS_PER_CALL = 100.0  # a process at or above this many minor faults per call is in the slow mode

# Each op of the plain suite at 64 channels, as a user writes it (the module expression; x is the input).
BARE_MODULES = {
    "standard": "nn.Conv2d(64, 64, 3, padding=1, bias=False)",
    "grouped": "nn.Conv2d(64, 64, 3, padding=1, groups=4, bias=False)",
    "depthwise": "nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False)",
    "pointwise": "nn.Conv2d(64, 64, 1, bias=False)",
    "depthwise_separable": (
        "nn.Sequential(nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False), nn.Conv2d(64, 64, 1, bias=False))"
    ),
    "channel_shuffle": "Shuffle()",
    "partial": "Partial()",
}
SPECS = {
    "standard": {"in_channels": 64, "out_channels": 64, "kernel_size": 3, "bias": False},
    "grouped": {"in_channels": 64, "out_channels": 64, "kernel_size": 3, "groups": 4, "bias": False},
    "depthwise": {"in_channels": 64, "kernel_size": 3, "bias": False},
    "pointwise": {"in_channels": 64, "out_channels": 64, "bias": False},
    "depthwise_separable": {"in_channels": 64, "out_channels": 64, "kernel_size": 3},
    "channel_shuffle": {"in_channels": 64, "groups": 4},
    "partial": {"in_channels": 64, "kernel_size": 3, "partial_ratio": 4},
}
BARE = """\
import resource, statistics, sys, time
import torch
from torch import nn


class Shuffle(nn.Module):
    def forward(self, x):
        n, c, h, w = x.shape
        return x.reshape(n, 4, c // 4, h, w).transpose(1, 2).reshape(n, c, h, w)


class Partial(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 16, 3, padding=1, bias=False)

    def forward(self, x):
        x1, x2 = torch.split(x, [16, 48], dim=1)
        return torch.cat((self.conv(x1), x2), dim=1)


torch.set_num_threads(1)
m = {module}.eval().to(torch.{dtype})
x = torch.randn(1, 64, 56, 56).to(torch.{dtype})
with torch.inference_mode():
    for _ in range(50):
        m(x)
    f0, ts = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, []
    for _ in range(200):
        t0 = time.perf_counter()
        m(x)
        ts.append(time.perf_counter() - t0)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 200
print(statistics.median(ts), faults)
"""


def bare(python: str, op: str, dtype: str, processes: int) -> list[tuple[float, float]]:
    """(median seconds, faults per call) of ``processes`` bare scripts."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bare.py"
        path.write_text(BARE.format(module=BARE_MODULES[op], dtype=dtype))
        found = []
        for _ in range(processes):
            out = subprocess.run([python, str(path)], capture_output=True, text=True, check=True)
            median, faults = out.stdout.split()
            found.append((float(median), float(faults)))
        return found


def plain(python: str, op: str, dtype: str, processes: int) -> list[tuple[float, float]]:
    """(median seconds, faults per call) of ``processes`` of convbench's plain processes."""
    spec = fresh.ProcessSpec(Task.of(op, dtype=dtype, allocator="plain", **SPECS[op]))
    records = fresh.run(spec, processes, python=python)
    bad = [r for r in records if "median_s" not in r]
    if bad:
        raise RuntimeError(f"{op} {dtype}: {bad[0]}")
    return [(r["median_s"], r["page_faults_per_call"]) for r in records]


def describe(values: list[tuple[float, float]]) -> tuple[int, str]:
    slow = [m for m, f in values if f >= SLOW_FAULTS_PER_CALL]
    fast = [m for m, f in values if f < SLOW_FAULTS_PER_CALL]
    parts = [f"{statistics.median(v) * 1e6:.0f} us" if v else "-" for v in (fast, slow)]
    return len(slow), f"{len(slow):2d}/{len(values)} slow (fast {parts[0]}, slow {parts[1]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", required=True)
    parser.add_argument("--processes", type=int, default=12)
    parser.add_argument("--dtype", action="append")
    parser.add_argument("--only", action="append", choices=sorted(SPECS))
    parser.add_argument("--json", help="write every process's (median, faults) here")
    args = parser.parse_args(argv)
    everything, equal, total, agree = {}, 0, 0, 0
    print(f"{'op':<20} {'dtype':<9} {'torch':<14} {'bare script':<40} {'convbench plain':<40} p")
    for op in args.only or SPECS:
        for dtype in args.dtype or ["float32", "bfloat16"]:
            for python in args.python:
                version = subprocess.run(
                    [python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
                ).stdout.strip()
                b, p = bare(python, op, dtype, args.processes), plain(python, op, dtype, args.processes)
                (kb, tb), (kp, tp) = describe(b), describe(p)
                pvalue = stats.fisher_exact([[kb, len(b) - kb], [kp, len(p) - kp]])[1]
                total, equal, agree = total + 1, equal + (kb == kp), agree + (pvalue >= 0.05)
                print(f"{op:<20} {dtype:<9} {version:<14} {tb:<40} {tp:<40} {pvalue:.2g}", flush=True)
                everything[f"{op}|{dtype}|{version}"] = {"bare": b, "plain": p}
    print(f"agree (Fisher p >= 0.05): {agree} of {total}; equal shares: {equal} of {total}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
