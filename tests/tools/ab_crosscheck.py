"""Cross-check an A/B comparison with torch.utils.benchmark, in fresh processes of each environment.

    python tests/tools/ab_crosscheck.py --results results --run RUN_ID [--threshold 0.03] [--processes 4]

For every combination whose paired change between side A and each other side of the A/B run is beyond
``--threshold``, each side's interpreter is started ``--processes`` times, alternating the sides; each
process prepares the case as convbench does (:func:`bench_lib.measure.harness.prepare` of its task: the same
module, input, layout, dtype, mode, threads and allocator policy) and times it with
``torch.utils.benchmark.Timer.blocked_autorange(min_run_time=1.0)``, printing the median. Per
combination it prints convbench's ratio and interval beside the ratio of the medians of the processes'
Timer medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIME_ONE = """
import json, sys, torch.utils.benchmark as tb
from bench_lib.measure import devices, harness
from bench_lib.measure.task import Task
c = json.loads(sys.argv[1])
p = harness.prepare(Task(c["case"], device=c["device"], layout=c["layout"], dtype=c["dtype"], mode=c["mode"],
                         batch=int(c["batch"])))
with p.grad_mode():
    threads = devices.parse_spec(c["device"]).threads or 1
    m = tb.Timer(stmt="step()", globals={"step": p.step}, num_threads=threads).blocked_autorange(min_run_time=1.0)
print(json.dumps({"median_s": m.median}))
"""


def time_in(python: str, variables: dict[str, str], combination: dict) -> float:
    env = {**os.environ, **variables, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([python, "-c", TIME_ONE, json.dumps(combination)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])["median_s"]


def main() -> None:
    from bench_lib.analysis import compare, results

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default="results")
    p.add_argument("--run", required=True)
    p.add_argument("--threshold", type=float, default=0.03)
    p.add_argument("--processes", type=int, default=4)
    args = p.parse_args()
    store = results.store_of(args.results)
    runs = store.runs()
    run = runs[runs["run_id"] == args.run].iloc[0]
    sides = json.loads(run["sides"])
    rows = results.rounds_of_runs(store, runs[runs["run_id"] == args.run], compare.series.READ)
    for side in sides[1:]:
        table, _ = compare.compare(rows, f"run={args.run},side=A", f"run={args.run},side={side['label']}", runs=runs)
        moved = table[table["change"].abs() > args.threshold]
        print(f"side {side['label']} / side A: {len(moved)} of {len(table)} combinations beyond {args.threshold:.0%}")
        for r in moved.itertuples():
            combination = {k: getattr(r, k) for k in ("case", "batch", "device", "layout", "dtype", "mode")}
            timed = {"A": [], side["label"]: []}
            for i in range(args.processes):
                for s in (sides[0], side) if i % 2 == 0 else (side, sides[0]):
                    timed[s["label"]].append(time_in(s["python"], s.get("variables") or {}, combination))
            ratio = statistics.median(timed[side["label"]]) / statistics.median(timed["A"])
            print(
                f"  {r.case} b{r.batch} {r.layout} {r.dtype}: convbench {r.verdict} {r.change:+.1%} "
                f"[{r.low:+.1%}, {r.high:+.1%}]; torch.utils.benchmark {ratio - 1:+.1%} "
                f"(A {statistics.median(timed['A']) * 1e3:.3f} ms, {side['label']} "
                f"{statistics.median(timed[side['label']]) * 1e3:.3f} ms, {args.processes} processes each)",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
