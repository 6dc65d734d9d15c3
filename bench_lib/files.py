"""Writing files so that nothing is ever half-written (atomic replaces and single-write appends), and
reading the JSON-lines files written so."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


def default_file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give a new file: 0o666 less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path | str, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` through a temporary file and a rename: readers never see half
    a file, and concurrent writers each rename a whole one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_file_mode())  # mkstemp makes 0600; the file should read like any other
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def append_line(path: Path | str, line: str) -> None:
    """Append one line with a single write on an O_APPEND descriptor: concurrent writers never interleave."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode())
    finally:
        os.close(fd)


def find_upward(name: str, start: str | Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding ``name``."""
    here = Path(start or os.getcwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / name).exists()), None)


def json_objects(lines: Iterable[str], bad: Callable[[int, str], None] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``lines`` (a JSON-lines file, one object a line), in order. A line that is not a
    whole JSON object (a writer killed mid-line, a hand edit) is skipped, told to ``bad(line number, why)``
    where given: a reader of a file others append to never fails on it."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            if bad:
                bad(n, "is not JSON")
            continue
        if isinstance(value, dict):
            yield value
        elif bad:
            bad(n, "is not a JSON object")


def read_json_lines(path: Path | str) -> list[dict[str, Any]]:
    """:func:`json_objects` of the file at ``path`` (none where it does not exist)."""
    path = Path(path)
    return list(json_objects(path.read_text().splitlines())) if path.exists() else []
