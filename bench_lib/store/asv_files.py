"""asv's result files rebuilt from the store, for ``asv publish`` (and for anyone who reads asv's format).

asv's own file of a run is a by-product that ``convbench run`` throws away: asv keeps one grid per
benchmark and the last run per commit and environment, so it cannot be the record. Here, per machine,
commit and environment, the newest run's values of each combination become one asv result file
(format 2: ``result`` is the value, NaN for skipped, null for failed; ``samples`` seconds per call), and
``benchmarks.json`` lists every benchmark with the union of the parameter values seen, so ``asv publish``
draws every run in the store.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from bench_lib.files import write_atomic
from bench_lib.store.disk import machine_key
from bench_lib.store.query import Store
from bench_lib.suite.combination import METRICS, PARAM_NAMES, benchmark_name

COLUMNS = [
    "result",
    "params",
    "version",
    "started_at",
    "duration",
    "stats_ci_99_a",
    "stats_ci_99_b",
    "stats_q_25",
    "stats_q_75",
    "stats_number",
    "stats_repeat",
    "samples",
    "profile",
]


def _ms(t: Any) -> int:
    return int(pd.Timestamp(t).timestamp() * 1000)


def _value(row: pd.Series) -> Any:
    if row["status"] == "ok":
        return float(row["value"])
    return math.nan if row["status"] == "skipped" else None


def _samples(v: Any) -> list[float] | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else [float(x) for x in v]


def write(store: Store, out_dir: str | Path) -> list[Path]:
    """asv's results folder at ``out_dir`` from every run in ``store``; returns the files written."""
    runs = store.runs()
    if runs.empty:
        return []
    # asv keeps one environment per result file: an A/B run's sides (one run, several environments) stay out
    plain = runs[~runs["grid"].isin(["peaks", "breakdowns"]) & runs["sides"].isna()]
    m = store.of_runs("measurements", plain).to_pandas()
    if m.empty:
        return []
    m = m[m["round"] == 0].sort_values("started_at")
    m["benchmark"] = [benchmark_name(s, x) for s, x in zip(m["suite"], m["metric"], strict=True)]
    params = {b: [sorted({repr(v) for v in g[k]}) for k in PARAM_NAMES] for b, g in m.groupby("benchmark")}
    out = Path(out_dir)
    written = [_benchmarks_json(out, params, m)]
    for (machine, hw, commit, env), g in m.groupby(["machine", "hardware_id", "commit_hash", "env_name"]):
        newest = g.drop_duplicates(["benchmark", *PARAM_NAMES], keep="last")
        info = runs[runs["run_id"] == newest["run_id"].iloc[-1]].iloc[0]
        folder = inside(out, machine_key(str(machine), str(hw)))
        written.append(_machine_json(folder, info))
        written.append(_result_file(folder, commit, env, newest, params, info))
    return written


def slug(text: str) -> str:
    """A file-name part from a store string: letters, digits, ``._-``; never ``.`` or ``..``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:120].strip(".")
    return cleaned or "_"


def inside(out: Path, *parts: str) -> Path:
    """``out`` joined with ``parts``, refused (ValueError) unless it resolves inside ``out``."""
    path = out.joinpath(*parts)
    if not path.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"{path} is outside {out}: a store string made a path")
    return path


def _benchmarks_json(out: Path, params: dict[str, list[list[str]]], m: pd.DataFrame) -> Path:
    versions = m.groupby("benchmark")["suite_version"].last().to_dict()
    data: dict[str, Any] = {
        b: {
            "code": f"convbench: {b}",
            "name": b,
            "param_names": list(PARAM_NAMES),
            "params": p,
            "timeout": 600,
            "type": "track",
            "unit": METRICS[b.rsplit(".track_", 1)[1]],
            "version": versions.get(b),
        }
        for b, p in params.items()
    }
    data["version"] = 2
    path = out / "benchmarks.json"
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
    return path


def _machine_json(folder: Path, info: pd.Series) -> Path:
    path = folder / "machine.json"
    fp = json.loads(info["fingerprint"] or "{}")
    entry = {
        "machine": folder.name,
        "cpu": info["cpu_model"],
        "num_cpu": str(info["logical_cores"]),
        "ram": str(info["ram_bytes"]),
        "gpu": info["gpus"],
        "os": fp.get("os"),
        "arch": fp.get("arch"),
        "version": 1,
    }
    write_atomic(path, json.dumps(entry, indent=4, sort_keys=True))
    return path


def _result_file(
    folder: Path, commit: str, env: str, rows: pd.DataFrame, params: dict[str, list[list[str]]], info: pd.Series
) -> Path:
    results: dict[str, list[Any]] = {}
    for bench, g in rows.groupby("benchmark"):
        by_combo = {tuple(repr(r[k]) for k in PARAM_NAMES): r for _, r in g.iterrows()}
        combos = list(itertools.product(*params[bench]))
        found = [by_combo.get(c) for c in combos]
        results[bench] = [
            [math.nan if r is None else _value(r) for r in found],
            params[bench],
            g["suite_version"].iloc[-1],
            _ms(g["measured_at"].min() if g["measured_at"].notna().any() else g["started_at"].iloc[0]),
            float(g["measure_s"].fillna(0).sum()),
            [None] * len(combos),
            [None] * len(combos),
            [None if r is None else r["q25"] for r in found],
            [None if r is None else r["q75"] for r in found],
            [None if r is None else r["number"] for r in found],
            [None if r is None else r["n_samples"] for r in found],
            [None if r is None else _samples(r["samples"]) for r in found],
            None,
        ]
    data = {
        "commit_hash": commit,
        "env_name": env,
        "date": _ms(info["started_at"]),
        "params": {"machine": folder.name, "torch": info["torch_version"]},
        "python": "",
        "requirements": {},
        "env_vars": {},
        "result_columns": COLUMNS,
        "results": results,
        "durations": {},
        "version": 2,
    }
    path = inside(folder, f"{slug(str(commit)[:8])}-{slug(str(env))}.json")
    write_atomic(path, json.dumps(data, allow_nan=True, default=_plain))
    return path


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON")
