"""The glue where a user or a fleet meets convbench: reproductions kept, exports said plainly, one results
location for every command, exit codes a job can act on, machines told apart on every architecture."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from test_store import DENSE, GROUPED, event, run

from bench_lib.cli import build_parser, default_results, main
from bench_lib.errors import MEANING, Exit
from bench_lib.store import store_path
from bench_lib.store.query import Store
from bench_lib.store.writer import RunWriter

ROOT = Path(__file__).resolve().parents[1]


def _one_night(results: Path, run_id: str = "20261125T010000Z-aaaaaaaa-000001", **extra) -> dict:
    r = run(run_id, **extra)
    RunWriter(store_path(results), r).save(r, [event(DENSE), event(GROUPED, median=4e-4)])
    return r


def test_reproduce_keeps_its_run_in_the_store_and_its_report_shows_it(tmp_path, monkeypatch, capsys):
    from bench_lib.analysis import report
    from bench_lib.suite import runner

    results = tmp_path / "results"
    _one_night(results)

    def fake_run(opts, save=None):  # the runner hands every run to save, as a real run does
        assert opts.grid == "fasternet" and save is not None
        r = run("20261126T010000Z-bbbbbbbb-000002", grid="fasternet", day="2026-11-26")
        save(r, [event("stack(op=grouped,depth=10,in=96,out=96,g=16)@56x56", median=2e-3)], [], [])
        return Exit.OK

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(report, "build", functools.partial(report.build, run_notebooks=False))
    out = ["reproduce", "fasternet", "--results", str(results), "--out", str(tmp_path / "report")]
    assert main(out) == 0
    assert len(Store(store_path(results)).runs()) == 2
    assert "stack(op=grouped,depth=10,in=96,out=96,g=16)@56x56" in (tmp_path / "report" / "index.html").read_text()


def test_export_says_how_many_rows_it_wrote_and_where(tmp_path, capsys):
    results = tmp_path / "results"
    _one_night(results)
    out = tmp_path / "all.csv"
    assert main(["export", "--results", str(results), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 2 rows to {out}"
    history = next(
        a
        for a in build_parser()._subparsers._group_actions[0].choices["export"]._actions
        if "--history" in a.option_strings
    )
    assert history.help == "every run in the store (default: each combination's newest)"


def test_every_command_reads_results_from_convbench_results_alike(tmp_path, monkeypatch, capsys):
    results = tmp_path / "fleet"
    _one_night(results)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("CONVBENCH_RESULTS", str(results))
    assert main(["store", "sql", "SELECT count(*) AS n FROM runs"]) == 0
    assert capsys.readouterr().out.split()[-1] == "1"
    assert main(["regressions"]) == 0 and "2 series" in capsys.readouterr().out
    assert main(["export", "--out", str(tmp_path / "x.parquet")]) == 0
    monkeypatch.delenv("CONVBENCH_RESULTS")
    assert default_results() == "results"  # no checkout here: the working directory's
    monkeypatch.chdir(ROOT / "docs")  # inside the checkout: its results/, as `run` always did
    assert default_results() == str(ROOT / "results")
    assert default_results(str(tmp_path)) == "results"


def test_exit_codes_are_distinct_documented_and_in_the_help(capsys):
    assert len({int(e) for e in Exit}) == len(Exit) and set(MEANING) == set(Exit)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    shown = "".join(capsys.readouterr().out.split())  # argparse wraps the epilog where it likes
    for code, meaning in MEANING.items():
        assert f"{int(code)}{''.join(meaning.split())}" in shown
    readme = (ROOT / "README.md").read_text()
    for code in Exit:
        assert f"| {int(code)} |" in readme


def test_arm_machines_of_other_cores_get_other_names_and_ids():
    from bench_lib.measure import machine

    def cpuinfo(part: str, cores: int = 4) -> str:
        block = "processor\t: {i}\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
        block += f"CPU variant\t: 0x3\nCPU part\t: {part}\nCPU revision\t: 1\n"
        return "\n".join(block.format(i=i) for i in range(cores))

    n1 = machine.cpu_model(cpuinfo("0xd0c"), device_tree_model="")
    v1 = machine.cpu_model(cpuinfo("0xd40"), device_tree_model="")
    assert n1 == "4x Arm part 0xd0c r3p1" and v1 == "4x Arm part 0xd40 r3p1"
    facts = {"arch": "aarch64", "logical_cores": 4, "ram_gib": 16, "gpus": []}
    assert machine.hardware_id({**facts, "cpu_model": n1}) != machine.hardware_id({**facts, "cpu_model": v1})
    board = machine.cpu_model(cpuinfo("0xd0b", 2) + "\n\n" + cpuinfo("0xd05", 2), device_tree_model="Board X\x00")
    assert board == "Board X 2x Arm part 0xd0b r3p1 + 2x Arm part 0xd05 r3p1"
    assert machine.cpu_model("model name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"  # x86 as before: ids kept


def test_rocm_gpus_are_counted_from_the_kfd_driver_without_initialising_hip(tmp_path):
    from bench_lib.measure import devices

    for node, simds in (("0", 0), ("1", 304), ("2", 304)):  # node 0: the CPU
        (tmp_path / node).mkdir()
        (tmp_path / node / "properties").write_text(f"cpu_cores_count 64\nsimd_count {simds}\ngpu_id {node}\n")
    assert devices.amd_gpu_count(str(tmp_path)) == 2
    assert devices.amd_gpu_count(str(tmp_path / "absent")) == 0


def test_run_json_puts_the_exit_code_and_the_runs_record_on_stdout_alone(tmp_path, monkeypatch, capsys):
    import json

    from bench_lib.suite import runner

    def fake_run(opts, save=None):
        print("convbench run ...: progress a person reads")
        r = run("20261126T010000Z-bbbbbbbb-000003", day="2026-11-26", summary={"ok": 1, "failed": []})
        save(r, [event(DENSE)], [], [])
        return Exit.FAILED

    monkeypatch.setattr(runner, "run", fake_run)
    assert main(["run", "--json", "--results", str(tmp_path / "results")]) == 3
    out, err = capsys.readouterr()
    record = json.loads(out)  # stdout is the JSON and nothing else
    assert record["exit_code"] == 3 and record["exit"] == MEANING[Exit.FAILED]
    assert record["run"]["run_id"] == "20261126T010000Z-bbbbbbbb-000003" and "progress a person reads" in err


def test_regressions_markdown_is_a_table_of_the_flagged_series(tmp_path, capsys):
    results = tmp_path / "results"
    for i in range(6):  # five quiet nights, then the grouped conv 30 % slower twice
        scale = 1.3 if i >= 4 else 1.0
        r = run(f"2026112{i}T010000Z-aaaaaaaa-00000{i}", day=f"2026-11-2{i}")
        RunWriter(store_path(results), r).save(r, [event(DENSE), event(GROUPED, median=4e-4 * scale)])
    assert main(["regressions", "--results", str(results), "--markdown"]) == 1
    out = capsys.readouterr().out
    assert "\n\n| verdict | change | band |" in out and "| regression | +30.0% [" in out
