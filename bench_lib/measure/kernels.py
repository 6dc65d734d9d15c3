"""Which kernel ran: a window of its own, after the timed one, that says why a number is what it is.

PyTorch picks a convolution's implementation by dtype, layout, shape and CPU: oneDNN
(``aten::mkldnn_convolution``, and inside it a primitive implementation such as ``jit:avx2``,
``brg_conv_fwd:avx512_core`` or the reference ``ref:any``), or its own generic paths
(``aten::_slow_conv2d_forward``: im2col + GEMM; ``aten::slow_conv_dilated2d``). Users diagnose a slow
conv by hand with the profiler and oneDNN's verbose log; :func:`capture` does both for every measured
combination:

1. the ATen ops and their share of self time over :data:`CALLS` calls (the autograd profiler without
   Kineto on CPU and MPS: ~10 ms in a fresh process, where Kineto's first use costs ~2 s and a process
   forked after it hangs; with Kineto on CUDA, whose device kernels only it sees);
2. on CPU, the oneDNN primitives executed during one call and their implementations
   (``torch.backends.mkldnn.verbose``, whose lines oneDNN prints to the process's standard output: the
   file descriptor is redirected to a temporary file for that call);
3. :attr:`Kernels.kernel`, the signature verdicts compare (the ops above :data:`MAIN_SHARE` of self time,
   with their oneDNN implementations), and :attr:`Kernels.fallback`, a generic or reference kernel named
   as such (:data:`FALLBACK_OPS`, oneDNN's ``ref:`` implementations).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

CALLS = 2  # calls profiled (after the timed window: the op is warm)
MAIN_SHARE = 0.25  # an ATen op with at least this share of self time is part of the kernel signature (a lower
# share flips between processes for ops made of several small ATen ops, e.g. a channel shuffle)
SHOWN_SHARE = 0.01  # ops below this share of self time are not kept
MAX_OPS = 8  # ATen ops (or device kernels) kept, largest first
# ATen's generic paths, taken where no optimised backend takes the case
FALLBACK_OPS = {
    "aten::_slow_conv2d_forward": "im2col + GEMM, no oneDNN",
    "aten::_slow_conv2d_backward": "im2col + GEMM, no oneDNN",
    "aten::slow_conv_dilated2d": "generic dilated conv",
    "aten::slow_conv_transpose2d": "generic transposed conv",
    "aten::_nnpack_spatial_convolution": "NNPACK",
}
ONEDNN_REFERENCE = "ref"  # oneDNN's reference implementations: "ref:any", "ref:..."


@dataclass(frozen=True)
class Kernels:
    """What ran in one call: ``ops`` (ATen op, share of self time), ``onednn`` ("primitive impl", reorders
    left out, in first-seen order), ``device`` (device kernel, share of device time), ``note`` (what could
    not be seen, and why), ``capture_s`` (the window's seconds)."""

    ops: tuple[tuple[str, float], ...] = ()
    onednn: tuple[str, ...] = ()
    device: tuple[tuple[str, float], ...] = ()
    note: str | None = None
    capture_s: float = 0.0

    @property
    def kernel(self) -> str | None:
        """The signature: each main ATen op (sorted), its oneDNN implementations where oneDNN ran, the main
        device kernel where there is one, e.g. ``aten::mkldnn_convolution [convolution jit:avx2]``."""
        main = sorted(op for op, share in self.ops if share >= MAIN_SHARE)
        if not main:
            return None
        text = " + ".join(main)
        if self.onednn and any("mkldnn" in op for op in main):
            text += " [" + ", ".join(self.onednn) + "]"
        if self.device:
            text += " {" + self.device[0][0][:120] + "}"
        return text

    @property
    def fallback(self) -> str | None:
        """A generic or reference kernel among the main ones, named with why, or None."""
        found = [f"{op} ({FALLBACK_OPS[op]})" for op, share in self.ops if share >= MAIN_SHARE and op in FALLBACK_OPS]
        found += [f"oneDNN {p} (reference kernel)" for p in self.onednn if p.split(" ", 1)[-1].startswith("ref")]
        return "; ".join(found) or None

    def fields(self) -> dict[str, Any]:
        """What an event keeps (the store's ``kernel``, ``kernel_fallback`` and ``kernels`` columns)."""
        return {
            "kernel": self.kernel,
            "kernel_fallback": self.fallback,
            "kernels": {
                "aten": [[op, round(share, 4)] for op, share in self.ops],
                "onednn": list(self.onednn),
                "device": [[k, round(share, 4)] for k, share in self.device],
                "note": self.note,
                "capture_s": round(self.capture_s, 6),
            },
        }


def _shares(pairs: list[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    total = sum(t for _, t in pairs)
    if total <= 0:
        return ()
    ranked = sorted(((name, t / total) for name, t in pairs), key=lambda x: -x[1])
    return tuple((name, share) for name, share in ranked[:MAX_OPS] if share >= SHOWN_SHARE)


def aten_ops(step: Callable[[], Any], calls: int = CALLS) -> tuple[tuple[str, float], ...]:
    """ATen ops of ``calls`` calls with their share of self CPU time (the autograd profiler, no Kineto)."""
    with torch.autograd.profiler.profile(use_kineto=False) as prof:
        for _ in range(calls):
            step()
    return _shares([(e.key, e.self_cpu_time_total) for e in prof.key_averages() if e.key.startswith("aten::")])


def device_kernels(step: Callable[[], Any], sync: Callable[[], None], calls: int = CALLS):
    """(ATen ops by self CPU time, device kernels by self device time) of ``calls`` calls, with Kineto."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            step()
        sync()
    events = prof.key_averages()
    ops = _shares([(e.key, e.self_cpu_time_total) for e in events if e.key.startswith("aten::")])
    on_device = [(e.key, getattr(e, "self_device_time_total", 0.0)) for e in events]
    return ops, _shares([(k, t) for k, t in on_device if t > 0 and not k.startswith("aten::")])


@contextlib.contextmanager
def _stdout_to(path: str) -> Iterator[None]:
    """Standard output (the file descriptor: what C code prints) into ``path`` for the block."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 1)
    try:
        yield
    finally:
        _c_flush()
        os.dup2(saved, 1)
        os.close(saved)


def _c_flush() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


def parse_onednn(text: str) -> tuple[str, ...]:
    """The executed primitives of oneDNN's verbose lines as "kind impl" (``convolution jit:avx2``), each
    once, in order; reorders (layout conversions around the op) left out. Lines look like
    ``onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,forward_training,...`` (older releases:
    ``onednn_verbose,exec,cpu,convolution,...``)."""
    found: dict[str, None] = {}
    for line in text.splitlines():
        if not line.startswith(("onednn_verbose", "dnnl_verbose")):
            continue
        parts = line.split(",")
        if "exec" not in parts:
            continue
        at = parts.index("exec")
        if len(parts) < at + 4 or parts[at + 2] == "reorder":
            continue
        found[f"{parts[at + 2]} {parts[at + 3]}"] = None
    return tuple(found)


def onednn_primitives(step: Callable[[], Any]) -> tuple[str, ...]:
    """The oneDNN primitives one call of ``step`` executed (:func:`parse_onednn`)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "onednn.txt")
        with _stdout_to(path), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            step()
        with open(path, errors="replace") as f:
            return parse_onednn(f.read())


def capture(target) -> Kernels:
    """The kernels of ``target`` (a prepared workload or :class:`bench_lib.measure.metrics.Call`): ATen ops
    and oneDNN primitives on CPU, ATen ops and device kernels on CUDA, ATen ops elsewhere. A part that
    cannot be seen is named in ``note``; capture never fails a measurement."""
    started = time.perf_counter()
    kind = target.backend.spec.kind
    found: dict[str, Any] = {}
    notes = []
    with target.grad_mode():
        try:
            if kind == "cuda":
                found["ops"], found["device"] = device_kernels(target.step, target.backend.synchronize)
            else:
                found["ops"] = aten_ops(target.step)
        except Exception as e:  # the timing stands without it
            notes.append(f"profiler: {type(e).__name__}: {e}")
        if kind == "cpu":
            try:
                found["onednn"] = onednn_primitives(target.step)
            except Exception as e:
                notes.append(f"oneDNN verbose: {type(e).__name__}: {e}")
    if kind == "cuda":
        notes.append("cuDNN's algorithm is not exposed: the device kernels name it")
    return Kernels(**found, note="; ".join(notes) or None, capture_s=time.perf_counter() - started)
