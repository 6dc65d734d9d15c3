"""``convbench store import SOURCE``: another store's runs merged into this one, vetted, never twice.

``SOURCE`` is another store as a folder (a results folder holding ``store/``, or the store folder
itself), a store URL, or an archive of one (``.tar``, ``.tar.gz``, ``.tgz``: what ``tar czf laptop.tgz
-C results store`` writes). An archive is unpacked into a temporary folder with tarfile's ``data`` filter:
no member may be a link, a device, absolute, or reach outside the folder.

The source is read as every command reads a shared store (:mod:`bench_lib.store.query`, docs/store.md
"Trust"): each file's footer vetted before its data is read, each run's identity checked, rows claiming
another run's machine dropped, each refusal warned about by name. Then, per run of the source:

1. a run whose id the destination already holds is left alone (``present``): importing twice, or a store
   that holds some of this one's runs, adds nothing twice;
2. the run's rows of each table are read (only its own files) and cast to this convbench's schema;
3. they are written as the run's own files, under the destination's partition of that machine and
   month, each atomically (:meth:`Location.write`), the ``runs`` row last, as the runner's writer does: a
   run interrupted half-way has no ``runs`` row and is imported again whole next time.
"""

from __future__ import annotations

import tarfile
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from bench_lib.errors import ArgumentError
from bench_lib.store import STORE_FOLDER, redact, schema
from bench_lib.store.disk import Location, machine_key
from bench_lib.store.query import Store
from bench_lib.store.records import month_of

ARCHIVES = (".tar", ".tar.gz", ".tgz")
DATA_TABLES = ("measurements", "peaks", "breakdowns")  # written before the run's row in ``runs``


@dataclass
class Imported:
    """What an import did: run ids written, those already present, files written, warnings raised."""

    runs: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    files: int = 0
    machines: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)


def _store_root(folder: Path) -> Path | None:
    """The store under ``folder``: itself where it holds a ``runs`` table, else its ``store/``."""
    for candidate in (folder, folder / STORE_FOLDER):
        if (candidate / "runs").is_dir() or (candidate / "measurements").is_dir():
            return candidate
    return None


def _unpack(archive: Path, into: Path) -> Path:
    """Unpack ``archive`` into ``into`` refusing links and paths outside it; the store root inside."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise ArgumentError(f"SOURCE {archive}: not an archive that unpacks safely ({e})") from None
    for folder in (into, *sorted(p for p in into.iterdir() if p.is_dir())):
        root = _store_root(folder)
        if root is not None:
            return root
    raise ArgumentError(f"SOURCE {archive}: the archive holds no store (no runs/ or measurements/ folder)")


def source_store(source: str, scratch: Path) -> Store:
    """The store ``source`` names (folder, URL or archive, unpacked under ``scratch``); ArgumentError where
    it names none."""
    if "://" in source:
        store = Store(source)
    else:
        path = Path(source)
        if path.is_file() and path.name.endswith(ARCHIVES):
            root = _unpack(path, scratch)
        elif path.is_dir():
            root = _store_root(path)
            if root is None:
                no_store = "no store there (no runs/ or measurements/, nor store/ with them)"
                raise ArgumentError(f"SOURCE {source}: {no_store}")
        else:
            raise ArgumentError(
                f"SOURCE {source}: not a store folder, a store URL or an archive ({', '.join(ARCHIVES)})"
            )
        store = Store(root)
    if not store.exists():
        raise ArgumentError(f"SOURCE {redact(source)}: the store there holds no runs")
    return store


def _conform(found: pa.Table, table: str) -> pa.Table:
    """``found`` with exactly this convbench's columns of ``table`` (a newer writer's extra ones dropped,
    an older one's missing ones null)."""
    wanted = schema.TABLES[table]
    columns = [
        found[f.name].cast(f.type) if f.name in found.column_names else pa.nulls(len(found), f.type) for f in wanted
    ]
    return pa.Table.from_arrays(columns, schema=wanted)


def import_runs(source: Store, destination: str | Path) -> Imported:
    """Copy every trusted run of ``source`` the store at ``destination`` lacks (see the module docstring)."""
    into = Location.parse(destination)
    present = Store(destination)
    have = set(present.runs()["run_id"]) if present.exists() else set()
    done = Imported()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = source.runs()
        for _, run in runs.iterrows():
            if run["run_id"] in have:
                done.present.append(run["run_id"])
                continue
            _copy_run(source, into, run, done)
    done.refused = [str(w.message) for w in caught]
    return done


def _copy_run(source: Store, into: Location, run: pd.Series, done: Imported) -> None:
    """Read the run's rows of every table, then write them (``runs`` last); a run one of whose files the
    source refused is not imported at all (the warning names the file and why)."""
    one = run.to_frame().T
    key, month = machine_key(run["machine"], run["hardware_id"]), month_of(run["started_at"])
    found = {table: source.of_runs(table, one) for table in (*DATA_TABLES, "runs")}
    if any(source.location.path(t, key, month, run["run_id"]) in source.refused for t in found):
        warnings.warn(f"run {run['run_id']} not imported: a file of it was refused (above)", stacklevel=2)
        return
    for table, rows in found.items():
        if table != "runs" and rows.num_rows == 0:
            continue
        into.write(into.path(table, key, month, run["run_id"]), _conform(rows, table))
        done.files += 1
    done.runs.append(run["run_id"])
    done.machines.add(f"{run['machine']} ({key})")


def run(source: str, results: str) -> Imported:
    """Import ``source`` into the store of the results folder or URL ``results``."""
    from bench_lib.store import store_path

    with tempfile.TemporaryDirectory(prefix="convbench-import-") as scratch:
        return import_runs(source_store(source, Path(scratch)), store_path(results))
