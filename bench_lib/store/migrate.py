"""The JSON results of convbench 0.1 into the store (``convbench store migrate``); nothing is dropped.

Read from ``<results>/<machine>/``:

- ``history/<run id>.jsonl``: a run record, then one event per combination: one run each;
- ``<commit>-<env>.json`` (asv's files): one run each, for a (machine, commit, environment) that no
  history run covers (asv kept only the last run there; the history has every run);
- ``roofline.jsonl``: each line one run of grid ``peaks`` (peaks cached at their own time; the analysis
  takes a run's roof only from peaks measured with that run);
- ``breakdown.jsonl``: one run of grid ``breakdowns`` holding every record;
- ``machine.json``: the hardware facts behind the ``hardware_id``.

Migrating twice writes the same files again (run ids are derived from the files), so it is safe to
repeat. Lines and files that cannot be read are skipped with a warning naming them.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_lib.files import json_objects
from bench_lib.measure.machine import hardware_id
from bench_lib.measure.roofline import Peaks
from bench_lib.store.writer import RunWriter
from bench_lib.suite.combination import PARAM_NAMES, metric_of


@dataclass
class Migrated:
    runs: int = 0
    rows: int = 0
    files: list[Path] = field(default_factory=list)  # the old files read (the caller may remove them)


def _json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        warnings.warn(f"skipping {path}: not a readable JSON file ({e})", stacklevel=3)
        return None


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        warnings.warn(f"skipping {path}: {e}", stacklevel=3)
        return []
    out = []

    def bad(n: int, why: str) -> None:
        warnings.warn(f"{path}: line {n} {why}; skipped", stacklevel=4)

    for value in json_objects(text.splitlines(), bad):
        out.append(value)
    return out


def machine_facts(info: dict[str, Any] | None) -> dict[str, Any]:
    """A 0.1 ``machine.json`` (asv's machine entry) as a fingerprint with its ``hardware_id``."""
    info = info if isinstance(info, dict) else {}
    gpu = str(info.get("gpu") or "none")
    gpus = []
    for part in [] if gpu == "none" else gpu.split(", "):
        count, _, name = part.partition("x ")
        gpus += [{"name": name}] * (int(count) if count.isdigit() else 1)
    facts = {
        "arch": info.get("arch"),
        "cpu_model": info.get("cpu"),
        "logical_cores": int(info["num_cpu"]) if str(info.get("num_cpu", "")).isdigit() else None,
        "ram_gib": round(int(info["ram"]) / 2**30) if str(info.get("ram", "")).isdigit() else None,
        "gpus": [g["name"] for g in gpus],
    }
    return {
        "machine_id": info.get("machine"),
        "os": info.get("os"),
        "arch": info.get("arch"),
        "cpu_model": info.get("cpu"),
        "logical_cores": facts["logical_cores"],
        "ram_bytes": int(info["ram"]) if str(info.get("ram", "")).isdigit() else None,
        "gpus": gpus,
        "nvidia_driver": info.get("driver"),
        "torch_version": info.get("torch"),
        "hardware_id": hardware_id(facts),
    }


def _base(machine: str, fp: dict[str, Any], run_id: str, started: Any, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "machine": machine,
        "hardware_id": fp["hardware_id"],
        "started_at": started,
        "finished_at": started,
        "state": "complete",
        "rounds": 1,
        "fingerprint": fp,
        **extra,
    }


def _history_run(path: Path, machine: str, fp: dict[str, Any]) -> tuple[dict[str, Any], list[dict]] | None:
    lines = _lines(path)
    if not lines or not isinstance(lines[0].get("run"), dict):
        warnings.warn(f"skipping {path}: no run record on its first line", stacklevel=2)
        return None
    r = lines[0]["run"]
    summary = r.get("summary") or {}
    run = _base(machine, fp, r.get("run_id") or path.stem, r.get("started"))
    run.update(
        {k: r.get(k) for k in ("grid", "devices", "bench", "commit_hash", "env_name", "python", "launch_method")},
        finished_at=r.get("finished"),
        state="interrupted" if summary.get("interrupted") else "complete",
        bench_lib_version=str(r.get("bench_lib_version")),
        suite_version=r.get("suite_version") or str(r.get("bench_lib_version")),
        summary=summary,
        torch_version=fp.get("torch_version"),
    )
    events = [e for e in lines[1:] if "suite" in e and "params" in e]
    return run, events


def _decode(value: str) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _asv_run(path: Path, machine: str, fp: dict[str, Any]) -> tuple[dict[str, Any], list[dict]] | None:
    data = _json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        if data is not None:
            warnings.warn(f"skipping {path}: not an asv result file", stacklevel=2)
        return None
    columns = data.get("result_columns") or []
    commit, env = data.get("commit_hash") or "", data.get("env_name")
    digest = hashlib.sha256(f"{machine}/{fp['hardware_id']}/{commit}/{env}".encode()).hexdigest()[:6]
    events: list[dict[str, Any]] = []
    started = None
    version = None
    for benchmark, row in data["results"].items():
        if not isinstance(row, list):
            warnings.warn(f"{path}: {benchmark} is not an asv result row; skipped", stacklevel=2)
            continue
        col = dict(zip(columns, row, strict=False))
        version = version or col.get("version")
        started = started or col.get("started_at")
        events += _asv_events(path, benchmark, col)
    if not events:
        warnings.warn(f"skipping {path}: no result rows in it", stacklevel=2)
        return None
    run_started = (started or data.get("date") or 0) / 1000
    run = _base(machine, fp, f"asv-{commit[:8]}-{digest}", run_started, commit_hash=commit, env_name=env)
    torch_version = (data.get("params") or {}).get("torch") or fp.get("torch_version")
    run.update(grid=None, suite_version=version, torch_version=torch_version)
    return run, events


def _asv_events(path: Path, benchmark: str, col: dict[str, Any]) -> list[dict[str, Any]]:
    params = col.get("params") or []
    combos = list(itertools.product(*params)) if params else []
    n = len(combos)

    def column(key: str) -> list[Any]:
        values = col.get(key) or []
        return list(values) + [None] * (n - len(values))

    results, samples, q25, q75 = column("result"), column("samples"), column("stats_q_25"), column("stats_q_75")
    number = column("stats_number")
    suite = benchmark.split(".", 1)[0].removeprefix("bench_")
    metric = metric_of(benchmark)
    events = []
    for i, combo in enumerate(combos):
        values = [_decode(p) for p in combo]
        if len(values) != len(PARAM_NAMES):
            warnings.warn(
                f"{path}: {benchmark} has {len(values)} parameters, not {len(PARAM_NAMES)}; skipped", stacklevel=3
            )
            return []
        e: dict[str, Any] = {"suite": suite, "metric": metric, "params": dict(zip(PARAM_NAMES, values, strict=True))}
        value = results[i]
        if value is None:
            e.update(status="failed", error="asv recorded a failure (null)")
        elif isinstance(value, float) and math.isnan(value):
            e.update(status="skipped", reason="asv recorded a skip (NaN)")
        else:
            e.update(status="ok", **_asv_value(metric, value, samples[i], q25[i], q75[i], number[i]))
        events.append(e)
    return events


def _asv_value(metric: str, value: Any, samples: Any, q25: Any, q75: Any, number: Any) -> dict[str, Any]:
    if metric == "latency":
        return {"measurement": {"median_s": value, "samples_s": samples, "q25_s": q25, "q75_s": q75, "block": number}}
    if metric == "peak_memory":
        return {"memory": {"peak_bytes": value}}
    return {"energy_j_per_item": value}


def _peaks_runs(path: Path, machine: str, fp: dict[str, Any]) -> list[tuple[dict[str, Any], Peaks]]:
    import dataclasses

    known = {f.name for f in dataclasses.fields(Peaks)}
    out = []
    for n, record in enumerate(_lines(path)):
        try:
            peaks = Peaks(**{k: v for k, v in record.items() if k in known})
        except TypeError as e:
            warnings.warn(f"{path}: line {n + 1} is not a peaks record ({e}); skipped", stacklevel=2)
            continue
        stamp = "".join(ch for ch in peaks.measured_at if ch.isdigit())[:14]
        run = _base(machine, fp, f"peaks-{stamp}-{peaks.device}", peaks.measured_at, grid="peaks")
        run.update(devices=[peaks.device], torch_version=peaks.torch_version)
        out.append((run, peaks))
    return out


def migrate(results: str | Path, store: str | Path) -> Migrated:
    """Write every 0.1 file under ``results`` into ``store`` (see the module docstring)."""
    done = Migrated()
    root = Path(results)
    for machine_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("store", "asv", "logs")):
        fp = machine_facts(_json(machine_dir / "machine.json") if (machine_dir / "machine.json").exists() else None)
        name = machine_dir.name
        fp["machine_id"] = fp.get("machine_id") or name
        covered = set()
        for path in sorted((machine_dir / "history").glob("*.jsonl")):
            found = _history_run(path, name, fp)
            done.files.append(path)
            if found:
                run, events = found
                covered.add((run.get("commit_hash"), run.get("env_name")))
                _save(store, run, events, [], [], done)
        for path in sorted(machine_dir.glob("*.json")):
            if path.name == "machine.json":
                continue
            done.files.append(path)
            found = _asv_run(path, name, fp)
            if found and (found[0]["commit_hash"], found[0]["env_name"]) not in covered:
                _save(store, *found, [], [], done)
        if (machine_dir / "roofline.jsonl").exists():
            done.files.append(machine_dir / "roofline.jsonl")
            for run, peaks in _peaks_runs(machine_dir / "roofline.jsonl", name, fp):
                _save(store, run, [], [peaks], [], done)
        if (machine_dir / "breakdown.jsonl").exists():
            path = machine_dir / "breakdown.jsonl"
            done.files.append(path)
            records = _lines(path)
            if records:
                first = min(str(r.get("measured_at")) for r in records)
                run = _base(name, fp, f"breakdowns-{name}", first, grid="breakdowns")
                _save(store, run, [], [], records, done)
        if (machine_dir / "machine.json").exists():
            done.files.append(machine_dir / "machine.json")
    return done


def _save(store, run, events, peaks, breakdowns, done: Migrated) -> None:
    if run.get("started_at") is None:
        warnings.warn(f"run {run['run_id']}: no start time; skipped", stacklevel=2)
        return
    RunWriter(store, run).save(run, events, peaks, breakdowns)
    done.runs += 1
    done.rows += len(events)
