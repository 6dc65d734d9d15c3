"""Writing one run into the store: each table's rows of the run as one file, replaced whole on each save.

The runner saves after every chunk, so a run killed outright (SIGKILL, power) keeps what it measured up
to its last chunk, under ``state = "running"``; a run that ends any other way saves a last time with its
final state. Every save writes the measurements, peaks and breakdowns first and the ``runs`` row last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_lib.measure.roofline import Peaks
from bench_lib.store import records
from bench_lib.store.disk import Location, machine_key


class StoreWriteError(OSError):
    """A run's file could not be written; the earlier files are intact (the message says which file)."""


@dataclass
class RunWriter:
    """The files of one run (``run`` must carry ``run_id``, ``machine``, ``hardware_id``, ``started_at``)."""

    where: str | Path
    run: dict[str, Any]
    written: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.location = Location.parse(self.where)
        self.key = machine_key(self.run["machine"], self.run["hardware_id"])
        self.month = records.month_of(self.run["started_at"])

    def path(self, table: str) -> str:
        return self.location.path(table, self.key, self.month, self.run["run_id"])

    def save(
        self,
        run: dict[str, Any],
        events: list[dict[str, Any]],
        peaks: list[Peaks] | None = None,
        breakdowns: list[dict[str, Any]] | None = None,
    ) -> list[str]:
        """Write the run's tables; return the paths written. Raises :class:`StoreWriteError` naming the file."""
        tables = {
            "measurements": records.measurement_rows(run, events),
            "peaks": records.peak_rows(run, peaks or []),
            "breakdowns": records.breakdown_rows(run, breakdowns or []),
            "runs": [records.run_row(run)],
        }
        paths = []
        for name, rows in tables.items():
            if not rows and name in ("peaks", "breakdowns"):
                continue
            path = self.path(name)
            try:
                self.location.write(path, records.arrow(name, rows))
            except OSError as e:
                raise StoreWriteError(f"could not write {path}: {e.strerror or e}; earlier files are intact") from e
            paths.append(path)
        self.written = paths
        return paths
