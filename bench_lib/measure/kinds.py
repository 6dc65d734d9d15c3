"""Device kinds: every fact convbench keeps about ``cpu``, ``cuda`` and ``mps``, in one table.

A new kind of device is one :class:`DeviceKind` entry here plus its backend in :mod:`.devices`. Everything
else reads this table: the grids' batches, the paper tables' batch, the canary's sizes, the roofline's GEMM,
copy and convolution sizes, and which energy meter a kind has. Plain data: no torch import, so the CLI can
read it while it builds its help.
"""

from __future__ import annotations

from dataclasses import dataclass

# Dense convolutions a roofline's compute roof is measured on: (channels, height = width, batch, kernel) at
# the stage shapes the grids use, 1×1, 3×3 and 5×5 (the dense equivalent of an MBConv k=5 is a wide 5×5
# conv). oneDNN's efficiency moves with the shape, so one shape under-states the roof.
CPU_CONV_SHAPES = (
    (64, 56, 8, 3),
    (128, 28, 8, 3),
    (256, 14, 8, 3),
    (256, 32, 1, 3),
    (256, 28, 8, 1),
    (512, 7, 8, 1),
    (576, 7, 8, 5),
)
GPU_CONV_SHAPES = ((512, 64, 1, 3), (256, 56, 64, 3), (512, 14, 64, 1), (1024, 7, 64, 1), (576, 7, 64, 5))


@dataclass(frozen=True)
class DeviceKind:
    """What convbench runs on one kind of device, and at which sizes.

    ``spec_pattern``: the regular expression of its device specs (its named groups unique among the kinds: the
    backend reads them), and ``spec_help`` the same in words; ``throughput_batch``: the grids' batch beside 1;
    ``paper_batch``: the paper tables' batch (single-image CPU latency, GPU throughput); ``canary``: (GEMM edge,
    3×3 conv channels, its spatial size, its batch); ``gemm_size`` and ``copy_bytes``: the roofline's large GEMM
    edge and DRAM copy (big enough to reach the peak, small enough for a 2-core laptop); ``copy_levels``: copy
    working sets (source + destination bytes) that fit each cache level; ``conv_shapes``: the dense convolutions
    of the compute roof; ``energy_meter``: ``nvml``, ``rapl`` or None, with ``no_meter_reason`` where None.
    """

    name: str
    spec_pattern: str
    spec_help: str
    throughput_batch: int
    paper_batch: int
    canary: tuple[int, int, int, int]
    gemm_size: int
    copy_bytes: int
    copy_levels: tuple[int, ...]
    conv_shapes: tuple[tuple[int, int, int, int], ...]
    energy_meter: str | None
    no_meter_reason: str = ""


_CPU_LEVELS = tuple(2**k for k in range(14, 26))  # 16 KiB … 32 MiB
_GPU_LEVELS = tuple(2**k for k in range(20, 28))  # 1 MiB … 128 MiB (L2 is 40-60 MiB on recent GPUs)

KINDS = {
    k.name: k
    for k in (
        DeviceKind(
            "cpu",
            r"cpu(?:-(?P<threads>\d+)t)?",
            "cpu, cpu-Nt (N intra-op threads, N >= 1)",
            8,
            1,
            (512, 64, 56, 1),
            1024,
            256 * 2**20,
            _CPU_LEVELS,
            CPU_CONV_SHAPES,
            "rapl",
        ),
        DeviceKind(
            "cuda",
            r"cuda(?::(?P<index>\d+))?",
            "cuda, cuda:K",
            64,
            32,
            (4096, 256, 56, 32),
            8192,
            2**30,
            _GPU_LEVELS,
            GPU_CONV_SHAPES,
            "nvml",
        ),
        DeviceKind(
            "mps",
            "mps",
            "mps",
            64,
            32,
            (2048, 128, 56, 8),
            8192,
            2**30,
            _GPU_LEVELS,
            GPU_CONV_SHAPES,
            None,
            "no energy meter for MPS without sudo (powermetrics) or the optional zeus-apple-silicon",
        ),
    )
}


def spec_help() -> str:
    """Every kind's specs in words, for the CLI's help and the parser's errors."""
    helps = [k.spec_help for k in KINDS.values()]
    return f"{', '.join(helps[:-1])} or {helps[-1]}"


def kind(name: str) -> DeviceKind:
    """The kind called ``name`` (ValueError naming the accepted kinds otherwise)."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"device kind {name!r} is unknown; accepted: {', '.join(KINDS)}") from None
