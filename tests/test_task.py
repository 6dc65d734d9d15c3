"""The one identity of what is measured (bench_lib.measure.task.Task), and every path that builds it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from bench_lib.measure import fresh
from bench_lib.measure.task import Task
from bench_lib.suite.combination import PARAM_NAMES, Combination


def test_of_splits_the_tasks_own_fields_from_the_workloads_parameters():
    t = Task.of("grouped", in_channels=64, out_channels=128, groups=4, device="cpu-2t", batch=8, height=14, width=14)
    assert t.case == "grouped(in=64,out=128,g=4)@14x14"
    assert (t.device, t.batch, t.layout, t.allocator, t.seed) == ("cpu-2t", 8, "nchw", "steady", 0)
    assert t.asked() == {
        "layout": "nchw",
        "dtype": "float32",
        "mode": "inference",
        "batch": 8,
        "height": 14,
        "width": 14,
    }
    assert Task.of("depthwise").case == "depthwise@56x56"  # the stage size by default


def test_of_names_a_parameter_the_workload_does_not_take():
    with pytest.raises(ValueError, match="channels"):
        Task.of("depthwise", channels=8)


def test_a_combination_carries_every_field_of_its_task_but_the_how():
    c = Combination("ops", "latency", "depthwise(in=8)@16x16", 2, "cpu-1t", "channels_last", "bfloat16", "training")
    t = c.task(allocator="plain")
    assert t == Task("depthwise(in=8)@16x16", "cpu-1t", "channels_last", "bfloat16", "training", 2, allocator="plain")
    # the combination's parameters are the task's fields: one identity, not two that may drift apart
    task_fields = {f.name for f in dataclasses.fields(Task)}
    assert set(PARAM_NAMES) <= task_fields
    assert task_fields - set(PARAM_NAMES) == {"graph", "allocator", "seed"}


def test_a_process_spec_goes_to_json_and_back_whole():
    spec = fresh.ProcessSpec(
        Task.of("pointwise", in_channels=8, height=8, width=8, dtype="bfloat16", allocator="plain", seed=3),
        timing={"samples": 5, "max_time_s": 0.1},
        checked_error=1e-4,
    )
    assert fresh.ProcessSpec.from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json())["task"]["case"] == "pointwise(in=8)@8x8"


def test_the_measure_command_builds_the_task_its_arguments_name():
    from bench_lib.cli import measuring

    args = argparse.Namespace(
        name="grouped",
        device="cpu-1t",
        layout="channels_last",
        dtype="float32",
        mode="training",
        batch=4,
        height=28,
        width=28,
        allocator="cold",
        graph=False,
        samples=7,
        max_time=0.5,
    )
    spec = measuring._spec(args, {"in_channels": 32, "out_channels": 32, "groups": 8})
    assert spec.task == Task(
        "grouped(in=32,out=32,g=8)@28x28", "cpu-1t", "channels_last", "float32", "training", 4, allocator="cold"
    )
    assert spec.timing == {"samples": 7, "max_time_s": 0.5}


def test_a_prepared_workloads_context_records_its_task():
    from bench_lib.measure import harness

    task = Task.of("depthwise", in_channels=8, height=12, width=10, batch=2, layout="channels_last")
    ctx = harness.prepare(task).context
    assert ctx["case"] == "depthwise(in=8)@12x10" and ctx["workload"] == "depthwise"
    assert {k: ctx[k] for k in task.asked()} == task.asked()
    assert ctx["in_shape"] == [2, 8, 12, 10] and ctx["device"] == "cpu-1t"


def test_the_seed_fixes_the_weights_and_input():
    code = (
        "import torch\n"
        "from bench_lib.measure import harness\n"
        "from bench_lib.measure.task import Task\n"
        "a, b, c = (harness.prepare(Task('pointwise(in=4,out=4)@4x4', seed=s)) for s in (0, 0, 1))\n"
        "same = torch.equal(a.inputs, b.inputs) and torch.equal(a.module.weight, b.module.weight)\n"
        "print(same, torch.equal(a.inputs, c.inputs))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]
