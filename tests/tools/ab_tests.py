"""One A/B run judged by every paired test, as ``convbench compare`` would judge it with each.

    python tests/tools/ab_tests.py DIR RUN_ID [A/B B/C ...]

For each pair of sides (default ``A/B``) it runs ``convbench compare --results DIR --baseline
run=RUN_ID,side=A --candidate run=RUN_ID,side=B`` once per test of :data:`bench_lib.analysis.paired.TESTS`
(the default, ``t+sign``, and each alone) and prints the median detectable effect and the count of each
verdict. Everything else is compare's own: the pairs' log ratios, the confidence the run's looks left, the
factor 1.05 and alpha 0.001. docs/ab.md ("Which test") has what it printed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
from collections import Counter

import numpy as np

from bench_lib.analysis import compare, paired


def judged(results_dir: str, run_id: str, baseline: str, candidate: str, test: str) -> tuple[float, Counter]:
    """(median detectable effect, verdict counts) of compare's rows with ``test`` as the paired test."""
    default = paired.judge
    paired.judge = functools.partial(default, test=test)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            compare.run(
                results_dir, f"run={run_id},side={baseline}", f"run={run_id},side={candidate}", 1.05, 0.001, "json"
            )
    finally:
        paired.judge = default
    rows = json.loads(out.getvalue())["rows"]
    detectable = [r["detectable"] for r in rows if isinstance(r.get("detectable"), float)]
    return float(np.median(detectable)) if detectable else float("nan"), Counter(r["verdict"] for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results")
    p.add_argument("run_id")
    p.add_argument("sides", nargs="*", default=["A/B"], help="pairs of sides, BASELINE/CANDIDATE")
    args = p.parse_args()
    for pair in args.sides:
        baseline, candidate = pair.split("/")
        for test in paired.TESTS:
            detectable, verdicts = judged(args.results, args.run_id, baseline, candidate, test)
            counts = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items()))
            print(f"{pair} {test:12s} median ±{100 * detectable:.2f} %   {counts}")


if __name__ == "__main__":
    main()
