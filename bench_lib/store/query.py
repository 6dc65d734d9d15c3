"""Reading the store lazily: only the partitions a question needs, only the columns it reads.

``Store.scan`` prunes ``machine_key``/``month`` folders before opening any file, then lets pyarrow's
dataset scanner push the row filter and the column list into each Parquet file (row-group statistics
skip what cannot match). ``Store.sql`` runs DuckDB over the same datasets: DuckDB pushes its filters and
projections into that scanner, works out of core, and is what a user would reach for to ask their own
questions (``docs/store.md``). pyarrow's filesystems make a local folder and ``s3://`` the same code.

Every file is vetted before its data is read (:func:`bench_lib.store.trust.vet_file`: no link out of the
store, a footer within bounds, the schema's types), and every run's identity is checked
(:func:`bench_lib.store.trust.bad_identity`); rows must carry their run's machine and hardware id. Files
that fail, or cannot be read (truncated, not Parquet, too large to hold), are skipped with a warning naming
them; the rest of the store still loads.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bench_lib.errors import ArgumentError
from bench_lib.store import redact, schema, trust
from bench_lib.store.disk import Location

_READ_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, MemoryError)


class Store:
    """The store at ``where`` (a folder or a URL)."""

    def __init__(self, where: str | Path):
        self.location = Location.parse(where)
        self._bad: set[str] = set()
        self._vetted: set[str] = set()  # files whose footer passed trust.vet_file (each checked once)
        self._runs: dict[tuple, pd.DataFrame] = {}  # runs() read once per selection by this instance

    def __repr__(self) -> str:
        return f"Store({redact(self.location.text)!r})"

    @property
    def refused(self) -> frozenset[str]:
        """The files this instance has refused so far (each warned about once)."""
        return frozenset(self._bad)

    def exists(self) -> bool:
        return bool(self.location.partitions("runs") or self.location.partitions("measurements"))

    def machine_keys(self, machines: Iterable[str] | None = None) -> set[str] | None:
        """The partition keys of ``machines`` (names, or keys themselves); None (all) when not given."""
        if machines is None:
            return None
        wanted = set(machines)
        keys = {k for k, _ in self.location.partitions("measurements")} | {
            k for k, _ in self.location.partitions("runs")
        }
        return {k for k in keys if k in wanted or k.rsplit("-", 1)[0] in wanted}

    def months(self, date_prefixes: Iterable[str] | None = None) -> set[str] | None:
        """The month folders that can hold runs whose UTC date starts with one of ``date_prefixes``."""
        if date_prefixes is None:
            return None
        found = {m for _, m in self.location.partitions("measurements")} | {
            m for _, m in self.location.partitions("runs")
        }
        return {m for m in found for p in date_prefixes if m.startswith(p[:7]) or p.startswith(m)}

    def months_since(self, date: str) -> set[str]:
        """The month folders that can hold runs started on or after ``date`` (``YYYY-MM[-DD...]``)."""
        found = {m for _, m in self.location.partitions("runs")}
        return {m for m in found if m >= date[:7]}

    def usable(self, table: str, files: list[str]) -> list[str]:
        """``files`` less those that fail :func:`trust.vet_file` (each warned about once) or were found bad."""
        for path in files:
            if path in self._vetted or path in self._bad:
                continue
            try:
                why = trust.vet_file(self.location.fs, self.location.base, table, path)
            except _READ_ERRORS as e:
                why = f"not a readable {table} file ({str(e).splitlines()[0][:200]})"
            if why:
                self._skip(path, why)
            else:
                self._vetted.add(path)
        return [f for f in files if f not in self._bad]

    def _skip(self, path: str, why: str) -> None:
        self._bad.add(path)
        warnings.warn(f"skipping {path}: {why}", stacklevel=5)

    def dataset(self, table: str, keys: set[str] | None = None, months: set[str] | None = None) -> ds.Dataset:
        files = self.usable(table, self.location.files(table, keys, months))
        return ds.dataset(files, schema=schema.TABLES[table], format="parquet", filesystem=self.location.fs)

    def scan(
        self,
        table: str,
        *,
        keys: set[str] | None = None,
        months: set[str] | None = None,
        filter: ds.Expression | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """The rows of ``table`` in those partitions matching ``filter``, only ``columns``."""
        try:
            return self.dataset(table, keys, months).to_table(filter=filter, columns=columns)
        except _READ_ERRORS:
            self._find_bad(table, keys, months)
            return self.dataset(table, keys, months).to_table(filter=filter, columns=columns)

    def frame(self, table: str, **kwargs) -> pd.DataFrame:
        return self.scan(table, **kwargs).to_pandas()

    def _find_bad(self, table: str, keys: set[str] | None, months: set[str] | None) -> None:
        for path in self.location.files(table, keys, months):
            if path in self._bad:
                continue
            self._check_file(table, path)

    def unknown_columns(self, table: str, keys: set[str] | None = None, months: set[str] | None = None) -> set[str]:
        """Columns some file of ``table`` has that this convbench does not know (a newer writer's)."""
        known = set(schema.TABLES[table].names)
        extra: set[str] = set()
        for path in self.location.files(table, keys, months):
            try:
                extra |= set(pq.read_schema(path, filesystem=self.location.fs).names) - known
            except _READ_ERRORS:
                continue
        return extra

    def runs(self, keys: set[str] | None = None, months: set[str] | None = None) -> pd.DataFrame:
        """The ``runs`` table (small: one row per run), oldest first, one row per run id. Read once per
        ``keys`` and ``months`` by this instance (a fleet-year is thousands of files): a new instance sees
        runs written since."""
        selection = (frozenset(keys) if keys is not None else None, frozenset(months) if months is not None else None)
        if selection not in self._runs:
            self._runs[selection] = self._read_runs(keys, months)
        return self._runs[selection].copy()

    def recent_runs(self, keys: set[str] | None = None, at_least: int = 10) -> pd.DataFrame:
        """:meth:`runs` of each machine's newest month folders, as few as hold ``at_least`` of its runs (all
        of them where it has fewer), and the same months of the others: what a view of the newest results
        and their recent history needs from a long one, whose run files are thousands (a fleet-year: 3,650
        nights of 10 machines). Only folder listings decide; no file is opened to choose."""
        newest: dict[str, list[str]] = {}
        for key, month in self.location.partitions("runs"):
            if keys is None or key in keys:
                newest.setdefault(key, []).append(month)
        chosen: set[str] = set()
        for key, months in newest.items():
            found = 0
            for month in sorted(months, reverse=True):
                chosen.add(month)
                found += len(self.location.files("runs", {key}, {month}))
                if found >= at_least:
                    break
        return self.runs(keys=keys, months=chosen)

    def _read_runs(self, keys: set[str] | None, months: set[str] | None) -> pd.DataFrame:
        df = self.frame("runs", keys=keys, months=months)
        if df.empty:
            return df
        newer = df[df["schema_version"].fillna(0) > schema.SCHEMA_VERSION]
        if not newer.empty:
            warnings.warn(
                f"{len(newer)} runs were written by a newer convbench (store schema "
                f"{int(newer['schema_version'].max())}, this one reads {schema.SCHEMA_VERSION}); "
                "columns it does not know are ignored",
                stacklevel=2,
            )
        df = self._trusted_runs(df)
        # a run saved by two writers (a copy under another name) counts once
        return df.sort_values("started_at").drop_duplicates("run_id", keep="last").reset_index(drop=True)

    @staticmethod
    def _trusted_runs(df: pd.DataFrame) -> pd.DataFrame:
        """The runs whose identity convbench's writer could have written; each other one skipped with a
        warning (:func:`trust.bad_identity`)."""
        cols = [*trust.IDENTITY, "started_at", "env_name"]
        why = [trust.bad_identity(dict(zip(cols, r, strict=True))) for r in df[cols].itertuples(index=False)]
        for run_id, reason in zip(df["run_id"], why, strict=True):
            if reason:
                warnings.warn(f"skipping run {trust.short(run_id)}: {reason}", stacklevel=4)
        return df[[w is None for w in why]]

    def run_files(self, table: str, runs: pd.DataFrame) -> list[str]:
        """The files of ``table`` that hold ``runs`` (rows of :meth:`runs`), those that exist."""
        from bench_lib.store.disk import machine_key
        from bench_lib.store.records import month_of

        wanted = {
            self.location.path(table, machine_key(r.machine, r.hardware_id), month_of(r.started_at), r.run_id)
            for r in runs.itertuples()
        }
        months = {p.rsplit("/", 2)[-2].split("=", 1)[1] for p in wanted}
        keys = {p.rsplit("/", 3)[-3].split("=", 1)[1] for p in wanted}
        return self.usable(table, [f for f in self.location.files(table, keys, months) if f in wanted])

    def of_runs(
        self,
        table: str,
        runs: pd.DataFrame,
        filter: ds.Expression | None = None,
        columns: list[str] | None = None,
        dictionary: bool = False,
    ) -> pa.Table:
        """The rows of ``table`` belonging to ``runs``: only their files are opened. ``dictionary``: text
        columns read as Parquet stores them, dictionary-encoded (pandas categoricals: a fleet's week of
        rounds repeats a few hundred strings; decoding them to Python strings costs most of the read)."""
        sch = schema.TABLES[table]
        fmt: str | ds.ParquetFileFormat = "parquet"
        if dictionary:
            text = [f.name for f in sch if pa.types.is_string(f.type)]
            sch = pa.schema([f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in text else f for f in sch])
            fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=text))

        def read() -> pa.Table:
            files = self.run_files(table, runs)
            dataset = ds.dataset(files, schema=sch, format=fmt, filesystem=self.location.fs)
            return _own_rows(dataset.to_table(filter=filter, columns=columns), runs)

        try:
            return read()
        except _READ_ERRORS:
            for path in self.run_files(table, runs):
                self._check_file(table, path)
            return read()

    def _check_file(self, table: str, path: str) -> None:
        if not self.usable(table, [path]):
            return
        try:
            ds.dataset([path], schema=schema.TABLES[table], format="parquet", filesystem=self.location.fs).to_table()
        except _READ_ERRORS as e:
            self._skip(path, f"not a readable {table} file ({str(e).splitlines()[0][:200]})")

    def sql(self, query: str, keys: set[str] | None = None, months: set[str] | None = None) -> pd.DataFrame:
        """Run DuckDB SQL over the tables ``measurements``, ``runs``, ``peaks`` and ``breakdowns`` (in those
        partitions). A file that cannot be read is skipped with a warning and the query run again."""
        import duckdb

        user_errors = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)
        for attempt in range(2):
            con = duckdb.connect()
            try:
                con.execute("SET memory_limit = '1GB'")
                for name in schema.TABLES:
                    con.register(name, self.dataset(name, keys, months))
                return con.sql(query).df()
            except user_errors as e:  # the query's own mistake: bad input, said in one line
                raise ArgumentError(f"query: {str(e).splitlines()[0]}") from None
            except duckdb.Error:
                if attempt:
                    raise
                for name in schema.TABLES:
                    self._find_bad(name, keys, months)
            finally:
                con.close()
        raise AssertionError("unreachable")


def _own_rows(found: pa.Table, runs: pd.DataFrame) -> pa.Table:
    """The rows of ``found`` that belong to ``runs``: their run id, and (where the table has them) their
    run's machine and hardware id; a row claiming another machine is dropped with a warning. Each row is
    looked up by its run's position (no per-row strings are built)."""
    ids = pa.array(runs["run_id"].astype(str).tolist())
    position = pa.compute.index_in(found["run_id"].cast(pa.string()), value_set=ids)
    keep = pa.compute.is_valid(position)
    at = pa.compute.fill_null(position, 0)
    for column in ("machine", "hardware_id"):
        if column in found.column_names and column in runs:
            expected = pa.array(runs[column].astype(str).tolist()).take(at)
            own = pa.compute.fill_null(pa.compute.equal(found[column].cast(pa.string()), expected), False)
            strangers = pa.compute.sum(pa.compute.and_(keep, pa.compute.invert(own))).as_py() or 0
            if strangers:
                warnings.warn(f"skipping {strangers} rows whose {column} is not their run's", stacklevel=4)
            keep = pa.compute.and_(keep, own)
    return found.filter(keep)
