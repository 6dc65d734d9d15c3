"""The one error type that means "the user asked for something invalid", and the exit codes.

Any stage may raise :class:`ArgumentError` for input that came from the user (a flag, a selector, a file
name): exit code 2. Every other exception is a bug, reported with a short traceback: exit code 5.
"""

from enum import IntEnum


class Exit(IntEnum):
    """What ``convbench`` exits with, so that a nightly job can tell a regression from a crash
    (:data:`MEANING` says each in words)."""

    OK = 0
    VERDICT = 1
    USAGE = 2
    FAILED = 3
    UNAVAILABLE = 4
    INTERNAL = 5
    INTERRUPTED = 130


MEANING = {
    Exit.OK: "done, and nothing got worse",
    Exit.VERDICT: "a regression, a slower combination or a new failure (compare, regressions)",
    Exit.USAGE: "bad arguments (the one-line error names the flag and the accepted range)",
    Exit.FAILED: "the work ran but part of it failed (combinations, notebooks, a wrong result); the rest is saved",
    Exit.UNAVAILABLE: "could not run: another run holds the machine, the lock is unsafe, the store is unwritable",
    Exit.INTERNAL: "an unexpected error (a bug; a short traceback is printed)",
    Exit.INTERRUPTED: "stopped by SIGINT, SIGTERM or SIGHUP; what was measured is saved",
}


class ArgumentError(ValueError):
    """Bad input from the user: printed as one line naming the flag or field and the accepted range."""
