"""The host allocator's policy: part of every CPU measurement's context, because it changes results up to 7×.

With glibc's defaults a buffer above the (dynamic) mmap threshold is mapped fresh and returned to the
OS on every free, so each call pays a page fault per 4 KiB touched: a depthwise 3×3 conv over 64
channels at 56×56 takes ~1 ms per call with ~550 minor faults, against ~0.12 ms and none once the
memory is kept. A process that has been running a network is in the second state; a freshly forked
asv worker is in the first. Policies:

- ``steady`` (default): what a long-running process sees. With glibc, ``mallopt`` turns off mmap for
  allocations (``M_MMAP_MAX=0``) and keeps freed memory (``M_TRIM_THRESHOLD`` = 1 GiB); with a
  preloaded jemalloc or tcmalloc, that allocator as it is (they keep memory already).
- ``cold``: a fresh process's first calls, held there: glibc's initial thresholds (mmap and trim at
  128 KiB) set explicitly, which also stops glibc from raising its mmap threshold after the first large
  free (it would otherwise drift to ``steady`` after a single big tensor, e.g. the float64 reference).
- ``plain``: nothing set, as a user's script runs: glibc's dynamic thresholds move with what the process
  allocated and freed so far, so the state is whatever this process's history made it. Meaningful in a
  fresh interpreter that did nothing else (:mod:`bench_lib.measure.fresh` starts one per process); the
  state each process ended up in is recorded (:func:`heap_state`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

POLICIES = ("steady", "cold", "plain")

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024  # glibc's initial mmap and trim thresholds
_STEADY = [(_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30)]
_COLD = [
    (_M_MMAP_MAX, 65536),
    (_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD),
    (_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD),
]
_DESCRIPTIONS = {
    "steady": "glibc mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=1GiB) (steady)",
    "cold": "glibc mallopt(M_MMAP_THRESHOLD=M_TRIM_THRESHOLD=128KiB, fixed) (cold)",
    "plain": "glibc defaults, no mallopt (plain)",
}

_applied: dict[str, str | None] = {"policy": None}


def preloaded_allocator() -> str | None:
    """``jemalloc`` or ``tcmalloc`` if one is loaded into this process (LD_PRELOAD or linked), else None."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        maps = os.environ.get("LD_PRELOAD", "")
    for name in ("jemalloc", "tcmalloc"):
        if name in maps:
            return name
    return None


def _libc() -> ctypes.CDLL | None:
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    libc = ctypes.CDLL(path)
    return libc if hasattr(libc, "mallopt") else None


def apply(policy: str = "steady") -> str:
    """Put this process's allocator under ``policy``; return the description recorded in the context,
    with ``+ THP`` where PyTorch puts its large CPU tensors on huge pages (:func:`huge_pages`).

    Idempotent. ValueError for an unknown policy or ``cold`` under a preloaded allocator; RuntimeError for
    ``cold`` after ``steady`` in one process (``steady`` after ``cold`` is fine).
    """
    if policy not in POLICIES:
        raise ValueError(f"allocator={policy!r} is not valid; accepted: {', '.join(POLICIES)}")
    preloaded = preloaded_allocator()
    if preloaded is not None:
        description = f"{preloaded} (preloaded){huge_pages()}"
        if policy == "cold":
            raise ValueError(f"allocator='cold' reproduces glibc's defaults, but {preloaded} is preloaded")
        _applied["policy"] = policy
        return description
    libc = _libc()
    if libc is None:
        _applied["policy"] = policy
        return f"system allocator (no mallopt; policy not enforced){huge_pages()}"
    if policy in ("cold", "plain") and _applied["policy"] not in (None, policy):
        # glibc serves large requests from free heap chunks before it maps new ones: what steady kept stays;
        # and no mallopt can be taken back.
        raise RuntimeError(
            f"allocator={policy!r} needs a fresh process: this one is already under {_applied['policy']!r}"
        )
    settings = {"cold": _COLD, "steady": _STEADY, "plain": []}[policy]
    if _applied["policy"] != policy:
        if not all(libc.mallopt(param, value) == 1 for param, value in settings):
            raise RuntimeError(f"mallopt refused the {policy} settings")
        _applied["policy"] = policy
    return _DESCRIPTIONS[policy] + huge_pages()


THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"


def thp_mode(mode_file: str | None = None) -> str | None:
    """The kernel's transparent huge page mode (``always``, ``madvise`` or ``never``: the bracketed word of
    ``THP_MODE_FILE``), or None where the file cannot be read (not Linux)."""
    try:
        with open(mode_file or THP_MODE_FILE) as f:
            text = f.read()
    except OSError:
        return None
    return text[text.find("[") + 1 : text.find("]")] if "[" in text else None


def huge_pages(mode_file: str | None = None) -> str:
    """`` + THP`` when PyTorch will ask for transparent huge pages for its CPU tensors of 2 MiB and more
    (``THP_MEM_ALLOC_ENABLE`` is 1) and the kernel grants them (its mode is ``madvise`` or ``always``),
    else nothing."""
    if os.environ.get("THP_MEM_ALLOC_ENABLE") != "1":  # PyTorch 2.13 reads "1" only ("true" is ignored)
        return ""
    return " + THP" if thp_mode(mode_file) in ("madvise", "always") else ""


@dataclass(frozen=True)
class HeapState:
    """glibc's heap as ``mallinfo2`` sees it (bytes): ``mapped_bytes`` in chunks glibc mapped on their own
    (above its mmap threshold at the time), ``mapped_chunks`` their number, ``arena_bytes`` the main heap,
    ``free_bytes`` free inside it, ``top_bytes`` releasable at its top."""

    mapped_bytes: int
    mapped_chunks: int
    arena_bytes: int
    free_bytes: int
    top_bytes: int


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def heap_state() -> HeapState | None:
    """This process's :class:`HeapState`, or None without glibc's ``mallinfo2`` (glibc before 2.33, musl,
    macOS, or a preloaded allocator, whose heap glibc does not see)."""
    libc = _libc()
    if libc is None or preloaded_allocator() is not None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return HeapState(info.hblkhd, info.hblks, info.arena, info.fordblks, info.keepcost)
