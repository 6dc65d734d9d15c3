"""What an earlier first look would have done to a budgeted A/B run of two sides: a replay from its pairs.

    python tests/tools/ab_looks.py DIR --pass-seconds 46 [--budget 15] [--looks 8 10 12]

For every combination of the run, the mean and the standard deviation of its pairs' log ratios (read as
``convbench compare`` reads them: :func:`bench_lib.measure.intervals.pair_log_ratio`) stand for what more
pairs would show. The run's own schedule (no look before the budget ends it) gives every combination the
pairs one budget of full passes holds. A first look at ``L`` pairs, then the end, spends alpha / 2 at each:
the look closes every combination its interval decides (:func:`bench_lib.measure.intervals.by_interval`),
and the minutes left go to the open ones, a pass costing its share of the run's seconds per pass of
every combination (``--pass-seconds``, from the run's log) plus 2 s (the servers' restart). Printed per
schedule: combinations closed at the look, pairs the open ones reach, the median interval (half-width) and
the verdicts. Optimistic for the open ones (their spread is taken as known); a replay to choose a schedule,
not a measurement of one.
"""

from __future__ import annotations

import argparse
import math
import statistics

import numpy as np
from ab_spread import KEY, rows_of

from bench_lib.measure import intervals

RESTART_S = 2.0  # a pass's fixed cost: the sides' servers started anew (docs/ab.md, "Where a pass's time goes")


def spreads(folder: str) -> tuple[np.ndarray, np.ndarray]:
    """Per combination the mean and standard deviation of the pairs' log ratios of sides A and B."""
    rows = rows_of(folder)
    m = rows[rows["side"] == "A"].merge(rows[rows["side"] == "B"], on=[*KEY, "pair"], suffixes=("_a", "_b"))
    ratios = zip(m["value_a"], m["value_b"], m["samples_a"], m["samples_b"], strict=True)
    m["d"] = [intervals.pair_log_ratio(a, b, list(x), list(y)) for a, b, x, y in ratios]
    g = m.groupby(KEY)["d"]
    return g.mean().to_numpy(), g.std().to_numpy()


def judge(mean: float, sd: float, n: int, alpha: float) -> tuple[float, str]:
    half = intervals.t_critical(alpha, n - 1) * sd / math.sqrt(n)
    return half, intervals.by_interval(mean - half, mean + half, intervals.FACTOR)


def replay(mean: np.ndarray, sd: np.ndarray, budget_s: float, pass_s: float, look: int | None) -> dict:
    """One schedule: no look (``look`` None, all of alpha at the end) or a look at ``look`` pairs."""
    full = int(budget_s // pass_s)
    if look is None:
        judged = [judge(u, s, full, intervals.ALPHA) for u, s in zip(mean, sd, strict=True)]
        return {"look": "none", "closed": 0, "open_pairs": full, **_summary(judged)}
    alpha = intervals.ALPHA / 2
    at_look = [judge(u, s, look, alpha) for u, s in zip(mean, sd, strict=True)]
    open_ = [i for i, (_, v) in enumerate(at_look) if v == "inconclusive"]
    per_pass = pass_s * len(open_) / len(mean) + RESTART_S
    n = look + int((budget_s - look * pass_s) // per_pass) if open_ else look
    judged = [judge(mean[i], sd[i], n, alpha) if i in open_ else at_look[i] for i in range(len(mean))]
    return {"look": look, "closed": len(mean) - len(open_), "open_pairs": n, **_summary(judged)}


def _summary(judged: list[tuple[float, str]]) -> dict:
    verdicts = [v for _, v in judged]
    return {
        "median_interval_%": round(100 * float(statistics.median(h for h, _ in judged)), 2),
        **{v: verdicts.count(v) for v in ("unchanged", "inconclusive", "slower", "faster")},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--pass-seconds", type=float, required=True, help="a pass of every combination, seconds")
    p.add_argument("--budget", type=float, default=15.0, help="minutes (default 15)")
    p.add_argument("--looks", type=int, nargs="+", default=[6, 8, 10, 12])
    args = p.parse_args()
    mean, sd = spreads(args.folder)
    for look in [None, *args.looks]:
        print(replay(mean, sd, 60 * args.budget, args.pass_seconds, look))


if __name__ == "__main__":
    main()
