"""What keeps a run safe on a shared machine: one run at a time, signals that stop it cleanly, and no
asv child outliving it.

- :class:`MachineLock`: ``convbench run`` holds an exclusive ``flock`` on ``convbench-run.lock`` in the
  user's own folder (``$CONVBENCH_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/convbench``, else
  ``~/.cache/convbench``: created 0700, never a world-writable one); two runs at once would time each
  other's load. A second run waits with a message naming the first (up to ``--wait``), then gives up.
  The kernel drops the lock when its holder dies, even by SIGKILL. The file is opened without following
  a symbolic link and must be a regular file the user owns.
- :class:`Child`: the asv process runs in its own session (a Ctrl-C at the terminal reaches convbench,
  not asv), is sent SIGTERM by the kernel if convbench dies (``PR_SET_PDEATHSIG``), and its whole process
  group is terminated when convbench stops. Its group id and its leader's start time are written into the
  lock file, so the next run removes a group a SIGKILLed run left behind before it measures anything, and
  only that group: a recycled id (another process, started at another time) is left alone.
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
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

LAUNCH_METHODS = ("forkserver", "spawn")  # how the asv child starts its benchmark processes

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TERMINATE_GRACE_S = 5.0  # seconds asv's group gets between SIGTERM and SIGKILL


def lock_path() -> Path:
    """The lock file in the user's own folder (see the module docstring)."""
    chosen = os.environ.get("CONVBENCH_LOCK_DIR")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not chosen:
        chosen = f"{runtime}/convbench" if runtime and Path(runtime).is_dir() else "~/.cache/convbench"
    return Path(chosen).expanduser() / "convbench-run.lock"


class LockTimeout(RuntimeError):
    """Another run held the machine for longer than the caller would wait."""


class UnsafeLock(RuntimeError):
    """The lock file is a link, not a regular file, or someone else's: it is not used."""


def _open_own(path: Path) -> int:
    """Open (create) the lock file: its folder made 0700 when convbench creates it, never through a link,
    and only a regular file this user owns (:class:`UnsafeLock` otherwise)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as e:  # ELOOP: a symbolic link stands at the path
        raise UnsafeLock(f"{path}: not opened ({e.strerror}): a symbolic link or no file of yours") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise UnsafeLock(f"{path}: not a regular file of this user (uid {os.geteuid()}): not used")
    return fd


def started_at(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch, psutil), or None where there is none."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


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
        fd = _open_own(self.path)
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

    def record_child(self, pgid: int) -> None:
        """Note the asv child's group and its leader's start time, for the next run to reap if need be."""
        self.update({**self.holder(), "asv_pgid": pgid, "asv_started": started_at(pgid)})

    def _reap_leftover(self, say) -> None:
        """Terminate the asv group a killed run left behind: the group the lock file names, only while its
        leader is the very process that run started (same start time) and runs asv."""
        left = self.holder()
        pgid, started = left.get("asv_pgid"), left.get("asv_started")
        if isinstance(pgid, int) and pgid > 1 and isinstance(started, float) and _is_asv_group(pgid, started):
            say(f"terminating asv process group {pgid} left by an earlier run that was killed")
            terminate_group(pgid)

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


def _is_asv_group(pgid: int, started: float) -> bool:
    """Whether process ``pgid`` still leads its group, started at ``started`` (to 10 ms) and runs asv: on
    every system through psutil, never assumed."""
    try:
        leader = psutil.Process(pgid)
        return (
            os.getpgid(pgid) == pgid
            and abs(leader.create_time() - started) < 0.01
            and any("asv" in part for part in leader.cmdline())
        )
    except (psutil.Error, OSError):
        return False


def terminate_group(pgid: int, grace_s: float = TERMINATE_GRACE_S, reap: Callable[[], Any] | None = None) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``. ``reap``: the caller's
    own child in the group (its ``poll``), collected as it ends: an ended child not yet collected still
    counts as the group's, and the wait would last the whole grace (5 s for every A/B server, every pass)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if reap is not None:
                reap()
            os.killpg(pgid, 0)
            time.sleep(0.1)
        os.killpg(pgid, signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when the parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """One asv process (or an A/B side's server) in its own session; :meth:`stop` ends its whole group.
    ``pipes``: talk to it through its standard input and output (text lines); its standard error goes to
    ``log``."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log, pipes: bool = False) -> None:
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if pipes else None,
            stdout=subprocess.PIPE if pipes else log,
            stderr=log if pipes else subprocess.STDOUT,
            text=pipes or None,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.pgid = self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.running() or _group_alive(self.pgid):
            terminate_group(self.pgid, reap=self.proc.poll)
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
