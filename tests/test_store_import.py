"""``convbench store import``: another store's runs merged in, vetted, none twice, nothing written half."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench_lib.cli import main
from bench_lib.store import importer
from bench_lib.store.disk import Location
from bench_lib.store.query import Store
from tests.test_trust import COMMITTED, _copy_committed, _hostile_files, plant_mate

RUNS = len(Store(COMMITTED).runs())


def _rows(store: Path) -> int:
    return int(Store(store).sql("SELECT count(*) AS n FROM measurements")["n"].iloc[0])


def _import(source: Path | str, results: Path, capsys) -> tuple[int, str, str]:
    code = main(["store", "import", str(source), "--results", str(results)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_store_imported_into_an_empty_one_holds_the_same_runs_and_rows(tmp_path, capsys):
    code, out, _ = _import(COMMITTED.parent, tmp_path / "mine", capsys)
    assert code == 0 and out.startswith(f"imported {RUNS} runs of ")
    mine = tmp_path / "mine" / "store"
    assert sorted(Store(mine).runs()["run_id"]) == sorted(Store(COMMITTED).runs()["run_id"])
    assert _rows(mine) == _rows(COMMITTED) > 10_000


def test_importing_again_adds_nothing_and_says_so(tmp_path, capsys):
    _import(COMMITTED, tmp_path / "mine", capsys)
    files = sorted(p.name for p in (tmp_path / "mine" / "store").rglob("*.parquet"))
    code, out, _ = _import(COMMITTED, tmp_path / "mine", capsys)
    assert code == 0 and out.startswith("imported 0 runs (0 files) into ") and f"; {RUNS} already there" in out
    assert sorted(p.name for p in (tmp_path / "mine" / "store").rglob("*.parquet")) == files
    assert _rows(tmp_path / "mine" / "store") == _rows(COMMITTED)


def test_only_the_runs_the_destination_lacks_are_written(tmp_path, capsys):
    mine = tmp_path / "mine" / "store"
    _copy_committed(mine)
    theirs = tmp_path / "theirs" / "store"
    _copy_committed(theirs)
    plant_mate(theirs)
    code, out, _ = _import(theirs, tmp_path / "mine", capsys)
    assert code == 0 and out.startswith("imported 1 runs of mate (mate-11111111) (2 files)")
    assert set(Store(mine).runs()["run_id"]) == set(Store(theirs).runs()["run_id"])


def test_hostile_files_of_the_source_are_refused_and_their_runs_not_imported(tmp_path, capsys):
    theirs = tmp_path / "theirs" / "store"
    _copy_committed(theirs)
    hostile = _hostile_files(theirs)
    code, out, err = _import(theirs, tmp_path / "mine", capsys)
    assert code == 0 and out.startswith(f"imported {RUNS} runs of ")
    assert err.count("not imported: a file of it was refused") == len(hostile)
    assert "skipping " in err and "a run holds at most 2,000,000" in err
    assert not set(Store(tmp_path / "mine" / "store").runs()["run_id"]) & {p.stem for p in hostile.values()}


def test_an_archive_is_imported_and_one_with_a_link_out_is_refused(tmp_path, capsys):
    good = tmp_path / "laptop.tgz"
    with tarfile.open(good, "w:gz") as tar:
        tar.add(COMMITTED, arcname="store")
    code, out, _ = _import(good, tmp_path / "mine", capsys)
    assert code == 0 and out.startswith(f"imported {RUNS} runs of ")
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        link = tarfile.TarInfo("store/runs/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        data = b"x"
        member = tarfile.TarInfo("../outside.parquet")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    code, _, err = _import(bad, tmp_path / "other", capsys)
    assert code == 2 and err.startswith(f"convbench store: error: SOURCE {bad}: not an archive that unpacks safely")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "outside.parquet").exists()


@pytest.mark.parametrize(
    "source, said",
    [
        ("nowhere", "not a store folder, a store URL or an archive (.tar, .tar.gz, .tgz)"),
        ("empty", "no store there (no runs/ or measurements/, nor store/ with them)"),
    ],
)
def test_a_source_that_is_no_store_is_a_one_line_argument_error(tmp_path, capsys, source, said):
    (tmp_path / "empty").mkdir()
    code, out, err = _import(tmp_path / source, tmp_path / "mine", capsys)
    assert code == 2 and out == "" and err == f"convbench store: error: SOURCE {tmp_path / source}: {said}\n"


def test_an_import_stopped_half_way_leaves_no_runs_row_and_is_completed_next_time(tmp_path, monkeypatch):
    real = Location.write
    stopped = []

    def failing(self, path, table):
        measured = "/runs/" in path and "/month=" in path and Path(path).stem[:8].isdigit()
        if measured and not stopped:  # a measured run's rows are written, then the disk fails before its runs row
            stopped.append(Path(path).stem)
            raise OSError("disk full")
        real(self, path, table)

    monkeypatch.setattr(Location, "write", failing)
    mine = tmp_path / "mine" / "store"
    with pytest.raises(OSError, match="disk full"):
        importer.import_runs(Store(COMMITTED), mine)
    assert list(mine.rglob(f"measurements/**/{stopped[0]}.parquet")) and not list(mine.rglob(f"runs/**/{stopped[0]}.*"))
    assert stopped[0] not in set(Store(mine).runs()["run_id"])  # no runs row: the half-imported run is not seen
    monkeypatch.setattr(Location, "write", real)
    done = importer.import_runs(Store(COMMITTED), mine)
    assert stopped[0] in done.runs and len(done.runs) + len(done.present) == RUNS and _rows(mine) == _rows(COMMITTED)
    for path in mine.rglob("*.parquet"):
        pq.read_metadata(path)  # every file whole


@pytest.mark.parametrize(
    "query, said",
    [
        ("SELECT nope FROM runs", 'query: Binder Error: Referenced column "nope" not found in FROM clause!'),
        ("SELEC 1", 'query: Parser Error: syntax error at or near "SELEC"'),
        ("SELECT * FROM nosuch", "query: Catalog Error: Table with name nosuch does not exist!"),
    ],
)
def test_a_users_mistake_in_store_sql_is_a_one_line_argument_error(capsys, query, said):
    code = main(["store", "sql", query, "--results", str(COMMITTED.parent)])
    err = capsys.readouterr().err
    assert code == 2 and err == f"convbench store: error: {said}\n"
