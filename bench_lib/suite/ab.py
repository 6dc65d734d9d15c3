"""A/B runs: two or more environments measured side by side, interleaved and paired, into one run.

asv interleaves rounds across benchmarks but not across environments, so two environments measured by two
runs differ by everything the machine did in the minutes between them. Here every side (an interpreter,
and environment variables of its own) keeps one server process (:mod:`bench_lib.suite.ab_server`) that
imports the suite once and forks a fresh process per measurement, as asv's forkserver does. The runner
walks pass after pass (:func:`_walk`): in each, every combination still undecided
(:mod:`bench_lib.suite.ab_sequential`) gets one pair, every side once, the side that opens first rotating
from pair to pair and from combination to combination; within a pair the sides' samples are interleaved
(:func:`interleave`, :func:`turn_order`). A pair's processes share the same seconds of the machine: its
drift is common to them and cancels in their ratio (:mod:`bench_lib.measure.intervals` judges those
ratios).

Sides are named ``A``, ``B``, ... in the order of ``--python``; ``--side LABEL:VAR=VALUE`` gives a side an
environment variable (and makes the side where no ``--python`` did: the first interpreter, or this one).
Every row of the run says its side and pair, every side's identity (its torch build, oneDNN, MKL, CUDA,
cuDNN, CPU capability and variables) is in the run's ``sides``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from bench_lib.errors import ArgumentError
from bench_lib.measure import fresh
from bench_lib.measure import timing as measuring
from bench_lib.suite import ab_sequential, asv_adapter, guard, run_level, summary
from bench_lib.suite.combination import Combination

LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,15}$")
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
# set by the runner for each side: a side may not set them itself
RESERVED = frozenset(
    {
        "CONVBENCH_GRID",
        "CONVBENCH_DEVICES",
        "CONVBENCH_EVENTS",
        "CONVBENCH_CHECKS",
        "CONVBENCH_REFERENCES",
        "CONVBENCH_SIDE",
        "CONVBENCH_PAIR",
        "PYTHONPATH",
    }
)
SIDE_HELP = "LABEL:VAR=VALUE (e.g. B:THP_MEM_ALLOC_ENABLE=1)"
MEASURE_TIMEOUT_S = 600.0  # one process's limit, as an asv benchmark's


@dataclass(frozen=True)
class Side:
    """One environment of an A/B run: its label, interpreter (absolute) and its own variables."""

    label: str
    python: str
    variables: tuple[tuple[str, str], ...] = ()

    def env_name(self, base: str) -> str:
        """The environment's name in the store: the interpreter's (``base``) and its variables, as a name
        the store accepts (:func:`safe_name`)."""
        return safe_name(" ".join([base, *(f"{k}={v}" for k, v in self.variables)]))

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "python": self.python, "variables": dict(self.variables)}


UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')  # what an environment name may not hold (a path part)
MAX_NAME = 200  # characters of an environment name kept before its hash


def safe_name(text: str) -> str:
    """``text`` as an environment name the store accepts: characters a path part may not hold become
    ``_``; a name over :data:`MAX_NAME` characters keeps its start and a hash of the whole."""
    name = UNSAFE.sub("_", text)
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME - 13] + "..." + hashlib.sha256(text.encode()).hexdigest()[:10]
    return name


def run_env_name(names: list[str]) -> str:
    """An A/B run's environment name: its sides' joined by `` vs `` (made safe)."""
    return safe_name(" vs ".join(names))


def parse_side(text: str) -> tuple[str, tuple[str, str] | None]:
    """``LABEL`` or ``LABEL:VAR=VALUE`` → (label, (var, value) or None); ArgumentError naming ``--side``."""
    label, sep, assignment = text.partition(":")
    if not LABEL.match(label):
        raise ArgumentError(f"--side {text!r}: the label must be a letter then up to 15 letters, digits, _ or -")
    if not sep:
        return label, None
    name, eq, value = assignment.partition("=")
    if not eq or not VARIABLE.match(name):
        raise ArgumentError(f"--side {text!r}: write {SIDE_HELP}")
    if name in RESERVED:
        raise ArgumentError(f"--side {text!r}: {name} is set by convbench for each side; accepted: any other variable")
    return label, (name, value)


def sides(pythons: list[str], specs: list[str], default: str = sys.executable) -> list[Side]:
    """The run's sides: one per ``--python`` (labelled A, B, ... in order), and one per new label of
    ``--side`` (on the first interpreter, else ``default``), each with the variables ``--side`` gave it.
    A relative path is made absolute (links kept: a venv's python is a link to its base interpreter)."""
    found: dict[str, list[Any]] = {}
    for i, python in enumerate(pythons):
        path = os.path.abspath(python)
        if not Path(path).exists():
            raise ArgumentError(f"--python {python} does not exist")
        found[chr(ord("A") + i)] = [path, {}]
    first = next(iter(found.values()))[0] if found else default
    for text in specs:
        label, assignment = parse_side(text)
        entry = found.setdefault(label, [first, {}])
        if assignment:
            if assignment[0] in entry[1]:
                raise ArgumentError(f"--side {text!r}: side {label} already sets {assignment[0]}")
            entry[1][assignment[0]] = assignment[1]
    return [Side(label, path, tuple(variables.items())) for label, (path, variables) in found.items()]


def first_side(pair: int, index: int, n_sides: int) -> int:
    """Which side goes first for ``pair`` of the combination at ``index``: (pair + index) mod sides. Over
    the pairs of one combination each side goes first equally often (A B, B A, A B, ...), and at any pair
    half the combinations start with each side."""
    return (pair + index) % n_sides


@dataclass
class _Open:
    """One side's open process in a pair: its server, calls per sample, samples taken, seconds sampled."""

    server: Server
    block: int
    multiple: int = 1  # its block must stay a multiple of this (a planted slowdown's period)
    taken: int = 0
    sampled_s: float = 0.0


def common_block(opened: list[_Open]) -> int:
    """The calls per sample of every side of a pair: the largest block any side sized for itself, rounded
    up to a multiple of every side's ``multiple``. Equal blocks make the sides' samples alike: a block of
    20 calls amortises the first call after the other side ran (caches it left cold) better than a block
    of 3, and a planted slowdown's side, its block a multiple of the slowdown's period, would otherwise be
    measured in longer blocks than its partner (a planted 5 % then showed as 2-4 %, docs/ab.md). Not
    longer: turns of at least 20 ms doubled the pairs' spread (docs/ab.md, "Where a pass's time goes")."""
    if not opened:
        return 1
    multiple = math.lcm(*(o.multiple for o in opened))
    return math.ceil(max(o.block for o in opened) / multiple) * multiple


def interleave(servers: list[Server], c: Combination, pair: int, timing: dict[str, float]) -> None:
    """One pair of a latency combination: every side's process is set up and warms up (all at once), then
    they take turns, a sample each in the order of :func:`turn_order` (A B A B ...; A B C, B C A, C A B,
    ...), each turn :data:`TURN_WARM_CALLS` untimed call(s) then one timed block of the pair's common size
    (:func:`common_block`), in whole cycles of rounds until every side has what
    ``timing`` asks of one process (:func:`bench_lib.measure.timing.enough`, on its own sampled seconds);
    then each captures its kernels and writes its event (all at once). A side that is skipped or fails
    leaves the others to finish."""
    request = {"op": "open", "combination": c.as_event(), "pair": pair, "timeout_s": MEASURE_TIMEOUT_S}
    opened = [
        _Open(server, reply["block"], reply.get("multiple", 1))
        for server, reply in zip(servers, ask_all(servers, request), strict=True)
        if reply.get("status") == "ready"
    ]
    block = common_block(opened)
    for o in list(opened):
        if o.block != block and o.server.ask({"op": "block", "calls": block}).get("status") != "ok":
            opened.remove(o)  # it ended instead: its event says why
        o.block = block
    rule = {k: timing.get(k, getattr(measuring.DEFAULT_TIMING, k)) for k in STOP_RULE}
    cycle, k = _cycle(len(opened)), 0
    while opened and not (k % cycle == 0 and all(measuring.enough(o.taken, o.sampled_s, **rule) for o in opened)):
        for o in [opened[j] for j in turn_order(len(opened), k)]:
            reply = o.server.ask({"op": "sample", "warm": TURN_WARM_CALLS})
            if reply.get("status") != "ok":  # it ended (failed or died: its event says so)
                opened.remove(o)
                cycle = _cycle(len(opened))
                continue
            o.taken += 1
            o.sampled_s += reply["seconds_per_call"] * o.block
        k += 1
    ask_all([o.server for o in opened], {"op": "close"})  # each captures its kernels and writes its event


def _cycle(n_sides: int) -> int:
    """The rounds after which every side has taken every place (:func:`turn_order`): one for two sides."""
    return n_sides if n_sides >= 3 else 1


def turn_order(n_sides: int, round_: int) -> list[int]:
    """The order of the sides' samples in round ``round_`` of a pair: every side once. From one round to the
    next the order rotates by one place, so over ``n_sides`` rounds every side takes every place once (a
    drift within the pair falls on all alike) and no side ever follows itself: every sample comes after
    another side's. With two sides rotating would put a side after itself at every round's start, so they
    alternate, A B A B. (The order of before, A B C C B A, had the middle side always after another side
    and the ends after themselves half the time: docs/ab.md, "Why every sample comes after another side".)"""
    if n_sides < 3:
        return list(range(n_sides))
    return [(round_ + j) % n_sides for j in range(n_sides)]


# Untimed calls before each sample of an A/B pair: docs/ab.md ("Why every sample comes after another side")
TURN_WARM_CALLS = 1
# time_callable's stopping rule (measure.timing.enough), read from the grid's timing or the defaults
STOP_RULE = ("samples", "min_samples", "min_time_s", "max_time_s")


class ServerDied(RuntimeError):
    """A side's server ended (a stop signal, or a crash): its log says why."""


@dataclass
class Server:
    """One side's server (:mod:`bench_lib.suite.ab_server`): requests in, one reply line each."""

    side: Side
    child: guard.Child
    identity: dict[str, Any] = field(default_factory=dict)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send(request)
        return self.receive()

    def send(self, request: dict[str, Any]) -> None:
        try:
            self.child.proc.stdin.write(json.dumps(request) + "\n")
            self.child.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            self._died()

    def receive(self) -> dict[str, Any]:
        try:
            line = self.child.proc.stdout.readline()
        except (ValueError, OSError):
            line = ""
        if not line:
            self._died()
        return json.loads(line)

    def _died(self) -> NoReturn:
        raise ServerDied(f"side {self.side.label}'s server ended (exit {self.child.proc.poll()})")

    def measure(self, c: Combination, pair: int) -> dict[str, Any]:
        return self.ask({"op": "measure", "combination": c.as_event(), "pair": pair, "timeout_s": MEASURE_TIMEOUT_S})

    def stop(self) -> None:
        self.child.stop()


def ask_all(servers: list[Server], request: dict[str, Any]) -> list[dict[str, Any]]:
    """``request`` to every server at once, then their replies in order: the sides' processes set up and
    warm up, or capture their kernels and end, side by side (one side after another, opening took half a
    pair's time outside its samples)."""
    for server in servers:
        server.send(request)
    return [server.receive() for server in servers]


def side_environment(base: dict[str, str], side: Side, scratch: Path, root: Path) -> dict[str, str]:
    """A side's server's environment: the run's (``base``), its label, its own file of passed reference
    checks and folder of references (two torch builds need not agree to the last bit), the project on
    ``PYTHONPATH`` (the side's interpreter need not have convbench installed), then its variables."""
    env = {
        **base,
        "CONVBENCH_SIDE": side.label,
        "CONVBENCH_CHECKS": str(scratch / f"checks-{side.label}.jsonl"),
        "CONVBENCH_REFERENCES": str(scratch / f"references-{side.label}"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), base.get("PYTHONPATH")])),
    }
    env.update(side.variables)
    # a plain process of this side: the user's environment and the side's own variables, nothing of convbench's
    user = {**fresh.user_environment(base), **dict(side.variables)}
    env[fresh.USER_ENV] = fresh.keep_user_environment(scratch / f"user-environment-{side.label}.json", user)
    return env


def describe(identity: dict[str, Any]) -> str:
    """A side's identity in a line: ``torch 2.13.0+cpu, oneDNN 3.12.0, MKL 2024.2, CPU capability AVX2``."""
    names = {"torch_version": "torch", "cuda_version": "CUDA", "cudnn_version": "cuDNN", "onednn_version": "oneDNN"}
    names.update(mkl_version="MKL", cpu_capability="CPU capability", python="Python")
    said = [f"{name} {identity[k]}" for k, name in names.items() if identity.get(k) is not None]
    if identity.get("thp_mem_alloc_enable") is not None:
        said.append(f"THP_MEM_ALLOC_ENABLE={identity['thp_mem_alloc_enable']}")
    return ", ".join(said)


def execute(ctx, lock) -> int:
    """Run the A/B passes of ``ctx`` (the runner's ``RunContext``, with ``sides`` and ``pairs``) under the
    machine lock the caller holds: roofline peaks (this interpreter), each side's server and canary, then
    every pair, saving after every pair; stopped cleanly by SIGINT, SIGTERM or SIGHUP. The exit code."""
    from bench_lib.measure import machine

    events_path, log_path = ctx.scratch / "events.jsonl", ctx.scratch / "asv.log"
    ctx.machine_state["start"] = machine.state()
    if ctx.opts.peaks and ctx.grid.run_level:
        ctx.peaks, ctx.run_level_s = run_level.measure_peaks(ctx.grid.devices)
    # PyTorch's default, no huge pages, as a user's script starts; a side's own THP_MEM_ALLOC_ENABLE stays.
    # With them a process of a memory-bound op kept a level 18-25 % off its partner's for its life, and
    # the pairs spread by 15 % instead of 1.6 % (docs/ab.md, "Huge pages and the wild pairs").
    base = asv_adapter.asv_environment(ctx.opts, events_path, huge_pages=False)
    labels = [side.label for side in ctx.sides]
    ctx.sequential = ab_sequential.Sequential(ctx.plan.selected, labels, ctx.pairs, ctx.opts.budget_s, ctx.started)
    servers: list[Server] = []
    stop = guard.Stop(lambda: [s.stop() for s in servers])
    failure = None
    with stop, open(log_path, "a") as log:

        def renew() -> None:  # every side's server anew: a fresh process, a fresh heap
            for s in servers:
                s.stop()
            servers[:] = start_servers(ctx, base, log)

        try:
            renew()
            for server in servers:
                ctx.identities[server.side.label] = server.identity
                print(f"  side {server.side.label}: {describe(server.identity)}", flush=True)
            _walk(ctx, servers, stop, events_path, renew)
        except ServerDied as e:
            failure = None if stop.requested else str(e)
        finally:
            for s in servers:
                s.stop()
    ctx.machine_state["end"] = machine.state()
    print(ctx.sequential.describe(), flush=True)
    said = _summary(ctx, events_path, stop.requested, failure)
    return ctx.finish(events_path, log_path, said)


def start_servers(ctx, base: dict[str, str], log) -> list[Server]:
    """A server for every side, started together, each asked its identity."""
    started = []
    for side in ctx.sides:
        cmd = [side.python, "-m", "bench_lib.suite.ab_server"]
        env = side_environment(base, side, ctx.scratch, ctx.root)
        started.append(Server(side, guard.Child(cmd, ctx.root, env, log, pipes=True)))
    for server in started:
        server.identity = server.ask({"op": "identity"})
    return started


def _walk(ctx, servers: list[Server], stop: guard.Stop, events_path: Path, renew: Callable[[], None]) -> None:
    """The canaries at the start, then pass after pass: pass ``p`` gives pair ``p`` to every combination still open
    (:class:`ab_sequential.Sequential`), each combination's sides back to back, the side that goes first
    rotating (:func:`first_side`); after a pass at a look, decided combinations close. It ends when none is
    open, at the run's most pairs, when its budget is spent or on a stop signal; then the canaries at the
    end; a pass cut short by the budget or a stop takes no look (it is the end). The run is saved, its
    progress printed and every side's server started anew after each pass: a server's memory layout (its
    heap, where ASLR put its libraries) is inherited by every process it forks, so one server per side for
    the whole run makes that layout a difference between the sides (docs/ab.md, "Why a new server every
    pair")."""
    combos, n = ctx.plan.selected, len(servers)
    _canaries(ctx, servers, "start")
    for pair in range(ctx.pairs):
        todo = ctx.sequential.open(pair, lambda c: asv_adapter.rounds_of(c, ctx.pairs))
        if not todo or stop.requested or ctx.sequential.out_of_time():
            break
        if pair:
            ctx.store(events_path, "running", None)
            renew()
        measured = 0
        for i in todo:
            if stop.requested or ctx.sequential.out_of_time():
                break
            measured += 1
            ordered = [servers[(first_side(pair, i, n) + k) % n] for k in range(n)]
            if combos[i].interleaved:
                interleave(ordered, combos[i], pair, ctx.grid.timing)
            else:
                for server in ordered:
                    server.measure(combos[i], pair)
        closed = ctx.sequential.look(pair + 1, lambda: summary.read_events(events_path), measured < len(todo))
        _progress(ctx, pair + 1, measured, len(closed))
    _canaries(ctx, servers, "end")


def _progress(ctx, pairs: int, measured: int, closed: int) -> None:
    spent_s = time.time() - ctx.sequential.started
    said = f"; {closed} decided at this look" if closed else ""
    print(f"  pass {pairs}/{ctx.pairs}: {measured} combinations{said}; {spent_s:.0f} s", file=sys.stderr, flush=True)


def _canaries(ctx, servers: list[Server], when: str) -> None:
    """The canary on every device, in every side's environment (not for grids without run-level windows)."""
    if not (ctx.opts.peaks and ctx.grid.run_level):
        return
    for s in servers:
        for spec in ctx.grid.devices:
            reply = s.ask({"op": "canary", "device": spec, "when": when})
            if reply.get("status") != "ok":
                print(f"  canary on {spec} in side {s.side.label}: {reply.get('status')}", file=sys.stderr)


def _summary(ctx, events_path: Path, stopped: str | None, failure: str | None):
    """The run's :class:`summary.Summary`: each side's, merged (a failure names its side)."""

    events = summary.read_events(events_path)
    wall_s = time.time() - ctx.started
    errors = [failure] if failure else None
    parts = []
    for side in ctx.sides:
        mine = [e for e in events if e.get("side") == side.label and e.get("suite") != "canary"]
        parts.append(
            summary.summarise(
                ctx.plan.selected, mine, ctx.plan.excluded, wall_s, interrupted=stopped, asv_errors=errors
            )
        )
    canary_s = sum(e.get("measure_s") or 0.0 for e in events if e.get("suite") == "canary" and e.get("side"))
    return summary.merge(parts, [s.label for s in ctx.sides], ctx.run_level_s + canary_s)
