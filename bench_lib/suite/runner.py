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
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench_lib import __version__
from bench_lib.errors import ArgumentError, Exit
from bench_lib.files import find_upward, write_atomic
from bench_lib.measure import devices, fresh, gpu_clocks, machine, metrics, modes
from bench_lib.suite import ab, grids, guard
from bench_lib.suite.combination import PLAIN, SUITE_VERSION, Combination

# save(run record, events, peaks, breakdowns) -> paths written; raises OSError when it cannot write
Save = Callable[[dict[str, Any], list[dict[str, Any]], list[Any], list[dict[str, Any]]], list[str]]


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


def rounds_of(c: Combination, rounds: int, plain_rounds: int | None = None) -> int:
    """A per-round metric (latency) runs ``rounds`` processes (the plain suite ``plain_rounds`` where given);
    the others once (peak memory is deterministic, energy meters its own window):
    :attr:`bench_lib.measure.metrics.Metric.per_round`."""
    if not metrics.get(c.metric).per_round:
        return 1
    return plain_rounds if c.suite == PLAIN and plain_rounds else rounds


def chunk_plan(
    selected: list[Combination], size: int, rounds: int, plain_rounds: int | None = None
) -> list[tuple[int, list[Combination]]]:
    """(rounds, chunk) pairs: the combinations of each rounds count in chunks of ``size``, in plan order."""
    groups: dict[int, list[Combination]] = {}
    for c in selected:
        groups.setdefault(rounds_of(c, rounds, plain_rounds), []).append(c)
    return [(r, chunk) for r, items in groups.items() for chunk in chunks(items, size)]


def asv_command(
    config: Path, python: str, head: str, machine_id: str, opts: RunOptions, chunk: list[Combination], rounds: int = 1
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
        str(config),
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
    if rounds > 1:
        cmd += ["-a", f"rounds={rounds}"]
    for p in chunk:
        cmd += ["--bench", "^" + re.escape(p.asv_name) + "$"]
    return cmd


def project_root(start: str | Path | None = None) -> Path:
    """The convbench checkout at or above ``start``: the folder holding ``asv.conf.json``."""
    found = find_upward("asv.conf.json", start)
    if found is None:
        here = Path(start or os.getcwd()).resolve()
        raise ArgumentError(f"no asv.conf.json in {here} or above: run convbench from the project (or pass --project)")
    return found


def git_head(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "HEAD^{commit}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        raise ArgumentError(
            "git is not installed: convbench run records results against the project's git HEAD"
        ) from None
    if out.returncode != 0:
        raise ArgumentError(
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
            raise ArgumentError(f"asv's machine file {path} is not JSON ({e}); fix or remove it") from None
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


@dataclass
class Summary:
    """How a run ended: its combinations' final words, and where its wall time went."""

    selected: int
    ok: int
    skipped: dict[str, int]
    failed: list[tuple[str, str]]  # (combination, error)
    excluded: dict[str, int]
    missing: int
    wall_s: float
    combinations_s: float  # inside the combinations' measuring windows
    run_level_s: float = 0.0  # inside the run's own windows: the roofline peaks, the canaries, the breakdowns
    interrupted: str | None = None  # the signal that stopped the run
    abandoned: int = 0  # combinations the stop left unmeasured
    kernels_s: float = 0.0  # in the kernels' windows (after each timed one: bench_lib.measure.kernels)
    multimodal: list[tuple[str, str]] = field(default_factory=list)  # (combination, its modes)
    allocator: list[tuple[str, str]] = field(default_factory=list)  # (plain combination, against steady)

    @property
    def measure_s(self) -> float:
        """Seconds inside every measuring window: the combinations' and the run's own."""
        return self.combinations_s + self.run_level_s

    @property
    def overhead_fraction(self) -> float:
        """The share of the wall time outside every measurement window: 1 - measure_s / wall_s."""
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
            "run_level_s": self.run_level_s,
            "overhead_fraction": self.overhead_fraction,
            "interrupted": self.interrupted,
            "abandoned": self.abandoned,
            "kernels_s": self.kernels_s,
            "multimodal": [{"combination": c, "modes": t} for c, t in self.multimodal],
            "allocator_sensitive": [{"combination": c, "against_steady": t} for c, t in self.allocator],
        }


def summarise(
    selected: list[Combination],
    events: list[dict[str, Any]],
    excluded: Counter,
    wall_s: float,
    *,
    interrupted: str | None = None,
    attempted: set[Combination] | None = None,
    asv_errors: list[str] | None = None,
    run_level_s: float = 0.0,
) -> Summary:
    """Each selected combination's final word. One with no event at all was abandoned by a stop, or
    failed without a word: asv's error where asv itself failed, else a timeout or a dead worker.

    Time inside measurements: the combinations' events' ``measure_s``, and ``run_level_s``, the run's own
    windows (peaks, canaries, breakdowns) as the runner timed them (the canary's events are not counted
    again)."""
    last: dict[Combination, dict[str, Any]] = {}
    for e in events:
        last[Combination.from_event(e)] = e  # a combination's final word (setup and track both report)
    skipped: Counter = Counter()
    failed = []
    ok = missing = abandoned = 0
    why = "; ".join(dict.fromkeys(asv_errors or [])) or "asv timed out or its worker died (see the asv log)"
    for p in selected:
        e = last.get(p)
        if e is None:
            if interrupted:
                abandoned += 1
            elif attempted is None or p in attempted:
                missing += 1
                failed.append((p.asv_name, f"no result: {why}"))
            continue
        if e["status"] == "ok":
            ok += 1
        elif e["status"] == "skipped":
            skipped[e["reason"]] += 1
        else:
            failed.append((p.asv_name, e.get("error", "unknown error")))
    combinations_s = sum(e.get("measure_s", 0.0) for e in events if e.get("suite") != "canary")
    kernels_s = sum(
        (e.get("kernels") or {}).get("capture_s") or 0.0 for e in events if isinstance(e.get("kernels"), dict)
    )
    multimodal, allocator = process_findings(events)
    return Summary(
        multimodal=multimodal,
        allocator=allocator,
        selected=len(selected),
        ok=ok,
        skipped=dict(skipped),
        failed=failed,
        excluded=dict(excluded),
        missing=missing,
        wall_s=wall_s,
        combinations_s=combinations_s,
        run_level_s=run_level_s,
        interrupted=interrupted,
        abandoned=abandoned,
        kernels_s=kernels_s,
    )


def process_findings(events: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What a run's per-process latencies say (:mod:`bench_lib.measure.modes`): the combinations whose
    processes fell into separate modes, and the plain-suite combinations whose fresh processes ran
    :data:`modes.ALLOCATOR_RATIO` or more slower than the same op under ``steady`` (the ops suite), each
    with its description. An A/B run's sides are judged apart."""
    values: dict[tuple, list[float]] = defaultdict(list)
    for e in events:
        median = (e.get("measurement") or {}).get("median_s") if isinstance(e.get("measurement"), dict) else None
        if e.get("status") == "ok" and e.get("metric") == "latency" and e.get("suite") != "canary" and median:
            values[(e.get("side"), Combination.from_event(e))].append(float(median))
    multimodal = []
    for (side, c), found in values.items():
        if modes.is_multimodal(m := modes.find(found)):
            multimodal.append((_named(c, side), modes.describe(m)))
    allocator = []
    for (side, c), found in values.items():
        steady = values.get((side, replace(c, suite="ops")))
        judged = modes.sensitivity(found, steady or []) if c.suite == PLAIN else None
        if judged and judged.sensitive:
            allocator.append((_named(c, side), judged.describe()))
    return multimodal, allocator


def _named(c: Combination, side: str | None) -> str:
    return c.asv_name + (f" [side {side}]" if side else "")


def print_summary(s: Summary, out=sys.stdout) -> None:
    print(
        f"\nconvbench run: {s.ok} combinations measured, {sum(s.skipped.values())} skipped, {len(s.failed)} "
        f"failed, of {s.selected} selected"
        + (f" (stopped by {s.interrupted}: {s.abandoned} not measured)" if s.interrupted else ""),
        file=out,
    )
    for reason, n in sorted(s.skipped.items(), key=lambda kv: -kv[1]):
        print(f"  skipped {n:4d}: {reason}", file=out)
    for reason, n in sorted(s.excluded.items(), key=lambda kv: -kv[1]):
        print(f"  not in this grid {n:4d}: {reason}", file=out)
    if s.multimodal:
        print(f"  multimodal {len(s.multimodal):4d}: per-process values in separate modes", file=out)
    for combo, text in s.multimodal[:50]:
        print(f"    {combo}: {text}", file=out)
    if s.allocator:
        print(f"  allocator-sensitive {len(s.allocator):4d}: fresh processes slower than steady", file=out)
    for combo, text in s.allocator[:50]:
        print(f"    {combo}: {text}", file=out)
    for combo, error in s.failed[:50]:
        print(f"  FAILED {combo}\n         {error}", file=out)
    if len(s.failed) > 50:
        print(f"  ... and {len(s.failed) - 50} more failures", file=out)
    print(
        f"  wall time {s.wall_s:.1f} s; inside measurements {s.measure_s:.1f} s (combinations "
        f"{s.combinations_s:.1f} s, peaks, canaries and breakdowns {s.run_level_s:.1f} s); overhead "
        f"{s.overhead_fraction:.1%} (asv discovery, process launch, setup, reference checks, kernel capture "
        f"{s.kernels_s:.1f} s = {s.kernels_s / s.wall_s if s.wall_s > 0 else 0.0:.1%} of the wall time)",
        file=out,
    )


@dataclass
class RunOptions:
    grid: str = "default"
    devices: list[str] | None = None
    bench: str | None = None
    pythons: list[str] = field(default_factory=list)  # --python: one (or none) for a run, more for an A/B run
    sides: list[str] = field(default_factory=list)  # --side LABEL[:VAR=VALUE]: A/B sides and their variables
    pairs: int | None = None  # A/B: pairs of processes per combination; None: ab.DEFAULT_PAIRS
    launch_method: str = "forkserver"
    chunk_size: int = 200
    rounds: int | None = None  # latency processes per combination (asv's rounds); None: the grid's
    plain_rounds: int | None = None  # fresh processes per plain-suite combination; None: --rounds or the grid's
    project: str | None = None
    progress: bool = True
    peaks: bool = True  # measure the roofline peaks of every device with the run (not for smoke)
    breakdowns: bool = True  # per-block times of each network at batch 1 (the store's breakdowns table)
    wait_s: float = 3600.0  # how long to wait for another run holding the machine lock
    lock_gpu_clocks: str = "none"  # none, base, max or MHz: the SM clock of the run's GPUs (gpu_clocks)


def _check_devices(specs: list[str]) -> None:
    for spec in specs:
        try:
            devices.parse_spec(spec)
        except ValueError as e:
            raise ArgumentError(f"--device {spec!r}: {e}") from None
    twice = sorted({s for s in specs if specs.count(s) > 1})
    if twice:
        raise ArgumentError(f"--device {twice[0]} is given twice; name each device once")


def _check_options(opts: RunOptions) -> str:
    """Refuse bad options with a ArgumentError naming the option; return the interpreter to benchmark."""
    # absolute, links kept: a venv's python is a link to the base interpreter, and asv runs elsewhere
    python = os.path.abspath(opts.pythons[0]) if opts.pythons else sys.executable
    if not Path(python).exists():
        raise ArgumentError(f"--python {opts.pythons[0]} does not exist")
    if opts.grid not in grids.GRIDS:
        raise ArgumentError(f"--grid {opts.grid!r} is not a grid; accepted: {', '.join(grids.GRIDS)}")
    for name, value in (("--rounds", opts.rounds), ("--chunk-size", opts.chunk_size)):
        if value is not None and value < 1:
            raise ArgumentError(f"{name} {value} must be at least 1")
    if not (opts.wait_s >= 0 and math.isfinite(opts.wait_s)):
        raise ArgumentError(f"--wait {opts.wait_s} must be a number of seconds, at least 0")
    if opts.launch_method not in guard.LAUNCH_METHODS:
        raise ArgumentError(f"--launch-method {opts.launch_method!r}; accepted: {', '.join(guard.LAUNCH_METHODS)}")
    try:
        gpu_clocks.parse_target(opts.lock_gpu_clocks)
    except ValueError as e:
        raise ArgumentError(f"--lock-gpu-clocks {opts.lock_gpu_clocks!r}: {e}") from None
    if opts.devices:
        _check_devices(opts.devices)
    if opts.bench:
        try:
            re.compile(opts.bench)
        except re.error as e:
            raise ArgumentError(f"--bench {opts.bench!r} is not a regular expression: {e}") from None
    return python


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


def faults() -> dict[str, Any]:
    """The fault injection this run's workers will see (``CONVBENCH_FAIL``, ``CONVBENCH_SLOWDOWN``), checked:
    a ArgumentError naming the variable where one is malformed."""
    from bench_lib.suite import worker

    found: dict[str, Any] = {}
    fail = os.environ.get("CONVBENCH_FAIL")
    if fail:
        try:
            re.compile(fail)
        except re.error as e:
            raise ArgumentError(f"CONVBENCH_FAIL={fail!r} is not a regular expression: {e}") from None
        found["fail"] = fail
    try:
        planted = worker.slowdown()
    except ValueError as e:
        raise ArgumentError(str(e)) from None
    if planted:
        found["slowdown"] = {"pattern": planted.pattern, "factor": planted.factor}
    return found


def _asv_environment(opts: RunOptions, events_path: Path) -> dict[str, str]:
    """The environment asv's discovery and workers see: the grid, the devices, the events file, the
    run's file of passed reference checks and its folder of float64 references (both in the run's
    temporary folder, removed with it), and PyTorch's huge pages for CPU tensors unless the caller set
    ``THP_MEM_ALLOC_ENABLE`` (to 0 to compare)."""
    env = {
        **os.environ,
        "CONVBENCH_GRID": opts.grid,
        "CONVBENCH_EVENTS": str(events_path),
        "CONVBENCH_CHECKS": str(events_path.with_name("checks.jsonl")),
        "CONVBENCH_REFERENCES": str(events_path.with_name("references")),
    }
    env[fresh.USER_ENV] = fresh.keep_user_environment(events_path.with_name("user-environment.json"))
    if "THP_MEM_ALLOC_ENABLE" not in env:  # huge pages for large CPU tensors: docs/verdicts.md §4
        env.update({"THP_MEM_ALLOC_ENABLE": "1", fresh.RUN_SET_THP: "1"})  # not for a plain process: a user's
    env.pop("CONVBENCH_DEVICES", None)
    if opts.devices:
        env["CONVBENCH_DEVICES"] = ",".join(opts.devices)
    return env


def new_run_id(head: str) -> str:
    """UTC time, the commit and a random part: two runs started in the same second never share an id."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{head[:8]}-{secrets.token_hex(5)}"


class _Chunks:
    """Runs the plan chunk by chunk, each chunk its own ``asv run`` (a :class:`guard.Child`), saving the
    run through ``save`` after every chunk. SIGINT, SIGTERM or SIGHUP stop it: asv's group is terminated
    and what was measured is kept (it is in the events file already)."""

    def __init__(self, cmd_of, root: Path, env: dict[str, str], log_path: Path, progress: _Progress, after_chunk):
        self.cmd_of, self.root, self.env, self.log_path, self.progress = cmd_of, root, env, log_path, progress
        self.after_chunk = after_chunk  # called with the guard.Child's pgid (or None) after each chunk
        self.child: guard.Child | None = None
        self.attempted: set[Combination] = set()
        self.asv_errors: list[str] = []
        self.stop = guard.Stop(self._on_stop)

    def _on_stop(self) -> None:
        if self.child is not None:
            self.child.stop()

    def run(self, planned: list[tuple[int, list[Combination]]], on_start) -> str | None:
        """Run every (rounds, chunk); return the name of the signal that stopped the run, or None."""
        with self.stop, open(self.log_path, "a") as log:
            try:
                for rounds, chunk in planned:
                    if self.stop.requested:
                        break
                    self.attempted.update(chunk)
                    self._one(rounds, chunk, log, on_start)
                    self.after_chunk()
            finally:
                if self.child is not None:
                    self.child.stop()
                self.progress.close()
        return self.stop.requested

    def _one(self, rounds: int, chunk: list[Combination], log, on_start) -> None:
        self.child = guard.Child(self.cmd_of(rounds, chunk), self.root, self.env, log)
        on_start(self.child.pgid)
        while self.child.running():
            self.progress.update()
            time.sleep(0.3)
        self.progress.update()
        code = self.child.proc.returncode
        if code not in (0, 2) and not self.stop.requested:  # asv exits 2 when a benchmark failed
            self.asv_errors.append(f"asv exited {code}: {_last_line(self.log_path)}")
            print(f"asv exited {code} on a chunk; see {self.log_path}", file=sys.stderr)


def _last_line(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip()[:300] if lines else "(empty log)"


def asv_config(root: Path, scratch: Path) -> Path:
    """A copy of the project's asv config writing into ``scratch``: each run has its own asv result file,
    so concurrent or successive runs never overwrite each other's (the store keeps every run)."""
    conf = json.loads((root / "asv.conf.json").read_text())
    conf.update(
        repo=str(root),
        benchmark_dir=str(root / conf.get("benchmark_dir", "benchmarks")),
        results_dir=str(scratch / "asv-results"),
        html_dir=str(scratch / "asv-html"),
    )
    path = scratch / "asv.conf.json"
    path.write_text(json.dumps(conf, indent=2))
    return path


def run(opts: RunOptions, save: Save | None = None) -> int:
    """Run the grid; return the exit code (:class:`bench_lib.errors.Exit`: OK, FAILED where some
    combinations failed, UNAVAILABLE where the machine lock or the store was not to be had, INTERRUPTED).

    ``save(run, events, peaks, breakdowns)`` stores the run; it is called after every chunk and once at
    the end (the store stage's writer, handed in by the CLI: the suite stage does not import the store).
    """
    root = project_root(opts.project)
    head = git_head(root)
    python = _check_options(opts)
    sides = check_sides(opts)
    planted = faults()  # a bad CONVBENCH_SLOWDOWN / CONVBENCH_FAIL is an argument error, before anything runs
    grid = grids.grid(opts.grid, opts.devices)
    if sides:
        opts.pairs = opts.pairs or ab.DEFAULT_PAIRS
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
        ctx = _RunContext(opts, grid, the_plan, root, head, python, fp, run_id, started, scratch, save or _no_save)
        ctx.faults, ctx.sides, ctx.pairs = planted, sides, opts.pairs or 0
        where = _sides_text(sides, opts.pairs) if sides else f"python {python}; {opts.rounds} latency round(s)"
        if any(c.suite == PLAIN for c in the_plan.selected) and not sides:
            where += f" ({opts.plain_rounds} fresh processes for the plain suite)"
        print(
            f"convbench run {run_id}: grid {opts.grid}, {len(the_plan.selected)} combinations on "
            f"{', '.join(grid.devices)}; machine {fp['machine_id']} (hardware {fp['hardware_id']})"
            f"{'; asv entry added to ' + str(asv_machine_file()) if written else ''}; commit {head[:8]}; {where}"
            + (f"; INJECTED FAULTS {json.dumps(planted)}" if planted else ""),
            flush=True,
        )
        with _gpu_clocks_locked(opts, grid.devices, ctx):
            return ab.execute(ctx, lock) if sides else ctx.execute(asv_machine, lock)
    finally:
        lock.release()
        shutil.rmtree(scratch, ignore_errors=True)


def _sides_text(sides: list[ab.Side], pairs: int) -> str:
    shown = "; ".join(f"side {s.label}: {s.python}" + "".join(f" {k}={v}" for k, v in s.variables) for s in sides)
    return f"A/B run, {pairs} pairs of processes per combination, interleaved; {shown}"


@contextlib.contextmanager
def _gpu_clocks_locked(opts: RunOptions, specs: list[str], ctx: _RunContext) -> Iterator[None]:
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
class _RunContext:
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
    pairs: int = 0  # an A/B run's pairs per combination
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)  # side label → its torch build

    def execute(self, asv_machine: str, lock: guard.MachineLock) -> int:
        events_path, log_path = self.scratch / "events.jsonl", self.scratch / "asv.log"
        config = asv_config(self.root, self.scratch)
        self.machine_state["start"] = machine.state()
        run_level = self.opts.peaks and self.grid.run_level
        if run_level:
            self.peaks, self.run_level_s = _measure_peaks(self.grid.devices)
            self.run_level_s += _canary(self.grid.devices, events_path, "start")
        runner = _Chunks(
            lambda rounds, chunk: asv_command(config, self.python, self.head, asv_machine, self.opts, chunk, rounds),
            self.root,
            _asv_environment(self.opts, events_path),
            log_path,
            _Progress(len(self.plan.selected), events_path, enabled=self.opts.progress),
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
        return self._finish(events_path, log_path, summary)

    def _after_chunks(self, events_path: Path, run_level: bool) -> None:
        """The networks' breakdowns (where networks ran) and the closing canary: the run's own windows."""
        networks_ran = any(p.suite == "networks" for p in self.plan.selected)
        if self.opts.breakdowns and networks_ran and self.grid.run_level:
            self.breakdowns, spent_s = _measure_breakdowns(self.grid)
            self.run_level_s += spent_s
        if run_level:
            self.run_level_s += _canary(self.grid.devices, events_path, "end")

    def _finish(self, events_path: Path, log_path: Path, summary: Summary) -> int:
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


def _run_record(ctx: _RunContext, state: str, summary: Summary) -> dict[str, Any]:
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
        "bench_lib_version": __version__,
        "suite_version": SUITE_VERSION,
        "launch_method": ctx.opts.launch_method,
        "summary": summary.as_dict(),
        "fingerprint": fp,
        "faults": ctx.faults,
        "machine_state": ctx.machine_state,
        "timing": ctx.grid.timing,
    }


def _measure_peaks(specs: list[str]) -> tuple[list[Any], float]:
    """Roofline peaks of every available device, measured with the run (a few seconds per device), and the
    seconds spent measuring them."""
    from bench_lib.measure import roofline

    found, spent_s = [], 0.0
    for spec in specs:
        if not devices.backend(spec).available()[0]:
            continue
        started = time.perf_counter()
        peaks = roofline.measure_peaks(spec)
        spent_s += time.perf_counter() - started
        found.append(peaks)
        print(
            f"  roofline peaks of {spec}: {peaks.compute_flops_per_s('float32') / 1e9:.1f} GFLOP/s, "
            f"{peaks.copy_bytes_per_s / 1e9:.1f} GB/s (DRAM copy)",
            flush=True,
        )
    return found, spent_s


def _canary(specs: list[str], events_path: Path, when: str) -> float:
    """Time the canary on every available device and append it to the events as suite ``canary`` (process
    ``canary-start`` or ``canary-end``): :func:`bench_lib.suite.worker.canary`; return the seconds inside
    its windows. A failure here is reported, not fatal."""
    from bench_lib.suite import worker

    spent_s = 0.0
    os.environ["CONVBENCH_EVENTS"] = str(events_path)
    try:
        for spec in specs:
            try:
                timed, spent = worker.canary(spec, when)
            except Exception as e:  # the run's results stand without it
                print(f"  canary on {spec} failed: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            spent_s += spent
            if timed:
                shown = ", ".join(f"{c.case.split('(')[0]} {r.result.median_s * 1e3:.2f} ms" for c, r in timed)
                print(f"  canary at the {when} on {spec}: {shown}", flush=True)
    finally:
        os.environ.pop("CONVBENCH_EVENTS", None)
    return spent_s


def _measure_breakdowns(grid: grids.Grid) -> tuple[list[dict[str, Any]], float]:
    """Each network's per-part times (batch 1, inference, the grid's first layout) on each available device,
    and the seconds spent timing them (building the networks is not counted); a failure here is reported,
    not fatal."""
    import torch

    from bench_lib.measure import breakdown, harness

    found, spent_s = [], 0.0
    for spec in grid.devices:
        if not devices.backend(spec).available()[0]:
            continue
        for case_text in grid.cases["networks"]:
            layout = grid.layouts[0]  # NCHW: the breakdown's shares barely move with the layout
            try:
                prepared = harness.prepare_case(case_text, device=spec, layout=layout)
                started = time.perf_counter()
                rows = breakdown.breakdown(prepared)
                spent_s += time.perf_counter() - started
            except Exception as e:  # the run's results stand without it
                print(f"  breakdown of {case_text} on {spec} failed: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            found.append(
                {
                    "device": spec,
                    "layout": layout,
                    "case": case_text,
                    "batch": 1,
                    "torch_version": torch.__version__,
                    "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "method": "per-part replay",
                    "parts": rows,
                }
            )
        print(f"  per-block breakdowns of {len(grid.cases['networks'])} networks on {spec}", flush=True)
    return found, spent_s


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
                if e["suite"] == "canary":
                    continue
                self.seen.add(Combination.from_event(e))
                current = f"{e['metric']:11s} {e['params']['case']} {e['params']['device']} b{e['params']['batch']}"
        if self._progress is not None:
            self._progress.update(self._task, completed=len(self.seen), description=current or "running")
        elif time.time() - self._last_print > 30:
            self._last_print = time.time()
            print(f"  {len(self.seen)}/{self.total} combinations", file=sys.stderr)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
