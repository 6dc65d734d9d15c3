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


def module_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The bench_lib modules ``path`` imports, at any depth (lazy and TYPE_CHECKING imports too):
    ``from bench_lib.x import y`` names the module ``bench_lib.x.y`` where that is one, else ``bench_lib.x``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
            found |= set(subs) or ({node.module} & set(modules))
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names} & set(modules)
    return found


def import_graph() -> dict[str, set[str]]:
    """bench_lib's modules (packages by their ``__init__``) and the modules each imports."""
    modules = {}
    for path in (ROOT / "bench_lib").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    return {name: module_imports(path, modules) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_at_any_level_within_a_stage_included():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]] and cycles({**graph, "c": set()}) == []


MAX_MODULE_LINES = 500


def test_no_module_in_bench_lib_is_longer_than_its_limit():
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / "bench_lib").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


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


MAX_FUNCTION_LINES = 50  # from its def to its last line, docstring included: short enough to read at once


def test_no_function_in_bench_lib_is_longer_than_a_screen():
    long = []
    for path in sorted((ROOT / "bench_lib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
