"""A shared store is untrusted input: crafted files copied into a copy of the committed store, as a careless
or hostile fleet member would leave them, and what each command does with them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench_lib.analysis import notebook_pages
from bench_lib.cli import main
from bench_lib.store import asv_files, schema, trust

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "store"
PAPERS_RUN = "20261124T201201Z-a2dbd3ff"  # the committed paper grid: no speedup pairs, no roofline
MONTH = "month=2026-11"
SCRIPT = '<img src=x onerror="window.__pwned=1">'
MEMORY_CAP_BYTES = 3 * 2**30  # the commands below run under this address-space limit


def _committed(table: str, run_id: str) -> pa.Table:
    return pq.read_table(next(COMMITTED.glob(f"{table}/*/{MONTH}/{run_id}.parquet")))


def _with(table: pa.Table, **columns) -> pa.Table:
    for name, value in columns.items():
        i = table.schema.get_field_index(name)
        typ = table.schema.field(i).type
        table = table.set_column(i, name, pa.array([value] * table.num_rows, type=typ))
    return table


def plant(store: Path, folder: str, name: str, **identity) -> None:
    """A copy of the committed papers run under ``folder`` (a machine_key) and file ``name``, with its
    runs row and its measurement rows carrying ``identity``."""
    for table in ("runs", "measurements"):
        path = store / table / f"machine_key={folder}" / MONTH / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_with(_committed(table, PAPERS_RUN), **identity), path)


@pytest.fixture
def store(tmp_path) -> Path:
    """An empty results folder's store (the committed runs are added where a test wants them)."""
    where = tmp_path / "results" / "store"
    where.mkdir(parents=True)
    return where


def _copy_committed(store: Path) -> None:
    shutil.copytree(COMMITTED, store, dirs_exist_ok=True)


def plant_mate(store) -> None:
    """An honest teammate's run: machine ``mate``, hardware 1111…, run 20261124T201201Z-11111111."""
    plant(
        store,
        "mate-11111111",
        "20261124T201201Z-11111111",
        machine="mate",
        hardware_id="111111111111",
        run_id="20261124T201201Z-11111111",
    )


def test_a_script_in_a_machine_name_never_reaches_the_page(store, tmp_path):
    from bench_lib.analysis import report

    plant(
        store,
        "evil-00000000",
        "20261124T201201Z-00000000",
        machine=f"teammate{SCRIPT}",
        run_id="20261124T201201Z-00000000",
    )
    plant_mate(store)
    with pytest.warns(
        UserWarning, match=r"skipping run '20261124T201201Z-00000000': its machine 'teammate<img src=x onerr"
    ):
        index, _ = report.build(str(store.parent), str(tmp_path / "report"), publish=False, run_notebooks=False)
    page = index.read_text()
    assert "window.__pwned" not in page and "<img src=x" not in page  # neither the tag nor, escaped, the name
    assert "No data for inference speedup pairs in these results (machines: mate)" in page


def test_every_no_data_note_and_markdown_output_is_escaped(monkeypatch):
    import pandas as pd

    from bench_lib.analysis import report, tables

    monkeypatch.setattr(tables, "no_data", lambda what, df=None: f"No data for {what} ({SCRIPT})")
    sections = report._figures(pd.DataFrame(), {})
    bodies = " ".join(s.body for s in sections)
    assert "<img" not in bodies and bodies.count("&lt;img src=x onerror=") == 4
    assert "<img" not in notebook_pages.markdown(f"**No data (machines: {SCRIPT})**")


def test_a_traversal_in_env_or_machine_writes_nothing_outside_the_asv_folder(store, tmp_path):
    _copy_committed(store)
    plant(store, "evil-00000000", "20261124T201201Z-00000001", machine="/tmp/abs", run_id="20261124T201201Z-00000001")
    victim = tmp_path / "victim.json"
    victim.write_text("do not touch")
    env = "../" * 6 + str(tmp_path / "victim").lstrip("/")
    plant(store, "evil-00000000", "20261124T201201Z-00000002", env_name=env, run_id="20261124T201201Z-00000002")
    before = set(tmp_path.rglob("*"))
    out = tmp_path / "asv"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["store", "asv", "--results", str(store.parent), "--out", str(out)]) == 0
    assert victim.read_text() == "do not touch"
    made = {p for p in set(tmp_path.rglob("*")) - before if not p.is_relative_to(out)}
    assert made == set()
    assert sum("skipping run" in str(w.message) for w in caught) == 2
    with pytest.raises(ValueError, match="is outside"):
        asv_files.inside(out, "..", "x.json")
    assert asv_files.slug("../../etc/passwd") == "_.._etc_passwd" and asv_files.slug("..") == "_"


def test_asv_publish_runs_in_this_project_isolated_never_next_to_the_results(tmp_path, monkeypatch):
    from bench_lib.analysis import report

    fleet = tmp_path / "fleet"  # a shared store's checkout: a convbench checkout of another machine's making
    shutil.copytree(COMMITTED, fleet / "results" / "store")
    shutil.copy(ROOT / "asv.conf.json", fleet / "asv.conf.json")
    marker = tmp_path / "ran"
    (fleet / "asv.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "asv.conf.json", project / "asv.conf.json")
    subprocess.run(["git", "init", "-q", str(project)], check=True)  # asv publish reads the project's git
    monkeypatch.chdir(project)
    report.build(str(fleet / "results"), str(tmp_path / "report"), publish=True, run_notebooks=False)
    assert not marker.exists()
    assert (project / "html" / "index.html").exists() and not (fleet / "html").exists()


def test_a_symlink_in_the_store_is_not_followed(store, tmp_path, capsys):
    _copy_committed(store)
    outside = tmp_path / "private.parquet"
    pq.write_table(_with(_committed("measurements", PAPERS_RUN), case="secret(in=1)@1x1"), outside)
    link = next(store.glob(f"measurements/*/{MONTH}")) / f"{PAPERS_RUN}-copy.parquet"
    link.symlink_to(outside)
    with pytest.warns(UserWarning, match="a symbolic link, or outside the store"):
        code = main(
            [
                "store",
                "sql",
                "SELECT count(*) AS n FROM measurements WHERE \"case\" LIKE 'secret%'",
                "--results",
                str(store.parent),
            ]
        )
    assert code == 0 and capsys.readouterr().out.split()[-1] == "0"


def _hostile_files(store: Path) -> dict[str, Path]:
    """Files a careless or hostile member could leave: each the measurements of a run whose runs row is
    in order (so every command that reads that run opens the file)."""
    sch = schema.MEASUREMENTS
    rows = _committed("measurements", PAPERS_RUN)
    typed = rows.set_column(rows.schema.get_field_index("value"), "value", pa.array(["1e-3"] * rows.num_rows))
    contents = {
        "many_rows": pa.table({f.name: pa.nulls(3_000_000, f.type) for f in sch}),  # footer: 3 million rows
        "rows_over_bytes": pa.table({f.name: pa.nulls(1_500_000, f.type) for f in sch}),  # fewer, still a lie
        "huge_string": _with(rows.slice(0, 1), case="A" * 100_000_000),  # 100 MB that compresses to little
        "wrong_type": typed,  # value as text
    }
    found = {}
    for i, (name, table) in enumerate(contents.items()):
        run_id = f"20261124T201201Z-a2dbd3ff-hostile{i}"
        runs = _with(_committed("runs", PAPERS_RUN), run_id=run_id)
        month = next(store.glob(f"runs/machine_key=vm-*/{MONTH}"))  # a machine that has that month
        folder, key = month.name, month.parent.name
        pq.write_table(runs, store / "runs" / key / folder / f"{run_id}.parquet")
        found[name] = store / "measurements" / key / folder / f"{run_id}.parquet"
        pq.write_table(table, found[name], compression="zstd")
    return found


def _bad_identities(store: Path) -> None:
    """Runs whose identity convbench's writer never writes: a / in the run id, no machine, no hardware
    id, no start."""
    plant(store, "bad-00000000", "a", run_id="2026/../../x")
    plant(store, "bad-00000000", "b", run_id="20261124T201201Z-0000000b", machine=None)
    plant(store, "bad-00000000", "c", run_id="20261124T201201Z-0000000c", hardware_id=None)
    plant(store, "bad-00000000", "d", run_id="20261124T201201Z-0000000d", started_at=None)


def test_vetting_names_why_each_hostile_file_is_refused(store):
    _copy_committed(store)
    files = _hostile_files(store)
    why = {k: trust.vet_file(pa.fs.LocalFileSystem(), str(store), "measurements", str(p)) for k, p in files.items()}
    assert why["many_rows"] == "its footer claims 3,000,000 rows (a run holds at most 2,000,000)"
    assert why["rows_over_bytes"].startswith("its footer claims 1,500,000 rows in ")
    assert why["huge_string"].startswith("100,") and why["huge_string"].endswith("for 1 rows (at most 16,777,216)")
    assert why["wrong_type"] == "column 'value' is string, not double"
    good = next(store.glob(f"measurements/*/{MONTH}/{PAPERS_RUN}.parquet"))
    assert trust.vet_file(pa.fs.LocalFileSystem(), str(store), "measurements", str(good)) is None


def _capped(argv: list[str]) -> tuple[int, str, float, float]:
    """``convbench argv`` in a child process under MEMORY_CAP_BYTES: (exit code, stderr, seconds, peak GB)."""
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP_BYTES}, {MEMORY_CAP_BYTES}))\n"
        "from bench_lib.cli import main\n"
        f"code = main({argv!r})\n"
        "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM')]\n"  # ru_maxrss survives exec
        "print(f'peak_kb={hwm[0].split()[1] if hwm else 0}', file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    peak_kb = int(out.stderr.rsplit("peak_kb=", 1)[-1]) if "peak_kb=" in out.stderr else 0
    return out.returncode, out.stderr, time.monotonic() - started, peak_kb / 2**20


@pytest.mark.slow
def test_every_command_skips_hostile_files_and_bad_identities_alike_under_a_memory_cap(store, tmp_path):
    _copy_committed(store)
    files = _hostile_files(store)
    _bad_identities(store)
    results = str(store.parent)
    commands = {
        "report": ["report", "--results", results, "--out", str(tmp_path / "r"), "--no-notebooks", "--no-publish"],
        "regressions": ["regressions", "--results", results],
        "compare": ["compare", "--results", results, "--baseline", "date=2026-11-24", "--candidate", "date=2026-11-25"],
        "export": ["export", "--results", results, "--out", str(tmp_path / "all.parquet"), "--history"],
    }
    figures = {}
    for name, argv in commands.items():
        code, err, seconds, peak_gb = _capped(argv)
        figures[name] = (round(seconds, 1), round(peak_gb, 2))
        assert code in (0, 1) and "internal error" not in err, (name, err[-2000:])
        for path in files.values():
            assert f"skipping {path}" in err, (name, path.name)
        for run in ("'2026/../../x'", "'20261124T201201Z-0000000b'", "'20261124T201201Z-0000000c'"):
            assert f"skipping run {run}" in err, (name, run)
        assert "skipping run '20261124T201201Z-0000000d': it has no start time" in err
        assert max(map(len, err.splitlines())) < 400  # warnings quote a value's prefix, never 100 MB of it
    print(json.dumps(figures))  # seconds and peak resident GB per command (the closing note quotes them)


def test_a_symlinked_lock_is_refused_and_its_target_left_alone(tmp_path, monkeypatch):
    from bench_lib.suite import guard

    monkeypatch.setenv("CONVBENCH_LOCK_DIR", str(tmp_path / "locks"))
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file")
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "convbench-run.lock").symlink_to(victim)
    with pytest.raises(guard.UnsafeLock, match="a symbolic link or no file of yours"):
        guard.MachineLock().acquire(0, {"run_id": "x"})
    assert victim.read_text() == "the user's file"


def test_the_default_lock_lives_in_the_users_own_folder(tmp_path, monkeypatch):
    from bench_lib.suite import guard

    monkeypatch.delenv("CONVBENCH_LOCK_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    lock = guard.MachineLock()
    assert lock.path == tmp_path / "convbench" / "convbench-run.lock"
    lock.acquire(0, {"run_id": "x"})
    lock.release()
    assert (tmp_path / "convbench").stat().st_mode & 0o777 == 0o700


def _decoy() -> subprocess.Popen:
    """An unrelated process of this user whose command line holds "asv", leading its own group."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "not-asv-but-says-asv"], start_new_session=True
    )


def test_a_planted_lock_cannot_get_an_unrelated_process_killed(tmp_path, monkeypatch):
    from bench_lib.suite import guard

    monkeypatch.setenv("CONVBENCH_LOCK_DIR", str(tmp_path))
    decoy = _decoy()
    try:
        planted = {"pid": 1, "asv_pgid": decoy.pid, "asv_started": time.time() - 3600}  # not its start time
        (tmp_path / "convbench-run.lock").write_text(json.dumps(planted))
        lock = guard.MachineLock()
        lock.acquire(0, {"run_id": "x"}, say=lambda _: None)
        lock.release()
        assert decoy.poll() is None  # still running
        (tmp_path / "convbench-run.lock").write_text(json.dumps({"asv_pgid": decoy.pid}))  # no start time
        lock.acquire(0, {"run_id": "x"}, say=lambda _: None)
        lock.release()
        assert decoy.poll() is None
        # the group a killed run really left behind (recorded with its start time) is reaped
        lock.acquire(0, {"run_id": "y"}, say=lambda _: None)
        lock.record_child(decoy.pid)
        os.close(lock.fd)  # a run killed outright: the kernel drops its flock, the file keeps the group
        lock.fd = None
        guard.MachineLock().acquire(0, {"run_id": "z"}, say=lambda _: None)
        assert decoy.wait(timeout=10) is not None
    finally:
        decoy.kill()


def test_rows_claiming_another_machine_than_their_run_are_dropped(store):
    from bench_lib.analysis import results

    plant_mate(store)
    path = next(store.glob(f"measurements/*/{MONTH}/20261124T201201Z-11111111.parquet"))
    rows = pq.read_table(path)
    half = rows.num_rows // 2
    claimed = ["mate"] * half + ["someone-else"] * (rows.num_rows - half)  # a row may not speak for another
    pq.write_table(rows.set_column(rows.schema.get_field_index("machine"), "machine", pa.array(claimed)), path)
    with pytest.warns(UserWarning, match=f"skipping {rows.num_rows - half} rows whose machine is not their run's"):
        df = results.load(str(store.parent), history=True, derive=False)
    assert len(df) == half and set(df["machine_name"]) == {"mate"}
