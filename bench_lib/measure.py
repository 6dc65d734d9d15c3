"""Trustworthy timing and memory of one workload on one device: the numbers convbench stores.

- :func:`prepare` builds a workload on a device in a layout, dtype and mode, checks its output once
  against a float64 CPU reference, and returns the step to time.
- :func:`time_callable` times any zero-argument callable on a backend: warm-up until the time per call
  stops falling, then samples, each a block of k back-to-back calls between two synchronisations, k
  chosen so timer and synchronisation overhead stay under 1% of a sample.
- :func:`measure` does both and returns a :class:`Measurement` (samples in seconds per call, stats,
  page faults per call, and the context they were taken in).

This module knows nothing of asv; the asv suite calls it.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from bench_lib import __version__, allocator, devices, workloads
from bench_lib.cases import Case
from bench_lib.devices import DTYPES, LAYOUTS, MODES, Backend, MemoryReading, check_choice

# Norm-wise relative error ||y - y_ref|| / ||y_ref|| allowed against the float64 CPU reference.
# float32 allows TF32 convolutions (cuDNN's default) with room to spare; half types keep ~3 decimal digits.
TOLERANCE = {"float32": 5e-3, "bfloat16": 5e-2, "float16": 1e-2}
NOISY_CV = 0.05  # coefficient of variation above which a measurement is flagged noisy
OVERHEAD_FRACTION = 0.01  # timer + sync overhead allowed per sample


class Unsupported(NotImplementedError):
    """The combination cannot run here (device absent, dtype unsupported...). asv records it as skipped."""


class WrongResult(RuntimeError):
    """The device computed a wrong answer: recorded as a failure, never timed."""


@dataclass(frozen=True)
class Measurement:
    """Samples of one combination and their statistics. Times are seconds per call.

    ``samples_s[i]`` is the time of sample i divided by ``block`` (calls per sample).
    ``timer_overhead_s`` is the cost of one empty sample (sync + timer), ``page_faults_per_call``
    the minor page faults the process took per call while sampling.
    """

    samples_s: tuple[float, ...]
    block: int
    warmup_calls: int
    warmup_s: float
    timer_overhead_s: float
    page_faults_per_call: float
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def quartiles_s(self) -> tuple[float, float]:
        if len(self.samples_s) < 2:
            return self.samples_s[0], self.samples_s[0]
        q = statistics.quantiles(self.samples_s, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def iqr_s(self) -> float:
        q25, q75 = self.quartiles_s
        return q75 - q25

    @property
    def min_s(self) -> float:
        return min(self.samples_s)

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.samples_s)

    @property
    def cv(self) -> float:
        """Coefficient of variation (stdev / mean) of the samples."""
        if len(self.samples_s) < 2:
            return math.nan
        return statistics.stdev(self.samples_s) / self.mean_s

    @property
    def noisy_reason(self) -> str | None:
        if len(self.samples_s) < 3:
            return f"only {len(self.samples_s)} samples"
        if self.cv > NOISY_CV:
            return f"coefficient of variation {self.cv:.1%} > {NOISY_CV:.0%}"
        return None

    @property
    def noisy(self) -> bool:
        return self.noisy_reason is not None

    @property
    def calls(self) -> int:
        return self.block * len(self.samples_s)

    def summary(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (units in the keys)."""
        q25, q75 = self.quartiles_s
        return {
            "median_s": self.median_s,
            "iqr_s": self.iqr_s,
            "q25_s": q25,
            "q75_s": q75,
            "min_s": self.min_s,
            "mean_s": self.mean_s,
            "cv": self.cv,
            "samples_s": list(self.samples_s),
            "block": self.block,
            "noisy": self.noisy,
            "noisy_reason": self.noisy_reason,
            "warmup_calls": self.warmup_calls,
            "warmup_s": self.warmup_s,
            "timer_overhead_s": self.timer_overhead_s,
            "page_faults_per_call": self.page_faults_per_call,
            "context": self.context,
        }

    def __repr__(self) -> str:
        ctx = self.context
        what = ctx.get("case", "callable")
        return (
            f"<Measurement {what} on {ctx.get('device', '?')}: median {self.median_s * 1e6:.1f} us, "
            f"IQR {self.iqr_s * 1e6:.1f} us, {len(self.samples_s)} samples x {self.block} calls"
            f"{', NOISY' if self.noisy else ''}>"
        )


def _timer_overhead(timer: devices.BlockTimer, repeats: int = 25) -> float:
    return statistics.median(_time_block(timer, lambda: None, 0) for _ in range(repeats))


def _time_block(timer: devices.BlockTimer, fn: Callable[[], Any], calls: int) -> float:
    timer.start()
    for _ in range(calls):
        fn()
    return timer.stop()


def time_callable(
    fn: Callable[[], Any],
    backend: Backend,
    *,
    samples: int = 15,
    min_samples: int = 5,
    min_sample_s: float = 0.005,
    max_time_s: float = 2.0,
    max_warmup_s: float = 2.0,
    context: dict[str, Any] | None = None,
) -> Measurement:
    """Time ``fn()`` on ``backend``; return seconds-per-call samples.

    Warm-up runs blocks of calls (each at least ``min_sample_s``) until the time per call has not fallen
    by more than 2% for three blocks in a row, or ``max_warmup_s`` has passed. Then up to ``samples``
    samples of ``block`` calls each, where ``block`` makes a sample last at least ``min_sample_s`` and
    at least 100× the timer's own overhead; at least ``min_samples`` samples, at most ``max_time_s``
    of sampling beyond that minimum.
    """
    timer = backend.block_timer()
    overhead = _timer_overhead(timer)
    target = max(min_sample_s, overhead / OVERHEAD_FRACTION)

    # warm-up: the first call pays for lazy initialisation, caches, autotuning; time until it settles
    start = time.perf_counter()
    per_call = max(_time_block(timer, fn, 1) - overhead, 1e-9)
    calls, best, steady_rounds = 1, math.inf, 0
    while steady_rounds < 3 and time.perf_counter() - start < max_warmup_s:
        n = max(1, math.ceil(target / per_call))
        per_call = max((_time_block(timer, fn, n) - overhead) / n, 1e-9)  # net of the timer's own cost
        calls += n
        if per_call < best * 0.98:
            best, steady_rounds = per_call, 0
        else:
            steady_rounds += 1
        best = min(best, per_call)
    warmup_s = time.perf_counter() - start
    block = max(1, math.ceil(round(target / best, 6)))  # round: float noise must not add a call

    faults0 = allocator.minor_faults()
    taken: list[float] = []
    sampling_start = time.perf_counter()
    while len(taken) < samples:
        taken.append(_time_block(timer, fn, block) / block)
        if len(taken) >= min_samples and time.perf_counter() - sampling_start > max_time_s:
            break
    faults = allocator.minor_faults() - faults0
    return Measurement(
        samples_s=tuple(taken),
        block=block,
        warmup_calls=calls,
        warmup_s=warmup_s,
        timer_overhead_s=overhead,
        page_faults_per_call=faults / (block * len(taken)),
        context={"timer": backend.timer_name, **(context or {})},
    )


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
    name: str,
    *,
    device: str | Backend = "cpu-1t",
    layout: str = "nchw",
    dtype: str = "float32",
    mode: str = "inference",
    batch: int = 1,
    height: int = 56,
    width: int = 56,
    graph: bool = False,
    allocator_policy: str = "steady",
    seed: int = 0,
    **params: Any,
) -> Prepared:
    """Build ``name`` on the device, check its answer against float64 on the CPU, return the step.

    Raises ValueError for bad arguments, :class:`Unsupported` for a combination the device cannot run,
    :class:`WrongResult` when the output is off by more than ``TOLERANCE[dtype]`` (norm-wise relative).
    """
    backend = devices.backend(device) if isinstance(device, str) else device
    check_combination(backend, layout, dtype, mode)
    config = workloads.resolve(name, **params)
    in_shape = workloads.input_shape(name, batch, height, width, **config)
    if graph and backend.spec.kind != "cuda":
        raise Unsupported(f"CUDA graphs need a CUDA device, not {backend.spec.text}")
    if graph and mode != "inference":
        raise Unsupported("CUDA graph capture is implemented for inference only")
    alloc = allocator.apply(allocator_policy) if backend.spec.kind == "cpu" else "device allocator"
    backend.activate()

    torch.manual_seed(seed)
    reference_module = workloads.build(name, **config)
    reference_module.train(mode == "training")
    x_cpu = workloads.example_input(name, batch, height, width, seed=seed, **config)
    with torch.no_grad():
        ref = reference_module.double()(x_cpu.double())
        reference_module.float()

    torch_dtype = DTYPES[dtype]
    module = _to_layout(reference_module.to(device=backend.device, dtype=torch_dtype), layout)
    x = _to_layout(x_cpu.to(device=backend.device, dtype=torch_dtype), layout)
    if backend.spec.kind == "cuda":
        torch.backends.cudnn.benchmark = True

    with torch.no_grad():
        err = _relative_error(module(x), ref)
    if not err <= TOLERANCE[dtype]:  # also catches NaN
        raise WrongResult(
            f"{name} on {backend.spec.text} ({layout}, {dtype}, {mode}): relative error "
            f"{err:.3g} against float64 on the CPU exceeds {TOLERANCE[dtype]:g}"
        )

    if mode == "training":
        x.requires_grad_(True)
        grad_out = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed + 1)).to(
            device=backend.device, dtype=torch_dtype
        )
        grad_out = _to_layout(grad_out, layout) if grad_out.dim() == 4 else grad_out

        def step() -> None:
            module.zero_grad(set_to_none=True)
            x.grad = None
            module(x).backward(grad_out)
    else:
        module.eval()

        def step() -> torch.Tensor:
            return module(x)

    if graph:
        step = _capture_cuda_graph(step, backend)

    context = {
        "case": str(Case(name, dict(params), height, width)),
        "workload": name,
        "params": config,
        "device": backend.spec.text,
        "device_name": backend.describe(),
        "threads": backend.threads_in_force(),
        "layout": layout,
        "dtype": dtype,
        "mode": mode,
        "batch": batch,
        "height": height,
        "width": width,
        "in_shape": list(in_shape),
        "allocator": alloc,
        "graph": graph,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if backend.spec.kind == "cuda" else None,
        "relative_error": err,
        "torch_version": torch.__version__,
        "bench_lib_version": __version__,
    }
    return Prepared(module, x, step, backend, context, mode, err)


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


def measure(
    name: str,
    *,
    device: str = "cpu-1t",
    layout: str = "nchw",
    dtype: str = "float32",
    mode: str = "inference",
    batch: int = 1,
    height: int = 56,
    width: int = 56,
    graph: bool = False,
    allocator_policy: str = "steady",
    samples: int = 15,
    max_time_s: float = 2.0,
    **params: Any,
) -> Measurement:
    """Time one combination. See :func:`prepare` for errors and :func:`time_callable` for the method."""
    prepared = prepare(
        name,
        device=device,
        layout=layout,
        dtype=dtype,
        mode=mode,
        batch=batch,
        height=height,
        width=width,
        graph=graph,
        allocator_policy=allocator_policy,
        **params,
    )
    return time_prepared(prepared, samples=samples, max_time_s=max_time_s)


def time_prepared(prepared: Prepared, **timing: Any) -> Measurement:
    with prepared.grad_mode():
        return time_callable(prepared.step, prepared.backend, context=prepared.context, **timing)


# --------------------------------------------------------------------------------------------
# memory


@dataclass(frozen=True)
class MemoryMeasurement:
    """Peak memory of one call, in bytes.

    ``peak_bytes``: the most tensor memory live at once during the call, the workload's own tensors
    (weights, buffers, input, gradients) included. CUDA: ``max_memory_allocated`` after a reset (the
    caching allocator, cuDNN workspaces included). MPS: ``current_allocated_memory`` sampled. CPU: the
    workload's tensors plus the peak of live bytes that torch's profiler recorded during the call.
    ``rss_increase_bytes`` (CPU): how much the process's RSS rose during the call (sampled with psutil).
    ``device_used_bytes``: NVML's memory in use on the whole GPU, or MPS's driver-allocated memory.
    """

    peak_bytes: int | None
    source: str
    resident_bytes: int
    rss_increase_bytes: int | None = None
    device_used_bytes: int | None = None
    note: str | None = None

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def _tensor_bytes(prepared: Prepared) -> int:
    tensors = [*prepared.module.parameters(), *prepared.module.buffers(), prepared.inputs]
    return sum(t.numel() * t.element_size() for t in tensors)


def _profiled_allocation_peak(fn: Callable[[], Any]) -> tuple[int | None, str | None]:
    """Peak of live bytes allocated by ``fn`` on the CPU, from the profiler's allocation events."""
    # The autograd-level profiler: torch.profiler.profile would import torch._inductor on first use (~1 s).
    from torch.autograd.profiler import profile

    with profile(use_kineto=True, use_cpu=True, profile_memory=True) as prof:
        fn()
    try:
        from torch._C._profiler import _EventType  # the allocation events' own tags

        allocations: list[tuple[int, int]] = []
        stack = list(prof.kineto_results.experimental_event_tree())
        while stack:
            node = stack.pop()
            if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
                allocations.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
            stack.extend(node.children)
    except (AttributeError, ImportError) as e:  # private API; absent in some torch versions
        return None, f"torch's profiler exposes no allocation events here ({e})"
    live = peak = 0
    for _, size in sorted(allocations):
        live += size
        peak = max(peak, live)
    return peak, None


def measure_memory(prepared: Prepared) -> MemoryMeasurement:
    """Peak memory of one warmed-up call of ``prepared`` (see :class:`MemoryMeasurement`)."""
    backend = prepared.backend
    with prepared.grad_mode():
        prepared.step()  # warm: lazy workspaces and caches exist before the window
        probe = backend.memory_probe()
        probe.begin()
        prepared.step()
        reading: MemoryReading = probe.end()
        resident = _tensor_bytes(prepared)
        if backend.spec.kind != "cpu":
            return MemoryMeasurement(
                reading.peak_bytes, reading.source, resident, device_used_bytes=reading.device_used_bytes
            )
        peak, note = _profiled_allocation_peak(prepared.step)
    return MemoryMeasurement(
        None if peak is None else resident + peak,
        "workload tensors + torch.profiler allocation peak",
        resident,
        rss_increase_bytes=reading.peak_increase_bytes,
        note=note,
    )


# --------------------------------------------------------------------------------------------
# per-part breakdown of a network


def breakdown(prepared: Prepared, samples: int = 5, max_time_s: float = 0.05) -> list[dict[str, Any]]:
    """Seconds per call of each part of a sequential workload (a network's stem, blocks, head).

    Per-part replay, not hooks: one forward pass records each part's real input, then each part is
    timed alone on it with :func:`time_callable`. The parts' times add up to about the whole call (less
    what fusion across parts would save; more the per-part synchronisation). Inference only.
    """
    module = prepared.module
    if not isinstance(module, torch.nn.Sequential):
        raise ValueError(f"{prepared.context['workload']}: a breakdown needs a sequential workload (a network)")
    if prepared.mode != "inference":
        raise ValueError("mode='training': the per-part breakdown replays inference only")
    rows = []
    x = prepared.inputs
    with prepared.grad_mode():
        for name, part in module.named_children():
            m = time_callable(
                lambda p=part, i=x: p(i),
                prepared.backend,
                samples=samples,
                max_time_s=max_time_s,
                max_warmup_s=max_time_s,
                min_samples=3,
            )
            rows.append({"part": name, "median_s": m.median_s, "iqr_s": m.iqr_s, "block": m.block})
            x = part(x)
    return rows
