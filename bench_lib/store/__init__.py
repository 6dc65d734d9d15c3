"""The results store: every run, append-only, as Parquet files partitioned by machine and month.

``schema`` (the tables and their units), ``disk`` (layout and atomic writes, local or object store),
``records`` (a run as rows), ``writer`` (one run's files), ``query`` (lazy reads, DuckDB SQL),
``migrate`` (the JSON files of convbench 0.1 into the store), ``asv_files`` (asv result files rebuilt
from the store for ``asv publish``). ``docs/store.md`` documents the layout for readers and writers.
"""

from __future__ import annotations

import re
from pathlib import Path

STORE_FOLDER = "store"
# query parameters of a store URL that carry credentials (pyarrow's S3 URIs accept access_key, secret_key,
# session_token)
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&]*(?:key|secret|token|password|credential)[^=&]*=)[^&]*")


def redact(where: str | Path) -> str:
    """``where`` as it may be shown: a URL without its user, password and credential parameters."""
    text = str(where)
    if "://" not in text:
        return text
    scheme, _, rest = text.partition("://")
    address, question, query = rest.partition("?")
    address = address.rpartition("@")[2]  # user:password@ (a password may hold "/": up to the last "@")
    return _SECRET_PARAM.sub(r"\1***", f"{scheme}://{address}{question}{query}")


def store_path(results: str | Path) -> str:
    """The store inside a results folder or URL: ``<results>/store``."""
    text = str(results)
    if "://" in text:
        base, _, query = text.partition("?")
        return f"{base.rstrip('/')}/{STORE_FOLDER}" + (f"?{query}" if query else "")
    return str(Path(text) / STORE_FOLDER)
