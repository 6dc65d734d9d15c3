"""The store's tables: their columns, types and units (``docs/store.md`` is the same for readers).

Four tables, each a set of Parquet files, one file per run and table:

- ``measurements``: one row per combination, per round (process), per run (suite ``canary``: the fixed
  canary workloads the runner times in its own process, round 0 at the start of the run and 1 at the end).
  ``value`` is in ``unit``:
  ``seconds`` per call (latency, the median of the round's samples), ``bytes`` (peak memory) or
  ``joules`` per item (energy). A skipped or failed round has no value and says why in ``reason``.
- ``runs``: one row per run: where, what, with which code, and how it ended (``state``).
- ``peaks``: the run's roofline peaks, one row per device and peak (compute in FLOP/s, where FLOPs =
  2 × MACs, or a copy's bandwidth in bytes/s at one working-set size).
- ``breakdowns``: per-part times of networks at batch 1.

Columns are added, never renamed or retyped, and ``SCHEMA_VERSION`` counts the additions: a reader fills
a column an older file lacks with nulls and ignores (with a warning) a column it does not know.
"""

from __future__ import annotations

import pyarrow as pa

# 2: measurements.injected; runs.faults, machine_state, timing; the canary suite. 3: runs.run_level_s.
# 4: A/B runs: measurements.side, pair; runs.sides, pairs. Kernels: measurements.kernel, kernel_fallback, kernels
# 5: measurements.page_faults_per_call, process (the plain suite's fresh processes)
# 6: runs.sequential (an A/B run's looks and the confidence of each)
SCHEMA_VERSION = 6
TIME = pa.timestamp("us", tz="UTC")

# Who and where: the first columns of every table.
_RUN = [
    ("run_id", pa.string()),
    ("machine", pa.string()),  # the human name (hostname or CONVBENCH_MACHINE)
    ("hardware_id", pa.string()),  # hash of CPU model, arch, cores, RAM GiB, GPUs (measure.machine.hardware_id)
    ("started_at", TIME),  # the run's start, UTC
]

MEASUREMENTS = pa.schema(
    [
        *_RUN,
        ("commit_hash", pa.string()),
        ("env_name", pa.string()),
        ("torch_version", pa.string()),
        ("suite_version", pa.string()),  # the method version: never compare across it
        ("grid", pa.string()),
        ("suite", pa.string()),  # ops, blocks, networks, papers, plain (the ops in fresh processes)
        ("metric", pa.string()),  # latency, peak_memory, energy
        ("unit", pa.string()),  # seconds, bytes, joules
        ("case", pa.string()),
        ("batch", pa.int32()),
        ("device", pa.string()),
        ("layout", pa.string()),
        ("dtype", pa.string()),
        ("mode", pa.string()),
        ("round", pa.int16()),  # 0, 1, …: the process this row was measured in
        ("status", pa.string()),  # ok, skipped, failed
        ("reason", pa.string()),  # why skipped or failed; null when ok
        ("value", pa.float64()),  # in unit; null unless ok
        ("q25", pa.float64()),  # latency samples' quartiles, seconds
        ("q75", pa.float64()),
        ("min", pa.float64()),
        ("n_samples", pa.int32()),
        ("number", pa.int32()),  # calls timed per sample
        ("noisy", pa.bool_()),  # relative IQR above measure.timing.NOISY_RELATIVE_IQR
        ("samples", pa.list_(pa.float64())),  # seconds per call, one per sample (latency only)
        ("measure_s", pa.float64()),  # seconds spent measuring this round
        ("measured_at", TIME),
        ("injected", pa.string()),  # the fault planted in this row (CONVBENCH_SLOWDOWN), null when none
        ("side", pa.string()),  # A/B runs: the side (A, B, ...) this row's environment is; null otherwise
        ("pair", pa.int16()),  # A/B runs: the pair (0, 1, ...) this process belongs to; null otherwise
        ("kernel", pa.string()),  # latency: the ATen ops that ran (above 25 % of self time) [oneDNN impls]
        ("kernel_fallback", pa.string()),  # latency: a generic or reference kernel among them, with why; else null
        ("kernels", pa.string()),  # latency: ATen ops with self-time shares, oneDNN primitives, device kernels, JSON
        ("page_faults_per_call", pa.float64()),  # latency: minor page faults per timed call of the process
        ("process", pa.string()),  # plain suite: what the fresh process had (pid, glibc heap, page offsets), JSON
    ]
)

RUNS = pa.schema(
    [
        *_RUN,
        ("finished_at", TIME),
        ("state", pa.string()),  # running, complete, interrupted, failed
        ("grid", pa.string()),
        ("devices", pa.list_(pa.string())),
        ("bench", pa.string()),  # the --bench filter, null for the whole grid
        ("rounds", pa.int16()),
        ("commit_hash", pa.string()),
        ("env_name", pa.string()),
        ("python", pa.string()),
        ("torch_version", pa.string()),
        ("bench_lib_version", pa.string()),
        ("suite_version", pa.string()),
        ("launch_method", pa.string()),
        ("selected", pa.int32()),
        ("ok", pa.int32()),
        ("skipped", pa.int32()),
        ("failed", pa.int32()),
        ("missing", pa.int32()),
        ("wall_s", pa.float64()),
        ("measure_s", pa.float64()),
        ("cpu_model", pa.string()),
        ("logical_cores", pa.int32()),
        ("ram_bytes", pa.int64()),
        ("gpus", pa.string()),  # "1x NVIDIA H200", or "none"
        ("fingerprint", pa.string()),  # the whole fingerprint, JSON
        ("schema_version", pa.int16()),
        ("faults", pa.string()),  # the injected faults (CONVBENCH_FAIL, CONVBENCH_SLOWDOWN), JSON; null when none
        ("machine_state", pa.string()),  # load, frequency governor, threads at the start and end, JSON
        ("timing", pa.string()),  # the grid's per-round timing settings, JSON
        ("overhead_fraction", pa.float64()),  # 1 - measure_s / wall_s
        ("run_level_s", pa.float64()),  # of measure_s: the roofline peaks, canaries and network breakdowns
        ("sides", pa.string()),  # A/B runs: each side's label, python, variables, env_name and torch build, JSON
        ("pairs", pa.int16()),  # A/B runs: the most pairs of processes per combination; null for other runs
        ("sequential", pa.string()),  # A/B runs: looks, alpha per look, factor and budget_s, JSON; null before 6
    ]
)

PEAKS = pa.schema(
    [
        *_RUN,
        ("device", pa.string()),
        ("torch_version", pa.string()),
        ("measured_at", TIME),
        ("peak", pa.string()),  # gemm, conv3x3 (FLOP/s) or copy (bytes/s)
        ("dtype", pa.string()),  # compute peaks only
        ("working_set_bytes", pa.int64()),  # copies only: source + destination bytes
        ("value", pa.float64()),
        ("unit", pa.string()),  # flops_per_s or bytes_per_s
    ]
)

BREAKDOWNS = pa.schema(
    [
        *_RUN,
        ("device", pa.string()),
        ("layout", pa.string()),
        ("case", pa.string()),
        ("batch", pa.int32()),
        ("torch_version", pa.string()),
        ("measured_at", TIME),
        ("method", pa.string()),
        ("part_order", pa.int32()),
        ("part", pa.string()),
        ("part_s", pa.float64()),  # median seconds of this part alone
        ("macs", pa.int64()),  # the part's traced MACs (FLOPs = 2 × MACs)
    ]
)

TABLES = {"measurements": MEASUREMENTS, "runs": RUNS, "peaks": PEAKS, "breakdowns": BREAKDOWNS}
PARTITIONS = ("machine_key", "month")  # hive folders: <table>/machine_key=<name>-<hardware id>/month=YYYY-MM/
