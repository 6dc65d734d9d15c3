"""The host allocator's policy: part of every CPU measurement's context, because it changes results up to 7×.

With glibc's defaults a buffer above the (dynamic) mmap threshold is mapped fresh and returned to the
OS on every free, so each call pays a page fault per 4 KiB touched: a depthwise 3×3 conv over 64
channels at 56×56 takes ~1 ms per call with ~550 minor faults, against ~0.12 ms and none once the
memory is kept. A process that has been running a network is in the second state; a freshly forked
asv worker is in the first. Policies:

- ``steady`` (default): what a long-running process sees. With glibc, ``mallopt`` turns off mmap for
  allocations (``M_MMAP_MAX=0``) and keeps freed memory (``M_TRIM_THRESHOLD`` = 1 GiB); with a
  preloaded jemalloc or tcmalloc, that allocator as it is (they keep memory already).
- ``cold``: glibc's defaults, a fresh process's first calls. It cannot be restored once ``steady``
  was applied in the same process (glibc's dynamic threshold stays off): that is an error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource

POLICIES = ("steady", "cold")

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_BYTES = 1 << 30

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
    """Put this process's allocator under ``policy``; return the description recorded in the context.

    Idempotent for the same policy. ValueError for an unknown policy, RuntimeError for ``cold`` after
    ``steady`` in the same process.
    """
    if policy not in POLICIES:
        raise ValueError(f"allocator={policy!r} is not valid; accepted: {', '.join(POLICIES)}")
    preloaded = preloaded_allocator()
    if preloaded is not None:
        description = f"{preloaded} (preloaded)"
        if policy == "cold":
            raise ValueError(f"allocator='cold' reproduces glibc's defaults, but {preloaded} is preloaded")
        _applied["policy"] = policy
        return description
    if policy == "cold":
        if _applied["policy"] == "steady":
            raise RuntimeError("allocator='cold' needs a fresh process: 'steady' was applied in this one")
        _applied["policy"] = "cold"
        return "glibc defaults (cold)"
    libc = _libc()
    if libc is None:
        _applied["policy"] = policy
        return "system allocator (no mallopt; steady state not enforced)"
    if _applied["policy"] != "steady":
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES) == 1
        if not ok:
            raise RuntimeError("mallopt refused the steady-state settings")
        _applied["policy"] = "steady"
    return "glibc mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=1GiB) (steady)"


def minor_faults() -> int:
    """Minor page faults of this process so far (all threads)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
