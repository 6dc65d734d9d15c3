"""Every command a user is shown runs in a test: the lines of every fenced ``sh``, ``cron`` and ``python``
block of README.md and docs/*.md. Each is classified in :data:`HOW`: run as written (in a sandbox
checkout whose results start empty), run on the smoke grid where a run is needed (one combination:
``SMOKE``), or skipped with the reason (a GPU, a second torch, an hour of machine time). A command the
docs gain without a line here fails :func:`test_every_shown_command_is_exercised_or_says_why_not`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_asv_end_to_end import make_project
from test_store import DENSE, GROUPED, event, run

from bench_lib.store import store_path
from bench_lib.store.writer import RunWriter

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLANTED = r"C:CONVBENCH_SLOWDOWN=^depthwise\(=1.05"  # a third side, 5 % slower on the depthwise convs
SMOKE = ["--grid", "smoke", "--device", "cpu-1t", "--bench", r"bench_ops\.Latency.*depthwise"]  # one combination
ONE_NIGHTLY = [
    "--device",
    "cpu-1t",
    "--bench",
    r"bench_ops\.Latency.*'depthwise\(in=64.*1, 'cpu-1t', 'nchw', 'float32', 'inference'",
]


def shown_commands() -> list[tuple[str, str]]:
    """(document, command) for each line of the fenced sh/cron blocks (trailing comments cut) and each whole
    python block."""
    found = []
    for doc in DOCS:
        for lang, body in re.findall(r"```(sh|cron|python)\n(.*?)```", doc.read_text(), re.S):
            if lang == "python":
                found.append((doc.name, body.strip()))
                continue
            for line in body.splitlines():
                command = re.split(r"\s{2,}#", line)[0].strip()
                if command:
                    found.append((doc.name, " ".join(command.split())))
    return found


def skip(reason: str) -> tuple[str, str]:
    return ("skip", reason)


def smoke(extra: list[str] | None = None) -> tuple[str, list[str]]:
    """Run as written on the smoke grid's one combination (``extra`` replaces ``SMOKE`` where given)."""
    return ("smoke", SMOKE if extra is None else extra)


def instead(argv: list[str]) -> tuple[str, list[str]]:
    """Run ``argv`` in place of the shown command: the project's venv for a second torch (installing one is a
    CUDA build of several GB here), two pairs of the smoke grid's one combination for an A/B run."""
    return ("instead", argv)


ONE_COMPARE = ["--device", "cpu-1t", "--bench", r"bench_ops\.Latency.*'depthwise\(in=64.*'float32'"]
AB = ["run", "--python", ".venv/bin/python", "--python", ".venv/bin/python", "--pairs", "2", *SMOKE]
AS_WRITTEN = ("as written", [])
FEW_PROCESSES = ["--processes", "2", "--samples", "5", "--max-time", "0.1"]
PYTHON_BLOCK = ("python", [])
# the README's laptop-against-the-fleet recipe: each line runs after the lines before it, on a store that
# holds one combination of the compare grid
LAPTOP = [
    "tar czf laptop.tgz -C results store",
    "convbench store import laptop.tgz --results fleet-results",
    "convbench machines --results fleet-results",
]

# every shown command → how it is exercised
HOW: dict[str, tuple[str, object]] = {
    "make bench": skip(
        "the default grid on every device (about 10 minutes here) and the report; measured in "
        "docs/verdicts.md ('Run time'); its parts run below"
    ),
    "make test": skip("it runs this very suite (CI's .ci/run calls it)"),
    "convbench run": smoke(),
    "convbench run --grid nightly": smoke(ONE_NIGHTLY),  # the nightly grid itself, one op: 5 rounds, peaks, canary
    "convbench run --device cuda:1 --bench 'mbconv'": smoke(["--grid", "smoke"]),  # no GPU: skipped with the reason
    "convbench run --python .venvs/torch-2.14.1/bin/python": instead(["run", "--python", ".venv/bin/python", *SMOKE]),
    "convbench run --python .venvs/torch-2.12.1/bin/python --python .venv/bin/python": instead(AB),
    "convbench run --python .venvs/torch-2.12.1/bin/python --python .venv/bin/python --bench 'bench_ops\\.Latency' "
    "--device cpu-1t": instead(AB),
    "convbench run --python .venvs/torch-2.12.1/bin/python --python .venv/bin/python --bench 'bench_ops\\.Latency' "
    "--device cpu-1t --budget 15": instead([*AB, "--budget", "15"]),
    "convbench run --side A --side B:THP_MEM_ALLOC_ENABLE=1 --bench 'bench_ops\\.Latency' --device cpu-1t": instead(
        ["run", "--side", "A", "--side", "B:THP_MEM_ALLOC_ENABLE=1", "--pairs", "2", *SMOKE]
    ),
    'convbench run --side A:THP_MEM_ALLOC_ENABLE=1 --side B:THP_MEM_ALLOC_ENABLE=1 --bench "bench_ops\\.Latency.*'
    "depthwise\\(in=64,k=3,bias=false\\)@56x56', 8, 'cpu-1t', 'nchw'\" --device cpu-1t --pairs 20": instead(
        ["run", "--side", "A:THP_MEM_ALLOC_ENABLE=1", "--side", "B:THP_MEM_ALLOC_ENABLE=1", "--pairs", "2", *SMOKE]
    ),
    "convbench run --side A --side B --bench \"bench_ops\\.Latency.*depthwise\\(in=64,k=3,bias=false\\)@56x56', "
    "8, 'cpu-1t', 'nchw'\" --device cpu-1t --pairs 20": instead(
        ["run", "--side", "A", "--side", "B", "--pairs", "2", *SMOKE]
    ),
    "convbench run --side A --side B --bench 'bench_ops\\.Latency' --device cpu-1t --budget 15": instead(
        ["run", "--side", "A", "--side", "B", "--pairs", "2", "--budget", "15", *SMOKE]
    ),
    "convbench run --side A --side B --side 'C:CONVBENCH_SLOWDOWN=^depthwise\\(=1.05' --bench 'bench_ops\\.Latency' "
    "--device cpu-1t --budget 25": instead(
        ["run", "--side", "A", "--side", "B", "--side", PLANTED, "--pairs", "2", "--budget", "25", *SMOKE]
    ),
    "convbench compare --baseline side=A --candidate side=B": AS_WRITTEN,
    "convbench compare --baseline torch=2.12.1 --candidate torch=2.13.0": AS_WRITTEN,
    "convbench run --rounds 2": smoke(),
    "convbench run --lock-gpu-clocks base": smoke(),  # a CPU-only run locks nothing and records why
    "make venv-torch TORCH_VERSION=2.12.1": skip(
        "installs a second torch (a CUDA build of several GB here); the "
        "relative --python path it feeds runs above with the project's venv"
    ),
    "convbench report": AS_WRITTEN,
    "convbench export --out all.parquet": AS_WRITTEN,
    'convbench store sql "SELECT machine, count(*) FROM runs GROUP BY ALL"': AS_WRITTEN,
    **{line: ("recipe", LAPTOP[:i]) for i, line in enumerate(LAPTOP)},
    "convbench compare --baseline torch=2.13 --candidate torch=2.14 [--factor 1.05] [--alpha 0.001] "
    "[--markdown|--json]": ("synopsis", ["--factor 1.05 --alpha 0.001 --markdown", "--json"]),
    "convbench compare --baseline date=2026-11-20 --candidate date=2026-11-21": AS_WRITTEN,
    "convbench compare --baseline machine=laptop --candidate machine=gpu-box": AS_WRITTEN,
    "make bench GRID=compare": skip(
        "the compare grid and the report (about 10 minutes here, docs/machines.md); the grid runs below on one "
        "combination"
    ),
    "convbench run --grid compare": smoke(ONE_COMPARE),
    "convbench compare --baseline machine=laptop,device=cpu-1t --candidate machine=gpu-box,device=cpu-1t --json": (
        AS_WRITTEN
    ),
    "convbench machines --set common": AS_WRITTEN,
    "convbench machines --set common --reference laptop:cpu-1t --markdown": AS_WRITTEN,
    "convbench regressions [--machine NAME] [--since 2026-11-01] [--markdown|--json]": (
        "synopsis",
        ["--machine laptop --since 2026-11-01 --json", "--markdown", ""],
    ),
    "convbench reproduce all": skip(
        "the paper grids on cpu-1t (minutes here); its save-and-report path is tested "
        "with the runner stubbed (tests/test_paths.py)"
    ),
    "convbench measure net_efficientnet_b0 --breakdown": AS_WRITTEN,
    # as written, in two fresh processes of a short window each instead of 12 or 6 of the default one
    "convbench measure grouped in_channels=64 groups=4 --allocator plain": smoke(FEW_PROCESSES),
    "convbench measure grouped in_channels=64 groups=4 --processes 6 --allocator steady": smoke(FEW_PROCESSES),
    "convbench measure grouped in_channels=64 groups=4 --allocator plain --script": AS_WRITTEN,
    "30 1 * * * cd $HOME/convbench && git pull -q && make bench GRID=nightly >> $HOME/convbench-nightly.log 2>&1; "
    ".venv/bin/convbench store push --git-branch results >> $HOME/convbench-nightly.log 2>&1": skip(
        "a crontab line (an hour of nightly grid); its push is tested with three machines (tests/test_fleet_push.py)"
    ),
}


def _python_blocks() -> list[str]:
    return [c for _, c in shown_commands() if "\n" in c or c.startswith("import ")]


def test_every_shown_command_is_exercised_or_says_why_not():
    commands = [c for _, c in shown_commands() if c not in _python_blocks()]
    unknown = sorted({c for c in commands if c not in HOW})
    assert unknown == [], f"commands shown in README.md or docs/ that no test exercises: {unknown}"
    stale = sorted(set(HOW) - set(commands))
    assert stale == [], f"HOW lists commands the docs no longer show: {stale}"
    assert all(len(reason) > 20 for how, reason in HOW.values() if how == "skip")


# --------------------------------------------------------------------------------------------
# running them


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> dict[str, object]:
    """A checkout (asv config, benchmarks, notebooks, git) whose results start empty, with the project's venv
    at ``.venv``, its own HOME and machine lock; and a store of two torch releases, two days, two machines
    for the compare and regressions examples."""
    tmp = tmp_path_factory.mktemp("readme")
    project = make_project(tmp)
    (project / ".venv").symlink_to(Path(sys.executable).parent.parent)
    subprocess.run(["cp", "-r", str(ROOT / "analysis"), str(project / "analysis")], check=True)
    env = {**os.environ, "HOME": str(project), "CONVBENCH_MACHINE": "readme-box", "CONVBENCH_LOCK_DIR": str(tmp)}
    env.pop("CONVBENCH_RESULTS", None)
    examples = tmp / "examples"
    nights = [
        ("laptop", "1" * 12, "2026-11-20", "2.13.0+cpu", 1.00),
        ("laptop", "1" * 12, "2026-11-21", "2.14.1+cpu", 1.02),
        ("gpu-box", "2" * 12, "2026-11-21", "2.14.1+cu130", 0.20),
    ]
    _ab_example(examples)
    for i, (machine, hw, day, torch_version, scale) in enumerate(nights):
        r = run(f"{day.replace('-', '')}T010000Z-{hw[:8]}-{i:06d}", machine=machine, hw=hw, day=day)
        r["torch_version"] = torch_version
        RunWriter(store_path(examples), r).save(
            r, [event(DENSE, median=1e-3 * scale), event(GROUPED, median=4e-4 * scale)]
        )
    return {"project": project, "env": env, "examples": examples}


def _ab_example(examples: Path) -> None:
    """An A/B run of 12 pairs on the laptop: side A torch 2.12.1+cu130, side B 2.13.0+cpu, the grouped conv 10 %
    slower on B, the dense conv the same; every pair shares a drift of up to ±20 %."""
    sides = [
        {
            "label": "A",
            "python": "/a/python",
            "env_name": "torch-2.12.1",
            "identity": {"torch_version": "2.12.1+cu130"},
        },
        {"label": "B", "python": "/b/python", "env_name": "torch-2.13.0", "identity": {"torch_version": "2.13.0+cpu"}},
    ]
    r = run("20261119T010000Z-11111111-0000ab", machine="laptop", hw="1" * 12, day="2026-11-19")
    r.update(sides=sides, pairs=12, env_name="torch-2.12.1 vs torch-2.13.0", torch_version=None)
    events, pid = [], 100
    for pair in range(12):
        drift = 1 + 0.2 * ((pair * 7) % 5 - 2) / 2
        for side, version, slower in (("A", "2.12.1+cu130", 1.0), ("B", "2.13.0+cpu", 1.1)):
            for case, scale in ((DENSE, 1.0), (GROUPED, 0.4 * slower)):
                pid += 1
                e = event(case, median=1e-3 * scale * drift * (1 + 0.001 * pid % 3), pid=pid, side=side, pair=pair)
                events.append({**e, "torch_version": version})
    RunWriter(store_path(examples), r).save(r, events)


def _convbench(sandbox, words: list[str], results: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(sandbox["env"])
    if results is not None:
        env["CONVBENCH_RESULTS"] = str(results)
    argv = [sys.executable, "-m", "bench_lib.cli", *words]
    return subprocess.run(argv, cwd=sandbox["project"], env=env, capture_output=True, text=True, timeout=600)


def _runnable() -> list[str]:
    return [c for c, (how, _) in HOW.items() if how != "skip"]


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(_runnable(), key=lambda c: not c.startswith("convbench run")))
def test_a_shown_command_runs(sandbox, command):
    how, extra = HOW[command]
    words = shlex.split(command)[1:]  # as the shell splits it
    if how == "recipe":
        _recipe(sandbox, [*extra, command])
        return
    if how == "smoke":
        forms = [[*words, *extra]]
    elif how == "instead":
        if tuple(extra) in _RAN_INSTEAD:
            return  # the very same argv ran, and passed, for another shown command (an A/B run: ~30 s)
        forms = [extra]
    elif how == "synopsis":
        base = shlex.split(re.sub(r"\[[^\]]*\]", "", command))[1:]  # the synopsis without its [options]
        forms = [[*base, *f.split()] for f in extra]
    else:
        forms = [words]
    verdict_commands = ("compare", "regressions", "machines")
    examples = sandbox["examples"] if words and words[0] in verdict_commands else None  # not `run --grid compare`
    for form in forms:
        out = _convbench(sandbox, form, examples)
        allowed = (0, 1) if form[0] in verdict_commands else (0,)  # 1: a verdict (the examples move)
        assert out.returncode in allowed, (form, out.stdout[-3000:], out.stderr[-3000:])
    if how == "instead":
        _RAN_INSTEAD.add(tuple(extra))
    if command == "convbench run --device cuda:1 --bench 'mbconv'":
        assert "skipped" in out.stdout and "cuda:1" in out.stdout
    if command == "convbench export --out all.parquet":
        assert (sandbox["project"] / "all.parquet").exists()


_RAN_INSTEAD: set[tuple[str, ...]] = set()  # the stand-in argvs that ran in this session's sandbox


def _recipe(sandbox, lines: list[str]) -> None:
    """Run shell ``lines`` in order in the sandbox (``convbench`` as the project's), after a run of the
    compare grid's one combination where the sandbox has no results yet."""
    project = sandbox["project"]
    if not any((project / "results" / "store").glob("runs/*/*/*.parquet")):
        _convbench(sandbox, ["run", "--grid", "compare", *ONE_COMPARE])
    for line in lines:
        if line.startswith("convbench "):
            out = _convbench(sandbox, shlex.split(line)[1:])
        else:
            out = subprocess.run(["bash", "-c", line], cwd=project, env=sandbox["env"], capture_output=True, text=True)
        assert out.returncode == 0, (line, out.stdout[-3000:], out.stderr[-3000:])


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_a_shown_python_block_runs(sandbox, index):
    if not any((sandbox["project"] / "results" / "store").glob("runs/*/*/*.parquet")):
        _convbench(sandbox, ["run", *SMOKE])
    code = _python_blocks()[index]
    out = subprocess.run([sys.executable, "-c", code], cwd=sandbox["project"], capture_output=True, text=True)
    assert out.returncode == 0, (code, out.stderr[-2000:])
