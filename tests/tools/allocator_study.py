"""What predicts a fresh process's mode: the plain suite's processes, each fact against the mode it landed in.

    python tests/tools/allocator_study.py results [--run RUN_ID]

Reads the plain suite's rows of the newest run holding them (or ``--run``), and the same ops under
``steady`` (the ops suite) in that run. Per combination: its modes (:func:`bench_lib.measure.modes.find`),
the steady median, and per mode the median of each fact its processes recorded (page faults per call,
glibc's separately mapped bytes and chunks, its main heap, the output's page offset, memory on huge
pages). Then, over every multimodal combination, how well each fact alone tells the slow mode from the
fastest: the share of processes a single threshold on that fact puts on the right side (the best
threshold; 0.5 is a coin, 1.0 a perfect predictor).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from bench_lib.analysis import results
from bench_lib.measure import modes

FACTS = {
    "page_faults_per_call": lambda p: p.get("page_faults_per_call"),
    "mapped_bytes": lambda p: (p.get("heap") or {}).get("mapped_bytes"),
    "mapped_chunks": lambda p: (p.get("heap") or {}).get("mapped_chunks"),
    "arena_bytes": lambda p: (p.get("heap") or {}).get("arena_bytes"),
    "free_bytes": lambda p: (p.get("heap") or {}).get("free_bytes"),
    "top_bytes": lambda p: (p.get("heap") or {}).get("top_bytes"),
    "output_page_offset": lambda p: (p.get("page_offset_bytes") or {}).get("output"),
    "input_page_offset": lambda p: (p.get("page_offset_bytes") or {}).get("input"),
    "anon_huge_pages_bytes": lambda p: p.get("anon_huge_pages_bytes"),
}
KEYS = ["case", "dtype", "layout", "batch"]


def plain_rows(results_dir: str, run_id: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    store = results.store_of(results_dir)
    runs = store.runs()
    rows = store.of_runs("measurements", runs, columns=None).to_pandas()
    rows = rows[(rows["metric"] == "latency") & (rows["status"] == "ok")]
    plain = rows[rows["suite"] == "plain"]
    run_id = run_id or plain.sort_values("started_at")["run_id"].iloc[-1]
    plain, steady = plain[plain["run_id"] == run_id], rows[(rows["suite"] == "ops") & (rows["run_id"] == run_id)]
    facts = pd.DataFrame([{k: f(json.loads(p)) for k, f in FACTS.items()} for p in plain["process"]], index=plain.index)
    return pd.concat([plain, facts.drop(columns="page_faults_per_call")], axis=1), steady


def separation(fact: np.ndarray, slow: np.ndarray) -> float:
    """The share of processes the best single threshold on ``fact`` puts on the right side of fast/slow."""
    ok = np.isfinite(fact)
    fact, slow = fact[ok], slow[ok]
    if len(fact) == 0 or slow.all() or not slow.any():
        return float("nan")
    best = 0.0
    for t in np.unique(fact):
        above = fact >= t
        best = max(best, (above == slow).mean(), (above != slow).mean())
    return float(best)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results")
    p.add_argument("--run")
    args = p.parse_args()
    plain, steady = plain_rows(args.results, args.run)
    labelled = []
    for key, g in plain.groupby(KEYS):
        found = modes.find(g["value"])
        s = steady.set_index(KEYS).loc[[key], "value"] if key in steady.set_index(KEYS).index else pd.Series([])
        print(
            f"{' '.join(map(str, key))}: {modes.describe(found)}; steady {np.median(s) * 1e3:.3f} ms"
            if len(s)
            else f"{' '.join(map(str, key))}: {modes.describe(found)}; no steady value"
        )
        edge = np.sort(g["value"].to_numpy())[found[0].processes] if len(found) > 1 else np.inf
        g = g.assign(slow=g["value"] >= edge)
        cols = ["value", "page_faults_per_call", *[k for k in FACTS if k != "page_faults_per_call"]]
        print(g.groupby("slow")[cols].median().to_string(float_format=lambda x: f"{x:.4g}"))
        if len(found) > 1:
            labelled.append(g)
    if not labelled:
        print("no multimodal combination: nothing to predict")
        return
    every = pd.concat(labelled)
    print(f"\n{len(labelled)} multimodal combination(s), {len(every)} processes: each fact's separation of the modes")
    for fact in FACTS:
        shares = [separation(g[fact].to_numpy(dtype=float), g["slow"].to_numpy()) for g in labelled]
        each = ", ".join(f"{x:.2f}" for x in shares)
        print(f"  {fact:24s} median {np.nanmedian(shares):.2f}  (per combination: {each})")


if __name__ == "__main__":
    main()
