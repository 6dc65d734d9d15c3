"""The progress line of a run: combinations done of the total, read from the events file as it grows."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from bench_lib.suite.combination import Combination


class Progress:
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
