"""A run as the store's rows: events, the run record, peaks and breakdowns into Arrow tables, and back.

Everything here is a pure function of its input, so the runner, the migration of old results and the
synthetic fleet generator all write exactly the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from bench_lib.measure import metrics
from bench_lib.measure.roofline import Peaks
from bench_lib.store import schema
from bench_lib.suite.combination import METRICS, PARAM_NAMES

RUN_KEYS = ("run_id", "machine", "hardware_id", "started_at")


def utc(value: Any) -> dt.datetime | None:
    """An ISO string, a UNIX time in seconds or a datetime, as an aware UTC datetime (None stays None)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def month_of(started_at: Any) -> str:
    return utc(started_at).strftime("%Y-%m")


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _samples(samples: Any) -> list[float] | None:
    """The samples as floats, or None where they are absent or any is not a finite number."""
    if not isinstance(samples, list):
        return None
    values = [_finite(x) for x in samples]
    return None if any(v is None for v in values) else values


def event_value(e: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The value an ``ok`` event reports (in its metric's unit, read as its metric's entry says:
    :data:`bench_lib.measure.metrics.METRICS`) and its statistics, each checked against its column's type."""
    metric = metrics.METRICS.get(e["metric"])
    if metric is None:
        return None, {}
    value, stats = metric.read(e)
    checks = {"number": lambda x: x if isinstance(x, int) and not isinstance(x, bool) else None}
    checks.update(noisy=lambda x: x if isinstance(x, bool) else None, samples=_samples)
    checks["n_samples"] = checks["number"]
    return value, {k: checks.get(k, _finite)(v) for k, v in stats.items()}


def measurement_rows(run: dict[str, Any], events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per combination and round. A round is one process (asv's ``rounds``): each process's last
    event for a combination is its word (setup reports, then track). A value that is not a finite number
    is kept as a failure saying so, never as a result."""
    last: dict[tuple, dict[str, Any]] = {}
    rounds: dict[tuple, list[Any]] = defaultdict(list)
    for e in events:
        try:
            combo = (e["suite"], e["metric"], *(e["params"][k] for k in PARAM_NAMES))
        except (KeyError, TypeError):
            continue
        side = e.get("side") if isinstance(e.get("side"), str) else None
        if e.get("pid") not in rounds[(*combo, side)]:
            rounds[(*combo, side)].append(e.get("pid"))
        last[(*combo, side, e.get("pid"))] = e
    sides = {s.get("label"): s for s in run.get("sides") or [] if isinstance(s, dict)}
    rows = []
    for key, e in last.items():
        combo, side, pid = key[:-2], key[-2], key[-1]
        row = _measurement_row(run, combo, rounds[(*combo, side)].index(pid), e)
        if side is not None:  # an A/B run: the row's environment is its side's
            pair = e.get("pair")
            found = sides.get(side) or {}
            row.update(side=side, pair=pair if isinstance(pair, int) and not isinstance(pair, bool) else None)
            row["env_name"] = found.get("env_name")
        rows.append(row)
    return rows


def _measurement_row(run: dict[str, Any], combo: tuple, round_: int, e: dict[str, Any]) -> dict[str, Any]:
    suite, metric, *params = combo
    status, reason, stats, value = e.get("status"), e.get("reason") or e.get("error"), {}, None
    if status == "ok":
        raw, stats = event_value(e)
        value = _finite(raw)
        if value is None:
            status, reason = "failed", f"the measured value is {raw!r}, not a finite number"
    elif status not in ("skipped", "failed"):
        status, reason = "failed", f"unknown status {status!r} in the event"
    return {
        **{k: run.get(k) for k in RUN_KEYS},
        "commit_hash": run.get("commit_hash"),
        "env_name": run.get("env_name"),
        "torch_version": e.get("torch_version")
        or ((e.get("measurement") or {}).get("context") or {}).get("torch_version")
        or run.get("torch_version"),
        "suite_version": run.get("suite_version"),
        "grid": run.get("grid"),
        "suite": suite,
        "metric": metric,
        "unit": METRICS.get(metric),
        **dict(zip(PARAM_NAMES, params, strict=True)),
        "round": round_,
        "status": status,
        "reason": reason,
        "value": value,
        **stats,
        "measure_s": _finite(e.get("measure_s")),
        "measured_at": utc(e.get("time")),
        "injected": e.get("injected") if isinstance(e.get("injected"), str) else None,
        **_kernel_fields(e),
    }


def _kernel_fields(e: dict[str, Any]) -> dict[str, Any]:
    """The kernel and process columns of an event (:mod:`bench_lib.measure.kernels`,
    :mod:`bench_lib.measure.fresh`), each checked against its type."""
    text = {k: e.get(k) if isinstance(e.get(k), str) else None for k in ("kernel", "kernel_fallback")}
    found, process = e.get("kernels"), e.get("process")
    measured = e.get("measurement") if isinstance(e.get("measurement"), dict) else {}
    faults = measured.get("page_faults_per_call")
    return {
        **text,
        "kernels": json.dumps(found, sort_keys=True, default=str) if isinstance(found, dict) else None,
        "page_faults_per_call": _finite(faults),
        "process": json.dumps(process, sort_keys=True, default=str) if isinstance(process, dict) else None,
    }


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """The ``runs`` row of a run record (the runner's, or one rebuilt from old files)."""
    fp = run.get("fingerprint") or {}
    summary = run.get("summary") or {}
    gpus = fp.get("gpus") or []
    return {
        **{k: run.get(k) for k in RUN_KEYS},
        "finished_at": run.get("finished_at"),
        "state": run.get("state"),
        "grid": run.get("grid"),
        "devices": list(run.get("devices") or []),
        "bench": run.get("bench"),
        "rounds": run.get("rounds", 1),
        **{
            k: run.get(k)
            for k in (
                "commit_hash",
                "env_name",
                "python",
                "torch_version",
                "bench_lib_version",
                "suite_version",
                "launch_method",
            )
        },
        "selected": summary.get("selected"),
        "ok": summary.get("ok"),
        "skipped": sum((summary.get("skipped") or {}).values()),
        "failed": len(summary.get("failed") or []),
        "missing": summary.get("missing"),
        "wall_s": summary.get("wall_s"),
        "measure_s": summary.get("measure_s"),
        "cpu_model": fp.get("cpu_model"),
        "logical_cores": fp.get("logical_cores"),
        "ram_bytes": fp.get("ram_bytes"),
        "gpus": ", ".join(g["name"] for g in gpus) or "none",
        "fingerprint": json.dumps(fp, default=str, sort_keys=True),
        "schema_version": schema.SCHEMA_VERSION,
        "faults": json.dumps(run["faults"], sort_keys=True) if run.get("faults") else None,
        "machine_state": json.dumps(run["machine_state"], sort_keys=True) if run.get("machine_state") else None,
        "timing": json.dumps(run["timing"], sort_keys=True) if run.get("timing") else None,
        "overhead_fraction": _finite(summary.get("overhead_fraction")),
        "run_level_s": _finite(summary.get("run_level_s")),
        "sides": json.dumps(run["sides"], default=str, sort_keys=True) if run.get("sides") else None,
        "pairs": run.get("pairs"),
        "sequential": json.dumps(run["sequential"], sort_keys=True) if run.get("sequential") else None,
    }


def peak_rows(run: dict[str, Any], peaks: Iterable[Peaks]) -> list[dict[str, Any]]:
    rows = []
    for p in peaks:
        base = {
            **{k: run.get(k) for k in RUN_KEYS},
            "device": p.device,
            "torch_version": p.torch_version,
            "measured_at": utc(p.measured_at),
        }
        for peak, by_dtype in (("gemm", p.gemm_flops_per_s), ("conv3x3", p.conv3x3_flops_per_s)):
            for dtype, value in by_dtype.items():
                rows.append({**base, "peak": peak, "dtype": dtype, "value": value, "unit": "flops_per_s"})
        levels = p.copy_levels_bytes_per_s or {2 * p.copy_bytes: p.copy_bytes_per_s}
        for size, value in levels.items():
            rows.append({**base, "peak": "copy", "working_set_bytes": int(size), "value": value, "unit": "bytes_per_s"})
    return rows


def peaks_from_rows(rows: list[dict[str, Any]]) -> Peaks:
    """One device's :class:`Peaks` from its ``peaks`` rows of one run."""
    gemm = {r["dtype"]: r["value"] for r in rows if r["peak"] == "gemm"}
    conv = {r["dtype"]: r["value"] for r in rows if r["peak"] == "conv3x3"}
    levels = {int(r["working_set_bytes"]): r["value"] for r in rows if r["peak"] == "copy"}
    largest = max(levels) if levels else 0
    return Peaks(
        device=rows[0]["device"],
        gemm_flops_per_s=gemm,
        conv3x3_flops_per_s=conv,
        copy_bytes_per_s=levels.get(largest, math.nan),
        copy_levels_bytes_per_s=levels,
        gemm_size=0,
        copy_bytes=largest // 2,
        torch_version=rows[0].get("torch_version") or "",
        measured_at=str(rows[0].get("measured_at")),
    )


def breakdown_rows(run: dict[str, Any], records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        for order, part in enumerate(r.get("parts") or []):
            rows.append(
                {
                    **{k: run.get(k) for k in RUN_KEYS},
                    **{k: r.get(k) for k in ("device", "layout", "case", "batch", "torch_version", "method")},
                    "measured_at": utc(r.get("measured_at")),
                    "part_order": order,
                    "part": part.get("part"),
                    "part_s": _finite(part.get("median_s")),
                    "macs": part.get("macs"),
                }
            )
    return rows


def arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """``rows`` as an Arrow table of ``table``'s schema (missing keys are nulls, extra keys dropped)."""
    sch = schema.TABLES[table]
    time_cols = {f.name for f in sch if f.type == schema.TIME}
    columns = {f.name: [utc(r.get(f.name)) if f.name in time_cols else r.get(f.name) for r in rows] for f in sch}
    return pa.table(columns, schema=sch)
