"""What moves a fresh process between glibc's fast and slow mode: the bare user script, one change at a time.

    python tests/tools/plain_bisect.py --python .venvs/torch-2.12.1/bin/python [--processes 6]

The bare script (docs/allocator.md): ``import torch``, a grouped 3x3 conv g=4 over 64 channels at 56x56,
batch 1, float32, bias-free, one thread, 50 warm-up calls, 200 calls timed one by one. Each variant adds one
thing convbench's plain process did (or does) to it, at the point it did it: an import before torch, after
building the module, after the warm-up; the float64 reference check in the process; convbench's timing;
another launcher; an environment variable. Each runs in ``--processes`` fresh interpreters; a process is
slow at 100 or more minor page faults per timed call. Prints each variant's slow share and medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SLOW_FAULTS_PER_CALL = 100.0

SCRIPT = """\
import resource, statistics, sys, time
sys.path.insert(0, {root!r})
{top}
import torch
torch.set_num_threads(1)
{threads}
m = torch.nn.Conv2d(64, 64, 3, padding=1, groups=4, bias=False)
x = torch.randn(1, 64, 56, 56)
{built}
def flt():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with torch.inference_mode():
    for _ in range(50):
        m(x)
    {warm}
    f0, ts = flt(), []
    for _ in range(200):
        t0 = time.perf_counter()
        m(x)
        ts.append(time.perf_counter() - t0)
print(statistics.median(ts), (flt() - f0) / 200)
"""
REFERENCE = "with torch.no_grad():\n    ref = m.double()(x.double()); m.float(); del ref"
HEAVY = "import bench_lib.measure.harness"
LIGHT = "import bench_lib.measure.timing"

RUN_VARIABLES = {  # what a run's asv worker, an A/B side's, had in its environment beside the user's
    "PYTHONPATH": str(ROOT),
    "CONVBENCH_GRID": "nightly",
    "CONVBENCH_EVENTS": "/tmp/convbench-run-0123456789/events.jsonl",
    "CONVBENCH_CHECKS": "/tmp/convbench-run-0123456789/checks-B.jsonl",
    "CONVBENCH_REFERENCES": "/tmp/convbench-run-0123456789/references-B",
    "CONVBENCH_SIDE": "B",
}
# name: (top, threads, built, warm, launcher prefix, extra environment)
VARIANTS = {
    "bare script": ("", "", "", "", [], {}),
    "numpy imported before torch": ("import numpy", "", "", "", [], {}),
    "pandas imported before torch": ("import pandas", "", "", "", [], {}),
    "convbench's harness imported before torch": (HEAVY, "", "", "", [], {}),
    "convbench's harness imported after building": ("", "", HEAVY, "", [], {}),
    "convbench's harness imported after 50 warm-up calls": ("", "", "", HEAVY, [], {}),
    "convbench's catalogue only, after building": ("", "", "import bench_lib.catalogue", "", [], {}),
    "convbench's timing module (stdlib only) after building": ("", "", LIGHT, "", [], {}),
    "convbench's timing module (stdlib only) at the top": (LIGHT, "", "", "", [], {}),
    "float64 reference check in the process": ("", "", REFERENCE, "", [], {}),
    "inter-op threads set to 1 too": ("", "torch.set_num_interop_threads(1)", "", "", [], {}),
    "launched with python -X importtime (more imports' bookkeeping)": ("", "", "", "", ["-X", "importtime"], {}),
    "THP_MEM_ALLOC_ENABLE=1 (a run's own setting)": ("", "", "", "", [], {"THP_MEM_ALLOC_ENABLE": "1"}),
    "MALLOC_ARENA_MAX=1": ("", "", "", "", [], {"MALLOC_ARENA_MAX": "1"}),
    "PYTHONPATH=<the project> (an A/B side's workers had it)": ("", "", "", "", [], {"PYTHONPATH": str(ROOT)}),
    "convbench run's worker variables (CONVBENCH_*, PYTHONPATH)": ("", "", "", "", [], RUN_VARIABLES),
}


def run_variant(python: str, variant: tuple, processes: int) -> list[tuple[float, float]]:
    top, threads, built, warm, launcher, env = variant
    text = SCRIPT.format(root=str(ROOT), top=top, threads=threads, built=built, warm=warm)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "variant.py"
        path.write_text(text)
        found = []
        for _ in range(processes):
            out = subprocess.run(
                [python, *launcher, str(path)], capture_output=True, text=True, env={**os.environ, **env}, check=True
            )
            median, faults = out.stdout.split()
            found.append((float(median), float(faults)))
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--only", action="append", help="variants whose name contains this")
    args = parser.parse_args(argv)
    print(f"{'variant':<66} {'slow':>6}  {'fast median':>11}  {'slow median':>11}")
    for name, variant in VARIANTS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        values = run_variant(args.python, variant, args.processes)
        slow = [m for m, f in values if f >= SLOW_FAULTS_PER_CALL]
        fast = [m for m, f in values if f < SLOW_FAULTS_PER_CALL]
        cells = [f"{statistics.median(v) * 1e6:.0f} us" if v else "-" for v in (fast, slow)]
        print(f"{name:<66} {len(slow):>2}/{len(values):<3}  {cells[0]:>11}  {cells[1]:>11}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
