"""``convbench run``: run a grid through asv in the existing environment, in chunks, with progress.

- Writes this machine's entry in asv's machine file (``~/.asv-machine.json``) from the fingerprint if
  it is missing, and takes the project's git HEAD as the commit hash.
- Holds the machine lock (:mod:`bench_lib.suite.guard`) for the whole run: one run at a time.
- Runs ``asv run -E existing:PYTHON --set-commit-hash HEAD --record-samples`` (never ``--quick``) over
  the grid's combinations, in chunks, with a private copy of asv's config whose results go to the run's
  temporary folder: asv's own file is a by-product, never the record.
- The record is the events file: every combination, in every round (process), reports one line (see
  :mod:`bench_lib.suite.worker`). After every chunk, and once at the end, the run is handed to ``save``
  (the store's writer): a run killed outright keeps everything up to its last chunk.
- SIGINT, SIGTERM and SIGHUP stop the run: asv's process group is terminated, what was measured is saved
  with the state ``interrupted`` and the exit code is 130. The temporary folder is always removed; asv's
  log is kept under ``results/logs/`` when something failed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_lib import __version__
from bench_lib.errors import ArgumentError, Exit
from bench_lib.measure import devices, gpu_clocks, intervals, machine
from bench_lib.suite import ab, grids, guard
from bench_lib.suite.asv_adapter import (
    Chunks,
    Plan,
    asv_command,
    asv_config,
    asv_environment,
    asv_machine_file,
    chunk_plan,
    ensure_machine_entry,
    env_name,
    git_head,
    plan,
    project_root,
)
from bench_lib.suite.combination import PLAIN, SUITE_VERSION
from bench_lib.suite.options import RunOptions, check_options, faults
from bench_lib.suite.progress import Progress
from bench_lib.suite.run_level import canary, measure_breakdowns, measure_peaks
from bench_lib.suite.summary import Summary, print_summary, read_events, summarise

# save(run record, events, peaks, breakdowns) -> paths written; raises OSError when it cannot write
Save = Callable[[dict[str, Any], list[dict[str, Any]], list[Any], list[dict[str, Any]]], list[str]]


def check_sides(opts: RunOptions) -> list[ab.Side]:
    """The A/B sides (none for a plain run), checked: two or more, ``--pairs`` at least 2 and only with
    them, each side's ``CONVBENCH_SLOWDOWN`` well formed."""
    found = ab.sides(opts.pythons, opts.sides) if len(opts.pythons) > 1 or opts.sides else []
    if len(found) == 1:
        raise ArgumentError(
            f"--side {opts.sides[0]!r}: an A/B run needs two sides (another --python or --side LABEL); "
            "for one environment with a variable, set it in the shell"
        )
    if opts.pairs is not None and not found:
        raise ArgumentError("--pairs is for A/B runs: give --python twice, or --side")
    if opts.pairs is not None and opts.pairs < 2:
        raise ArgumentError(f"--pairs {opts.pairs} must be at least 2 (a paired test needs two pairs)")
    if opts.budget_s is not None and not found:
        raise ArgumentError("--budget is for A/B runs: give --python twice, or --side")
    if opts.budget_s is not None and not (opts.budget_s > 0 and math.isfinite(opts.budget_s)):
        raise ArgumentError(f"--budget {opts.budget_s / 60:g} must be a number of minutes above 0")
    if found and opts.rounds is not None:
        raise ArgumentError("--rounds is for one environment; an A/B run takes --pairs")
    from bench_lib.suite import worker

    for side in found:
        planted = dict(side.variables).get("CONVBENCH_SLOWDOWN")
        try:
            _ = planted and worker.Slowdown.parse(planted)
        except ValueError as e:
            raise ArgumentError(f"--side {side.label}:{e}") from None
    return found


def new_run_id(head: str) -> str:
    """UTC time, the commit and a random part: two runs started in the same second never share an id."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{head[:8]}-{secrets.token_hex(5)}"


def run(opts: RunOptions, save: Save | None = None) -> int:
    """Run the grid; return the exit code (:class:`bench_lib.errors.Exit`: OK, FAILED where some
    combinations failed, UNAVAILABLE where the machine lock or the store was not to be had, INTERRUPTED).

    ``save(run, events, peaks, breakdowns)`` stores the run; it is called after every chunk and once at
    the end (the store stage's writer, handed in by the CLI: the suite stage does not import the store).
    """
    root = project_root(opts.project)
    head = git_head(root)
    python = check_options(opts)
    sides = check_sides(opts)
    planted = faults()  # a bad CONVBENCH_SLOWDOWN / CONVBENCH_FAIL is an argument error, before anything runs
    grid = grids.grid(opts.grid, opts.devices)
    if sides:
        opts.pairs = opts.pairs or intervals.DEFAULT_PAIRS
        planted.update({f"side {s.label}": dict(s.variables) for s in sides if s.variables})
    opts.plain_rounds = opts.pairs or opts.rounds or grid.plain_rounds
    opts.rounds = opts.pairs or opts.rounds or grid.rounds
    the_plan = plan(grid, opts.bench)
    if not the_plan.selected:
        raise ArgumentError(f"--bench {opts.bench!r} selects no combination of the {opts.grid} grid")
    fp = machine.fingerprint()
    asv_machine, written = ensure_machine_entry()
    started = time.time()
    run_id = new_run_id(head)
    lock = guard.MachineLock()
    try:
        lock.acquire(opts.wait_s, {"run_id": run_id, "started_at": _iso(started)}, say=_say)
    except guard.LockTimeout as e:
        print(f"convbench run: {e}; not started (--wait {opts.wait_s:g} s)", file=sys.stderr)
        return Exit.UNAVAILABLE
    except guard.UnsafeLock as e:
        print(
            f"convbench run: the machine lock {e}; not started (remove it, or set CONVBENCH_LOCK_DIR)", file=sys.stderr
        )
        return Exit.UNAVAILABLE
    scratch = Path(tempfile.mkdtemp(prefix="convbench-run-"))
    try:
        ctx = RunContext(opts, grid, the_plan, root, head, python, fp, run_id, started, scratch, save or _no_save)
        ctx.faults, ctx.sides, ctx.pairs = planted, sides, opts.pairs or 0
        print(_heading(ctx, written), flush=True)
        with _gpu_clocks_locked(opts, grid.devices, ctx):
            return ab.execute(ctx, lock) if sides else ctx.execute(asv_machine, lock)
    finally:
        lock.release()
        shutil.rmtree(scratch, ignore_errors=True)


def _heading(ctx: RunContext, written: bool) -> str:
    """The run's first line: its id, grid, combinations, devices, machine, commit, interpreter(s) and faults."""
    opts, fp = ctx.opts, ctx.fingerprint
    where = _sides_text(ctx.sides, opts.pairs) if ctx.sides else f"python {ctx.python}; {opts.rounds} latency round(s)"
    if any(c.suite == PLAIN for c in ctx.plan.selected) and not ctx.sides:
        where += f" ({opts.plain_rounds} fresh processes for the plain suite)"
    added = f"; asv entry added to {asv_machine_file()}" if written else ""
    return (
        f"convbench run {ctx.run_id}: grid {opts.grid}, {len(ctx.plan.selected)} combinations on "
        f"{', '.join(ctx.grid.devices)}; machine {fp['machine_id']} (hardware {fp['hardware_id']}){added}; "
        f"commit {ctx.head[:8]}; {where}" + (f"; INJECTED FAULTS {json.dumps(ctx.faults)}" if ctx.faults else "")
    )


def _sides_text(sides: list[ab.Side], pairs: int) -> str:
    shown = "; ".join(f"side {s.label}: {s.python}" + "".join(f" {k}={v}" for k, v in s.variables) for s in sides)
    return (
        f"A/B run, at most {pairs} pairs of processes per combination, interleaved, sequential, huge pages as "
        f"PyTorch's default unless a side sets THP_MEM_ALLOC_ENABLE; {shown}"
    )


@contextlib.contextmanager
def _gpu_clocks_locked(opts: RunOptions, specs: list[str], ctx: RunContext) -> Iterator[None]:
    """Lock the SM clock of the run's GPUs for the run (``--lock-gpu-clocks``), recorded in its machine
    state as ``gpu_clocks``; reset when the run ends, however it ends. CPU-only runs lock nothing."""
    target = gpu_clocks.parse_target(opts.lock_gpu_clocks)
    cuda = [devices.parse_spec(s).index or 0 for s in specs if s.startswith("cuda")]
    if not cuda:
        target = "none"  # a CPU-only run locks nothing, whatever was asked
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    indices, problems = ([], []) if target == "none" else gpu_clocks.nvml_indices(cuda, visible)
    with gpu_clocks.locked(target, indices) as locks:
        ctx.machine_state["gpu_clocks"] = {
            "target": str(target),
            "gpus": [one.as_dict() for one in locks],
            "problems": problems,
        }
        for line in [one.describe() for one in locks] + problems:
            _say(f"convbench run: --lock-gpu-clocks {target}: {line}")
        yield


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()


def _no_save(run, events, peaks, breakdowns) -> list[str]:
    return []


@dataclass
class RunContext:
    """One run's state from the first chunk to the last save."""

    opts: RunOptions
    grid: grids.Grid
    plan: Plan
    root: Path
    head: str
    python: str
    fingerprint: dict[str, Any]
    run_id: str
    started: float
    scratch: Path
    save: Save
    peaks: list[Any] = field(default_factory=list)
    breakdowns: list[dict[str, Any]] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    machine_state: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    run_level_s: float = 0.0  # inside the run's own windows (peaks, canaries, breakdowns), summed
    sides: list[ab.Side] = field(default_factory=list)  # an A/B run's sides (none for a plain run)
    pairs: int = 0  # an A/B run's most pairs per combination
    sequential: Any = None  # an A/B run's ab_sequential.Sequential: which combinations are still open
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)  # side label → its torch build

    def execute(self, asv_machine: str, lock: guard.MachineLock) -> int:
        events_path, log_path = self.scratch / "events.jsonl", self.scratch / "asv.log"
        config = asv_config(self.root, self.scratch)
        self.machine_state["start"] = machine.state()
        run_level = self.opts.peaks and self.grid.run_level
        if run_level:
            self.peaks, self.run_level_s = measure_peaks(self.grid.devices)
            self.run_level_s += canary(self.grid.devices, events_path, "start")
        runner = Chunks(
            lambda rounds, chunk: asv_command(config, self.python, self.head, asv_machine, self.opts, chunk, rounds),
            self.root,
            asv_environment(self.opts, events_path),
            log_path,
            Progress(len(self.plan.selected), events_path, enabled=self.opts.progress),
            after_chunk=lambda: self.store(events_path, "running", None),
        )
        try:
            stopped = runner.run(
                chunk_plan(self.plan.selected, self.opts.chunk_size, self.opts.rounds, self.opts.plain_rounds),
                on_start=lock.record_child,
            )
        except OSError as e:  # the store could not write (disk full, permissions)
            print(f"convbench run: {e}; the run stops here", file=sys.stderr)
            return Exit.UNAVAILABLE
        if not stopped:
            self._after_chunks(events_path, run_level)
        self.machine_state["end"] = machine.state()
        done = read_events(events_path), self.plan.excluded, time.time() - self.started
        summary = summarise(
            self.plan.selected,
            *done,
            interrupted=stopped,
            attempted=runner.attempted,
            asv_errors=runner.asv_errors,
            run_level_s=self.run_level_s,
        )
        return self.finish(events_path, log_path, summary)

    def _after_chunks(self, events_path: Path, run_level: bool) -> None:
        """The networks' breakdowns (where networks ran) and the closing canary: the run's own windows."""
        networks_ran = any(p.suite == "networks" for p in self.plan.selected)
        if self.opts.breakdowns and networks_ran and self.grid.run_level:
            self.breakdowns, spent_s = measure_breakdowns(self.grid)
            self.run_level_s += spent_s
        if run_level:
            self.run_level_s += canary(self.grid.devices, events_path, "end")

    def finish(self, events_path: Path, log_path: Path, summary: Summary) -> int:
        """Save the finished run and print its summary; the exit code (:class:`Exit`)."""
        try:
            self.store(events_path, "interrupted" if summary.interrupted else "complete", summary)
        except OSError as e:  # the store could not write (disk full, permissions)
            print_summary(summary)
            print(f"convbench run: {e}", file=sys.stderr)
            return Exit.UNAVAILABLE
        print_summary(summary)
        self._report(summary, log_path)
        if summary.interrupted:
            return Exit.INTERRUPTED
        return Exit.FAILED if summary.failed else Exit.OK

    def store(self, events_path: Path, state: str, summary: Summary | None) -> None:
        events = read_events(events_path)
        if summary is None:
            elapsed_s = time.time() - self.started
            done = self.plan.selected, events, self.plan.excluded, elapsed_s
            summary = summarise(*done, attempted=set(), run_level_s=self.run_level_s)
        record = _run_record(self, state, summary)
        self.saved = self.save(record, events, self.peaks, self.breakdowns)

    def _report(self, summary: Summary, log_path: Path) -> None:
        if self.saved:
            print(f"  stored: {self.saved[0].rsplit('/', 1)[0]}/{self.run_id}.parquet (and its runs row)")
        if summary.failed and log_path.exists():
            keep = self.root / "results" / "logs" / f"{self.run_id}.asv.log"
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log_path, keep)
            print(f"  asv's log of this run: {keep}")


def _run_record(ctx: RunContext, state: str, summary: Summary) -> dict[str, Any]:
    """The run's ``runs`` row: what ran, where, with which method, and how it ended."""
    fp = ctx.fingerprint
    return {
        "run_id": ctx.run_id,
        "machine": fp["machine_id"],
        "hardware_id": fp["hardware_id"],
        "started_at": _iso(ctx.started),
        "finished_at": _iso(time.time()) if state != "running" else None,
        "state": state,
        "grid": ctx.opts.grid,
        "devices": ctx.grid.devices,
        "bench": ctx.opts.bench,
        "rounds": ctx.opts.rounds,
        "commit_hash": ctx.head,
        "env_name": ab.run_env_name([s.env_name(env_name(s.python)) for s in ctx.sides]) or env_name(ctx.python),
        "python": ctx.python,
        "torch_version": fp["torch_version"] if ctx.python == sys.executable and not ctx.sides else None,
        "sides": [
            {**s.as_dict(), "env_name": s.env_name(env_name(s.python)), "identity": ctx.identities.get(s.label)}
            for s in ctx.sides
        ]
        or None,
        "pairs": ctx.pairs or None,
        "sequential": ctx.sequential.as_dict() if ctx.sequential else None,
        "bench_lib_version": __version__,
        "suite_version": SUITE_VERSION,
        "launch_method": ctx.opts.launch_method,
        "summary": summary.as_dict(),
        "fingerprint": fp,
        "faults": ctx.faults,
        "machine_state": ctx.machine_state,
        "timing": ctx.grid.timing,
    }
