"""How much a convolution's time depends on where its buffers lie: one process, several layouts.

    python tests/tools/layout_levels.py [--channels 64] [--groups 64] [--batch 8] [--size 56] [--layouts 6]
                                        [--repeats 4] [--calls 100] [--cpu 1]

In one process with convbench's steady allocator (glibc keeps its memory: ``M_MMAP_MAX=0``, a trim
threshold of 1 GiB), one thread, optionally on one CPU: for each of ``--layouts`` layouts it draws the input
afresh (the one before it freed only after, and a small buffer of a new size kept between, so the input and
the output the call allocates land elsewhere in the heap), then times ``--repeats`` levels of ``--calls``
calls each (the median per call, ms), and prints where the input and an output lie within their 4 KiB pages.
A level is stable within a layout and moves between layouts where the op is sensitive to its buffers'
placement; docs/ab.md ("A process's memory layout") has what it printed.
Run it under ``THP_MEM_ALLOC_ENABLE=1`` for PyTorch's 2 MiB-aligned huge pages, as convbench's workers do.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import time

import torch

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
PAGE = 4096  # bytes: a base page; addresses that agree modulo it share their cache sets in L1


def level_ms(module: torch.nn.Module, x: torch.Tensor, calls: int) -> float:
    """The median time per call (ms) of ``calls`` calls, each timed alone."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        module(x)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--groups", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=56)
    p.add_argument("--layouts", type=int, default=6)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--cpu", type=int, default=None, help="the CPU to run on (default: any)")
    args = p.parse_args()
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    torch.set_num_threads(1)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    module = torch.nn.Conv2d(args.channels, args.channels, 3, padding=1, groups=args.groups).eval()
    kept, x = [], None
    print(f"conv 3x3 {args.channels} ch, groups {args.groups}, batch {args.batch}, {args.size}x{args.size}: "
          f"{args.repeats} levels of {args.calls} calls per layout (ms per call)")  # fmt: skip
    with torch.inference_mode():
        for layout in range(args.layouts):
            kept.append(torch.empty(layout * 123_457 + 1))  # moves the heap's free space between layouts
            x = torch.randn(args.batch, args.channels, args.size, args.size)  # the former input freed after
            for _ in range(5):
                module(x)
            y = module(x)
            offsets = x.data_ptr() % PAGE, y.data_ptr() % PAGE
            del y  # freed: the timed calls' outputs land where it lay
            levels = [level_ms(module, x, args.calls) for _ in range(args.repeats)]
            spread = (max(levels) - min(levels)) / statistics.median(levels) * 100
            text = " ".join(f"{v:.3f}" for v in levels)
            print(
                f"layout {layout}: {text}   within the layout {spread:.1f} %, median {statistics.median(levels):.3f}; "
                f"page offsets: input {offsets[0]}, output {offsets[1]}, apart {(offsets[1] - offsets[0]) % PAGE}"
            )


if __name__ == "__main__":
    main()
