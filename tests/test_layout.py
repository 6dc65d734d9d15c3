"""The house's shape: stages import only earlier stages, and asv workers never load the analysis stack."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["catalogue", "measure", "suite", "store", "analysis"]  # data flows this way, and so do imports


def bench_lib_imports(path: Path) -> set[str]:
    """The ``bench_lib.<stage>`` packages a module imports, at any depth of the file (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("bench_lib.") and n.split(".")[1] in STAGES}
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_imports_only_itself_and_earlier_stages(stage):
    allowed = set(STAGES[: STAGES.index(stage) + 1])
    for path in sorted((ROOT / "bench_lib" / stage).glob("*.py")):
        later = bench_lib_imports(path) - allowed
        assert not later, f"{path.relative_to(ROOT)} imports a later stage: {sorted(later)}"


def test_asv_workers_import_neither_pandas_nor_matplotlib():
    code = (
        "import sys\n"
        "import benchmarks.bench_ops, benchmarks.bench_blocks, benchmarks.bench_networks, benchmarks.bench_papers\n"
        "print(sorted(m for m in ('pandas', 'matplotlib', 'seaborn', 'scipy', 'nbformat') if m in sys.modules))\n"
    )
    env = {**os.environ, "CONVBENCH_GRID": "default"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


MAX_FUNCTION_LINES = 60  # from its def to its last line, docstring included: short enough to read at once


def test_no_function_in_bench_lib_is_longer_than_a_screen():
    long = []
    for path in sorted((ROOT / "bench_lib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
