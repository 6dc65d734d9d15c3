"""The fleet's nightly push as a tested command: three machines push their partitions of the store to one
results branch of a local bare repository at the same time, and every run of every machine is on the
branch afterwards and loads. The workflow that calls it is linted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_store import DENSE, GROUPED, event, run

from bench_lib.store import store_path
from bench_lib.store.disk import machine_key
from bench_lib.store.query import Store
from bench_lib.store.writer import RunWriter

ROOT = Path(__file__).resolve().parents[1]
MACHINES = {"gpu-a100": "a100a100a100", "cpu-epyc": "e9c0e9c0e9c0", "mac-m3": "3333m3m3m3m3"}
NIGHTS = ("2026-11-23", "2026-11-24", "2026-11-25")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def fleet(tmp_path) -> tuple[Path, dict[str, Path]]:
    """A bare origin with a main branch, and one clone per machine whose store holds three nights of it."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    seed = tmp_path / "seed"
    subprocess.run(["git", "clone", "-q", str(origin), str(seed)], check=True, capture_output=True)
    (seed / "README.md").write_text("convbench\n")
    git(seed, "add", "README.md")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    git(seed, "push", "-q", "origin", "HEAD:main")
    clones = {}
    for machine, hw in MACHINES.items():
        clone = tmp_path / machine
        subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True, capture_output=True)
        where = store_path(clone / "results")
        for i, day in enumerate(NIGHTS):
            r = run(f"{day.replace('-', '')}T010000Z-{hw[:8]}-{i:06d}", machine=machine, hw=hw, day=day)
            RunWriter(where, r).save(r, [event(DENSE), event(GROUPED, median=4e-4)])
        clones[machine] = clone
    return origin, clones


def _push(clone: Path, machine: str) -> subprocess.Popen:
    key = machine_key(machine, MACHINES[machine])
    argv = ["store", "push", "--git-branch", "results", "--results", "results", "--machine-key", key]
    code = f"import sys; from bench_lib.cli import main; sys.exit(main({argv!r}))"
    return subprocess.Popen([sys.executable, "-c", code], cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_three_machines_pushing_at_once_all_land_on_the_results_branch(fleet, tmp_path):
    origin, clones = fleet
    procs = {m: _push(c, m) for m, c in clones.items()}  # all three at once: two must fetch and retry
    for machine, p in procs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, (machine, err.decode())
        assert b"origin results: commit " in out
    check = tmp_path / "check"
    subprocess.run(["git", "clone", "-q", "-b", "results", str(origin), str(check)], check=True, capture_output=True)
    runs = Store(store_path(check / "results")).runs()
    assert len(runs) == len(MACHINES) * len(NIGHTS)
    assert dict(runs.groupby("machine")["hardware_id"].first()) == MACHINES
    assert git(check, "log", "--format=%s", "HEAD").count("results: ") == len(MACHINES)  # no merges, one each
    for clone in clones.values():  # the checkouts benchmarked in are untouched: no new branch, no index change
        assert git(clone, "status", "--porcelain") == "?? results/"
        assert git(clone, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    again = _push(clones["mac-m3"], "mac-m3")  # nothing new: no empty commit
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0 and b"nothing new" in out


def test_a_push_of_nothing_says_so_and_a_url_is_refused(fleet, capsys, monkeypatch):
    from bench_lib.cli import main

    _, clones = fleet
    monkeypatch.chdir(clones["cpu-epyc"])
    argv = ["store", "push", "--git-branch", "results", "--results", "results", "--machine-key", "nobody-00000000"]
    assert main(argv) == 4
    assert "no files of nobody-00000000" in capsys.readouterr().err
    assert main(["store", "push", "--git-branch", "results", "--results", "s3://bucket/x"]) == 2
    assert "store push takes a folder in a git checkout, not a URL" in capsys.readouterr().err


WORKFLOW = ROOT / ".github" / "workflows" / "nightly-bench.yml"


def _tool(name: str) -> str | None:
    """A dev dependency's command: beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def test_the_workflow_pushes_with_the_command_and_passes_the_linters():
    text = WORKFLOW.read_text()
    assert "convbench store push --git-branch results" in text and "benchmarks.json" not in text
    lint = _tool("check-jsonschema")
    if lint is None:
        pytest.skip("check-jsonschema (a dev dependency) is not installed")
    out = subprocess.run(
        [lint, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    zizmor = _tool("zizmor")
    if zizmor is not None:  # GitHub Actions' security linter: template injection, unpinned actions
        out = subprocess.run([zizmor, "--offline", "--no-progress", str(WORKFLOW)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
