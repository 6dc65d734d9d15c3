"""``convbench run``: run a grid through asv in the existing environment, in chunks, with progress.

- Writes this machine's entry in asv's machine file (``~/.asv-machine.json``) from the fingerprint if
  it is missing, and takes the project's git HEAD as the commit hash.
- Runs ``asv run -E existing:PYTHON --set-commit-hash HEAD --record-samples`` (never ``--quick``) over
  the grid's combinations, in chunks: asv saves a result file only when a whole ``asv run`` ends and
  loses everything on an interrupt, so each chunk is its own ``asv run`` (asv merges it into the file).
  Ctrl-C once finishes the chunk in flight and stops; twice abandons that chunk.
- Every combination reports to an events file (see :mod:`bench_lib.suite`); the summary, the exit code
  and the run's history record come from it. History: ``results/<machine>/history/<run id>.jsonl``, one
  file per run (the run's metadata, then one line per combination with its value), so nights on the
  same commit and environment, which asv's own file would overwrite, all survive. Not ``.json``: asv
  ignores it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_lib import __version__
from bench_lib.errors import ArgumentError
from bench_lib.files import append_line, write_atomic
from bench_lib.measure import devices, machine
from bench_lib.suite import grids
from bench_lib.suite.combination import SUITE_VERSION, Combination


class RunError(ArgumentError):
    """A problem with the run's arguments or setting (exit code 2)."""


@dataclass
class Plan:
    selected: list[Combination]
    excluded: Counter = field(default_factory=Counter)  # reason → count (left out by the grid's design)


def plan(grid: grids.Grid, bench: str | None = None) -> Plan:
    """The combinations to run: the grid's, less those it excludes by design, filtered by ``bench``."""
    pattern = re.compile(bench) if bench else None
    result = Plan([])
    for c in grid.all_combinations():
        if pattern and not pattern.search(c.asv_name):
            continue
        reason = grid.excluded(c)
        if reason:
            result.excluded[reason] += 1
        else:
            result.selected.append(c)
    return result


def chunks(items: list[Combination], size: int) -> Iterable[list[Combination]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def asv_command(
    root: Path, python: str, head: str, machine_id: str, opts: RunOptions, chunk: list[Combination]
) -> list[str]:
    """The ``asv run`` of one chunk: the existing environment, samples recorded, never ``--quick``.

    ``rounds`` > 1 runs every combination in that many separate processes (asv interleaves them and merges
    the samples), so process-level effects (allocator, kernel choice, frequency) enter the spread.
    """
    cmd = [
        sys.executable,
        "-m",
        "asv",
        "run",
        "--config",
        str(root / "asv.conf.json"),
        "-E",
        f"existing:{python}",
        "--set-commit-hash",
        head,
        "--record-samples",
        "--machine",
        machine_id,
        "--launch-method",
        opts.launch_method,
        "--show-stderr",
    ]
    if opts.rounds > 1:
        cmd += ["-a", f"rounds={opts.rounds}"]
    for p in chunk:
        cmd += ["--bench", "^" + re.escape(p.asv_name) + "$"]
    return cmd


def project_root(start: str | Path | None = None) -> Path:
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "asv.conf.json").exists():
            return d
    raise RunError(f"no asv.conf.json in {here} or above: run convbench from the project (or pass --project)")


def git_head(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "HEAD^{commit}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        raise RunError("git is not installed: convbench run records results against the project's git HEAD") from None
    if out.returncode != 0:
        raise RunError(
            f"{root} is not a git checkout with at least one commit (git says: "
            f"{out.stderr.strip() or out.stdout.strip()}); asv files results under the commit hash"
        )
    return out.stdout.strip()


def asv_machine_file() -> Path:
    """Where asv reads machine entries: ``~/.asv-machine.json`` (asv expands ``~`` from ``$HOME``)."""
    return Path(os.path.expanduser("~/.asv-machine.json"))


def ensure_machine_entry(path: Path | None = None) -> tuple[str, bool]:
    """Add this machine to asv's machine file if it has no entry; return (machine id, whether written)."""
    path = path or asv_machine_file()
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RunError(f"asv's machine file {path} is not JSON ({e}); fix or remove it") from None
    mid = machine.machine_id()
    if mid in data:
        return mid, False
    data[mid] = machine.asv_machine_info()
    data.setdefault("version", 1)
    write_atomic(path, json.dumps(data, indent=4, sort_keys=True))
    return mid, True


def env_name(python: str) -> str:
    """asv's name for an existing environment at ``python`` (the result file's suffix)."""
    from asv.environment import get_env_name

    return get_env_name("existing", python, {}, {})


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            events.append(json.loads(line))
    return events


def event_key(e: dict[str, Any]) -> Combination:
    return Combination.from_event(e)


@dataclass
class Summary:
    selected: int
    ok: int
    skipped: dict[str, int]
    failed: list[tuple[str, str]]  # (combination, error)
    excluded: dict[str, int]
    missing: int
    wall_s: float
    measure_s: float
    interrupted: bool

    @property
    def overhead_fraction(self) -> float:
        return 1 - self.measure_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "selected": self.selected,
            "ok": self.ok,
            "skipped": self.skipped,
            "failed": [{"combination": c, "error": e} for c, e in self.failed],
            "excluded": self.excluded,
            "missing": self.missing,
            "wall_s": self.wall_s,
            "measure_s": self.measure_s,
            "overhead_fraction": self.overhead_fraction,
            "interrupted": self.interrupted,
        }


def summarise(
    selected: list[Combination],
    events: list[dict[str, Any]],
    excluded: Counter,
    wall_s: float,
    interrupted: bool,
    attempted: set[Combination] | None = None,
) -> Summary:
    last: dict[tuple, dict[str, Any]] = {}
    for e in events:
        last[event_key(e)] = e  # a combination's final word (setup and track both report)
    skipped: Counter = Counter()
    failed = []
    ok = missing = 0
    for p in selected:
        e = last.get(p)
        if e is None:
            if attempted is None or p in attempted:
                missing += 1
                failed.append((p.asv_name, "no result: asv timed out or its worker died (see the asv log)"))
            continue
        if e["status"] == "ok":
            ok += 1
        elif e["status"] == "skipped":
            skipped[e["reason"]] += 1
        else:
            failed.append((p.asv_name, e.get("error", "unknown error")))
    return Summary(
        len(selected),
        ok,
        dict(skipped),
        failed,
        dict(excluded),
        missing,
        wall_s,
        sum(e.get("measure_s", 0.0) for e in events),
        interrupted,
    )


def print_summary(s: Summary, out=sys.stdout) -> None:
    print(
        f"\nconvbench run: {s.ok} combinations measured, {sum(s.skipped.values())} skipped, {len(s.failed)} "
        f"failed, of {s.selected} selected{' (interrupted)' if s.interrupted else ''}",
        file=out,
    )
    for reason, n in sorted(s.skipped.items(), key=lambda kv: -kv[1]):
        print(f"  skipped {n:4d}: {reason}", file=out)
    for reason, n in sorted(s.excluded.items(), key=lambda kv: -kv[1]):
        print(f"  not in this grid {n:4d}: {reason}", file=out)
    for combo, error in s.failed[:50]:
        print(f"  FAILED {combo}\n         {error}", file=out)
    if len(s.failed) > 50:
        print(f"  ... and {len(s.failed) - 50} more failures", file=out)
    print(
        f"  wall time {s.wall_s:.1f} s; inside measurements {s.measure_s:.1f} s; overhead "
        f"{s.overhead_fraction:.1%} (asv discovery, process launch, setup, reference checks)",
        file=out,
    )


@dataclass
class RunOptions:
    grid: str = "default"
    devices: list[str] | None = None
    bench: str | None = None
    python: str | None = None
    launch_method: str = "forkserver"
    chunk_size: int = 120
    rounds: int = 1  # processes per combination (asv's rounds); 2+ for nightly comparisons
    project: str | None = None
    progress: bool = True
    peaks: bool = True  # measure the roofline peaks of devices that have none cached (not for smoke)
    breakdowns: bool = True  # per-block times of each network at batch 1 (results/<machine>/breakdown.jsonl)


def _check_devices(specs: list[str]) -> None:
    for spec in specs:
        try:
            devices.parse_spec(spec)
        except ValueError as e:
            raise RunError(f"--device {spec!r}: {e}") from None
    twice = sorted({s for s in specs if specs.count(s) > 1})
    if twice:
        raise RunError(f"--device {twice[0]} is given twice; name each device once")


def _check_options(opts: RunOptions) -> str:
    """Refuse bad options with a RunError naming the option; return the interpreter to benchmark."""
    python = opts.python or sys.executable
    if not Path(python).exists():
        raise RunError(f"--python {python} does not exist")
    if opts.grid not in grids.GRIDS:
        raise RunError(f"--grid {opts.grid!r} is not a grid; accepted: {', '.join(grids.GRIDS)}")
    if opts.rounds < 1:
        raise RunError(f"--rounds {opts.rounds} must be at least 1")
    if opts.chunk_size < 1:
        raise RunError(f"--chunk-size {opts.chunk_size} must be at least 1")
    if opts.launch_method not in ("forkserver", "spawn"):
        raise RunError(f"--launch-method {opts.launch_method!r}; accepted: forkserver, spawn")
    if opts.devices:
        _check_devices(opts.devices)
    if opts.bench:
        try:
            re.compile(opts.bench)
        except re.error as e:
            raise RunError(f"--bench {opts.bench!r} is not a regular expression: {e}") from None
    return python


def _asv_environment(opts: RunOptions, events_path: Path) -> dict[str, str]:
    """The environment asv's discovery and workers see: the grid, the devices and the events file."""
    env = {**os.environ, "CONVBENCH_GRID": opts.grid, "CONVBENCH_EVENTS": str(events_path)}
    env.pop("CONVBENCH_DEVICES", None)
    if opts.devices:
        env["CONVBENCH_DEVICES"] = ",".join(opts.devices)
    return env


def new_run_id(head: str) -> str:
    """UTC time, the commit and a random part: two runs started in the same second never share an id."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{head[:8]}-{secrets.token_hex(3)}"


class _Chunks:
    """Runs the plan chunk by chunk, each chunk its own ``asv run`` in its own process group.

    Ctrl-C once: the chunk in flight finishes, then the run stops. Twice: the chunk is abandoned.
    """

    def __init__(self, cmd_of, root: Path, env: dict[str, str], log_path: Path, progress: _Progress):
        self.cmd_of, self.root, self.env, self.log_path, self.progress = cmd_of, root, env, log_path, progress
        self.stop = False
        self.proc: subprocess.Popen | None = None
        self.attempted: set[Combination] = set()

    def on_sigint(self, signum, frame) -> None:
        if self.stop and self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # second Ctrl-C: abandon the chunk in flight
        self.stop = True
        print("\ninterrupt: finishing the chunk in flight, then stopping (Ctrl-C again to abandon it)", file=sys.stderr)

    def run(self, selected: list[Combination], size: int) -> bool:
        """Run every chunk; return whether the run was interrupted."""
        previous = signal.signal(signal.SIGINT, self.on_sigint)
        try:
            with open(self.log_path, "a") as log:
                for chunk in chunks(selected, size):
                    if self.stop:
                        return True
                    self.attempted.update(chunk)
                    self._one(chunk, log)
            return self.stop
        finally:
            signal.signal(signal.SIGINT, previous)
            self.progress.close()

    def _one(self, chunk: list[Combination], log) -> None:
        self.proc = subprocess.Popen(
            self.cmd_of(chunk),
            cwd=self.root,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # Ctrl-C reaches convbench, not asv
        while self.proc.poll() is None:
            self.progress.update()
            time.sleep(0.3)
        self.progress.update()
        if self.proc.returncode not in (0, 2):  # asv exits 2 when a benchmark failed
            print(f"asv exited {self.proc.returncode} on a chunk; see {self.log_path}", file=sys.stderr)


def run(opts: RunOptions) -> int:
    """Run the grid; return the exit code (0 all ran, 1 some failed or none ran, 130 interrupted)."""
    root = project_root(opts.project)
    head = git_head(root)
    python = _check_options(opts)
    grid = grids.grid(opts.grid, opts.devices)
    the_plan = plan(grid, opts.bench)
    if not the_plan.selected:
        raise RunError(f"--bench {opts.bench!r} selects no combination of the {opts.grid} grid")

    mid, written = ensure_machine_entry()
    results_dir = root / json.loads((root / "asv.conf.json").read_text()).get("results_dir", "results")
    run_id = new_run_id(head)
    events_path = Path(tempfile.mkdtemp(prefix="convbench-run-")) / "events.jsonl"
    log_path = events_path.with_name("asv.log")
    print(
        f"convbench run: grid {opts.grid}, {len(the_plan.selected)} combinations on {', '.join(grid.devices)}; "
        f"machine {mid}{' (entry added to ' + str(asv_machine_file()) + ')' if written else ''}; commit "
        f"{head[:8]}; python {python}; launch {opts.launch_method}; asv log {log_path}",
        flush=True,
    )
    if opts.peaks and opts.grid != "smoke":
        _measure_missing_peaks(grid.devices, results_dir, mid)

    started = time.time()
    runner = _Chunks(
        lambda chunk: asv_command(root, python, head, mid, opts, chunk),
        root,
        _asv_environment(opts, events_path),
        log_path,
        _Progress(len(the_plan.selected), events_path, enabled=opts.progress),
    )
    interrupted = runner.run(the_plan.selected, opts.chunk_size)
    networks_ran = any(p.suite == "networks" for p in the_plan.selected)
    if opts.breakdowns and networks_ran and grid.name != "smoke" and not interrupted:
        _measure_breakdowns(grid, results_dir, mid)

    events = read_events(events_path)
    summary = summarise(
        the_plan.selected, events, the_plan.excluded, time.time() - started, interrupted, runner.attempted
    )
    record = _run_record(run_id, started, opts, grid, mid, head, python, summary)
    history_path = results_dir / mid / "history" / f"{run_id}.jsonl"
    history_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(history_path, "\n".join(json.dumps(x, default=str) for x in [record, *events]) + "\n")
    print_summary(summary)
    print(f"  results in {results_dir / mid}; this run's history in {history_path}")
    if interrupted:
        return 130
    return 1 if summary.failed else 0


def _run_record(
    run_id: str, started: float, opts: RunOptions, grid: grids.Grid, mid: str, head: str, python: str, summary: Summary
) -> dict[str, Any]:
    """The first line of a run's history: what ran, where, with which method, and its summary."""
    return {
        "run": {
            "run_id": run_id,
            "started": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
            "grid": opts.grid,
            "devices": grid.devices,
            "machine": mid,
            "commit_hash": head,
            "env_name": env_name(python),
            "python": python,
            "bench_lib_version": __version__,
            "suite_version": SUITE_VERSION,
            "launch_method": opts.launch_method,
            "bench": opts.bench,
            "summary": summary.as_dict(),
        }
    }


def _measure_missing_peaks(specs: list[str], results_dir: Path, machine_id: str) -> None:
    """Roofline peaks for the analysis (cached per machine and torch; a few seconds per device)."""
    import torch

    from bench_lib.measure import roofline

    for spec in specs:
        cached = roofline.load_cached(spec, results_dir, machine_id, torch_version=torch.__version__)
        if cached is not None and cached.copy_levels_bytes_per_s:  # older peaks lack the cache levels
            continue
        if not devices.backend(spec).available()[0]:
            continue
        peaks = roofline.measure_peaks(spec)
        roofline.save(peaks, results_dir, machine_id)
        print(
            f"  roofline peaks of {spec}: {peaks.compute_flops_per_s('float32') / 1e9:.1f} GFLOP/s, "
            f"{peaks.copy_bytes_per_s / 1e9:.1f} GB/s",
            flush=True,
        )


def _measure_breakdowns(grid: grids.Grid, results_dir: Path, machine_id: str) -> None:
    """Each network's per-part times (batch 1, inference, the grid's first layout) on each available device, appended to
    ``results/<machine>/breakdown.jsonl`` for the analysis; a failure here is reported, not fatal."""
    import torch

    from bench_lib.catalogue.cases import Case
    from bench_lib.measure import harness

    path = results_dir / machine_id / "breakdown.jsonl"
    for spec in grid.devices:
        if not devices.backend(spec).available()[0]:
            continue
        for case_text in grid.cases["networks"]:
            case = Case.parse(case_text)
            for layout in grid.layouts[:1]:  # NCHW: the breakdown's shares barely move with the layout
                try:
                    prepared = harness.prepare(
                        case.workload, device=spec, layout=layout, height=case.height, width=case.width, **case.params
                    )
                    rows = harness.breakdown(prepared)
                except Exception as e:  # the asv results stand without it
                    print(f"  breakdown of {case_text} on {spec} failed: {type(e).__name__}: {e}", file=sys.stderr)
                    continue
                record = {
                    "machine": machine_id,
                    "device": spec,
                    "layout": layout,
                    "case": case_text,
                    "batch": 1,
                    "torch_version": torch.__version__,
                    "bench_lib_version": __version__,
                    "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "method": "per-part replay",
                    "parts": rows,
                }
                append_line(path, json.dumps(record))
        print(f"  per-block breakdowns of {len(grid.cases['networks'])} networks on {spec} -> {path}", flush=True)


class _Progress:
    """A rich progress bar fed by the events file: combinations done / total, current case, time left."""

    def __init__(self, total: int, events_path: Path, enabled: bool = True):
        self.total, self.events_path, self.enabled = total, events_path, enabled and sys.stderr.isatty()
        self.seen: set[tuple] = set()
        self._offset = 0
        self._progress = None
        self._last_print = 0.0
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("starting asv", total=total)

    def update(self) -> None:
        if not self.events_path.exists():
            return
        with open(self.events_path) as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind("\n") + 1]
        self._offset += len(complete.encode())
        current = None
        for line in complete.splitlines():
            with contextlib.suppress(json.JSONDecodeError, KeyError):
                e = json.loads(line)
                self.seen.add(event_key(e))
                current = f"{e['metric']:11s} {e['params']['case']} {e['params']['device']} b{e['params']['batch']}"
        if self._progress is not None:
            self._progress.update(self._task, completed=len(self.seen), description=current or "running")
        elif time.time() - self._last_print > 30:
            self._last_print = time.time()
            print(f"  {len(self.seen)}/{self.total} combinations", file=sys.stderr)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
