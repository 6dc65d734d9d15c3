"""How honest is a comparison across machines? Two runs of this machine, one labelled as another machine.

    CB=.venv/bin/convbench; B="bench_ops\\.Latency.*, 1, 'cpu-1t'"
    $CB run --results DIR --grid default --bench "$B" --device cpu-1t --rounds 2
    CONVBENCH_MACHINE=vm-b $CB run --results DIR --grid default --bench "$B" --device cpu-1t --rounds 2
    CONVBENCH_MACHINE=vm-b CONVBENCH_SLOWDOWN='^depthwise\\(=1.25' $CB run --results DIR ... (the same)
    python tests/tools/machines_honesty.py DIR --baseline machine=vm --same run=R2 --planted run=R3 \\
        --family depthwise --factor 1.25

Prints, for the identical pair (baseline against ``--same``): the share of common combinations called
``same speed`` or ``inconclusive``, and how many ``faster``/``slower`` (false alarms); for the planted pair
(baseline against ``--planted``): the share of the family called ``slower``, the share whose interval
covers the planted ratio (1 / factor), whether the family summary's interval covers it, and the false
alarms outside the family.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench_lib.analysis import compare, machines, results, series, verdicts


def _table(results_dir: str, baseline: str, candidate: str):
    store = results.store_of(results_dir)
    rows = results.rounds_of_runs(store, store.runs(), series.READ)
    newest = compare.Selector.parse(candidate).select(rows)["started_at"].max()
    rows = rows[rows["started_at"] <= newest]  # as `convbench compare`: no run after the candidate's
    table, _ = compare.compare(rows, baseline, candidate)
    latency = table[(table["metric"] == "latency") & np.isfinite(table["ratio"].to_numpy(dtype=float))]
    return latency[latency["suite"] != "canary"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--same", required=True)
    parser.add_argument("--planted", required=True)
    parser.add_argument("--family", required=True)
    parser.add_argument("--factor", type=float, default=1.25)
    args = parser.parse_args(argv)
    same = _table(args.results, args.baseline, args.same)
    quiet = same["verdict"].isin([machines.SAME_SPEED, verdicts.INCONCLUSIVE]).sum()
    flagged = same["verdict"].isin([verdicts.FASTER, verdicts.SLOWER]).sum()
    print(
        f"identical: {len(same)} combinations, {quiet} same speed or inconclusive ({quiet / len(same):.1%}), "
        f"{(same['verdict'] == machines.SAME_SPEED).sum()} same speed, {flagged} faster/slower "
        f"({flagged / len(same):.2%}); ratios {same['ratio'].min():.3f} … {same['ratio'].max():.3f}"
    )
    planted = _table(args.results, args.baseline, args.planted)
    target = 1 / args.factor
    fam = planted[planted["family"] == args.family]
    covered = ((fam["low"] <= target) & (target <= fam["high"])).sum()
    slower = (fam["verdict"] == verdicts.SLOWER).sum()
    others = planted[planted["family"] != args.family]
    false = others["verdict"].isin([verdicts.FASTER, verdicts.SLOWER]).sum()
    summary = machines.summaries(planted, verdicts.ALPHA)
    row = summary[(summary["by"] == "family") & (summary["value"] == args.family)].iloc[0]
    print(
        f"planted x{args.factor:g} on {args.family}: {slower} of {len(fam)} slower, intervals covering "
        f"{target:.3f} in {covered} of {len(fam)}, ratios {', '.join(f'{r:.3f}' for r in fam['ratio'])}; "
        f"family summary {row['ratio']:.3f} [{row['low']:.3f}, {row['high']:.3f}] "
        f"{'covers' if row['low'] <= target <= row['high'] else 'misses'} it; "
        f"{false} of {len(others)} other combinations faster/slower"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
