"""One workload made ready to measure on one device, and checked before it is.

- :func:`prepare` builds what a :class:`bench_lib.measure.task.Task` names (a case such as
  ``grouped(in=64,out=128,k=3,g=4)@56x56`` on a device, in a layout, dtype and mode) and checks its output
  once against a float64 CPU reference, and returns the step to time (:class:`Prepared`).

Measuring a prepared workload is :func:`bench_lib.measure.metrics.measure`'s (and a network's per-part
times :func:`bench_lib.measure.breakdown.breakdown`'s): this module measures nothing and imports
neither. It knows nothing of asv; the asv suite calls it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from bench_lib import __version__
from bench_lib.catalogue import registry
from bench_lib.catalogue.cases import Case
from bench_lib.files import write_atomic
from bench_lib.measure import allocator, devices
from bench_lib.measure.devices import DTYPES, LAYOUTS, MODES, Backend, check_choice
from bench_lib.measure.task import Task


class Unsupported(NotImplementedError):
    """The combination cannot run here (device absent, dtype unsupported...). asv records it as skipped."""


class WrongResult(RuntimeError):
    """The device computed a wrong answer: recorded as a failure, never timed."""


# --------------------------------------------------------------------------------------------
# workloads on a device


@dataclass
class Prepared:
    """A workload ready to time: ``step()`` runs one call (forward, or forward + backward)."""

    module: torch.nn.Module
    inputs: torch.Tensor
    step: Callable[[], Any]
    backend: Backend
    context: dict[str, Any]
    mode: str
    relative_error: float

    def tensors(self) -> list[torch.Tensor]:
        """What stays resident between calls: the module's parameters and buffers, and the input."""
        return [*self.module.parameters(), *self.module.buffers(), self.inputs]

    @contextlib.contextmanager
    def grad_mode(self) -> Iterator[None]:
        """``torch.inference_mode`` for inference, autograd on for training: wrap every timed call."""
        if self.mode == "inference":
            with torch.inference_mode():
                yield
        else:
            with torch.enable_grad():
                yield


def check_combination(backend: Backend, layout: str, dtype: str, mode: str) -> None:
    """ValueError for an unknown layout/dtype/mode, :class:`Unsupported` for one the device cannot run."""
    check_choice("layout", layout, LAYOUTS)
    check_choice("dtype", dtype, list(DTYPES))
    check_choice("mode", mode, MODES)
    ok, reason = backend.available()
    if not ok:
        raise Unsupported(f"{backend.spec.text}: {reason}")
    ok, reason = backend.supports(dtype, mode)
    if not ok:
        raise Unsupported(f"{backend.spec.text}, {dtype}: {reason}")


def _to_layout(t: torch.Tensor | torch.nn.Module, layout: str):
    return t.to(memory_format=torch.channels_last) if layout == "channels_last" else t


def _relative_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    y = y.detach().to("cpu", torch.float64)
    denominator = torch.linalg.vector_norm(ref).item()
    difference = torch.linalg.vector_norm(y - ref).item()
    return difference / denominator if denominator > 0 else difference


def prepare(
    task: Task,
    *,
    backend: Backend | None = None,
    checked_error: float | None = None,
    reference_dir: str | Path | None = None,
) -> Prepared:
    """Build ``task``'s workload on its device (``backend``: one resolved already), check its answer
    against float64 on the CPU, return the step.

    ``checked_error``: the relative error an earlier process of the same run measured for this very task
    (same weights and input: the seed fixes them); the float64 reference is then skipped.
    ``reference_dir``: a run's folder of references (:func:`_reference`), shared by its processes: the
    other devices, layouts and dtypes of a case then reuse its float64 output instead of recomputing it.

    Raises ValueError for bad arguments, :class:`Unsupported` for a task the device cannot run,
    :class:`WrongResult` when the output is off by more than the dtype's tolerance
    (norm-wise relative; :mod:`bench_lib.catalogue.dtypes`).
    """
    backend = backend or devices.backend(task.device)
    check_combination(backend, task.layout, task.dtype, task.mode)
    case = task.parsed
    config = registry.resolve(case.workload, **case.params)
    registry.input_shape(case.workload, task.batch, case.height, case.width, **config)  # ValueError if it cannot
    _check_graph(task, backend)
    alloc = allocator.apply(task.allocator) if backend.spec.kind == "cpu" else "device allocator"
    backend.activate()

    torch.manual_seed(task.seed)
    module, x_cpu, ref = _reference(case, config, task, checked_error is None, reference_dir)
    torch_dtype = DTYPES[task.dtype].torch
    module, x = (_to_layout(t.to(device=backend.device, dtype=torch_dtype), task.layout) for t in (module, x_cpu))
    if backend.spec.kind == "cuda":
        torch.backends.cudnn.benchmark = True
    err, ref = _checked(module, x, ref, task, f"{case.workload} on {backend.spec.text}", checked_error)
    training = task.mode == "training"
    step = _training_step(module, x, ref, task.layout, task.seed) if training else _inference_step(module, x)
    if task.graph:
        step = _capture_cuda_graph(step, backend)
    return adopt(task, module, x, step, backend, alloc, err)


def _checked(module, x, ref, task: Task, where: str, checked_error: float | None) -> tuple[float, torch.Tensor]:
    """The relative error (:func:`_check`'s, or ``checked_error`` known already) and the output whose shape
    a training step's fixed gradient takes."""
    if checked_error is None:
        return _check(module, x, ref, f"{where} ({task.layout}, {task.dtype}, {task.mode})", task.dtype), ref
    if task.mode == "training":
        with torch.no_grad():
            ref = module(x)  # only its shape is used: the training step's fixed output gradient
    return checked_error, ref


def _check_graph(task: Task, backend: Backend) -> None:
    """:class:`Unsupported` where a CUDA graph is asked for and cannot be captured."""
    if task.graph and backend.spec.kind != "cuda":
        raise Unsupported(f"CUDA graphs need a CUDA device, not {backend.spec.text}")
    if task.graph and task.mode != "inference":
        raise Unsupported("CUDA graph capture is implemented for inference only")


def adopt(
    task: Task,
    module: torch.nn.Module,
    inputs: torch.Tensor,
    step: Callable[[], Any],
    backend: Backend,
    alloc: str,
    err: float,
) -> Prepared:
    """A workload built elsewhere (by :func:`prepare`, or by a user's script: :mod:`user_script`) as a
    :class:`Prepared` with its context; ``alloc``: the allocator in force, ``err``: its checked error."""
    context = _context(task, backend, tuple(inputs.shape), alloc, err)
    return Prepared(module, inputs, step, backend, context, task.mode, err)


def _context(task: Task, backend: Backend, in_shape: tuple[int, ...], alloc: str, err: float) -> dict[str, Any]:
    """What a measurement records about what was in force: the case, the device, the layout, dtype, mode and
    geometry asked for, the allocator, CUDA's settings, the reference check and the versions."""
    cuda = backend.spec.kind == "cuda"
    case = task.parsed
    return {
        "case": str(case),
        "workload": case.workload,
        "params": case.resolved,
        "device": backend.spec.text,
        "device_name": backend.describe(),
        "threads": backend.threads_in_force(),
        **task.asked(),
        "in_shape": list(in_shape),
        "allocator": alloc,
        "graph": task.graph,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if cuda else None,
        "relative_error": err,
        "torch_version": torch.__version__,
        "bench_lib_version": __version__,
    }


def _reference(
    case: Case,
    config: dict[str, Any],
    task: Task,
    compute: bool = True,
    cache_dir: str | Path | None = None,
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor | None]:
    """The float32 CPU module, its input, and its output computed in float64 (the reference; None when
    ``compute`` is false).

    With ``cache_dir``, the reference is kept there, rounded to float32 (half the bytes; it moves any
    relative error by at most 2**-24, 6e-8, against tolerances of 5e-3 and more), under a name made of
    everything that determines it; a later process reads it instead of running the float64 forward, which
    costs 3-4x the float32 one and was most of a default run's setup. A file that cannot be read is
    recomputed."""
    name, batch, height, width, seed, mode = case.workload, task.batch, case.height, case.width, task.seed, task.mode
    module = registry.build(name, **config)
    module.train(mode == "training")
    x_cpu = registry.example_input(name, batch, height, width, seed=seed, **config)
    if not compute:
        return module, x_cpu, None
    path = None
    if cache_dir is not None:
        identity = repr((name, sorted(config.items()), batch, height, width, seed, mode, torch.__version__))
        path = Path(cache_dir) / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.pt"
        try:
            return module, x_cpu, torch.load(path, weights_only=True).double()
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
            pass  # not there yet (or half-read by a concurrent writer's rename): compute it
    with torch.no_grad():
        ref = module.double()(x_cpu.double())
        module.float()
    if path is not None:
        rounded = ref.float()  # what every later process reads
        _keep(rounded, path)
        ref = rounded.double()
    return module, x_cpu, ref


def _keep(ref: torch.Tensor, path: Path) -> None:
    """Write ``ref`` to ``path`` atomically; a full disk only loses the saving, never the check."""
    buffer = io.BytesIO()
    torch.save(ref, buffer)
    with contextlib.suppress(OSError):
        write_atomic(path, buffer.getvalue())


def _check(module: torch.nn.Module, x: torch.Tensor, ref: torch.Tensor, what: str, dtype: str) -> float:
    """The output's relative error against the reference; :class:`WrongResult` beyond the dtype's tolerance."""
    with torch.no_grad():
        err = _relative_error(module(x), ref)
    if not err <= DTYPES[dtype].tolerance:  # also catches NaN
        raise WrongResult(
            f"{what}: relative error {err:.3g} against float64 on the CPU exceeds {DTYPES[dtype].tolerance:g}"
        )
    return err


def _inference_step(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    module.eval()

    def step() -> torch.Tensor:
        return module(x)

    return step


def _training_step(
    module: torch.nn.Module, x: torch.Tensor, ref: torch.Tensor, layout: str, seed: int
) -> Callable[[], None]:
    """Forward and backward of a fixed gradient, input gradients included (what theory's training MACs count)."""
    x.requires_grad_(True)
    grad_out = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed + 1)).to(
        device=x.device, dtype=x.dtype
    )
    grad_out = _to_layout(grad_out, layout) if grad_out.dim() == 4 else grad_out

    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).backward(grad_out)

    return step


def slowdown_period(factor: float) -> int:
    """Calls after which :func:`slowed` has done exactly ``factor`` times the work (1.25 → 4, 1.1 → 10)."""
    return Fraction(factor - math.floor(factor)).limit_denominator(100).denominator


def slowed(step: Callable[[], Any], factor: float) -> Callable[[], Any]:
    """``step`` doing ``factor`` times its work per call on average (fault injection, ``factor`` ≥ 1): every
    call runs the step once, and the extra ``factor - 1`` calls are spread evenly (a call runs it twice
    whenever the accumulated extra work reaches one whole call). Real work, never a sleep. The first call's
    output is released before the extra call, as between two ordinary calls: held, it made the extra call
    write a second buffer, and a planted 5 % measured up to 10 % on the depthwise convs (docs/ab.md)."""
    if factor < 1:
        raise ValueError(f"slowdown factor {factor} must be at least 1")
    extra = factor - 1
    owed = 0.0

    def step_slowed() -> Any:
        nonlocal owed
        owed += extra
        out = step()
        while owed >= 1:
            owed -= 1
            out = None  # released first, as between two calls
            out = step()
        return out

    return step_slowed


def _capture_cuda_graph(step: Callable[[], Any], backend: Backend) -> Callable[[], Any]:
    """Capture one inference call in a CUDA graph (warm-up on a side stream first); return its replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    g = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(g):
        step()
    backend.synchronize()
    return g.replay
