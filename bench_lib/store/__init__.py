"""The results store: every run, append-only, as Parquet files partitioned by machine and month.

``schema`` (the tables and their units), ``disk`` (layout and atomic writes, local or object store),
``records`` (a run as rows), ``writer`` (one run's files), ``query`` (lazy reads, DuckDB SQL),
``migrate`` (the JSON files of convbench 0.1 into the store), ``asv_files`` (asv result files rebuilt
from the store for ``asv publish``). ``docs/store.md`` documents the layout for readers and writers.
"""

from __future__ import annotations

from pathlib import Path

STORE_FOLDER = "store"


def store_path(results: str | Path) -> str:
    """The store inside a results folder or URL: ``<results>/store``."""
    text = str(results)
    if "://" in text:
        base, _, query = text.partition("?")
        return f"{base.rstrip('/')}/{STORE_FOLDER}" + (f"?{query}" if query else "")
    return str(Path(text) / STORE_FOLDER)
