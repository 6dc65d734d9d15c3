"""Between-process spread under host settings: fresh processes, interleaved, one nightly round each.

    python tests/tools/host_settings_spread.py --reps 30 --settings base thp jemalloc

Each repetition starts one fresh process per setting, in turn (so a minute of the machine touches every
setting alike), and each process times pointwise 64→64 and depthwise 64 ch at 56×56, batch 8, on
``cpu-1t`` with one round's timing of the nightly grid (``grids.ROUND_TIMING``), under the steady
allocator policy as a worker would. Per setting and op it prints the median latency and the spread of
log values (sample standard deviation) of each process's median and minimum, and of the best of 5
processes (a nightly run's value: its fastest round's fastest sample; resampled 2,000 times without
replacement from the processes of that setting). Settings:

- ``base``: as a worker runs without convbench's THP default (``THP_MEM_ALLOC_ENABLE=0``);
- ``pin``: ``base`` pinned to CPU 0 with ``taskset``;
- ``thp``: ``THP_MEM_ALLOC_ENABLE=1`` (PyTorch's huge pages for CPU tensors of 2 MiB and more);
- ``jemalloc`` / ``tcmalloc``: ``base`` with that allocator preloaded (``LD_PRELOAD``; Debian's
  ``libjemalloc2`` and ``libtcmalloc-minimal4``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

LIBS = {
    "jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
}
OPS = {"pointwise": {"in_channels": 64, "out_channels": 64}, "depthwise": {"in_channels": 64}}
ONE_PROCESS = """
import json
from bench_lib.measure import harness, metrics
from bench_lib.measure.task import Task
from bench_lib.suite import grids
OPS = json.loads(OPS_JSON)
out = {}
settings = metrics.Settings(timing=grids.ROUND_TIMING)
for name, params in OPS.items():
    m = metrics.measure(harness.prepare(Task.of(name, device="cpu-1t", batch=8, **params)), "latency", settings).result
    out[name] = [m.min_s, m.median_s]
print(json.dumps(out))
"""


def command(setting: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "1" if setting == "thp" else "0"}
    env.pop("LD_PRELOAD", None)
    if setting in LIBS:
        if not os.path.exists(LIBS[setting]):
            raise SystemExit(f"--settings {setting}: {LIBS[setting]} is not installed")
        env["LD_PRELOAD"] = LIBS[setting]
    cmd = [sys.executable, "-c", f"OPS_JSON = {json.dumps(json.dumps(OPS))}\n{ONE_PROCESS}"]
    return (["taskset", "-c", "0", *cmd] if setting == "pin" else cmd), env


def one(setting: str) -> dict[str, list[float]]:
    cmd, env = command(setting)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(found: dict[str, list[dict]], rng: np.random.Generator) -> None:
    print(f"{'op':10s} {'setting':9s} {'median ms':>9s}  sd(log): process median  process min  best of 5")
    for op in OPS:
        for setting, runs in found.items():
            mins = np.array([r[op][0] for r in runs])
            meds = np.array([r[op][1] for r in runs])
            best5 = [mins[rng.choice(len(mins), 5, replace=False)].min() for _ in range(2000)]
            print(
                f"{op:10s} {setting:9s} {np.median(meds) * 1e3:9.3f}  {np.log(meds).std(ddof=1):22.3f}"
                f"  {np.log(mins).std(ddof=1):11.3f}  {np.log(best5).std():9.3f}"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=30, help="fresh processes per setting (at least 10)")
    choices = ["base", "pin", "thp", *LIBS]
    ap.add_argument("--settings", nargs="+", choices=choices, default=["base", "thp", "jemalloc"])
    ap.add_argument("--seed", type=int, default=0, help="of the best-of-5 resampling")
    args = ap.parse_args(argv)
    if args.reps < 10:
        ap.error(f"--reps {args.reps}: the best of 5 processes resampled needs at least 10 (accepted: 10 and more)")
    found: dict[str, list[dict]] = {s: [] for s in args.settings}
    for rep in range(args.reps):
        for setting in args.settings:
            found[setting].append(one(setting))
        print(f"repetition {rep + 1}/{args.reps}", file=sys.stderr, flush=True)
    summary(found, np.random.default_rng(args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
