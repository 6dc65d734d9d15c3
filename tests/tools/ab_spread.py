"""Where an A/B run's noise comes from: per pair of sides, the spread of the pairs' log ratios and the part
of it the processes' own sampling explains; with ``--abcba``, how much faster a sample is right after its
own side's than after another side's (for runs made with the order of before, A B C C B A).

    python tests/tools/ab_spread.py DIR [DIR ...] [--abcba]

For each A/B run of each results folder, and each two of its sides: the median over combinations of

- ``spread``: the standard deviation of the pairs' log ratios of the process medians (the ratio of before);
- ``sampling``: the standard deviation those ratios would have from each process's samples alone (the
  variance of a median of n samples taken as π/2 × their variance / n, summed over the two processes);
- ``at 20 pairs``: the t interval's half-width that spread gives at 20 pairs, alpha 0.001;
- ``rounds``, ``rounds at 20``: the same two for the pairs' ratios as ``convbench compare`` reads an
  interleaved pair (the median of its rounds' log ratios, :func:`bench_lib.measure.intervals.pair_log_ratio`);
- ``fastest``: the spread of the pairs' log ratios of the two processes' fastest samples.

A ``spread`` well above ``sampling`` is noise between processes (memory layouts, the machine's minutes);
close to it, the samples within each process are what to make steadier.
"""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
import pandas as pd

from bench_lib.analysis import results, verdicts
from bench_lib.measure import intervals

KEY = ["run_id", "case", "batch", "layout", "dtype", "mode", "device"]


def rows_of(folder: str) -> pd.DataFrame:
    store = results.store_of(folder)
    runs = store.runs()
    runs = runs[verdicts.is_ab(runs)]
    rows = store.frame("measurements")
    rows = rows[rows["run_id"].isin(runs["run_id"]) & (rows["suite"] != "canary") & (rows["status"] == "ok")]
    rows = rows[rows["pair"].notna()].copy()
    rows["log_value"] = np.log(rows["value"])
    rows["sampling_var"] = rows["samples"].map(lambda s: math.pi / 2 * np.log(np.asarray(s)).var(ddof=1) / len(s))
    return rows


def spread(rows: pd.DataFrame, a: str, b: str) -> dict[str, float]:
    m = rows[rows["side"] == a].merge(rows[rows["side"] == b], on=[*KEY, "pair"], suffixes=("_a", "_b"))
    m["ratio"] = m["log_value_b"] - m["log_value_a"]
    pairs = zip(m["samples_a"], m["samples_b"], strict=True)
    m["rounds"] = [intervals.pair_log_ratio(1.0, 1.0, x, y) for x, y in pairs]
    m["fastest"] = [math.log(min(y)) - math.log(min(x)) for x, y in zip(m["samples_a"], m["samples_b"], strict=True)]
    g = m.groupby(KEY)
    sd, rounds = g["ratio"].std(), g["rounds"].std()
    sampling = np.sqrt(g.apply(lambda x: (x["sampling_var_a"] + x["sampling_var_b"]).mean(), include_groups=False))
    half = intervals.t_critical(0.001, 19) * sd / math.sqrt(20)
    return {
        "sides": f"{a}-{b}",
        "combinations": len(sd),
        "pairs": int(g.size().median()),
        "spread_%": 100 * sd.median(),
        "sampling_%": 100 * sampling.median(),
        "at_20_pairs_%": 100 * half.median(),
        "rounds_%": 100 * rounds.median(),
        "rounds_at_20_%": 100 * (intervals.t_critical(0.001, 19) * rounds / math.sqrt(20)).median(),
        "fastest_%": 100 * g["fastest"].std().median(),
    }


def after_own_side(rows: pd.DataFrame) -> float:
    """Median over processes of (mean log sample right after its own side's) − (after another side's), for
    the order A B C C B A with the first side rotated by (pair + combination index) mod sides."""
    sides = sorted(rows["side"].unique())
    k = len(sides)
    first = rows.groupby([*KEY, "pair"])["measured_at"].min().rename("t").reset_index()
    first["index"] = first.groupby(["run_id", "pair"])["t"].rank(method="first").astype(int) - 1
    rows = rows.merge(first[[*KEY, "pair", "index"]], on=[*KEY, "pair"])
    found = []
    for r in rows.itertuples():
        place = (sides.index(r.side) - (int(r.pair) + r.index)) % k
        logs = np.log(np.asarray(r.samples))
        own = [j for j in range(1, len(logs)) if (j % 2 == 0 and place == 0) or (j % 2 == 1 and place == k - 1)]
        other = [j for j in range(1, len(logs)) if j not in own]
        if own and other:
            found.append(logs[own].mean() - logs[other].mean())
    return float(np.median(found)) if found else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--abcba", action="store_true", help="also the after-own-side effect (the old order)")
    args = parser.parse_args()
    for folder in args.folders:
        rows = rows_of(folder)
        sides = sorted(rows["side"].unique())
        table = pd.DataFrame([spread(rows, a, b) for a, b in itertools.combinations(sides, 2)])
        samples = rows["samples"].map(len).median()
        within = 100 * rows["samples"].map(lambda s: np.log(np.asarray(s)).std(ddof=1)).median()
        print(f"{folder}: {samples:.0f} samples a process, their log spread {within:.2f} % (median)")
        print(table.round(2).to_string(index=False))
        if args.abcba:
            print(
                f"  a sample right after its own side's, against after another's: {100 * after_own_side(rows):+.2f} %"
            )


if __name__ == "__main__":
    main()
