"""The script a user would write to time one workload: what a plain process runs.

A plain process measures the allocator state a user's process has (docs/allocator.md). That state is made
by everything the process allocated and freed before the timed calls, so the process must have done what
a user's script does and nothing else. Measured on the development VM (docs/allocator.md): importing
convbench's catalogue or harness before the timed calls put the float32 grouped 3×3 conv at 56×56 under
torch 2.12.1 in glibc's slow mode (about 500 page faults per call) in 5 or 6 of 6 processes, 3 of 6 even
after 50 warm-up calls, where a bare script is fast (no faults) in 6 of 6. So :func:`render` writes the script out:

1. ``import torch`` and ``from torch import nn``, then the source of every convbench class and helper the
   module is made of (a user's model file defines them too), nothing else of convbench;
2. the intra-op threads, the seed, the module built by its constructors (torch's default initialisation in
   the catalogue's order: the very weights :func:`bench_lib.catalogue.registry.build` gives), the input
   drawn as :func:`bench_lib.catalogue.registry.example_input` draws it, the dtype and layout applied as
   :func:`bench_lib.measure.harness.prepare` applies them;
3. the calls timed by :func:`bench_lib.measure.timing.time_callable` with the host clock; that module
   imports the standard library only, and the script imports it at its top, before torch, where a user's
   script imports ``time`` or ``statistics`` (imported between building the module and the first call,
   even this small module put the grouped conv above in the slow mode in 5 of 6 processes);
4. only then convbench itself (:func:`bench_lib.measure.fresh.report`): glibc's heap is read first, then
   the kernels are captured and the record printed.

``convbench measure ... --allocator plain --script`` prints the script, so that a user can run it as is.
CPU and inference only, as the plain suite (its answer is checked in a process of its own beforehand).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

from torch import nn

import bench_lib
from bench_lib.catalogue import layers, registry
from bench_lib.catalogue.dtypes import DTYPES
from bench_lib.measure import devices, harness
from bench_lib.measure.task import Task

PROJECT_ROOT = Path(bench_lib.__file__).resolve().parent.parent  # put on the script's path for step 3


class NotScriptable(ValueError):
    """A module this generator cannot write as a user's constructor call."""


def _arguments(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments of ``module`` read back from its attributes of the same names (torch's own
    modules keep them; convbench's classes keep theirs for this). A parameter ``bias`` becomes a flag;
    arguments at their default are left out, as a user leaves them out."""
    cls = type(module)
    args: dict[str, Any] = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name in ("device", "dtype"):
            continue
        if not hasattr(module, name):
            raise NotScriptable(f"{cls.__name__} does not keep its argument {name!r}")
        value = getattr(module, name)
        if name == "bias" and not isinstance(value, bool):
            value = value is not None
        if isinstance(value, tuple) and len(set(value)) == 1:
            value = value[0]  # (3, 3) as a user writes it: 3
        if p.default is not p.empty and value == p.default:
            continue
        args[name] = value
    return args


def constructor(module: nn.Module) -> str:
    """``module`` as the constructor call that builds it (``nn.Conv2d(64, 64, 3, padding=1, groups=4,
    bias=False)`` for torch's modules, ``PartialConv(...)`` for a class of :mod:`layers`)."""
    cls = type(module)
    if cls.__module__.startswith("torch.nn"):
        name = f"nn.{cls.__name__}"
    elif cls.__module__ == layers.__name__:
        name = cls.__name__
    else:
        raise NotScriptable(f"{cls.__module__}.{cls.__name__} is neither torch's nor convbench's")
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in _arguments(module).items())})"


USER_METHODS = ("__init__", "forward")  # what a user's own class has; convbench's tracing stays out


def _needs(obj: Any, found: dict[str, Any]) -> None:
    """Every class and function of :mod:`layers` that ``obj`` (a class or function there) needs to build and
    run (the names its user source reads: bases, what ``__init__`` and ``forward`` call), then ``obj``,
    into ``found``."""
    names = {n.id for n in ast.walk(ast.parse(_user_source(obj))) if isinstance(n, ast.Name)}
    for name in sorted(names):
        dep = getattr(layers, name, None)
        ours = (inspect.isclass(dep) or inspect.isfunction(dep)) and dep.__module__ == layers.__name__
        if ours and name not in found and dep is not obj:
            _needs(dep, found)
    found[obj.__name__] = obj


def _user_source(obj: Any) -> str:
    """``obj``'s source as a user writes it: a function whole, a class with its docstring, ``__init__`` and
    ``forward`` only."""
    tree = ast.parse(inspect.getsource(obj))
    node = tree.body[0]
    if isinstance(node, ast.ClassDef):
        node.decorator_list = []
        node.body = [
            n
            for i, n in enumerate(node.body)
            if (i == 0 and isinstance(n, ast.Expr)) or (isinstance(n, ast.FunctionDef) and n.name in USER_METHODS)
        ]
    return ast.unparse(node)


def definitions(module: nn.Module) -> str:
    """The source of the :mod:`layers` classes and functions ``module`` is made of, in the order they are
    defined there ('' for a module of torch's alone)."""
    found: dict[str, Any] = {}
    for m in module.modules():
        if type(m).__module__ == layers.__name__:
            _needs(type(m), found)
    ordered = sorted(found.values(), key=lambda o: inspect.getsourcelines(o)[1])
    return "\n\n\n".join(_user_source(o) for o in ordered)


def build_source(task: Task) -> str:
    """The part of the user's script for ``task`` that builds it: the definitions, the threads, the seed, the
    module, the input, the dtype and the layout (it needs ``torch`` and ``nn`` imported).
    :class:`bench_lib.measure.harness.Unsupported` where the device cannot run it, NotScriptable beyond CPU
    inference."""
    backend = devices.backend(task.device)
    harness.check_combination(backend, task.layout, task.dtype, task.mode)
    if backend.spec.kind != "cpu" or task.mode != "inference":
        raise NotScriptable("a user's script is written for CPU inference (the plain suite)")
    case = task.parsed
    module = registry.build(case.workload, **case.resolved)
    shape = registry.input_shape(case.workload, task.batch, case.height, case.width, **case.resolved)
    lines = [
        definitions(module),
        "",
        f"torch.set_num_threads({backend.spec.threads or devices.physical_cores()})",
        f"torch.manual_seed({task.seed})",
        f"module = {constructor(module)}",
        f"x = torch.randn({tuple(shape)}, generator=torch.Generator().manual_seed({task.seed}))",
    ]
    if task.dtype != "float32":
        name = DTYPES[task.dtype].name
        lines.append(f"module, x = module.to(torch.{name}), x.to(torch.{name})")
    if task.layout == "channels_last":
        lines.append("module, x = (t.to(memory_format=torch.channels_last) for t in (module, x))")
    return "\n".join([*lines, "module.eval()", ""]).lstrip("\n")


def render(spec) -> str:
    """The user's script for ``spec`` (a :class:`bench_lib.measure.fresh.ProcessSpec` under ``plain``): it
    builds the workload (:func:`build_source`), times it, then prints the process's record as one JSON line
    (:func:`bench_lib.measure.fresh.report`)."""
    task = spec.task
    what = f"{task.case} on {task.device}, {task.layout}, {task.dtype}"
    return _TEMPLATE.format(
        what=f"{what}, batch {task.batch}",
        root=str(PROJECT_ROOT),
        build=build_source(task),
        timing=dict(spec.timing),
        spec=spec.to_json(),
    )


_TEMPLATE = """\
# convbench's plain process: {what}.
# The script a user would write. convbench's timing module (the standard library only) is imported at the
# top, where a user's script imports time or statistics; convbench itself only once the calls are timed.
from __future__ import annotations

import sys

sys.path.insert(0, {root!r})
from bench_lib.measure.timing import HOST_CLOCK, time_callable  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402,F401


{build}


def step():
    return module(x)


with torch.inference_mode():
    measurement = time_callable(step, HOST_CLOCK, **{timing!r})

from bench_lib.measure import fresh  # noqa: E402  (convbench itself, after the timed window)

fresh.report({spec!r}, module, x, step, measurement)
"""
