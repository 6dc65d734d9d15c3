"""What the asv suite runs: the grids and which combinations each leaves out, and why.

The asv files in ``benchmarks/`` take their params from :func:`grid`; :mod:`bench_lib.suite.worker` runs one
combination; ``convbench run`` uses the same grid to select, count and report combinations.

Environment (the same at asv's discovery and run, which ``convbench run`` guarantees):

- ``CONVBENCH_GRID``: one of ``GRIDS`` (``default`` when unset).
- ``CONVBENCH_DEVICES``: comma-separated device specs to run, overriding the detected ones.

Device detection never initialises CUDA or MPS (it runs in asv's fork server): see
:func:`bench_lib.measure.devices.candidate_specs`; availability is decided in ``setup``, in the forked child.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench_lib.catalogue import registry
from bench_lib.catalogue.cases import Case
from bench_lib.measure import devices, fresh, kinds
from bench_lib.suite import papers
from bench_lib.suite.combination import METRICS, PLAIN, SUITES, Combination

# One round (process) of a latency combination: warm up at most 0.25 s, then sample for at least 0.25 s
# (a fast op takes more samples, not a shorter window) and at most 0.5 s. The default and nightly grids
# share it, so a default run's op latencies are the nightly's. Why these figures: docs/verdicts.md.
ROUND_TIMING = {
    "samples": 10,
    "min_samples": 5,
    "min_time_s": 0.25,
    "max_time_s": 0.5,
    "max_warmup_s": 0.25,
    "min_sample_s": 0.004,
}
# Latency rounds (processes) per combination in the nightly and full grids; why five: docs/verdicts.md.
NIGHTLY_ROUNDS = 5
# Fresh processes per combination of the plain suite (the allocator state a user's script has): a share
# of one in twelve is seen, and 0 of 12 against 10 of 12 in the slow mode is a change at alpha 0.001
# (Fisher's exact test: bench_lib.measure.modes.share_test). Why: docs/allocator.md.
PLAIN_ROUNDS = fresh.PROCESSES
# Why no float16 on CPU outside the full grid: docs/verdicts.md ("The grids").
CPU_FLOAT16 = "float16 runs on GPUs only in this grid (CPU float16 convs take reference kernels: 20x float32)"
STAGE_SIZES = list(registry.STAGE_CHANNELS)  # the four stage shapes of ImageNet-style networks


def op_cases(size: int) -> list[str]:
    """Every registered op at one stage (:data:`registry.STAGE_CHANNELS`), as its ``at_stage`` says."""
    channels = registry.STAGE_CHANNELS[size]
    return [str(Case(name, registry.get(name).at_stage(channels), size, size)) for name in registry.names("op")]


def plain_cases() -> list[str]:
    """The ops at the earliest stage (56×56): the largest activations, the buffers that cross glibc's mmap
    threshold, where the allocator state decides a call's page faults."""
    return op_cases(max(STAGE_SIZES))


def block_cases(sizes: list[int] | None = None) -> list[str]:
    """Each block at each of ``sizes`` it has a stage for (None: its earliest and its latest stage), each
    followed by its dense equivalent when it has one."""
    cases = []
    for name in registry.names("block"):
        stages = registry.get(name).stages
        chosen = [max(stages), min(stages)] if sizes is None and stages else [s for s in sizes or () if s in stages]
        for size in chosen:
            case = Case(name, dict(stages[size]), size, size)
            cases.append(str(case))
            dense_case = case.dense_equivalent()
            if str(dense_case) != str(case):
                cases.append(str(dense_case))
    return cases


def network_cases() -> list[str]:
    """Every registered network at 224×224, its default width."""
    from bench_lib.catalogue import registry

    return [f"{name}@{registry.NETWORK_SIZE}x{registry.NETWORK_SIZE}" for name in registry.names("network")]


@dataclass(frozen=True)
class Grid:
    """One grid: the parameter lists of each suite (Cartesian product, as asv runs them)."""

    name: str
    cases: dict[str, list[str]]  # suite ("ops", "blocks") → cases
    batches: list[int]
    devices: list[str]
    layouts: list[str]
    dtypes: list[str]
    modes: dict[str, list[str]]  # suite → modes
    metrics: tuple[str, ...] = tuple(METRICS)
    timing: dict[str, float] = field(default_factory=dict)  # keyword arguments for time_callable
    rounds: int = 1  # latency rounds (processes) per combination; other metrics run once
    plain_rounds: int = PLAIN_ROUNDS  # fresh processes per combination of the plain suite
    batches_by_kind: dict[str, list[int]] | None = None  # None: batch 1 and each device kind's throughput batch
    leaves_out: bool = True  # the exclusions by design below apply (smoke exercises every method, full all)
    run_level: bool = True  # the run measures roofline peaks, canaries and breakdowns too (not for smoke)

    def has(self, suite: str) -> bool:
        return bool(self.cases.get(suite))

    def params(self, suite: str) -> list[list[Any]]:
        return [self.cases[suite], self.batches, self.devices, self.layouts, self.dtypes, self.modes[suite]]

    def combinations(self, suite: str, metric: str) -> Iterator[Combination]:
        """All combinations of a suite and metric in asv's order (itertools.product, last parameter fastest)."""
        if self.has(suite) and metric in self.metrics:
            for params in itertools.product(*self.params(suite)):
                yield Combination.of(suite, metric, params)

    def combinations_of(self, metric: str) -> Iterator[Combination]:
        """Every combination of ``metric`` in every suite."""
        for suite in SUITES:
            yield from self.combinations(suite, metric)

    def all_combinations(self) -> Iterator[Combination]:
        """Every combination of every suite and metric, suite by suite."""
        for suite in SUITES:
            for metric in self.metrics:
                yield from self.combinations(suite, metric)

    def excluded(self, c: Combination) -> str | None:
        """Why this grid leaves a combination out by design (None: it is in). Decided without any device."""
        metric, case, batch, device, mode = c.metric, c.case, c.batch, c.device, c.mode
        kind = devices.parse_spec(device).kind
        allowed = self.batches_by_kind.get(kind) if self.batches_by_kind else [1, kinds.kind(kind).throughput_batch]
        if batch not in allowed:
            return f"batch {batch} is not a batch of this grid on {kind} ({' and '.join(map(str, allowed))})"
        plain = _plain_excluded(c) if c.suite == PLAIN else None
        if plain or not self.leaves_out:
            return plain
        if c.suite == PLAIN and (spec := devices.parse_spec(device)).threads != 1:
            return f"the plain suite runs at one thread here ({spec.threads} threads in the full grid)"
        if c.suite == PLAIN and (batch, c.layout) != (1, "nchw"):
            return "the plain suite runs at batch 1, NCHW here (every batch and layout in the full grid)"
        if mode == "training" and Case.parse(case).params.get("dense") and batch != 1:
            return "dense equivalents are trained at batch 1 here (every batch in the full grid)"
        if c.dtype == "float16" and kind == "cpu":
            return CPU_FLOAT16
        if c.suite == "networks" and c.dtype != "float32" and kind == "cpu":
            return "whole networks run in float32 only on CPU here (an hour per device; every dtype in the full grid)"
        spec = devices.parse_spec(device)
        if metric == "peak_memory" and kind == "cpu" and spec.threads != 1:
            return "CPU peak memory is measured at cpu-1t (the thread count does not change tensor memory)"
        if metric == "energy" and kind == "cpu" and spec.threads != devices.physical_cores():
            return "CPU energy is measured with all cores (RAPL meters the whole package)"
        return None


def _plain_excluded(c: Combination) -> str | None:
    """What the plain suite never measures: it asks which allocator state a user's process has, of the host
    allocator, through each process's latency."""
    if c.metric != "latency":
        return "the plain suite times latency only (peak memory and energy are the ops suite's)"
    if devices.parse_spec(c.device).kind != "cpu":
        return "the plain suite measures the host allocator: CPU devices only"
    return None


def detected_devices() -> list[str]:
    """Device specs worth running here (``$CONVBENCH_DEVICES`` if set), found without initialising CUDA or MPS."""
    override = os.environ.get("CONVBENCH_DEVICES")
    if override:
        specs = [s.strip() for s in override.split(",") if s.strip()]
        for s in specs:
            devices.parse_spec(s)
        return specs
    return devices.candidate_specs()


@dataclass(frozen=True)
class Found:
    """The devices a grid is built over: ``asked`` when the user named them, else those detected here."""

    specs: list[str]
    asked: bool

    @property
    def cpu(self) -> list[str]:
        return [d for d in self.specs if d.startswith("cpu")]

    @property
    def accelerators(self) -> list[str]:
        return [d for d in self.specs if not d.startswith("cpu")]


FULL_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128]


def _smoke(name: str, found: Found) -> Grid:
    """A handful of combinations covering every benchmark method (the tests run it)."""
    return Grid(
        name=name,
        cases={
            "ops": ["depthwise(in=32,k=3,bias=false)@14x14", "standard(in=32,out=32,k=3,bias=false)@14x14"],
            "blocks": ["mbconv(in=16,out=16,k=3)@14x14"],
            "plain": ["depthwise(in=32,k=3,bias=false)@14x14"],
        },
        batches=[1],
        devices=found.specs if found.asked else list(dict.fromkeys(found.specs[:1] + found.accelerators)),
        layouts=["nchw"],
        dtypes=["float32"],
        modes={"ops": ["inference"], "blocks": ["inference", "training"], "plain": ["inference"]},
        timing={"samples": 5, "max_time_s": 0.1, "max_warmup_s": 0.1},
        plain_rounds=2,
        leaves_out=False,
        run_level=False,
    )


def _default(name: str, found: Found) -> Grid:
    """Every op and block at an early and a late stage, networks; float32; batch 1 and a throughput batch."""
    return Grid(
        name=name,
        cases={
            "ops": op_cases(max(STAGE_SIZES)) + op_cases(min(STAGE_SIZES)),
            "blocks": block_cases(),
            "networks": network_cases(),
        },
        batches=sorted({1, *(k.throughput_batch for k in kinds.KINDS.values())}),
        devices=found.cpu + found.accelerators,
        layouts=["nchw", "channels_last"],
        dtypes=["float32"],
        modes={"ops": ["inference"], "blocks": ["inference", "training"], "networks": ["inference"]},
        timing=ROUND_TIMING,
    )


def _papers(name: str, found: Found) -> Grid:
    """The paper tables (all of them, or one paper's), at each paper's batch per device kind."""
    tables = None if name == "papers" else papers.PAPERS[name]
    return Grid(
        name=name,
        cases={"papers": papers.cases(tables)},
        batches=sorted({k.paper_batch for k in kinds.KINDS.values()}),
        devices=found.specs if found.asked else ["cpu-1t", *found.accelerators],
        layouts=["nchw"],
        dtypes=["float32"],
        modes={"papers": ["inference"]},
        metrics=("latency",),
        timing={"samples": 15, "min_samples": 7, "max_time_s": 2.0, "max_warmup_s": 1.0},
        batches_by_kind={name: [k.paper_batch] for name, k in kinds.KINDS.items()},
    )


def _nightly(name: str, found: Found) -> Grid:
    """The default grid with the ops at all four stage shapes and trained too, bfloat16 beside float32 for
    ops and blocks (and float16 on GPUs), 5 latency rounds: sized from a measured nightly run to fit an hour
    per CPU device on the development VM (docs/verdicts.md, "Run time")."""
    return Grid(
        name=name,
        cases={
            "ops": [c for s in STAGE_SIZES for c in op_cases(s)],
            "blocks": block_cases(),
            "networks": network_cases(),
            "plain": plain_cases(),
        },
        batches=sorted({1, *(k.throughput_batch for k in kinds.KINDS.values())}),
        devices=found.cpu + found.accelerators,
        layouts=["nchw", "channels_last"],
        dtypes=["float32", "bfloat16", "float16"],
        modes={
            "ops": ["inference", "training"],
            "blocks": ["inference", "training"],
            "networks": ["inference"],
            "plain": ["inference"],
        },
        timing=ROUND_TIMING,
        rounds=NIGHTLY_ROUNDS,
    )


def _full(name: str, found: Found) -> Grid:
    """Every op and block at all four stage shapes, every dtype and mode, every thread count and every batch
    from 1 to 128, on every device kind: nothing left out."""
    threads = [f"cpu-{n}t" for n in range(1, (os.cpu_count() or 1) + 1)]
    return Grid(
        name=name,
        cases={
            "ops": [c for s in STAGE_SIZES for c in op_cases(s)],
            "blocks": block_cases(STAGE_SIZES),
            "networks": network_cases(),
            "plain": plain_cases(),
        },
        batches=FULL_BATCHES,
        devices=threads + found.accelerators,
        layouts=["nchw", "channels_last"],
        dtypes=["float32", "bfloat16", "float16"],
        modes={**{suite: ["inference", "training"] for suite in ("ops", "blocks", "networks")}, "plain": ["inference"]},
        rounds=NIGHTLY_ROUNDS,
        batches_by_kind={kind: FULL_BATCHES for kind in kinds.KINDS},
        leaves_out=False,
    )


COMPARE_SIZES = (56, 14)  # the compare grid's two stages: the largest activations and a late stage
COMPARE_NETWORK = "net_mobilenet_v2@224x224"
COMPARE_ROUNDS = 3  # processes per combination: each side's own noise, for the intervals across machines


def compare_cases() -> dict[str, list[str]]:
    """The compare grid's workloads: every op and every block (not their dense equivalents) at two stages,
    and one network."""
    blocks = [c for c in block_cases(list(COMPARE_SIZES)) if "dense=true" not in c]
    return {
        "ops": [c for s in COMPARE_SIZES for c in op_cases(s)],
        "blocks": blocks,
        "networks": [COMPARE_NETWORK],
    }


def _compare(name: str, found: Found) -> Grid:
    """A short suite for comparing machines (docs/machines.md): each family, every block and a network, at
    batch 1, NCHW, inference, float32 and the device's fast low-precision dtype, 3 processes per
    combination, on all CPU cores and every accelerator; about 10 minutes on the 2-core development VM."""
    return Grid(
        name=name,
        cases=compare_cases(),
        batches=[1],
        devices=found.specs if found.asked else ["cpu", *found.accelerators],
        layouts=["nchw"],
        dtypes=["float32", "bfloat16", "float16"],
        modes={"ops": ["inference"], "blocks": ["inference"], "networks": ["inference"]},
        metrics=("latency", "energy"),
        timing=ROUND_TIMING,
        rounds=COMPARE_ROUNDS,
        batches_by_kind={kind: [1] for kind in kinds.KINDS},
    )


def workload_set(grid_: Grid) -> tuple[str, list[str]]:
    """The identity of a grid's latency workloads, whatever the device: (12 hex digits of a hash of its
    sorted ``suite|case|batch|layout|dtype|mode`` entries, the entries). Scores over one set are comparable
    months apart; a changed set gets another identity and is never mixed in."""
    import hashlib

    fields = ("suite", "case", "batch", "layout", "dtype", "mode")
    entries = sorted({"|".join(str(getattr(c, f)) for f in fields) for c in grid_.combinations_of("latency")})
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:12], entries


_BUILDERS = {"smoke": _smoke, "default": _default, "nightly": _nightly, "full": _full, "compare": _compare}
_BUILDERS.update({name: _papers for name in ("papers", *papers.PAPERS)})
GRIDS = tuple(_BUILDERS)


def grid(name: str | None = None, device_specs: list[str] | None = None) -> Grid:
    """The grid called ``name`` (default: ``$CONVBENCH_GRID`` or ``default``) over ``device_specs``
    (default: :func:`detected_devices`)."""
    name = name or os.environ.get("CONVBENCH_GRID", "default")
    if name not in GRIDS:
        raise ValueError(f"CONVBENCH_GRID={name!r} is not a grid; accepted: {', '.join(GRIDS)}")
    # devices the user named (here, or through CONVBENCH_DEVICES in asv's processes) are taken as they are:
    # asv's discovery must build the very grid the runner planned
    asked = bool(device_specs) or bool(os.environ.get("CONVBENCH_DEVICES"))
    found = Found(list(device_specs) if device_specs else detected_devices(), asked)
    return _BUILDERS[name](name, found)
