"""How the paired A/B verdict behaves on real A/A runs: which test, which per-process value, how many pairs.

    python tests/tools/ab_study.py /tmp/study/aa1 [/tmp/study/aa2 ...] --pairs 8 12 16 20 30 [--sides B C]

Reads every A/B run of the given result folders (an A/A run: the same environment as both sides). For each
pair count N it cuts each run's pairs into disjoint blocks of N consecutive pairs (each block is an A/A
comparison of N pairs, as a run of N pairs would be) and judges every combination of every block with each
test (:data:`bench_lib.analysis.paired.TESTS`) on each per-process value (the fastest sample ``min`` or
the process median ``value``), at ``--alpha`` and ``--factor``. Per (N, test, value) it prints the blocks,
the combinations judged, the median detectable effect, the share ``unchanged``, ``inconclusive`` and
flagged (``slower`` or ``faster``: false alarms, since both sides are the same code), and the median
|log ratio| spread of the pairs (MAD × 1.4826).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from bench_lib.analysis import noise, paired, results, series, verdicts
from bench_lib.analysis.series import COMBINATION


def pairs_of(results_dir: str, sides: tuple[str, str] = ("A", "B"), exclude: str | None = None) -> pd.DataFrame:
    """One row per (run, combination, pair) of the A/B runs: both sides' ``min`` and ``value`` (suffixes
    ``_a`` and ``_b`` for the two ``sides``), less the cases matching ``exclude``."""
    store = results.store_of(results_dir)
    runs = store.runs()
    runs = runs[verdicts.is_ab(runs)]
    rows = results.rounds_of_runs(store, runs, series.READ)
    rows = rows[(rows["suite"] != "canary") & (rows["status"] == "ok") & rows["pair"].notna()]
    if exclude:
        rows = rows[~rows["case"].str.contains(exclude)]
    a, b = rows[rows["side"] == sides[0]], rows[rows["side"] == sides[1]]
    return a.merge(b, on=[*COMBINATION, "run_id", "pair"], suffixes=("_a", "_b"))


def study(merged: pd.DataFrame, sizes: list[int], alpha: float, factor: float) -> pd.DataFrame:
    out = []
    for n in sizes:
        merged = merged.assign(block=(merged["pair"] // n).astype(int))
        full = merged.groupby(["run_id", "block", *COMBINATION])["pair"].transform("size") == n
        for test in paired.TESTS:
            for value in ("min", "value"):
                d = np.log(merged[f"{value}_b"]) - np.log(merged[f"{value}_a"])
                judged = []
                for _, g in d[full].groupby([merged["run_id"], merged["block"], *(merged[k] for k in COMBINATION)]):
                    j = paired.judge(g.to_numpy(), alpha, test)
                    j["verdict"] = verdicts.by_interval(j["low"], j["high"], factor)
                    j["spread"] = 1.4826 * float(np.median(np.abs(g - np.median(g))))
                    judged.append(j)
                t = pd.DataFrame(judged)
                if t.empty:
                    continue
                counts = t["verdict"].value_counts(normalize=True)
                out.append(
                    {
                        "pairs": n,
                        "test": test,
                        "value": value,
                        "blocks": int(merged.loc[full, ["run_id", "block"]].drop_duplicates().shape[0]),
                        "judged": len(t),
                        "median_detectable": noise.percent(float(t["detectable"].median())),
                        "unchanged": counts.get(verdicts.UNCHANGED, 0.0),
                        "inconclusive": counts.get(verdicts.INCONCLUSIVE, 0.0),
                        "flagged": counts.get(verdicts.SLOWER, 0.0) + counts.get(verdicts.FASTER, 0.0),
                        "median_spread": float(t["spread"].median()),
                    }
                )
    return pd.DataFrame(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+")
    p.add_argument("--pairs", type=int, nargs="+", default=[8, 12, 16, 20, 30])
    p.add_argument("--alpha", type=float, default=verdicts.ALPHA)
    p.add_argument("--factor", type=float, default=verdicts.FACTOR)
    p.add_argument("--sides", nargs=2, default=["A", "B"], help="the two sides compared (default A B)")
    p.add_argument("--exclude", metavar="REGEX", help="leave out cases matching (e.g. a planted slowdown's)")
    args = p.parse_args()
    merged = pd.concat([pairs_of(r, tuple(args.sides), args.exclude) for r in args.results], ignore_index=True)
    print(f"{merged['run_id'].nunique()} A/A run(s), {len(merged)} pairs of processes")
    table = study(merged, args.pairs, args.alpha, args.factor)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
