"""The plain process is the script a user would write (bench_lib.measure.user_script)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from bench_lib.catalogue.cases import Case
from bench_lib.measure import fresh, harness, user_script
from bench_lib.measure.task import Task
from bench_lib.suite import grids

PLAIN = [Case.parse(c) for c in grids.plain_cases()]


def _spec(case: Case, checked_error: float | None = None, **over) -> fresh.ProcessSpec:
    return fresh.ProcessSpec(Task(str(case), allocator="plain", **over), checked_error=checked_error)


@pytest.mark.parametrize("case", PLAIN, ids=str)
@pytest.mark.parametrize(("dtype", "layout"), [("float32", "nchw"), ("bfloat16", "channels_last")])
def test_the_script_builds_the_very_module_and_input_convbench_measures(case, dtype, layout):
    spec = _spec(case, dtype=dtype, layout=layout, checked_error=0.0)
    try:
        prepared = fresh.prepare(spec, "steady")
    except harness.Unsupported as e:
        pytest.skip(str(e))
    threads = torch.get_num_threads()
    space = {"torch": torch, "nn": nn}
    try:
        exec(user_script.build_source(spec.task), space)  # the script's own text
    finally:
        torch.set_num_threads(threads)
    module, x = space["module"], space["x"]
    assert type(module).__name__ == type(prepared.module).__name__ and not module.training
    theirs = prepared.module.state_dict()
    assert list(module.state_dict()) == list(theirs)
    for name, value in module.state_dict().items():
        assert value.dtype == theirs[name].dtype and torch.equal(value, theirs[name]), name
    assert x.dtype == prepared.inputs.dtype and torch.equal(x, prepared.inputs)
    assert x.stride() == prepared.inputs.stride()  # the layout too
    with torch.inference_mode():
        assert torch.equal(module(x), prepared.step())  # the same computation, to the bit


def _imports_before_the_timed_window(text: str) -> list[str]:
    names = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.With):
            return names
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom):
            names.append(node.module)
    raise AssertionError("no timed window")


def test_the_script_imports_torch_and_the_light_timing_module_only_before_its_timed_calls():
    text = user_script.render(_spec(PLAIN[0], checked_error=0.0))
    assert _imports_before_the_timed_window(text) == ["__future__", "sys", "bench_lib.measure.timing", "torch", "torch"]
    assert text.index("bench_lib.measure.timing") < text.index("import torch")  # at the top, as `import time`


def test_the_timing_module_imports_nothing_of_convbench_nor_torch():
    code = "import sys, bench_lib.measure.timing as t; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('bench_lib', 'torch', 'numpy', 'psutil')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['bench_lib', 'bench_lib.measure', 'bench_lib.measure.timing']"


def test_a_module_is_written_as_the_constructor_call_a_user_writes():
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2, bias=False)
    assert user_script.constructor(conv) == (
        "nn.Conv2d(in_channels=8, out_channels=16, kernel_size=3, stride=2, padding=1, groups=2, bias=False)"
    )
    assert user_script.constructor(nn.Conv2d(4, 4, 1)) == "nn.Conv2d(in_channels=4, out_channels=4, kernel_size=1)"


def test_the_definitions_are_the_classes_and_helpers_the_module_needs_without_convbenchs_tracing():
    from bench_lib.catalogue import registry

    text = user_script.definitions(registry.build("channel_shuffle", in_channels=8, groups=2))
    assert [line for line in text.splitlines() if line.startswith(("def ", "class "))] == [
        "def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:",
        "class ChannelShuffle(nn.Module):",
    ]
    assert "trace_costs" not in text and "LayerCost" not in text
    assert user_script.definitions(nn.Conv2d(4, 4, 1)) == ""


def test_only_cpu_inference_is_written_and_an_absent_device_is_a_skip():
    with pytest.raises(user_script.NotScriptable, match="CPU inference"):
        user_script.render(_spec(PLAIN[0], mode="training"))
    record = fresh._measured(_spec(PLAIN[0], device="cuda:0", checked_error=0.0), sys.executable, 60)
    assert record["unsupported"].startswith("cuda:0: ")


def test_a_plain_process_records_the_script_it_ran_as_a_user_would_run_it(tmp_path):
    task = Task.of("depthwise", in_channels=8, height=16, width=16, allocator="plain")
    spec = fresh.ProcessSpec(task, timing={"samples": 5, "max_time_s": 0.1})
    path = tmp_path / "mine.py"
    path.write_text(user_script.render(fresh.replace(spec, checked_error=0.0)))
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["allocator"].startswith("glibc defaults, no mallopt (plain)") or "preloaded" in found["allocator"]
    assert found["measurement"]["context"]["case"] == "depthwise(in=8)@16x16"
    assert found["measurement"]["context"]["timer"] == "perf_counter" and found["samples"] >= 5


def test_measure_script_prints_the_plain_processs_script_and_refuses_another_policy(capsys):
    from bench_lib.cli import main

    assert main(["measure", "depthwise", "in_channels=8", "--height", "16", "--width", "16", "--allocator", "plain",
                 "--script"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert text.startswith("# convbench's plain process: depthwise") and "module = nn.Conv2d(" in text
    assert main(["measure", "depthwise", "--script"]) == 2
    assert capsys.readouterr().err.strip().endswith("--script prints a plain process's script: add --allocator plain")
