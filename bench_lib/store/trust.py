"""A shared store is input from outside: what a file must be before convbench reads it.

A fleet's store (a results branch, a bucket) holds files other machines wrote, so each is checked before
its data is read, the same way for every command (docs/store.md, "Trust"):

- :func:`vet_file`: a regular file inside the store (no symbolic link out of it), whose Parquet footer
  claims no more rows than :data:`MAX_FILE_ROWS` nor more rows than it has bytes, whose uncompressed data
  stays within :data:`MAX_ROW_BYTES` a row (a 100 MB string is refused before it is decompressed), and
  whose columns have the types of the schema. Only the footer is read to decide.
- :func:`bad_identity`: a run's identity (run id, machine, hardware id, start, environment) is what
  convbench's own writer writes: names of a few safe characters, a start time. Anything else is a broken
  or hostile file, and its run is skipped, never shown, never turned into a path.
- :func:`short`: what a warning quotes of a value from the store (a prefix, never the whole string).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench_lib.store import schema

# A run's rows per table: the full grid of a many-core machine with 5 latency rounds stays below it.
MAX_FILE_ROWS = 2_000_000
# Uncompressed bytes a row may take (its strings and samples), above a floor for small files; real rows
# take about 1 KiB (docs/store.md, "Trust").
MAX_ROW_BYTES = 16 * 1024
MIN_UNCOMPRESSED_BYTES = 16 * 2**20
SHORT_CHARS = 60  # what a warning quotes of a value from the store

# What identity fields hold when convbench's writer wrote them (run ids: UTC time, commit, random part;
# peaks-… and breakdowns-… for migrated files; machines: measure.machine.machine_id's slug)
_NAME = r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}"
IDENTITY = {
    "run_id": re.compile(_NAME),
    "machine": re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),
    "hardware_id": re.compile(r"[A-Za-z0-9]{1,64}"),
}
# asv's environment names are file-name-safe (asv.util.sanitize_filename) but may hold spaces and quotes
_ENV = re.compile(r"[^\x00-\x1f<>:\"/\\|?*]{1,255}")


def short(value: Any, chars: int = SHORT_CHARS) -> str:
    """``repr`` of ``value`` cut to ``chars`` characters, saying how long it was."""
    text = repr(value)
    return text if len(text) <= chars else f"{text[:chars]}… ({len(text):,} characters)"


def bad_identity(row: dict[str, Any]) -> str | None:
    """Why a runs row's identity is not one convbench writes (None: it is)."""
    for field, pattern in IDENTITY.items():
        value = row.get(field)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return f"its {field} {short(value)} is not a {field.replace('_', ' ')}"
    started = row.get("started_at")
    if started is None or (isinstance(started, float) and math.isnan(started)) or str(started) == "NaT":
        return "it has no start time"
    env = row.get("env_name")
    missing = env is None or (isinstance(env, float) and math.isnan(env))  # peaks and breakdowns runs have none
    if not missing and (not isinstance(env, str) or not _ENV.fullmatch(env) or env in (".", "..")):
        return f"its env_name {short(env)} is not an environment name"
    return None


def outside(fs: pafs.FileSystem, base: str, path: str) -> bool:
    """Whether a local ``path`` is a symbolic link or resolves outside the store's ``base``."""
    if not isinstance(fs, pafs.LocalFileSystem):
        return False  # an object store has no links
    real_base = os.path.realpath(base)
    return os.path.islink(path) or not os.path.realpath(path).startswith(real_base + os.sep)


def vet_file(fs: pafs.FileSystem, base: str, table: str, path: str) -> str | None:
    """Why the file at ``path`` may not be read as ``table`` (None: it may). Reads only its footer."""
    if outside(fs, base, path):
        return "a symbolic link, or outside the store"
    size = fs.get_file_info(path).size or 0
    meta = pq.read_metadata(path, filesystem=fs)
    rows = meta.num_rows
    if rows > MAX_FILE_ROWS:
        return f"its footer claims {rows:,} rows (a run holds at most {MAX_FILE_ROWS:,})"
    if rows > size:
        return f"its footer claims {rows:,} rows in {size:,} bytes"
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    allowed = max(MIN_UNCOMPRESSED_BYTES, rows * MAX_ROW_BYTES)
    if uncompressed > allowed:
        return f"{uncompressed:,} bytes uncompressed for {rows:,} rows (at most {allowed:,})"
    expected = schema.TABLES[table]
    for field in meta.schema.to_arrow_schema():
        i = expected.get_field_index(field.name)
        if i >= 0 and not _same_type(field.type, expected.field(i).type):
            return f"column {short(field.name)} is {field.type}, not {expected.field(i).type}"
    return None


def _same_type(found: pa.DataType, wanted: pa.DataType) -> bool:
    if pa.types.is_dictionary(found):
        found = found.value_type
    return found == wanted
