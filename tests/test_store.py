"""The results store: rows, atomic writes, faults, bad files and data from other versions, identity."""

import datetime as dt
import errno
import json
import os
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench_lib.analysis import compare, results, series
from bench_lib.measure.machine import hardware_id
from bench_lib.store import records, schema
from bench_lib.store.disk import Location, machine_key
from bench_lib.store.migrate import migrate
from bench_lib.store.query import Store
from bench_lib.store.writer import RunWriter, StoreWriteError

DENSE = "standard(in=64,out=64,k=3,bias=false)@14x14"
GROUPED = "grouped(in=64,out=64,k=3,g=4,bias=false)@14x14"
HW = "fd94ab387ce7"


def event(case=DENSE, median=1e-3, pid=1, status="ok", device="cpu-1t", metric="latency", **extra):
    e = {
        "suite": "ops",
        "metric": metric,
        "params": {
            "case": case,
            "batch": 1,
            "device": device,
            "layout": "nchw",
            "dtype": "float32",
            "mode": "inference",
        },
        "pid": pid,
        "time": 1_795_000_000.0,
        "status": status,
        **extra,
    }
    if status == "ok" and metric == "latency":
        e["measurement"] = {"median_s": median, "samples_s": [median] * 5, "q25_s": median, "q75_s": median, "block": 3}
    return e


def run(run_id="20261125T010000Z-aaaaaaaa-000001", machine="box", hw=HW, day="2026-11-25", **extra):
    return {
        "run_id": run_id,
        "machine": machine,
        "hardware_id": hw,
        "started_at": f"{day}T01:00:00+00:00",
        "state": "complete",
        "grid": "default",
        "commit_hash": "a" * 40,
        "env_name": "env",
        "suite_version": "0.1.0-1",
        "torch_version": "2.13.0+cpu",
        **extra,
    }


def save(root: Path, r: dict, events: list) -> list[str]:
    return RunWriter(root / "store", r).save(r, events)


def test_each_process_is_a_round_and_its_last_word_counts():
    rows = records.measurement_rows(
        run(),
        [
            event(pid=11, status="skipped", reason="setup said no"),  # superseded by the same process's track
            event(pid=11, median=1e-3),
            event(pid=22, median=2e-3),
            event(GROUPED, pid=11, status="failed", error="RuntimeError: boom"),
        ],
    )
    by = {(r["case"], r["round"]): r for r in rows}
    assert len(rows) == 3
    assert by[(DENSE, 0)]["value"] == 1e-3 and by[(DENSE, 1)]["value"] == 2e-3
    assert by[(DENSE, 0)]["samples"] == [1e-3] * 5 and by[(DENSE, 0)]["number"] == 3
    assert by[(GROUPED, 0)]["status"] == "failed" and by[(GROUPED, 0)]["reason"] == "RuntimeError: boom"
    assert by[(DENSE, 0)]["unit"] == "seconds" and by[(DENSE, 0)]["torch_version"] == "2.13.0+cpu"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "fast"])
def test_a_value_that_is_not_a_finite_number_is_a_failure_with_the_reason(bad):
    (row,) = records.measurement_rows(run(), [event(median=bad)])
    assert row["status"] == "failed" and row["value"] is None
    assert row["reason"] == f"the measured value is {bad!r}, not a finite number"


def test_round_trip_through_the_store(tmp_path):
    r = run()
    paths = save(tmp_path, r, [event(), event(GROUPED, median=4e-4)])
    assert [p.split("/store/")[1].split("/")[0] for p in paths] == ["measurements", "runs"]
    assert f"machine_key=box-{HW[:8]}/month=2026-11/{r['run_id']}.parquet" in paths[0]
    df = results.load(tmp_path, history=True)
    assert sorted(df.value) == [4e-4, 1e-3]
    assert df.set_index("case").loc[GROUPED, "speedup"] == pytest.approx(2.5)
    assert set(df.hardware_id) == {HW} and set(df.run_state) == {"complete"}


def test_runs_rounds_summarised_per_run(tmp_path):
    save(tmp_path, run(), [event(pid=1, median=1e-3), event(pid=2, median=3e-3), event(pid=3, median=2e-3)])
    (row,) = results.load(tmp_path, history=True).itertuples()
    assert row.rounds == 3 and row.value == 2e-3 and row.n_samples == 15  # median of the rounds; samples pooled


def test_a_failed_write_keeps_the_previous_file_and_names_the_file(tmp_path, monkeypatch):
    r = run()
    save(tmp_path, r, [event()])
    path = Path(RunWriter(tmp_path / "store", r).path("measurements"))
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full_disk)
    with pytest.raises(StoreWriteError, match=rf"could not write {path}: No space left on device; earlier files"):
        save(tmp_path, r, [event(), event(GROUPED)])
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*"))  # no temporary left behind


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_get_the_users_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        (path, _) = save(tmp_path, run(), [event()])
    finally:
        os.umask(old)
    assert Path(path).stat().st_mode & 0o777 == 0o666 & ~mask


def test_unreadable_files_are_skipped_with_a_warning_naming_them(tmp_path):
    save(tmp_path, run(), [event()])
    good = run("20261125T020000Z-aaaaaaaa-000002")
    save(tmp_path, good, [event(median=2e-3)])
    folder = tmp_path / "store" / "measurements" / f"machine_key=box-{HW[:8]}" / "month=2026-11"
    truncated = folder / "20261125T030000Z-aaaaaaaa-000003.parquet"
    truncated.write_bytes((folder / f"{good['run_id']}.parquet").read_bytes()[:100])
    (folder / "notes.parquet").write_text("not parquet")
    retyped = folder / "20261125T040000Z-aaaaaaaa-000004.parquet"
    pq.write_table(pa.table({"run_id": ["x"], "batch": ["one"]}), retyped)
    store = Store(tmp_path / "store")
    with pytest.warns(UserWarning) as caught:
        got = store.sql("SELECT count(*) AS n FROM measurements")
    assert got.n.item() == 2
    named = " ".join(str(w.message) for w in caught)
    assert all(p.name in named for p in (truncated, folder / "notes.parquet", retyped))


def test_a_newer_writers_extra_columns_are_ignored_with_a_warning(tmp_path):
    r = run()
    save(tmp_path, r, [event()])
    path = Path(RunWriter(tmp_path / "store", r).path("runs"))
    t = pq.read_table(path)
    t = t.append_column("flux_capacitor", pa.array([1.21])).set_column(
        t.schema.get_field_index("schema_version"), "schema_version", pa.array([schema.SCHEMA_VERSION + 1], pa.int16())
    )
    pq.write_table(t, path)
    store = Store(tmp_path / "store")
    with pytest.warns(UserWarning, match=r"1 runs were written by a newer convbench .* columns it does not know"):
        runs = store.runs()
    assert len(runs) == 1 and "flux_capacitor" not in runs
    assert store.unknown_columns("runs") == {"flux_capacitor"}


def test_a_run_copied_under_another_name_counts_once(tmp_path):
    r = run()
    (path, runs_path) = save(tmp_path, r, [event()])
    for p in (path, runs_path):
        Path(p).with_name("copy-of-run.parquet").write_bytes(Path(p).read_bytes())
    assert len(Store(tmp_path / "store").runs()) == 1
    assert len(results.load(tmp_path, history=True)) == 1


def test_only_the_selected_partitions_are_opened(tmp_path):
    save(tmp_path, run(day="2026-10-01", run_id="20261001T010000Z-a-1"), [event()])
    save(tmp_path, run(day="2026-11-25"), [event()])
    save(tmp_path, run(machine="other", hw="0" * 12, run_id="20261125T010000Z-b-2"), [event()])
    loc = Location.parse(tmp_path / "store")
    assert len(loc.files("measurements")) == 3
    store = Store(tmp_path / "store")
    assert len(loc.files("measurements", store.machine_keys(["box"]), store.months(["2026-11-2"]))) == 1
    # a poisoned file in a partition nobody asked for is never opened
    (tmp_path / "store" / "measurements" / f"machine_key=box-{HW[:8]}" / "month=2026-10" / "z.parquet").write_text("x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(store.scan("measurements", months={"2026-11"})) == 2


def test_hardware_id_means_the_hardware():
    facts = {"arch": "x86_64", "cpu_model": "AMD EPYC", "logical_cores": 2, "ram_gib": 24, "gpus": []}
    assert hardware_id(facts) == hardware_id({**facts, "gpus": []})
    assert hardware_id(facts) != hardware_id({**facts, "cpu_model": "Intel Xeon"})
    assert hardware_id(facts) != hardware_id({**facts, "gpus": ["NVIDIA H200"]})
    two = hardware_id({**facts, "gpus": ["A", "B"]})
    assert two == hardware_id({**facts, "gpus": ["B", "A"]})  # order of enumeration does not matter
    assert machine_key("My Box.local", "0123456789ab") == "my-box-local-01234567"


def test_two_machines_with_one_name_are_never_compared_as_one(tmp_path):
    save(tmp_path, run(), [event(median=1e-3), event(GROUPED, median=5e-4)])
    other = run(run_id="20261125T020000Z-b-2", hw="0" * 12, day="2026-11-25")
    save(tmp_path, other, [event(median=3e-3), event(GROUPED, median=1.5e-3)])
    df = results.load(tmp_path, history=True)
    assert set(df.machine) == {f"box-{HW[:8]}", "box-00000000"}  # shown apart
    store = results.store_of(tmp_path)
    rows = results.rounds_of_runs(store, store.runs(), series.READ)
    assert set(rows.machine) == set(df.machine)
    table, note = compare.compare(rows, f"run={run()['run_id']}", f"run={other['run_id']}")
    assert "is other hardware on each side" in note and "across hardware" in note
    both = table[table.ratio.notna()]
    assert len(both) == 2 and all(abs(r - 1 / 3) < 1e-9 for r in both.ratio)  # the other box: a third the speed
    assert set(both.verdict) <= {"slower", "inconclusive"}
    grouped = both[both.case == GROUPED].iloc[0]
    assert abs(grouped.vs_dense_baseline - grouped.vs_dense_candidate) < 1e-9  # relative to dense, nothing changed


def test_migration_skips_bad_lines_and_files_with_warnings(tmp_path):
    root = tmp_path / "results"
    box = root / "box"
    (box / "history").mkdir(parents=True)
    (box / "machine.json").write_text("[1, 2]")  # a list, not an object
    meta = {"run": {"run_id": "r1", "started": "2026-11-20T01:00:00+00:00", "commit_hash": "a" * 40}}
    lines = [json.dumps(meta), "42", "{}", json.dumps(event()), "{broken"]
    (box / "history" / "r1.jsonl").write_text("\n".join(lines) + "\n")
    (box / "history" / "latin1.jsonl").write_bytes(b"\xff\xfe not utf-8")
    (box / "a-env.json").write_text(json.dumps({"results": [], "commit_hash": "a"}))
    (box / "b-env.json").write_text(json.dumps({"results": {"bench_ops.Latency.track_latency": None}}))
    with pytest.warns(UserWarning) as caught:
        done = migrate(root, root / "store")
    said = " | ".join(str(w.message) for w in caught)
    assert "line 2 is not a JSON object" in said and "line 5 is not JSON" in said
    assert "latin1.jsonl" in said and "a-env.json: not an asv result file" in said
    assert "is not an asv result row" in said
    assert done.runs == 1 and done.rows == 1
    assert len(results.load(root, history=True)) == 1


def test_store_path_keeps_an_object_store_query():
    from bench_lib.store import store_path

    assert store_path("s3://b/x?endpoint_override=h:1") == "s3://b/x/store?endpoint_override=h:1"
    assert store_path("results") == str(Path("results") / "store")


def test_month_comes_from_the_start_in_utc():
    assert records.month_of("2026-11-30T23:30:00-02:00") == "2026-12"
    assert records.month_of(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)) == "2026-01"


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_atomic_text_files_get_the_users_umask_not_mkstemps_0600(tmp_path, mask):
    from bench_lib.files import write_atomic

    old = os.umask(mask)
    try:
        write_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_recent_runs_reads_each_machines_newest_months(tmp_path):
    days = {
        "box": ["2026-08-03", "2026-09-03", "2026-10-03", "2026-11-03", "2026-11-04"],
        "old": ["2026-02-01", "2026-03-01"],
    }
    for machine, dates in days.items():
        hw = HW if machine == "box" else "0123456789ab"
        for i, day in enumerate(dates):
            rid = f"{day.replace('-', '')}T010000Z-aaaaaaaa-00000{i}"
            save(tmp_path, run(run_id=rid, machine=machine, hw=hw, day=day), [event()])
    store = Store(tmp_path / "store")

    def months(at_least: int) -> list[tuple[str, str]]:
        recent = Store(tmp_path / "store").recent_runs(at_least=at_least)
        return sorted({(m, str(d)[:7]) for m, d in zip(recent["machine"], recent["started_at"], strict=True)})

    # box: as many newest months as hold 3 runs (Nov has 2, Oct 1); old: its own, though it stopped long ago
    assert months(3) == [("box", "2026-10"), ("box", "2026-11"), ("old", "2026-02"), ("old", "2026-03")]
    assert months(2) == [("box", "2026-11"), ("old", "2026-02"), ("old", "2026-03")]
    assert months(1) == [("box", "2026-11"), ("old", "2026-03")]
    assert len(store.recent_runs(at_least=99)) == 7 == len(store.runs())
