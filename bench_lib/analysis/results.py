"""Every result in the store into one tidy DataFrame, one row per run and combination, joined with theory.

Columns, units in the names: identity (``machine``, ``hardware_id``, ``env_name``, ``commit_hash``,
``run_id``, ``run_date``, ``run_state``), the combination (``benchmark``, ``suite``, ``metric``, ``unit``,
``case``, ``workload``, ``case_params``, ``height``, ``width``, ``batch``, ``device``, ``layout``, ``dtype``,
``mode``), the value and its statistics (``value``, ``status``, ``reason``, ``rounds``, ``q25``, ``q75``,
``n_samples``, ``number``, ``samples``), the software (``torch_version``, ``version``, ``current_version``),
the machine (``machine_*``), theory (``theory_*``, ``flop_reduction``, ``param_reduction``, ``dense_case``)
and derived figures (``latency_s``, ``achieved_flops_per_s``, ``achieved_bytes_per_s``, ``items_per_s``,
``roofline_fraction``, ``memory_level_bytes``, ``energy_j_per_item``, ``peak_bytes``, ``speedup``).

``status`` is ``ok``, ``skipped`` or ``failed`` (``reason`` says why). A run's rounds (processes) are
the store's rows; here they are summarised per run (:func:`per_run`). Never pickle.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from bench_lib.analysis import verdicts
from bench_lib.catalogue import theory
from bench_lib.catalogue.cases import Case
from bench_lib.errors import ArgumentError
from bench_lib.measure import metrics, roofline
from bench_lib.store import records, redact, store_path
from bench_lib.store.query import Store
from bench_lib.store.trust import short
from bench_lib.suite.combination import SUITE_VERSION, benchmark_name

_GROUP_FOR_SPEEDUP = ["machine", "env_name", "commit_hash", "run_id", "device", "layout", "dtype", "mode", "batch"]


def store_of(results_dir: str | Path | Store) -> Store:
    """The store of a results folder (or URL), refusing one that holds no run; a Store is kept as it is
    (one instance reads the runs table once)."""
    if isinstance(results_dir, Store):
        return results_dir
    store = Store(store_path(results_dir))
    if not store.exists():
        raise ArgumentError(
            f"--results {redact(results_dir)}: no convbench results there (no runs under "
            f"{redact(store.location.text)}); "
            "run `convbench run` first, or `convbench store migrate` for results of convbench 0.1"
        )
    return store


def chosen_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that can hold each combination's newest value: per machine, environment, grid and
    filter, the newest complete run and any newer one (interrupted or still running); no A/B run."""
    runs = runs[~verdicts.is_ab(runs)]  # an A/B run's sides are read by compare and the report's A/B section
    if runs.empty:
        return runs
    shape = ["hardware_id", "env_name", "grid", "bench"]
    keep = []
    for _, g in runs.sort_values("started_at").groupby(shape, dropna=False, sort=False):
        complete = np.flatnonzero((g["state"] == "complete").to_numpy())
        keep.append(g.iloc[complete[-1] if len(complete) else len(g) - 1 :])
    return pd.concat(keep).sort_values("started_at")


def _display_names(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(machine, hardware id) → the name shown: the machine's name, or name-<id> where one name covers
    several machines (two VMs called ``vm`` are two machines, never one)."""
    pairs = runs[["machine", "hardware_id"]].drop_duplicates()
    shared = pairs["machine"].value_counts()
    return {(m, h): m if shared[m] == 1 else f"{m}-{str(h)[:8]}" for m, h in pairs.itertuples(index=False, name=None)}


_COMBINATION = ["suite", "metric", "case", "batch", "device", "layout", "dtype", "mode"]


def per_run(m: pd.DataFrame) -> pd.DataFrame:
    """One row per run and combination from the store's per-round rows: the median of the rounds' values,
    the samples of every ok round together (and their quartiles), ok if any round was. Array operations
    over all combinations at once: a fleet's nights of five rounds are hundreds of thousands of groups."""
    keys = ["run_id", *(["side"] if "side" in m else []), *_COMBINATION]  # an A/B run: a row per side
    m = m.sort_values([*keys, "round"], kind="stable").reset_index(drop=True)
    gid = m.groupby(keys, sort=False, dropna=False, observed=True).ngroup().to_numpy()
    size = np.bincount(gid)
    n = size[gid]
    single = m[n == 1].assign(rounds=1)
    multi = m[n > 1].reset_index(drop=True)
    if multi.empty:
        return single
    group = pd.factorize(gid[n > 1])[0]  # 0, 1, ... in order of first row
    ok = (multi["status"] == "ok").to_numpy()
    position = pd.Series(np.arange(len(multi)))
    shown = position.groupby(group).last()  # the newest round, or the newest ok round where one is
    newest_ok = position[ok].groupby(group[ok]).last()
    shown[newest_ok.index] = newest_ok
    out = multi.iloc[shown.to_numpy()].reset_index(drop=True)
    out["rounds"] = np.bincount(group)
    has_ok = newest_ok.index.to_numpy()
    out.loc[has_ok, "value"] = multi.loc[ok, "value"].groupby(group[ok]).median().to_numpy(dtype=float)
    _pool_samples(out, multi, group, ok)
    return pd.concat([single, out], ignore_index=True)


def _pool_samples(out: pd.DataFrame, multi: pd.DataFrame, group: np.ndarray, ok: np.ndarray) -> None:
    """``out``'s samples (one row per group of ``multi``): every ok round's samples in round order, with
    their count and quartiles (numpy's linear interpolation), where a group's ok rounds have any."""
    arrays = [s if ok_ and s is not None else np.empty(0) for s, ok_ in zip(multi["samples"], ok, strict=True)]
    counts = np.bincount(group, weights=[len(a) for a in arrays], minlength=len(out)).astype(int)
    if not counts.any():
        return
    flat = np.concatenate(arrays).astype(float)
    pooled = np.split(flat, np.cumsum(counts)[:-1])
    owner = np.repeat(np.arange(len(out)), counts)
    ordered = flat[np.lexsort((flat, owner))]
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    have = np.flatnonzero(counts)
    for column, q in (("q25", 0.25), ("q75", 0.75)):
        at = q * (counts[have] - 1)
        lo, frac = np.floor(at).astype(int), at - np.floor(at)
        below, above = ordered[starts[have] + lo], ordered[starts[have] + np.minimum(lo + 1, counts[have] - 1)]
        out.loc[have, column] = below + frac * (above - below)
    out["samples"] = out["samples"].astype(object)
    out.loc[have, "samples"] = pd.Series([pooled[i] for i in have], index=have, dtype=object)
    n_samples = pd.to_numeric(out["n_samples"], errors="coerce").to_numpy(dtype=float, copy=True)
    n_samples[have] = counts[have]
    out["n_samples"] = n_samples


def load(
    results_dir: str | Path | Store = "results",
    *,
    history: bool = False,
    derive: bool = True,
    machines: list[str] | None = None,
    recent: int | None = None,
) -> pd.DataFrame:
    """Load results from the store under ``results_dir`` into one DataFrame (see the module docstring).

    By default only the runs that can hold each combination's newest value are read
    (:func:`chosen_runs`); ``history=True`` reads every run, so nights can be compared by ``run_date``.
    ``machines`` (names) reads only their partitions; ``recent`` only each machine's newest month folders
    that hold at least that many of its runs (:meth:`Store.recent_runs`). ``derive=False`` skips theory and
    derived columns.
    """
    store = store_of(results_dir)
    keys = store.machine_keys(machines)
    runs = store.runs(keys=keys) if recent is None else store.recent_runs(keys, recent)
    return of_runs(store, runs if history else chosen_runs(runs), derive=derive)


def rounds_of_runs(
    store: Store, runs: pd.DataFrame, columns: list[str], metric: str | None = None, categorical: bool = False
) -> pd.DataFrame:
    """The store's per-round rows of exactly ``runs`` (canary included), ``columns`` only (and only
    ``metric``'s, filtered while reading, where given), with ``machine`` the display name (``machine_name``
    the stored one) and ``run_date`` the run's start. ``categorical``: text columns as pandas categoricals
    (a fleet's week is millions of rows repeating a few hundred strings: grouping and sorting codes is
    several times faster than strings)."""
    if runs.empty:
        return pd.DataFrame(columns=[*columns, "machine_name", "run_date"])
    only = ds.field("metric") == metric if metric is not None else None
    rows = store.of_runs("measurements", runs, filter=only, columns=columns, dictionary=categorical).to_pandas()
    names = _display_names(runs)
    rows["machine_name"] = rows["machine"]
    rows["machine"] = rows["run_id"].map({r.run_id: names[(r.machine, r.hardware_id)] for r in runs.itertuples()})
    rows["run_date"] = rows["started_at"]
    return rows


def of_runs(store: Store, runs: pd.DataFrame, *, derive: bool = True, columns: list[str] | None = None) -> pd.DataFrame:
    """The DataFrame of exactly ``runs`` (rows of the store's ``runs`` table): only their files are read,
    only ``columns`` of them where given (``derive`` needs them all). The canary rows are left out."""
    if runs.empty:
        return pd.DataFrame()
    measured = store.of_runs("measurements", runs, columns=None if derive else columns).to_pandas()
    measured = measured[measured["suite"] != "canary"]
    if measured.empty:
        return pd.DataFrame()
    # samples stay numpy arrays (one per row): a list of floats per row costs a second per 250k rows
    for col in ("q25", "q75"):
        if col not in measured:
            measured[col] = math.nan
    df = per_run(measured)
    names = _display_names(runs)
    info = runs.set_index("run_id")
    df["machine_name"] = df["machine"]
    df["machine"] = df["run_id"].map({r.run_id: names[(r.machine, r.hardware_id)] for r in runs.itertuples()})
    df = df.rename(columns={"started_at": "run_date", "suite_version": "version"})
    df["source"] = "store"
    pairs = df[["suite", "metric"]].drop_duplicates().itertuples(index=False, name=None)
    benchmarks = {(s, m): benchmark_name(s, m) for s, m in pairs}
    df["benchmark"] = (df["suite"].astype(str) + "|" + df["metric"].astype(str)).map(
        {f"{s}|{m}": b for (s, m), b in benchmarks.items()}
    )
    df["ci_low"] = df["ci_high"] = math.nan
    for col, src in (("machine_cpu", "cpu_model"), ("machine_num_cpu", "logical_cores"), ("machine_gpu", "gpus")):
        df[col] = df["run_id"].map(info[src])
    df["run_state"] = df["run_id"].map(info["state"])
    df["current_version"] = df["version"].astype(str) == SUITE_VERSION
    _decode_cases(df)
    if derive:
        _join_theory(df)
        _derive(df, run_peaks(store, runs))
    return df.reset_index(drop=True)


def newest_peaks(df: pd.DataFrame, results_dir: str | Path | Store) -> dict[tuple[str, str], roofline.Peaks]:
    """(machine, device) → the peaks of the newest run in ``df`` that measured them (for roofline plots)."""
    if df.empty:
        return {}
    store = store_of(results_dir)
    # df names its runs' files (machine, hardware id, start): no need to read the runs table again
    runs = df[["run_id", "machine_name", "hardware_id", "run_date"]].drop_duplicates("run_id")
    runs = runs.rename(columns={"machine_name": "machine", "run_date": "started_at"})
    found = run_peaks(store, runs)
    names = dict(zip(df["run_id"], df["machine"], strict=True))
    out: dict[tuple[str, str], roofline.Peaks] = {}
    for run_id in runs.sort_values("started_at")["run_id"]:
        for (rid, device), p in found.items():
            if rid == run_id:
                out[(names[rid], device)] = p
    return out


def run_peaks(store: Store, runs: pd.DataFrame) -> dict[tuple[str, str], roofline.Peaks]:
    """Each (run, device)'s roofline peaks, measured with that run (runs without peaks have no roof:
    peaks measured at another time on a shared machine are not this run's roof)."""
    rows = store.of_runs("peaks", runs).to_pylist()
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["run_id"], r["device"]), []).append(r)
    return {k: records.peaks_from_rows(v) for k, v in by.items()}


def _decode_cases(df: pd.DataFrame) -> None:
    decoded = {c: _parse_case(c) for c in df["case"].dropna().unique()} if "case" in df else {}
    for i, col in enumerate(("workload", "case_params", "height", "dense_case")):
        df[col] = df["case"].map({c: d[i] for c, d in decoded.items()})
    df["width"] = df["height"]
    df["is_dense"] = df["case"] == df["dense_case"]


def _parse_case(text: str) -> tuple:
    try:
        case = Case.parse(text)
    except ValueError:
        return None, None, None, None
    return case.workload, case.params, case.height, str(case.dense_equivalent())


@functools.lru_cache(maxsize=4096)
def _theory_per_item(case_text: str, dtype: str) -> tuple[theory.Cost, dict[str, Any]] | None:
    try:
        case = Case.parse(case_text)
        cost = theory.cost(case.workload, batch=1, height=case.height, width=case.width, dtype=dtype, **case.params)
        red = theory.reduction(case.workload, batch=1, height=case.height, width=case.width, dtype=dtype, **case.params)
    except ValueError as e:  # a case this catalogue no longer knows, or a dtype it cannot size
        why = str(e).replace(case_text, "the case")[:200]  # the store's string is quoted once, short
        warnings.warn(
            f"no theory for {short(case_text)} ({dtype}): {why}; its theory columns are left empty", stacklevel=2
        )
        return None
    return cost, red


def _theory(case_text: str, batch: int, dtype: str) -> dict[str, float]:
    """Theory at ``batch``: every count but the parameters scales with the batch (computed once per case)."""
    found = _theory_per_item(case_text, dtype)
    if found is None:
        return {}
    cost, red = found
    itemsize = theory.dtype_itemsize(dtype)
    activations = (math.prod(cost.in_shape) + math.prod(cost.out_shape)) * itemsize
    min_bytes = cost.min_bytes + (batch - 1) * activations
    return {
        "theory_params": cost.params,
        "theory_macs": batch * cost.macs,
        "theory_flops": batch * cost.flops,
        "theory_train_flops": batch * cost.train_flops,
        "theory_min_bytes": min_bytes,
        "theory_intensity_flops_per_byte": batch * cost.flops / min_bytes,
        "flop_reduction": red["flop_reduction"],
        "param_reduction": red["param_reduction"],
    }


THEORY_COLUMNS = [
    "theory_params",
    "theory_macs",
    "theory_flops",
    "theory_train_flops",
    "theory_min_bytes",
    "theory_intensity_flops_per_byte",
    "flop_reduction",
    "param_reduction",
]


def _join_theory(df: pd.DataFrame) -> None:
    """The theory columns of each row, computed once per (case, batch, dtype) and joined by index."""
    if "case" not in df:
        return
    keys = ["case", "batch", "dtype"]
    unique = df[keys].drop_duplicates().dropna()
    found = pd.DataFrame(
        [_theory(c, int(b), d) for c, b, d in unique.itertuples(index=False)],
        index=pd.MultiIndex.from_frame(unique),
        columns=THEORY_COLUMNS,
        dtype=float,
    )
    joined = found.reindex(pd.MultiIndex.from_frame(df[keys]))
    for col in THEORY_COLUMNS:
        df[col] = joined[col].to_numpy()


def metric_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Each metric's value (``ok`` rows) in a column of its own, named with its unit (``Metric.column``:
    ``latency_s``, ``peak_bytes``, ``energy_j_per_item``); ``df`` itself, changed in place."""
    ok = df["status"] == "ok"
    for m in metrics.METRICS.values():
        df[m.column] = df["value"].where(ok & (df["metric"] == m.name))
    return df


def _derive(df: pd.DataFrame, peaks: dict[tuple[str, str], roofline.Peaks]) -> None:
    metric_columns(df)
    work = pd.Series(np.nan, index=df.index)
    for mode, column in theory.WORK_OF_MODE.items():
        work = work.where(df["mode"] != mode, df[f"theory_{column}"])
    df["achieved_flops_per_s"] = work / df["latency_s"]
    df["achieved_bytes_per_s"] = df["theory_min_bytes"] / df["latency_s"]
    df["items_per_s"] = df["batch"] / df["latency_s"]
    for column, values in _roofline(df, peaks, work).items():
        df[column] = values
    df["speedup"] = _speedup(df)


_ROOF_KEYS = ["run_id", "device", "dtype", "theory_min_bytes"]


def _roofs(df: pd.DataFrame, peaks: dict[tuple[str, str], roofline.Peaks]) -> pd.DataFrame:
    """Per row: its run's compute roof for its dtype, and the level and bandwidth of the memory roof its
    working set implies (NaN where the run measured no peaks for that device and dtype). Each distinct
    (run, device, dtype, working set) is looked up once."""
    unique = df[_ROOF_KEYS].drop_duplicates().dropna()
    rows = []
    for run, dev, dtype, nbytes in unique.itertuples(index=False):
        p = peaks.get((run, dev))
        if p is None or dtype not in p.gemm_flops_per_s:
            rows.append((math.nan, math.nan, math.nan))
        else:
            rows.append((p.compute_flops_per_s(dtype), p.memory_level(nbytes), p.memory_bytes_per_s(nbytes)))
    found = pd.DataFrame(
        rows, index=pd.MultiIndex.from_frame(unique), columns=["compute", "level", "bandwidth"], dtype=float
    )
    return found.reindex(pd.MultiIndex.from_frame(df[_ROOF_KEYS]))


def _roofline(df: pd.DataFrame, peaks: dict[tuple[str, str], roofline.Peaks], work: pd.Series) -> dict[str, Any]:
    """Each latency against its run's roofline: ``roofline_fraction``, ``memory_level_bytes`` (the working
    set of the copy that bounds its memory roof: the cache level its minimum bytes fit),
    ``memory_roof_bytes_per_s`` (that level's bandwidth) and ``roofline_bound`` (``compute`` where the
    compute roof is the lower bound, else ``memory``)."""
    roof = _roofs(df, peaks)
    latency = df["latency_s"].to_numpy(dtype=float)
    measured = (latency > 0) & np.isfinite(roof["compute"].to_numpy())
    compute_s, memory_s = roofline.bounds_s(
        work.to_numpy(dtype=float),
        df["theory_min_bytes"].to_numpy(dtype=float),
        roof["compute"].to_numpy(),
        roof["bandwidth"].to_numpy(),
    )
    bound = np.where(compute_s > memory_s, "compute", "memory").astype(object)
    return {
        "roofline_fraction": np.where(measured, np.fmax(compute_s, memory_s) / latency, np.nan),
        "memory_level_bytes": np.where(measured, roof["level"].to_numpy(), np.nan),
        "memory_roof_bytes_per_s": np.where(measured, roof["bandwidth"].to_numpy(), np.nan),
        "roofline_bound": np.where(measured, bound, None),
    }


def _speedup(df: pd.DataFrame) -> pd.Series:
    """latency of the dense equivalent / latency of this case, within the same machine, environment,
    commit, run, device, layout, dtype, mode and batch."""
    lat = df.loc[df["latency_s"].notna(), [*_GROUP_FOR_SPEEDUP, "case", "latency_s"]]
    if lat.empty:
        return pd.Series(np.nan, index=df.index)
    keys = [*_GROUP_FOR_SPEEDUP, "case"]
    dense = lat.drop_duplicates(keys, keep="last").set_index(keys)["latency_s"]
    wanted = pd.MultiIndex.from_frame(df[[*_GROUP_FOR_SPEEDUP, "dense_case"]].set_axis(keys, axis=1))
    return pd.Series(dense.reindex(wanted).to_numpy() / df["latency_s"].to_numpy(), index=df.index)


def export(results_dir: str | Path, out: str | Path, history: bool = False) -> tuple[Path, int]:
    """Write the DataFrame as Parquet (``.parquet``) or CSV (``.csv``); lists and dicts become JSON text.
    Returns the file and its row count."""
    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ArgumentError(f"--out {out}: the file must end in .parquet or .csv")
    df = load(results_dir, history=history)
    for col in ("samples", "case_params"):
        if col in df:
            df[col] = df[col].map(
                lambda v: json.dumps(list(v) if isinstance(v, np.ndarray) else v) if v is not None else None
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    tmp.replace(out)
    return out, len(df)


def _json_text(v: Any) -> str | None:
    if v is None:
        return None
    return json.dumps(v.tolist() if isinstance(v, np.ndarray) else v)


def load_breakdowns(results_dir: str | Path = "results") -> pd.DataFrame:
    """Per-part times of networks (the store's ``breakdowns``): one row per part, with its share of the
    network's time and of its MACs. Only each (machine, device, layout, case)'s newest."""
    store = Store(store_path(results_dir))
    df = store.frame("breakdowns")
    if df.empty:
        return df
    df = df.rename(columns={"part_order": "order"})
    keys = ["machine", "hardware_id", "device", "layout", "case"]
    newest = df.groupby(keys)["measured_at"].transform("max")
    df = df[df["measured_at"] == newest].copy()
    by_record = df.groupby([*keys, "measured_at"])
    df["time_share"] = df["part_s"] / by_record["part_s"].transform("sum")
    df["macs_share"] = df["macs"] / by_record["macs"].transform("sum")
    return df.sort_values([*keys, "order"]).reset_index(drop=True)
