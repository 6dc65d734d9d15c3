"""Every result into one tidy DataFrame: asv's files (and each run's history), decoded and joined with theory.

One row per (machine, environment, commit, run, benchmark, parameter combination). Columns, units in
the names: identity (``machine``, ``env_name``, ``commit_hash``, ``run_id``, ``run_date``, ``source``),
the combination (``benchmark``, ``metric``, ``unit``, ``case``, ``workload``, ``case_params``, ``height``,
``width``, ``batch``, ``device``, ``layout``, ``dtype``, ``mode``), the value and its statistics
(``value``, ``status``, ``q25``, ``q75``, ``ci_low``, ``ci_high``, ``n_samples``, ``number``,
``samples``), the software (``torch_version``, ``version``, ``current_version``), the machine
(``machine_*``), theory (``theory_*``, ``flop_reduction``, ``param_reduction``, ``dense_case``) and
derived figures (``latency_s``, ``achieved_flops_per_s``, ``achieved_bytes_per_s``, ``items_per_s``,
``roofline_fraction``, ``energy_j_per_item``, ``peak_bytes``, ``speedup``).

``status`` is ``ok``, ``skipped`` (asv's NaN) or ``failed`` (asv's null). Quick runs' infinite bounds
become NaN. A file that is truncated or not JSON is skipped with a warning naming it. Never pickle.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import itertools
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench_lib.catalogue import theory
from bench_lib.catalogue.cases import Case
from bench_lib.errors import ArgumentError
from bench_lib.measure import roofline
from bench_lib.suite.combination import METRICS, PARAM_NAMES, SUITE_VERSION, benchmark_name, metric_of

_GROUP_FOR_SPEEDUP = ["machine", "env_name", "commit_hash", "run_id", "device", "layout", "dtype", "mode", "batch"]


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        warnings.warn(f"skipping {path}: not a readable JSON file ({e})", stacklevel=3)
        return None


def _decode(value: str) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _finite(x: Any) -> float:
    if x is None:
        return math.nan
    x = float(x)
    return x if math.isfinite(x) else math.nan


def _status(value: Any) -> str:
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "skipped"
    return "ok"


def _ms_to_datetime(ms: Any) -> pd.Timestamp:
    if ms is None:
        return pd.NaT
    return pd.Timestamp(dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc))


def _machine_fields(info: dict[str, Any] | None) -> dict[str, Any]:
    info = info or {}
    return {f"machine_{k}": info.get(k) for k in ("cpu", "num_cpu", "ram", "gpu", "driver", "os", "arch")}


def _per_combo(col: dict[str, Any], key: str, n: int) -> list[Any]:
    """A result column padded to one entry per combination (asv drops trailing nulls)."""
    values = col.get(key)
    return list(values) + [None] * (n - len(values)) if values else [None] * n


def _asv_rows(path: Path, machine_info: dict[str, Any] | None) -> list[dict[str, Any]]:
    data = _read_json(path)
    if not isinstance(data, dict) or "results" not in data:
        if data is not None:
            warnings.warn(f"skipping {path}: not an asv result file", stacklevel=2)
        return []
    columns = data.get("result_columns", [])
    info = {
        **(machine_info or {}),
        **{
            k: v
            for k, v in data.get("params", {}).items()
            if k in ("cpu", "num_cpu", "ram", "gpu", "driver", "os", "arch", "torch")
        },
    }
    run = {
        "source": "asv",
        "file": path.name,
        "machine": path.parent.name,
        "env_name": data.get("env_name"),
        "commit_hash": data.get("commit_hash"),
        "commit_date": _ms_to_datetime(data.get("date")),
        "run_id": f"asv:{(data.get('commit_hash') or '')[:8]}",
        "torch_version": info.get("torch"),
    }
    rows = []
    for benchmark, row in data["results"].items():
        col = dict(zip(columns, row, strict=False))
        param_lists = col.get("params") or []
        combos = list(itertools.product(*param_lists)) if param_lists else [()]
        results = col.get("result") or [None] * len(combos)
        n = len(combos)
        ci_a, ci_b = _per_combo(col, "stats_ci_99_a", n), _per_combo(col, "stats_ci_99_b", n)
        q25, q75 = _per_combo(col, "stats_q_25", n), _per_combo(col, "stats_q_75", n)
        number, repeat = _per_combo(col, "stats_number", n), _per_combo(col, "stats_repeat", n)
        samples = _per_combo(col, "samples", n)
        for i, combo in enumerate(combos):
            params = [_decode(p) for p in combo]
            named = dict(zip(PARAM_NAMES, params, strict=False)) if len(params) == len(PARAM_NAMES) else {}
            stats = {
                "q25": q25[i],
                "q75": q75[i],
                "ci_low": ci_a[i],
                "ci_high": ci_b[i],
                "quick": ci_a[i] is not None and not math.isfinite(float(ci_a[i])),
                "number": number[i],
                "n_samples": len(samples[i]) if samples[i] else repeat[i],
                "samples": samples[i],
            }
            value = results[i] if i < len(results) else None
            measured = {"benchmark": benchmark, "version": col.get("version"), "params_raw": list(combo), **named}
            run["run_date"] = _ms_to_datetime(col.get("started_at"))
            rows.append(_row(run, measured, value, stats, info))
    return rows


def _row(
    run: dict[str, Any], measured: dict[str, Any], value: Any, stats: dict[str, Any], info: dict[str, Any] | None
) -> dict[str, Any]:
    """One row of the DataFrame, from either source: where and when (``run``), what (``measured``: benchmark,
    version, parameters), the value (None: failed, NaN: skipped) and its statistics."""
    status = _status(value)
    return {
        **run,
        **measured,
        "metric": metric_of(measured["benchmark"]),
        "value": _finite(value) if status == "ok" else math.nan,
        "status": status,
        **{k: _finite(stats.get(k)) for k in ("q25", "q75", "ci_low", "ci_high")},
        "quick": stats.get("quick", False),
        "number": stats.get("number"),
        "n_samples": stats.get("n_samples"),
        "samples": stats.get("samples"),
        **_machine_fields(info),
    }


def _history_rows(path: Path, machine_info: dict[str, Any] | None) -> list[dict[str, Any]]:
    lines = []
    try:
        text = path.read_text()
    except OSError as e:
        warnings.warn(f"skipping {path}: {e}", stacklevel=2)
        return []
    for n, line in enumerate(text.splitlines()):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}: line {n + 1} is not JSON; skipped", stacklevel=2)
    if not lines or "run" not in lines[0]:
        warnings.warn(f"skipping {path}: no run record on its first line", stacklevel=2)
        return []
    run = lines[0]["run"]
    where = {
        "source": "history",
        "file": path.name,
        "machine": run.get("machine", path.parent.parent.name),
        "env_name": run.get("env_name"),
        "commit_hash": run.get("commit_hash"),
        "commit_date": pd.NaT,
        "run_id": run.get("run_id"),
        "run_date": pd.Timestamp(run["started"]) if run.get("started") else pd.NaT,
    }
    # the method version; a run written before it was recorded has only bench_lib's (never current)
    version = run.get("suite_version") or str(run.get("bench_lib_version"))
    rows = []
    for e in lines[1:]:
        value, stats, context = _history_value(e)
        measured = {
            "benchmark": benchmark_name(e["suite"], e["metric"]),
            "version": version,
            "params_raw": None,
            **e["params"],
        }
        torch_version = context.get("torch_version") or (machine_info or {}).get("torch")
        rows.append(_row({**where, "torch_version": torch_version}, measured, value, stats, machine_info))
    return rows


def _history_value(e: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """A history line's value (None: failed, NaN: skipped), its statistics and its measurement context."""
    if e.get("status") != "ok":
        return (None if e.get("status") == "failed" else math.nan), {}, {}
    if e["metric"] == "latency":
        m = e.get("measurement", {})
        samples = m.get("samples_s")
        stats = {"q25": m.get("q25_s"), "q75": m.get("q75_s"), "number": m.get("block"), "samples": samples}
        return m.get("median_s"), {**stats, "n_samples": len(samples) if samples else None}, m.get("context", {})
    if e["metric"] == "peak_memory":
        return e.get("memory", {}).get("peak_bytes"), {}, {}
    return e.get("energy_j_per_item"), {}, {}


def load(results_dir: str | Path = "results", *, history: bool = False, derive: bool = True) -> pd.DataFrame:
    """Load every result under ``results_dir`` into one DataFrame (see the module docstring).

    ``history=True`` adds one set of rows per archived run (``source == "history"``), so nights on the
    same commit and environment can be selected and plotted by ``run_date``. ``derive=False`` skips the
    theory join and derived columns.
    """
    root = Path(results_dir)
    rows: list[dict[str, Any]] = []
    for machine_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        info = _read_json(machine_dir / "machine.json") if (machine_dir / "machine.json").exists() else None
        for path in sorted(machine_dir.glob("*.json")):
            if path.name != "machine.json":
                rows += _asv_rows(path, info)
        if history:
            for path in sorted((machine_dir / "history").glob("*.jsonl")):
                rows += _history_rows(path, info)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["current_version"] = df["version"].astype(str) == SUITE_VERSION
    df["unit"] = df["metric"].map(METRICS)
    _fill_torch_from_history(df, root)
    _decode_cases(df)
    if derive:
        _join_theory(df)
        _derive(df, root)
    return df


def _fill_torch_from_history(df: pd.DataFrame, root: Path) -> None:
    """asv's file does not know an environment's torch; the run that wrote it does."""
    versions: dict[tuple, str] = {}
    for path in sorted(root.glob("*/history/*.jsonl")):
        try:
            lines = path.read_text().splitlines()
            run = json.loads(lines[0])["run"]
            for line in lines[1:]:
                ctx = json.loads(line).get("measurement", {}).get("context", {})
                if ctx.get("torch_version"):
                    versions[(run.get("machine"), run.get("commit_hash"), run.get("env_name"))] = ctx["torch_version"]
                    break
        except (OSError, json.JSONDecodeError, KeyError, IndexError):
            continue
    if versions:
        keys = list(zip(df["machine"], df["commit_hash"], df["env_name"], strict=True))
        found = pd.Series([versions.get(k) for k in keys], index=df.index)
        df["torch_version"] = found.fillna(df["torch_version"]) if "torch_version" in df else found


def _decode_cases(df: pd.DataFrame) -> None:
    decoded = {c: _parse_case(c) for c in df["case"].dropna().unique()} if "case" in df else {}
    df["workload"] = df["case"].map(lambda c: decoded.get(c, (None,) * 3)[0])
    df["case_params"] = df["case"].map(lambda c: decoded.get(c, (None,) * 3)[1])
    df["height"] = df["case"].map(lambda c: decoded.get(c, (None,) * 3)[2])
    df["width"] = df["height"]
    df["dense_case"] = df["case"].map(lambda c: decoded.get(c, (None,) * 4)[3] if c in decoded else None)
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
        warnings.warn(f"no theory for {case_text} ({dtype}): {e}; its theory columns are left empty", stacklevel=2)
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


def _join_theory(df: pd.DataFrame) -> None:
    if "case" not in df:
        return
    keys = df[["case", "batch", "dtype"]].drop_duplicates().dropna()
    table = {(c, b, d): _theory(c, int(b), d) for c, b, d in keys.itertuples(index=False)}
    columns = [
        "theory_params",
        "theory_macs",
        "theory_flops",
        "theory_train_flops",
        "theory_min_bytes",
        "theory_intensity_flops_per_byte",
        "flop_reduction",
        "param_reduction",
    ]
    looked_up = [table.get((c, b, d), {}) for c, b, d in zip(df["case"], df["batch"], df["dtype"], strict=True)]
    for col in columns:
        df[col] = [t.get(col, math.nan) for t in looked_up]


def _derive(df: pd.DataFrame, root: Path) -> None:
    ok = df["status"] == "ok"
    latency = ok & (df["metric"] == "latency")
    df["latency_s"] = df["value"].where(latency)
    work = df["theory_train_flops"].where(df["mode"] == "training", df["theory_flops"])
    df["achieved_flops_per_s"] = work / df["latency_s"]
    df["achieved_bytes_per_s"] = df["theory_min_bytes"] / df["latency_s"]
    df["items_per_s"] = df["batch"] / df["latency_s"]
    df["energy_j_per_item"] = df["value"].where(ok & (df["metric"] == "energy"))
    df["peak_bytes"] = df["value"].where(ok & (df["metric"] == "peak_memory"))
    df["roofline_fraction"] = _roofline_fraction(df, root, work)
    df["speedup"] = _speedup(df)


def _roofline_fraction(df: pd.DataFrame, root: Path, work: pd.Series) -> pd.Series:
    peaks: dict[tuple[str, str], roofline.Peaks | None] = {}
    out = np.full(len(df), np.nan)
    for i, (m, dev, dtype, lat, flops, nbytes) in enumerate(
        zip(df["machine"], df["device"], df["dtype"], df["latency_s"], work, df["theory_min_bytes"], strict=True)
    ):
        if not (isinstance(lat, float) and lat > 0) or not isinstance(dev, str):
            continue
        if (m, dev) not in peaks:
            peaks[(m, dev)] = roofline.load_cached(dev, root, m)
        p = peaks[(m, dev)]
        if p is not None and dtype in p.gemm_flops_per_s:
            out[i] = p.fraction(lat, flops, nbytes, dtype)
    return pd.Series(out, index=df.index)


def _speedup(df: pd.DataFrame) -> pd.Series:
    """latency of the dense equivalent / latency of this case, within the same machine, environment,
    commit, run, device, layout, dtype, mode and batch."""
    lat = df[df["latency_s"].notna()]
    if lat.empty:
        return pd.Series(np.nan, index=df.index)
    lookup = {
        (*k, c): v
        for k, c, v in zip(
            lat[_GROUP_FOR_SPEEDUP].itertuples(index=False, name=None), lat["case"], lat["latency_s"], strict=True
        )
    }
    dense = [
        lookup.get((*k, d))
        for k, d in zip(df[_GROUP_FOR_SPEEDUP].itertuples(index=False, name=None), df["dense_case"], strict=True)
    ]
    return pd.Series(
        [
            d / v if d is not None and v and not math.isnan(v) else math.nan
            for d, v in zip(dense, df["latency_s"], strict=True)
        ],
        index=df.index,
    )


def export(results_dir: str | Path, out: str | Path, history: bool = False) -> Path:
    """Write the DataFrame as Parquet (``.parquet``) or CSV (``.csv``); lists and dicts become JSON text."""
    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ArgumentError(f"--out {out}: the file must end in .parquet or .csv")
    df = load(results_dir, history=history)
    for col in ("samples", "case_params", "params_raw"):
        if col in df:
            df[col] = df[col].map(lambda v: json.dumps(v) if v is not None else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    tmp.replace(out)
    return out


def load_breakdowns(results_dir: str | Path = "results") -> pd.DataFrame:
    """Per-part times of networks (``results/<machine>/breakdown.jsonl``): one row per part of each record,
    with its share of the network's time and of its MACs. Only each (machine, device, layout, case)'s newest."""
    rows = []
    for path in sorted(Path(results_dir).glob("*/breakdown.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{path}: a line is not JSON; skipped", stacklevel=2)
                continue
            total_s = sum(p["median_s"] for p in record["parts"]) or math.nan
            total_macs = sum(p["macs"] for p in record["parts"]) or math.nan
            for order, part in enumerate(record["parts"]):
                rows.append(
                    {
                        **{
                            k: record[k]
                            for k in ("machine", "device", "layout", "case", "batch", "measured_at", "torch_version")
                        },
                        "order": order,
                        "part": part["part"],
                        "part_s": part["median_s"],
                        "macs": part["macs"],
                        "time_share": part["median_s"] / total_s,
                        "macs_share": part["macs"] / total_macs,
                    }
                )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    newest = df.groupby(["machine", "device", "layout", "case"])["measured_at"].transform("max")
    return df[df["measured_at"] == newest].reset_index(drop=True)
