"""Where the store's files live and how they are written: a local folder or an object store URL.

Layout (``docs/store.md``)::

    <store>/<table>/machine_key=<machine>-<hardware id[:8]>/month=<YYYY-MM>/<run id>.parquet

One file per run and table, never modified by another run: every machine writes only its own
``machine_key`` folders, so a shared folder or a results git branch merges without conflicts. A local
file is written to a hidden temporary name beside it, synced and renamed over (readers never see half a
file; a failed write leaves the previous version); an object store's PUT is atomic by itself. Files are
created with the user's umask. Paths are pyarrow filesystem paths, so ``s3://bucket/prefix`` (with
``?endpoint_override=host:port&scheme=http`` for an S3-compatible server) works like a folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench_lib.errors import ArgumentError
from bench_lib.files import default_file_mode
from bench_lib.store import redact

_KEY = re.compile(r"^(?P<key>[a-z_]+)=(?P<value>[^/]+)$")


def machine_key(machine: str, hardware_id: str) -> str:
    """The partition folder of one machine: its name and the start of its hardware id (``vm-fd94ab38``)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", machine.lower()).strip("-") or "machine"
    return f"{slug}-{hardware_id[:8]}"


def _encoding(table: pa.Table) -> dict:
    """zstd; floats byte-stream-split (their exponent bytes line up and compress: 60 bytes a measurement
    row instead of 74 on the dev VM's default grid), every other column dictionary-encoded."""
    floats = [
        f.name
        for f in table.schema
        if pa.types.is_floating(f.type) or (pa.types.is_list(f.type) and pa.types.is_floating(f.type.value_type))
    ]
    others = [n for n in table.column_names if n not in floats]
    return {"compression": "zstd", "use_byte_stream_split": floats or False, "use_dictionary": others or False}


@dataclass(frozen=True)
class Location:
    """A store's root: a pyarrow filesystem and the path inside it (``text`` is what the user wrote)."""

    fs: pafs.FileSystem
    base: str
    text: str

    @classmethod
    def parse(cls, where: str | Path) -> Location:
        text = str(where)
        if "://" in text:
            try:
                fs, base = pafs.FileSystem.from_uri(text)
            except (pa.ArrowInvalid, ValueError) as e:
                shown = str(e).replace(text, redact(text))
                raise ArgumentError(f"--results {redact(text)} is not a store URL pyarrow can open: {shown}") from None
            return cls(fs, base.rstrip("/"), text)
        return cls(pafs.LocalFileSystem(), str(Path(text).resolve()), text)

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, table: str, key: str, month: str, run_id: str) -> str:
        return f"{self.base}/{table}/machine_key={key}/month={month}/{run_id}.parquet"

    def write(self, path: str, table: pa.Table) -> None:
        """Write ``table`` to ``path`` whole or not at all (see the module docstring)."""
        if not self.local:
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            pq.write_table(table, path, filesystem=self.fs, **_encoding(table))
            return
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            pq.write_table(table, tmp, **_encoding(table))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, default_file_mode())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def files(self, table: str, keys: set[str] | None = None, months: set[str] | None = None) -> list[str]:
        """The table's Parquet files, only those under ``keys`` and ``months`` when given (the folders are
        pruned before any file is opened). Hidden files (a write in flight) are not listed."""
        root = f"{self.base}/{table}"
        if self.fs.get_file_info(root).type == pafs.FileType.NotFound:
            return []
        found = []
        for key_dir in self._dirs(root, "machine_key", keys):
            for month_dir in self._dirs(key_dir, "month", months):
                infos = self.fs.get_file_info(pafs.FileSelector(month_dir))
                found += [
                    i.path
                    for i in infos
                    if i.type == pafs.FileType.File
                    and i.base_name.endswith(".parquet")
                    and not i.base_name.startswith(".")
                ]
        return sorted(found)

    def _dirs(self, parent: str, key: str, wanted: set[str] | None) -> list[str]:
        out = []
        for info in self.fs.get_file_info(pafs.FileSelector(parent)):
            m = _KEY.match(info.base_name)
            is_key = info.type == pafs.FileType.Directory and m and m["key"] == key
            if is_key and (wanted is None or m["value"] in wanted):
                out.append(info.path)
        return sorted(out)

    def partitions(self, table: str = "runs") -> list[tuple[str, str]]:
        """Every (machine_key, month) folder of ``table``."""
        root = f"{self.base}/{table}"
        if self.fs.get_file_info(root).type == pafs.FileType.NotFound:
            return []
        return [
            (k.rsplit("=", 1)[1], m.rsplit("=", 1)[1])
            for k in self._dirs(root, "machine_key", None)
            for m in self._dirs(k, "month", None)
        ]
