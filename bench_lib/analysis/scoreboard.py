"""``convbench machines``: every machine·device in the store, scored against a reference, ranked, explained.

A score is the geometric mean, over a fixed set of workloads both ran, of the reference's latency over the
machine·device's (so 2.0 is twice the reference's speed), with its interval (:mod:`machines`). The set:

- ``compare`` (default): the compare grid's latency workloads (:func:`bench_lib.suite.grids.workload_set`),
  named by a hash of its entries, so scores made months apart are comparable and a changed set is another
  set, never mixed in;
- ``common``: the combinations every listed machine·device ran (its hash is printed too; it changes as the
  store does).

The reference (``--reference MACHINE[:DEVICE]``) defaults to the first machine·device in the store to have
run the set: stable as the store grows. Beside the score: per kind (ops, blocks, networks) and dtype, the
hardware (CPU model and capability, threads, GPUs), the roofline peaks measured with its newest runs, and
joules per inference where an energy meter ran (else why none).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench_lib.analysis import compare, machines, results, series, tables, verdicts
from bench_lib.errors import ArgumentError
from bench_lib.measure import devices
from bench_lib.store import redact

SETS = ("compare", "common")
SUITES = ("ops", "blocks", "networks")  # what a score reads (the plain suite measures allocator states)
ENTRY = ["suite", "case", "batch", "layout", "dtype", "mode"]


def _entries(rows: pd.DataFrame) -> pd.Series:
    """Each row's workload: its suite, case, batch, layout, dtype and mode joined by ``|``."""
    if rows.empty:
        return pd.Series([], index=rows.index, dtype=object)
    return rows[ENTRY].astype(str).agg("|".join, axis=1)


def workloads(rows: pd.DataFrame, name: str) -> tuple[str, set[str]]:
    """(identity, entries) of the workload set ``name`` over ``rows``."""
    if name == "compare":
        from bench_lib.suite import grids

        identity, entries = grids.workload_set(grids.grid("compare", ["cpu"]))
        return f"compare-{identity}", set(entries)
    per = rows.assign(entry=_entries(rows)).groupby(["machine", "device"], observed=True)["entry"].agg(set)
    entries = set.intersection(*per) if len(per) else set()
    return f"common-{hashlib.sha256(chr(10).join(sorted(entries)).encode()).hexdigest()[:12]}", entries


def _reference(rows: pd.DataFrame, asked: str | None) -> tuple[str, str]:
    """The reference machine·device: ``asked`` (``MACHINE`` or ``MACHINE:DEVICE``), else the first to run
    the set. ArgumentError naming what exists where it is not in the store."""
    first = rows.sort_values("run_date").drop_duplicates(["machine", "device"])
    present = [f"{m}:{d}" for m, d in first[["machine", "device"]].itertuples(index=False, name=None)]
    if asked is None:
        return tuple(first.iloc[0][["machine", "device"]])
    machine, _, device = asked.partition(":")
    hit = first[(first["machine"] == machine) & ((first["device"] == device) if device else True)]
    if hit.empty:
        raise ArgumentError(f"--reference {asked}: no such machine·device ran the set; present: {', '.join(present)}")
    return tuple(hit.iloc[0][["machine", "device"]])


def _facts(runs: pd.DataFrame, machine_rows: pd.DataFrame, device: str, peaks: dict) -> dict:
    """The hardware that explains a score: CPU model, capability, threads, GPUs, the newest peaks."""
    newest = runs[runs["run_id"].isin(set(machine_rows["run_id"]))].sort_values("started_at").iloc[-1]
    fingerprint = json.loads(newest["fingerprint"]) if isinstance(newest["fingerprint"], str) else {}
    spec = devices.parse_spec(device)
    threads = spec.threads if spec.kind == "cpu" and spec.threads else fingerprint.get("physical_cores")
    found = {
        "cpu_model": fingerprint.get("cpu_model"),
        "cpu_capability": fingerprint.get("cpu_capability"),
        "threads": threads if spec.kind == "cpu" else None,
        "gpus": ", ".join(fingerprint.get("gpus") or []) or None,
        "peak_gflop_per_s": None,
        "copy_gb_per_s": None,
    }
    for run_id in machine_rows.sort_values("run_date")["run_id"].unique()[::-1]:
        p = peaks.get((run_id, device))
        if p is not None:
            best = max([*p.gemm_flops_per_s.values(), *p.conv3x3_flops_per_s.values()] or [math.nan])
            found.update(peak_gflop_per_s=best / 1e9, copy_gb_per_s=p.copy_bytes_per_s / 1e9)
            break
    return found


def _energy_per_item(rows: pd.DataFrame) -> dict:
    """``energy_j_per_item``: the geometric mean of the set's energy rows (joules per inference), and
    ``energy_rows``; empty where none was measured."""
    ok = rows[(rows["metric"] == "energy") & (rows["status"] == "ok")]
    if ok.empty:
        return {}
    return {"energy_j_per_item": float(np.exp(np.log(ok["value"]).mean())), "energy_rows": len(ok)}


def _energy(rows: pd.DataFrame) -> str:
    """Joules per inference over the set's energy rows, or why there are none."""
    energy = rows[rows["metric"] == "energy"]
    ok = energy[energy["status"] == "ok"]
    if not ok.empty:
        return f"{float(np.exp(np.log(ok['value']).mean())):.3g} J/inference (geometric mean, {len(ok)} rows)"
    reasons = energy["reason"].dropna()
    return f"none: {reasons.iloc[-1]}" if not reasons.empty else "none: not measured"


def roof_fractions(derived: pd.DataFrame, entries: set[str]) -> pd.DataFrame:
    """Per machine·device (index) and kind (columns ``roof_op``, ``roof_block``, ...): the median fraction of
    its own roofline (:func:`results.of_runs`' ``roofline_fraction``: the time the roof allows over the time
    measured, with the peaks measured in the same run) over the set's latency rows that have one."""
    if derived.empty or "roofline_fraction" not in derived:
        return pd.DataFrame()
    t = derived[(derived["metric"] == "latency") & derived["roofline_fraction"].notna()]
    t = t[_entries(t).isin(entries)].assign(kind=lambda x: x["case"].map(machines.kind))
    if t.empty:
        return pd.DataFrame()
    out = t.groupby(["machine", "device", "kind"], observed=True)["roofline_fraction"].median().unstack("kind")
    return out.add_prefix("roof_")


@dataclass(frozen=True)
class Board:
    """A scoreboard: one row per machine·device, best first (``table``), the note naming the set and the
    reference, and each machine·device's ratio per family (``families``: machine, device, family,
    combinations, ratio, low, high, kernels) for the report's heatmap."""

    table: pd.DataFrame
    note: str
    families: pd.DataFrame


def _kernels(both: pd.DataFrame) -> pd.Series:
    """Per family, the kernels this machine·device ran (the most common first, at most two)."""
    top = both.groupby("family")["kernel_candidate"].agg(lambda k: ", ".join(k.dropna().value_counts().index[:2]))
    return top.replace("", "not recorded")


def _scored(in_set: pd.DataFrame, ref_rows: pd.DataFrame, g: pd.DataFrame, factor: float, alpha: float):
    """One machine·device against the reference: its summaries (by kind, dtype, family, overall) and the
    kernels it ran per family."""
    table, _ = compare.across(in_set, ref_rows, g, in_set, factor, alpha)
    both = table[np.isfinite(table["ratio"].to_numpy(dtype=float))].assign(kind=lambda t: t["case"].map(machines.kind))
    if both.empty:
        return pd.DataFrame(), pd.Series(dtype=object)
    return machines.summaries(both, alpha, by=("kind", "dtype", "family")), _kernels(both)


def board(rows: pd.DataFrame, runs: pd.DataFrame, peaks: dict, reference: str | None, set_name: str,
          factor: float, alpha: float, derived: pd.DataFrame | None = None) -> Board:  # fmt: skip
    """The scoreboard of ``rows`` (per-round latency rows of ``runs``) over the workload set ``set_name``.
    ``derived`` (:func:`results.of_runs` of the same runs) adds each kind's fraction of its own roof."""
    latency = rows[(rows["metric"] == "latency") & rows["suite"].isin(SUITES) & (rows["status"] == "ok")]
    identity, entries = workloads(latency, set_name)
    in_set = latency[_entries(latency).isin(entries)]
    if in_set.empty:
        hint = " (--set common scores over what every machine·device ran)" if set_name == "compare" else ""
        raise ArgumentError(f"--set {set_name}: no machine·device in the store ran any of the set {identity}{hint}")
    ref = _reference(in_set, reference)
    ref_rows = in_set[(in_set["machine"] == ref[0]) & (in_set["device"] == ref[1])]
    roofs = roof_fractions(derived if derived is not None else pd.DataFrame(), entries)
    out, families = [], []
    for (machine, device), g in in_set.groupby(["machine", "device"], sort=True, observed=True):
        summary, kernels = _scored(in_set, ref_rows, g, factor, alpha)
        row = {"machine": machine, "device": device, "reference": (machine, device) == ref}
        if not summary.empty:
            overall = summary[summary["by"] == "overall"].iloc[0]
            row.update(score=overall["ratio"], low=overall["low"], high=overall["high"])
            row.update(combinations=int(overall["combinations"]))
            row.update({s["value"]: s["ratio"] for _, s in summary[summary["by"].isin(["kind", "dtype"])].iterrows()})
            fam = summary[summary["by"] == "family"].rename(columns={"value": "family"})
            families.append(fam.assign(machine=machine, device=device, kernels=fam["family"].map(kernels)))
        mine = rows[(rows["machine"] == machine) & (rows["device"] == device)]
        row.update(_facts(runs, mine, device, peaks), energy=_energy(mine[_entries(mine).isin(entries)]))
        row.update(_energy_per_item(mine[_entries(mine).isin(entries)]))
        if (machine, device) in roofs.index:
            row.update(roofs.loc[(machine, device)].dropna().to_dict())
        out.append(row)
    table = pd.DataFrame(out).sort_values("score", ascending=False, na_position="last").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    note = (
        f"workload set {identity} ({len(entries)} combinations); reference {ref[0]} {ref[1]} = 1; score = the "
        "geometric mean of the reference's latency over this machine·device's, over the set's combinations both "
        f"ran, interval at {1 - alpha:.3g} confidence (docs/machines.md)"
    )
    fams = pd.concat(families, ignore_index=True) if families else pd.DataFrame()
    return Board(table, note, fams)


def render(table: pd.DataFrame, note: str, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"note": note, "rows": json.loads(table.to_json(orient="records"))}, indent=2)
    show = table.copy()
    for col in show.columns:
        if col in ("score", "ops", "op", "block", "network", "float32", "bfloat16", "float16"):
            show[col] = show[col].map(machines.times_or)
    show["interval"] = [
        machines.span(lo, hi) for lo, hi in zip(table.get("low", np.nan), table.get("high", np.nan), strict=False)
    ]
    for col in [c for c in show.columns if c.startswith("roof_")]:
        show[col] = show[col].map(lambda x: f"{100 * x:.2g} %" if isinstance(x, float) and np.isfinite(x) else "-")
    for col, digits in (("peak_gflop_per_s", "{:.0f}"), ("copy_gb_per_s", "{:.1f}")):
        show[col] = show[col].map(lambda x, d=digits: d.format(x) if isinstance(x, float) and np.isfinite(x) else "-")
    cols = ["rank", "machine", "device", "score", "interval", "combinations", "op", "block", "network"]
    cols += ["float32", "bfloat16", "float16", "cpu_model", "cpu_capability", "threads", "gpus"]
    cols += ["peak_gflop_per_s", "copy_gb_per_s", "roof_op", "roof_block", "roof_network", "energy"]
    cols = [c for c in cols if c in show]
    show["energy"] = show["energy"].map(lambda x: x if len(x) <= 60 else x[:57] + "...")
    show[cols] = show[cols].astype(object).where(show[cols].notna(), "-")
    if fmt == "markdown":
        return note + "\n\n" + tables.markdown_table(show, cols)
    return note + "\n" + show[cols].to_string(index=False)


def from_store(store, machines_: list[str] | None, reference: str | None, set_name: str, factor: float,
               alpha: float) -> Board:  # fmt: skip
    """The scoreboard of the store's newest runs (:func:`verdicts.window`; A/B runs, peaks and breakdowns
    runs left out), of ``machines_`` only where given. ArgumentError where there is nothing to score."""
    if set_name not in SETS:
        raise ArgumentError(f"--set {set_name!r} is not a workload set; accepted: {', '.join(SETS)}")
    runs = store.runs(keys=store.machine_keys(machines_))
    runs = runs[runs["sides"].isna() & ~runs["grid"].isin(["peaks", "breakdowns"])] if "sides" in runs else runs
    if runs.empty:
        raise ArgumentError(f"--results {redact(store.location.text)}: the store holds no runs")
    chosen = verdicts.window(runs)
    rows = results.rounds_of_runs(store, chosen, series.READ)
    rows = rows[rows["side"].isna()] if "side" in rows else rows
    derived = results.of_runs(store, chosen)
    return board(rows, chosen, results.run_peaks(store, chosen), reference, set_name, factor, alpha, derived)


def run(results_dir: str, reference: str | None, set_name: str, factor: float, alpha: float, fmt: str) -> int:
    verdicts.check(factor, alpha)
    scored = from_store(results.store_of(results_dir), None, reference, set_name, factor, alpha)
    print(render(scored.table, scored.note, fmt))
    return 0
