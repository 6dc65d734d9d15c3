"""Fresh processes, as a user's script runs them: the allocator state a user's process really has.

convbench's other processes are forked (asv's forkserver, an A/B side's server) and put their allocator
under a policy: ``steady`` (memory kept: the best case) or ``cold`` (glibc's first thresholds held: the
worst case). A user's script is neither. A fresh interpreter imports torch, builds the module and runs it
under glibc's defaults, whose mmap threshold moves with what the process allocated and freed so far: a
large buffer is then either kept in the heap or mapped afresh on every call (a page fault per 4 KiB it
touches), by that process's history. :func:`run` measures that state, one process at a time:

1. the answer is checked once, in a process of its own (:func:`check`): the float64 reference frees
   large buffers, which would move glibc's threshold in a measured process;
2. under ``plain`` each measured process runs the script a user would write
   (:func:`bench_lib.measure.user_script.render`: torch, the module's own source, the timed calls, and
   convbench only after them; importing convbench before the calls moved a process between modes); under
   another policy a fresh interpreter (``python -m bench_lib.measure.fresh SPEC``) builds the workload
   under that policy without the reference;
3. both time the latency as everywhere (:func:`bench_lib.measure.timing.time_callable`), then read glibc's
   heap, capture the kernels and record what the process had (:func:`facts`: page faults per call, the
   heap, the buffers' alignment, huge pages) in one JSON line (:func:`report`; exit 3 and
   ``{"unsupported": why}`` where the combination cannot run here); a process that fails or times out
   gives a record with its ``error``.

The per-process values are what a mode analysis reads (:mod:`bench_lib.measure.modes`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench_lib.measure.task import Task

# fresh processes per combination of the plain suite and of `convbench measure --allocator plain`
# (a slow-mode share of 1 in 12 is seen)
PROCESSES = 12

PROCESS_TIMEOUT_S = 300.0  # one fresh process: import torch, build, time, capture
UNSUPPORTED_EXIT = 3  # a fresh process that cannot run its combination here (its one line says why)
# Set where `convbench run` asked its workers for PyTorch's huge pages itself (THP_MEM_ALLOC_ENABLE=1): a
# fresh process is then started without that setting, as a user's script would be.
RUN_SET_THP = "CONVBENCH_THP_SET_BY_RUN"


USER_ENV = "CONVBENCH_USER_ENV"  # a file holding the environment a plain process starts with (JSON)


def keep_user_environment(path: Path | str, env: dict[str, str] | None = None) -> str:
    """Write ``env`` (default: this process's, the user's as ``convbench run`` was started) to ``path`` for
    the run's plain processes (:func:`user_environment`); return the path."""
    from bench_lib.files import write_atomic

    write_atomic(path, json.dumps(dict(os.environ if env is None else env)))
    return str(path)


def user_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) as a user's script would have it. Inside a run (``USER_ENV`` names
    a file) the environment ``convbench run`` was started with (an A/B side's: with that side's variables),
    without what the run gave its workers (asv's and convbench's variables, ``PYTHONPATH``, huge pages), which
    a user's process does not have (their effect on the mode measured here was within chance:
    docs/allocator.md). Elsewhere ``env``
    without the huge pages a run asked for on its own (:data:`RUN_SET_THP`); a setting the user made
    stays."""
    env = dict(os.environ if env is None else env)
    kept = env.get(USER_ENV)
    if kept:
        try:
            with open(kept) as f:
                return dict(json.load(f))
        except (OSError, ValueError):
            pass  # gone or unreadable: the fallback below
    if env.pop(RUN_SET_THP, None) == "1":
        env.pop("THP_MEM_ALLOC_ENABLE", None)
    return env


SMAPS_ROLLUP = "/proc/self/smaps_rollup"


@dataclass(frozen=True)
class ProcessSpec:
    """What every fresh process measures: the task (its ``allocator``: the policy each process puts its
    allocator under, :mod:`bench_lib.measure.allocator`; ``graph`` only in one process: a fresh process
    measures the host allocator), the timing's keyword arguments, and the relative error an earlier process
    found (None: check here)."""

    task: Task
    timing: dict[str, float] = field(default_factory=dict)
    checked_error: float | None = None

    def to_json(self) -> str:
        return json.dumps({"task": self.task.as_dict(), "timing": self.timing, "checked_error": self.checked_error})

    @classmethod
    def from_json(cls, text: str) -> ProcessSpec:
        d = json.loads(text)
        return cls(Task.from_dict(d["task"]), d["timing"], d["checked_error"])


def prepare(spec: ProcessSpec, policy: str | None = None, backend=None):
    """:func:`bench_lib.measure.harness.prepare` of ``spec``'s task in this process, under ``policy``
    (default the task's), on ``backend`` (default the task's device)."""
    from bench_lib.measure import harness

    task = replace(spec.task, allocator=policy) if policy else spec.task
    return harness.prepare(task, backend=backend, checked_error=spec.checked_error)


def _offset(t: Any) -> int | None:
    """A tensor's address modulo 4 KiB (a page), or None where the step returned no tensor."""
    return int(t.data_ptr() % 4096) if hasattr(t, "data_ptr") else None


def _huge_pages_bytes() -> int | None:
    """Anonymous memory of this process on transparent huge pages (``AnonHugePages``), or None."""
    try:
        with open(SMAPS_ROLLUP) as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def facts(prepared, heap=None) -> dict[str, Any]:
    """What this process had after its timed window: glibc's heap (``heap``, else read now:
    :func:`allocator.heap_state`), the page offsets of the input, the weight and one call's output, and its
    memory on huge pages."""
    from bench_lib.measure import allocator

    heap = heap or allocator.heap_state()
    with prepared.grad_mode():
        out = prepared.step()
    weight = next(iter(prepared.module.parameters()), None)
    return {
        "heap": asdict(heap) if heap else None,
        "page_offset_bytes": {
            "input": _offset(prepared.inputs),
            "weight": _offset(weight),
            "output": _offset(out),
        },
        "anon_huge_pages_bytes": _huge_pages_bytes(),
    }


def record(prepared, m, heap=None) -> dict[str, Any]:
    """One process's record: its measurement ``m`` of ``prepared``, the kernels and :func:`facts`."""
    from bench_lib.measure import kernels

    found = facts(prepared, heap)  # before the capture allocates
    return {
        "pid": os.getpid(),
        "median_s": m.median_s,
        "min_s": m.min_s,
        "samples": len(m.samples_s),
        "block": m.block,
        "page_faults_per_call": m.page_faults_per_call,
        "allocator": m.context["allocator"],
        **kernels.capture(prepared).fields(),
        **found,
        "measurement": m.summary(),
    }


def measure_here(spec: ProcessSpec) -> dict[str, Any]:
    """Measure ``spec`` in this process, which must be fresh (a policy refuses another one before it)."""
    from bench_lib.measure import metrics

    prepared = prepare(spec)
    return record(prepared, metrics.measure(prepared, "latency", metrics.Settings(timing=spec.timing)).result)


def report(spec_json: str, module, inputs, step, measurement) -> None:
    """The end of a user's script (:mod:`bench_lib.measure.user_script`), after its timed window: glibc's
    heap read first, then the workload adopted with its context, the kernels captured, and the record
    printed as one JSON line."""
    from bench_lib.measure import allocator, devices, harness

    heap = allocator.heap_state()
    spec = ProcessSpec.from_json(spec_json)
    backend = devices.backend(spec.task.device)
    prepared = harness.adopt(spec.task, module, inputs, step, backend, allocator.apply("plain"), spec.checked_error)
    m = replace(measurement, context={**measurement.context, **prepared.context})
    _print(record(prepared, m, heap))


PROCESS_FACTS = ("pid", "page_faults_per_call", "allocator", "heap", "page_offset_bytes", "anon_huge_pages_bytes")


def _child(python: str, args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run ``python ARGS`` in the user's environment; its last line's record (an error record where it
    failed or timed out)."""
    try:
        out = subprocess.run([python, *args], capture_output=True, text=True, timeout=timeout_s, env=user_environment())
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout_s:g} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode == UNSUPPORTED_EXIT and lines:
        return json.loads(lines[-1])  # {"unsupported": why}
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return {"error": f"the process failed (exit {out.returncode}): {tail}"}
    return json.loads(lines[-1])


def _measured(spec: ProcessSpec, python: str, timeout_s: float) -> dict[str, Any]:
    """One measured process of ``spec``: under ``plain`` the user's script (written to a folder of its own,
    run as ``python script.py``), else ``python -m bench_lib.measure.fresh SPEC``."""
    if spec.task.allocator != "plain":
        return _child(python, ["-m", "bench_lib.measure.fresh", spec.to_json()], timeout_s)
    from bench_lib.measure import harness, user_script

    try:
        text = user_script.render(spec)
    except harness.Unsupported as e:
        return {"unsupported": str(e)}
    except user_script.NotScriptable as e:
        return {"unsupported": f"allocator plain: {e}"}
    with tempfile.TemporaryDirectory(prefix="convbench-plain-") as folder:
        path = os.path.join(folder, "user_script.py")
        with open(path, "w") as f:
            f.write(text)
        return _child(python, [path], timeout_s)


def _raise_unless_measured(found: dict[str, Any], what: str) -> None:
    if "unsupported" in found:
        from bench_lib.measure.harness import Unsupported

        raise Unsupported(found["unsupported"])
    if "error" in found:
        raise RuntimeError(f"{what} {found['error']}")


def check(spec: ProcessSpec, python: str = sys.executable, timeout_s: float = PROCESS_TIMEOUT_S) -> float:
    """The workload's relative error against float64, found in a fresh process of its own. RuntimeError
    with the process's last line where the check fails (a wrong result included)."""
    found = _child(python, ["-m", "bench_lib.measure.fresh", "--check", spec.to_json()], timeout_s)
    _raise_unless_measured(found, "the reference check")
    return float(found["relative_error"])


def one(spec: ProcessSpec, python: str = sys.executable, timeout_s: float = PROCESS_TIMEOUT_S) -> dict[str, Any]:
    """One fresh process of ``spec`` (its answer checked already: ``checked_error``): its record.
    :class:`bench_lib.measure.harness.Unsupported` where it cannot run here, RuntimeError where it failed."""
    found = _measured(spec, python, timeout_s)
    _raise_unless_measured(found, "the fresh process")
    return found


def run(
    spec: ProcessSpec, processes: int, python: str = sys.executable, timeout_s: float = PROCESS_TIMEOUT_S
) -> list[dict[str, Any]]:
    """``processes`` fresh processes of ``spec``, one after another (see the module docstring): one record
    each, in order."""
    if spec.checked_error is None:
        spec = replace(spec, checked_error=check(spec, python, timeout_s))
    return [_measured(spec, python, timeout_s) for _ in range(processes)]


def _print(found: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(found, default=str) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    from bench_lib.measure.harness import Unsupported

    args = sys.argv[1:] if argv is None else argv
    code = 0
    try:
        if args[0] == "--check":
            found = {"relative_error": prepare(ProcessSpec.from_json(args[1]), "steady").relative_error}
        else:
            found = measure_here(ProcessSpec.from_json(args[0]))
    except Unsupported as e:
        found, code = {"unsupported": str(e)}, UNSUPPORTED_EXIT
    _print(found)
    sys.exit(code)


if __name__ == "__main__":
    main()
