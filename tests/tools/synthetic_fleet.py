"""A synthetic fleet's store: N machines × M nights of a grid, for measuring the store at scale.

    python tests/tools/synthetic_fleet.py --out /tmp/fleet --machines 10 --nights 365 --grid nightly

Each night is one run per machine holding every combination the grid selects on ``cpu-1t`` and
``cpu-2t`` (``--rounds`` latency rounds, as the grid's runs take them; the other metrics once), written
through the store's own writer path (``Location.write``) with the real schema: values are log-normal
around a per-combination level, with 10 samples each at 1 % spread, a few skipped and failed rows, and
a slow drift, so files compress like real ones. Like a real run, each night also holds the canary at
its start and end and its own roofline peaks (the newest peaks of the committed ``results/``,
jittered), so the report draws every figure it would draw for a real fleet. Prints rows and bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench_lib.store import records, schema, store_path
from bench_lib.store.disk import Location, machine_key
from bench_lib.suite import grids, runner

SAMPLES = 10
CANARY = ("canary_gemm(m=512,n=512,k=512)", "canary_conv3x3(in=64,out=64)@56x56")
DEVICES = ("cpu-1t", "cpu-2t")


def combinations(grid: str) -> list:
    return runner.plan(grids.grid(grid, ["cpu-1t", "cpu-2t"])).selected


@functools.lru_cache(maxsize=4)
def _identity(combos: tuple) -> dict[str, pa.Array]:
    """The columns that name each combination: the same every night, built once."""
    keys = ("suite", "metric", "unit", "case", "batch", "device", "layout", "dtype", "mode")
    return {k: pa.array([getattr(c, k) for c in combos], schema.MEASUREMENTS.field(k).type) for k in keys}


def night_table(
    combos, base: np.ndarray, run: dict, rng: np.random.Generator, drift: float, round_: int = 0
) -> pa.Table:
    n = len(combos)
    metric = np.array([c.metric for c in combos])
    value = base * drift * rng.lognormal(0.0, 0.03, n)
    value = np.where(metric == "peak_memory", np.round(value * 1e9), value)  # bytes
    samples = value[:, None] * (1 + 0.01 * rng.standard_normal((n, SAMPLES)))
    status = np.where(rng.random(n) < 0.02, "skipped", "ok").astype(object)
    status[metric == "energy"] = "skipped"  # no RAPL on a VM, as on the dev VM
    status[rng.random(n) < 0.002] = "failed"
    ok = status == "ok"
    timed = ok & (metric == "latency")  # only latency has samples
    columns = {
        "run_id": [run["run_id"]] * n,
        "machine": [run["machine"]] * n,
        "hardware_id": [run["hardware_id"]] * n,
        "started_at": pa.array([records.utc(run["started_at"])] * n, schema.TIME),
        "commit_hash": [run["commit_hash"]] * n,
        "env_name": [run["env_name"]] * n,
        "torch_version": [run["torch_version"]] * n,
        "suite_version": [run["suite_version"]] * n,
        "grid": [run["grid"]] * n,
        **_identity(tuple(combos)),
        "round": np.full(n, round_, np.int16),
        "status": status.tolist(),
        "reason": [None if s == "ok" else f"synthetic {s}" for s in status],
        "value": pa.array(np.where(ok, value, np.nan), mask=~ok),
        "q25": pa.array(np.quantile(samples, 0.25, axis=1), mask=~timed),
        "q75": pa.array(np.quantile(samples, 0.75, axis=1), mask=~timed),
        "min": pa.array(samples.min(axis=1), mask=~timed),
        "n_samples": pa.array(np.full(n, SAMPLES, np.int32), mask=~timed),
        "number": pa.array(np.full(n, 5, np.int32), mask=~timed),
        "noisy": pa.array(np.zeros(n, bool), mask=~timed),
        "samples": pa.ListArray.from_arrays(
            pa.array(np.arange(0, n * SAMPLES + 1, SAMPLES, dtype=np.int32)),
            pa.array(samples.ravel()),
            mask=pa.array(~timed),
        ),
        "measure_s": rng.uniform(0.05, 0.4, n),
        "measured_at": pa.array([records.utc(run["started_at"])] * n, schema.TIME),
        "injected": pa.nulls(n, pa.string()),
    }
    return pa.table(columns, schema=schema.MEASUREMENTS)


def canary_table(run: dict, rng: np.random.Generator, drift: float) -> pa.Table:
    """The canary's rows of one night: both cases on both devices, at the start (round 0) and end (1)."""
    keys = [(case, device, rnd) for rnd in (0, 1) for device in DEVICES for case in CANARY]
    n = len(keys)
    value = np.array([2e-3 if "gemm" in k[0] else 4e-3 for k in keys]) * drift * rng.lognormal(0.0, 0.02, n)
    rows = [
        {
            **{k: run[k] for k in ("run_id", "machine", "hardware_id", "commit_hash", "env_name", "grid")},
            **{"torch_version": run["torch_version"], "suite_version": run["suite_version"]},
            "started_at": records.utc(run["started_at"]),
            "measured_at": records.utc(run["started_at"]),
            **{"suite": "canary", "metric": "latency", "unit": "seconds", "case": case, "batch": 1},
            **{"device": device, "layout": "nchw", "dtype": "float32", "mode": "inference", "round": rnd},
            **{"status": "ok", "value": v, "min": v, "n_samples": SAMPLES, "number": 1, "noisy": False},
        }
        for (case, device, rnd), v in zip(keys, value, strict=True)
    ]
    return pa.Table.from_pylist(rows, schema=schema.MEASUREMENTS)


@functools.lru_cache(maxsize=1)
def _template_peaks() -> tuple[dict, ...]:
    """The newest committed run's peak rows (one machine's real roofs): the shape every night copies."""
    from bench_lib.store.query import Store

    store = Store(store_path(Path(__file__).resolve().parents[2] / "results"))
    peaks = store.frame("peaks")
    if peaks.empty:
        return ()
    newest = peaks[peaks["run_id"] == peaks.sort_values("started_at")["run_id"].iloc[-1]]
    newest = newest.drop(columns=["run_id", "machine", "hardware_id", "started_at"]).astype(object)
    return tuple(newest.where(newest.notna(), None).to_dict("records"))


def peaks_table(run: dict, rng: np.random.Generator) -> pa.Table | None:
    rows = [
        {
            **r,
            **{k: run[k] for k in ("run_id", "machine", "hardware_id")},
            "started_at": records.utc(run["started_at"]),
            "measured_at": records.utc(run["started_at"]),
            "value": r["value"] * rng.lognormal(0.0, 0.03),
        }
        for r in _template_peaks()
    ]
    return pa.Table.from_pylist(rows, schema=schema.PEAKS) if rows else None


def generate(
    out: str, machines: int, nights: int, grid: str, start: dt.date, rounds: int = 1, seed: int = 0
) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    combos = combinations(grid)
    timed = np.array([c.metric == "latency" for c in combos])  # the combinations measured once per round
    location = Location.parse(store_path(out))
    rows = 0
    for m in range(machines):
        name, hw = f"node{m:02d}", f"{m:02d}" + "f" * 10
        base = rng.lognormal(np.log(1e-3), 1.0, len(combos))
        for night in range(nights):
            day = start + dt.timedelta(days=night)
            run = {
                "run_id": f"{day:%Y%m%d}T020000Z-{m:08x}-{night:010x}",
                "machine": name,
                "hardware_id": hw,
                "started_at": f"{day}T02:00:00+00:00",
                "finished_at": f"{day}T03:00:00+00:00",
                "state": "complete",
                "grid": grid,
                "devices": ["cpu-1t", "cpu-2t"],
                "rounds": rounds,
                "commit_hash": f"{night:040x}",
                "env_name": "existing-venv",
                "torch_version": "2.13.0+cpu",
                "suite_version": "0.1.0-1",
                "summary": {"selected": len(combos), "ok": len(combos)},
            }
            key, month = machine_key(name, hw), records.month_of(run["started_at"])
            drift = 1 + 0.0002 * night
            tables = [night_table(combos, base, run, rng, drift), canary_table(run, rng, drift)]
            latency = [c for c, t in zip(combos, timed, strict=True) if t]
            for r in range(1, rounds):
                tables.append(night_table(latency, base[timed], run, rng, drift, round_=r))
            table = pa.concat_tables(tables)
            location.write(location.path("measurements", key, month, run["run_id"]), table)
            peaks = peaks_table(run, rng)
            if peaks is not None:
                location.write(location.path("peaks", key, month, run["run_id"]), peaks)
            location.write(
                location.path("runs", key, month, run["run_id"]), records.arrow("runs", [records.run_row(run)])
            )
            rows += table.num_rows
        print(f"  {name}: {nights} nights", file=sys.stderr, flush=True)
    size = sum(p.stat().st_size for p in Path(store_path(out)).rglob("*.parquet"))
    return rows, size


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--machines", type=int, default=10)
    p.add_argument("--nights", type=int, default=365)
    p.add_argument("--grid", default="nightly", choices=list(grids.GRIDS))
    p.add_argument("--start", default="2025-11-25")
    p.add_argument("--rounds", type=int, default=1, help="latency rounds per night (the nightly grid takes 5)")
    args = p.parse_args()
    started = time.perf_counter()
    start = dt.date.fromisoformat(args.start)
    rows, size = generate(args.out, args.machines, args.nights, args.grid, start, args.rounds)
    took = time.perf_counter() - started
    print(f"{rows:,} rows, {size / 2**20:,.1f} MiB ({size / rows:.1f} bytes/row), written in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
