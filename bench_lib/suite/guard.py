"""What keeps a run safe on a shared machine: one run at a time, signals that stop it cleanly, and no
asv child outliving it.

- :class:`MachineLock`: ``convbench run`` holds an exclusive ``flock`` on a machine-wide file
  (``$CONVBENCH_LOCK_DIR`` or the temp folder, ``convbench-run.lock``); two runs at once would time each
  other's load. A second run waits with a message naming the first (up to ``--wait``), then gives up.
  The kernel drops the lock when its holder dies, even by SIGKILL.
- :class:`Child`: the asv process runs in its own session (a Ctrl-C at the terminal reaches convbench,
  not asv), is sent SIGTERM by the kernel if convbench dies (``PR_SET_PDEATHSIG``), and its whole process
  group is terminated when convbench stops. Its group id is written into the lock file, so the next run
  removes a group a SIGKILLed run left behind before it measures anything.
- :class:`Stop`: SIGINT, SIGTERM and SIGHUP all stop the run the same way: the chunk in flight is
  abandoned (everything it measured is already in the events file), the run is saved as interrupted.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LAUNCH_METHODS = ("forkserver", "spawn")  # how the asv child starts its benchmark processes

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TERMINATE_GRACE_S = 5.0  # seconds asv's group gets between SIGTERM and SIGKILL


def lock_path() -> Path:
    return Path(os.environ.get("CONVBENCH_LOCK_DIR") or tempfile.gettempdir()) / "convbench-run.lock"


class LockTimeout(RuntimeError):
    """Another run held the machine for longer than the caller would wait."""


class MachineLock:
    """An exclusive lock on this machine's benchmarking; ``holder`` describes who holds it."""

    def __init__(self, path: Path | None = None):
        self.path = path or lock_path()
        self.fd: int | None = None

    def holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self, wait_s: float, about: dict[str, Any], say=print) -> None:
        """Take the lock, waiting up to ``wait_s`` seconds (saying so once); raise :class:`LockTimeout`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        f"another convbench run still holds {self.path} ({_describe(self.holder())})"
                    ) from None
                if not told:
                    say(f"waiting for another convbench run to finish ({_describe(self.holder())}); lock {self.path}")
                    told = True
                time.sleep(0.5)
        self.fd = fd
        self._reap_leftover(say)
        self.update(about)

    def update(self, about: dict[str, Any]) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps({"pid": os.getpid(), **about}).encode(), 0)

    def _reap_leftover(self, say) -> None:
        """Terminate the asv group a killed run left behind (its group id is in the lock file)."""
        pgid = self.holder().get("asv_pgid")
        if pgid and _is_asv_group(int(pgid)):
            say(f"terminating asv process group {pgid} left by an earlier run that was killed")
            terminate_group(int(pgid))

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)
            self.fd = None


def _describe(h: dict[str, Any]) -> str:
    if not h:
        return "holder unknown"
    return f"pid {h.get('pid')}, run {h.get('run_id', '?')}, started {h.get('started_at', '?')}"


def _is_asv_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        return b"asv" in Path(f"/proc/{pgid}/cmdline").read_bytes()
    except OSError:
        return sys.platform != "linux"


def terminate_group(pgid: int, grace_s: float = TERMINATE_GRACE_S) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)
            time.sleep(0.1)
        os.killpg(pgid, signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when the parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """One asv process in its own session; :meth:`stop` ends its whole group."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log) -> None:
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.pgid = self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.running() or _group_alive(self.pgid):
            terminate_group(self.pgid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class Stop:
    """While active, SIGINT, SIGTERM and SIGHUP set :attr:`requested` and call ``on_stop`` (once)."""

    def __init__(self, on_stop) -> None:
        self.on_stop = on_stop
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Stop:
        for s in STOP_SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)

    def _handle(self, signum, frame) -> None:
        first = self.requested is None
        self.requested = signal.Signals(signum).name
        if first:
            print(f"\n{self.requested}: stopping asv; everything measured so far is saved", file=sys.stderr)
            self.on_stop()
