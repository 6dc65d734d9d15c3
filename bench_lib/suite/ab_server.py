"""One side's server in an A/B run (``python -m bench_lib.suite.ab_server``, in that side's interpreter and
environment): it imports the suite once, then forks a fresh process per request, as asv's forkserver does,
so every measurement is its own process and the side's variables (``LD_PRELOAD``, ``THP_MEM_ALLOC_ENABLE``,
``CONVBENCH_SLOWDOWN``...) apply from the start.

Requests are JSON lines on standard input, one JSON reply line each on the standard output it started
with (everything the processes print goes to standard error, the runner's log):

- ``{"op": "identity"}``: the torch build (:func:`bench_lib.measure.machine.torch_build`) and the side's
  ``THP_MEM_ALLOC_ENABLE`` (None where unset: PyTorch's default, no huge pages);
- ``{"op": "measure", "combination": {...}, "pair": N, "timeout_s": S}``: setup and measure one
  combination in a new process (:mod:`bench_lib.suite.worker`), which writes its event; a process that
  dies or runs past ``timeout_s`` is killed, and its failure written here;
- ``{"op": "canary", "device": SPEC, "when": "start"|"end"}``: the canary in a new process.

Nothing here touches CUDA: only the forked processes do.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable

from bench_lib.measure import devices, machine
from bench_lib.suite import worker
from bench_lib.suite.combination import Combination
from bench_lib.suite.grids import grid

SKIPPED_EXIT = 3  # a process's exit code for "skipped" (setup raised NotImplementedError)
STATUS = {0: "ok", SKIPPED_EXIT: "skipped"}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_current: list[int] = []  # the measuring process now running, if any


def _end(signum, frame) -> None:
    """SIGTERM (the runner's stop, or its death: PR_SET_PDEATHSIG), SIGINT, SIGHUP: no process left behind."""
    for pid in (p for p in _current if p > 0):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    os._exit(128 + signum)


def _measure(c: Combination) -> int:
    try:
        ready = worker.setup(c)
    except NotImplementedError:
        return SKIPPED_EXIT
    worker.track(ready)
    return 0


def _canary(spec: str, when: str) -> int:
    worker.canary(spec, when)
    return 0


def _child_start(pair: int | None) -> None:
    """In a new measuring process: the default signal actions, and its pair for its events."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_DFL)
    if pair is not None:
        os.environ["CONVBENCH_PAIR"] = str(pair)


def _in_process(work: Callable[[], int], pair: int | None, timeout_s: float) -> tuple[str, int | None]:
    """Run ``work`` in a forked process; (status, pid): ``ok``, ``skipped``, ``failed`` (it raised: the
    worker wrote why), or ``died: ...`` (a signal, or the timeout) where nobody wrote why."""
    pid = os.fork()
    if pid == 0:  # the measuring process
        code = 1
        try:
            _child_start(pair)
            code = work()
        except BaseException:  # the worker has written the failure; say it by the exit code
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _current[:] = [pid]
    return _wait(pid, timeout_s), pid


def _wait(pid: int, timeout_s: float) -> str:
    """The status of process ``pid`` once it ends (killed after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return f"died: timed out after {timeout_s:g} s"
        time.sleep(0.005)
    _current.clear()
    if os.WIFSIGNALED(status):
        return f"died: killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return STATUS.get(os.WEXITSTATUS(status), "failed")


class Interleaved:
    """The process of one side of an A/B pair, kept open between requests: it warms up (``open``), takes the
    pair's calls per sample (``block``), times one sample per ``sample`` and writes its event at ``close``
    (:func:`bench_lib.suite.worker.interleaved`). The runner alternates the two sides' samples, so both see
    the same moments of the machine."""

    def __init__(self, request: dict) -> None:
        self.combination = Combination.from_event(request["combination"])
        self.pair, self.timeout_s = request["pair"], request["timeout_s"]
        self.pinned = False
        to_child, self.commands = os.pipe()
        self.replies_fd, from_child = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.commands)
            os.close(self.replies_fd)
            self._child(os.fdopen(to_child), os.fdopen(from_child, "w"))
        os.close(to_child)
        os.close(from_child)
        _current[:] = [self.pid]
        self.replies = os.fdopen(self.replies_fd)

    def _child(self, commands, replies) -> None:
        code = 1
        try:
            _child_start(self.pair)

            def answer(text: str) -> None:
                replies.write(text + "\n")
                replies.flush()

            try:
                ready = worker.setup(self.combination)
            except NotImplementedError:
                code = SKIPPED_EXIT
            else:
                worker.interleaved(ready, lambda: commands.readline().strip(), answer)
                code = 0
        except BaseException:
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def pin(self) -> None:
        """Before its first sample (set up and warmed up, side by side with the other sides' processes), move
        the process onto the CPUs every side's process of the pair shares (:func:`devices.pinned_cpus`):
        the two samples of a round then run on the same CPUs."""
        if self.pinned or not hasattr(os, "sched_setaffinity"):
            return
        self.pinned = True
        cpus = devices.pinned_cpus(devices.parse_spec(self.combination.device).threads, os.sched_getaffinity(0))
        if cpus:
            with contextlib.suppress(OSError):  # it ended: its next reply says so
                os.sched_setaffinity(self.pid, cpus)

    def ask(self, command: str | None) -> dict:
        """Send ``command`` (None: only read) and read the reply line: ``{"status": "ok", "reply": ...}``,
        or the process's end where it ended instead (its status, and its failure written if it died)."""
        try:
            if command is not None:
                os.write(self.commands, (command + "\n").encode())
            ready, _, _ = select.select([self.replies], [], [], self.timeout_s)
            line = self.replies.readline() if ready else ""
        except OSError:
            line = ""
        if line:
            return {"status": "ok", "reply": line.strip()}
        return self.end(kill=not ready)

    def end(self, kill: bool = False) -> dict:
        if kill:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
        status = _wait(self.pid, 0.0 if kill else self.timeout_s)
        if kill:
            status = f"died: no answer within {self.timeout_s:g} s"
        if status.startswith("died"):
            worker.died(self.combination, status.removeprefix("died: "), self.pid, self.pair)
        with contextlib.suppress(OSError):
            os.close(self.commands)
        self.replies.close()
        return {"status": status}


_open: list[Interleaved] = []  # the side's open process of the pair being measured, if any


def _interleaved(op: str, request: dict) -> dict:
    if op == "open":
        if _open:
            _open.pop().end(kill=True)
        _open.append(Interleaved(request))
        reply = _open[0].ask(None)  # "ready BLOCK MULTIPLE", or its end (skipped, failed)
        if reply["status"] == "ok":
            _, block, multiple = reply["reply"].split()
            return {"status": "ready", "block": int(block), "multiple": int(multiple)}
        _open.clear()
        return reply
    if not _open:
        return {"error": f"{op}: no process is open"}
    if op == "sample":
        _open[0].pin()
    if op in ("sample", "block"):
        text = f"sample {int(request.get('warm', 0))}" if op == "sample" else f"block {int(request['calls'])}"
        reply = _open[0].ask(text)
        if reply["status"] == "ok":
            return {"status": "ok", "seconds_per_call": float(reply["reply"])} if op == "sample" else reply
        _open.clear()
        return reply
    process = _open.pop()
    with contextlib.suppress(OSError):
        os.write(process.commands, b"done\n")
    return process.end()


def _handle(request: dict) -> dict:
    op = request.get("op")
    if op == "identity":  # the torch build, and whether PyTorch puts its large CPU tensors on huge pages here
        return {**machine.torch_build(), "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE")}
    if op == "canary":
        spec, when = request["device"], request["when"]
        status, _ = _in_process(lambda: _canary(spec, when), None, request.get("timeout_s", 600.0))
        return {"status": status}
    if op in ("open", "block", "sample", "close"):
        return _interleaved(op, request)
    if op == "measure":
        c = Combination.from_event(request["combination"])
        started = time.perf_counter()
        status, pid = _in_process(lambda: _measure(c), request["pair"], request["timeout_s"])
        if status.startswith("died"):
            worker.died(c, status.removeprefix("died: "), pid, request["pair"])
        return {"status": status, "wall_s": time.perf_counter() - started}
    return {"error": f"unknown request {op!r}"}


def main() -> None:
    for s in STOP_SIGNALS:
        signal.signal(s, _end)
    # the grid once, here: its cases' traced shapes are cached, and every process forked below inherits them
    # (built anew in each process, they took 0.12 s of its 0.16 s setup on the development VM)
    grid()
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")  # the protocol's own channel
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever else is printed goes to the log
    for line in sys.stdin:
        if line.strip():
            replies.write(json.dumps(_handle(json.loads(line)), default=str) + "\n")
            replies.flush()


if __name__ == "__main__":
    main()
