"""Hand-made asv result directories, written the way asv 0.6 writes them (format version 2)."""

import json
from pathlib import Path

from bench_lib.store.asv_files import COLUMNS  # asv 0.6's result columns, one list for both

PARAMS = lambda cases, devices=("cpu-1t",), modes=("inference",): [  # noqa: E731
    [repr(c) for c in cases],
    ["1"],
    [repr(d) for d in devices],
    ["'nchw'"],
    ["'float32'"],
    [repr(m) for m in modes],
]


def machine(root: Path, name: str, **extra) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "machine.json").write_text(
        json.dumps({"machine": name, "cpu": "Test CPU", "num_cpu": "2", "version": 1, **extra})
    )
    return d


def latency_row(values, cases, samples=None, version="0.1.0-1", ci=None, started_at=1_795_000_000_000):
    ci = ci or [
        [v * 0.99 if isinstance(v, float) else None for v in values],
        [v * 1.01 if isinstance(v, float) else None for v in values],
    ]
    return [
        values,
        PARAMS(cases),
        version,
        started_at,
        1.0,
        ci[0],
        ci[1],
        values,
        values,
        [10] * len(values),
        [len(s) if s else None for s in (samples or [None] * len(values))],
        samples,
        None,
    ]


def result_file(machine_dir: Path, commit: str, env: str, benchmarks: dict, date_ms=1_795_000_000_000) -> Path:
    path = machine_dir / f"{commit[:8]}-{env}.json"
    path.write_text(
        json.dumps(
            {
                "commit_hash": commit,
                "env_name": env,
                "date": date_ms,
                "params": {"machine": machine_dir.name},
                "python": "3.11",
                "requirements": {},
                "env_vars": {},
                "result_columns": COLUMNS,
                "results": benchmarks,
                "durations": {},
                "version": 2,
            },
            allow_nan=True,
        )
    )
    return path


def stored(root: Path) -> Path:
    """``root``'s asv-format files migrated into its store (how results of convbench 0.1 are read)."""
    import warnings

    from bench_lib.store.migrate import migrate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        migrate(root, root / "store")
    return root


def peaks(**kw):
    """A device's roofline peaks: 100 GFLOP/s GEMM and 10 GB/s copies unless ``kw`` says otherwise."""
    from bench_lib.measure.roofline import Peaks

    base = dict(
        device="cpu-1t",
        gemm_flops_per_s={"float32": 100e9},
        copy_bytes_per_s=10e9,
        gemm_size=1024,
        copy_bytes=2**28,
        torch_version="2.13.0",
        measured_at="2026-11-24T00:00:00+00:00",
    )
    return Peaks(**{**base, **kw})
