"""asv as convbench drives it: the plan of chunks, asv's command line, config, machine entry and
environment, and the chunks run one ``asv run`` each under the machine's guard.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_lib.errors import ArgumentError
from bench_lib.files import find_upward, write_atomic
from bench_lib.measure import fresh, machine, metrics
from bench_lib.suite import grids, guard
from bench_lib.suite.combination import PLAIN, Combination
from bench_lib.suite.options import RunOptions
from bench_lib.suite.progress import Progress


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


def asv_environment(opts: RunOptions, events_path: Path, huge_pages: bool = True) -> dict[str, str]:
    """The environment asv's discovery and workers see: the grid, the devices, the events file, the
    run's file of passed reference checks and its folder of float64 references (both in the run's
    temporary folder, removed with it), and, where ``huge_pages``, PyTorch's huge pages for CPU tensors
    unless the caller set ``THP_MEM_ALLOC_ENABLE`` (to 0 to compare). An A/B run's sides go without them
    (:func:`bench_lib.suite.ab.execute`)."""
    env = {
        **os.environ,
        "CONVBENCH_GRID": opts.grid,
        "CONVBENCH_EVENTS": str(events_path),
        "CONVBENCH_CHECKS": str(events_path.with_name("checks.jsonl")),
        "CONVBENCH_REFERENCES": str(events_path.with_name("references")),
    }
    env[fresh.USER_ENV] = fresh.keep_user_environment(events_path.with_name("user-environment.json"))
    if huge_pages and "THP_MEM_ALLOC_ENABLE" not in env:  # huge pages for large CPU tensors: docs/verdicts.md §4
        env.update({"THP_MEM_ALLOC_ENABLE": "1", fresh.RUN_SET_THP: "1"})  # not for a plain process: a user's
    env.pop("CONVBENCH_DEVICES", None)
    if opts.devices:
        env["CONVBENCH_DEVICES"] = ",".join(opts.devices)
    return env


class Chunks:
    """Runs the plan chunk by chunk, each chunk its own ``asv run`` (a :class:`guard.Child`), saving the
    run through ``save`` after every chunk. SIGINT, SIGTERM or SIGHUP stop it: asv's group is terminated
    and what was measured is kept (it is in the events file already)."""

    def __init__(self, cmd_of, root: Path, env: dict[str, str], log_path: Path, progress: Progress, after_chunk):
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
