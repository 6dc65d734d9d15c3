"""Timing any zero-argument callable on a device: warm-up until the time per call stops falling, then
samples, each a block of k back-to-back calls between two synchronisations, k chosen so the timer and
synchronisation overhead stay under ``OVERHEAD_FRACTION`` of a sample. Returns a :class:`Measurement`
(samples in seconds per call, their statistics, page faults per call, and the context).

This module imports the standard library only: a plain process (:mod:`bench_lib.measure.user_script`)
imports it between building its workload and the first call, and anything larger allocated there moves
glibc's heap, and with it the mode the process lands in (docs/allocator.md, "What convbench's plain
process did differently").
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# A measurement is flagged noisy above this relative IQR (IQR / median of its samples), the statistic
# torch.utils.benchmark warns on at the same level. The one definition of within-run noise in convbench.
NOISY_RELATIVE_IQR = 0.10
OVERHEAD_FRACTION = 0.01  # timer + sync overhead allowed per sample


@dataclass(frozen=True)
class Timing:
    """How long and how much :func:`time_callable` samples (its keyword arguments): at most ``samples``
    samples, each of at least ``min_sample_s``, after at most ``max_warmup_s`` of warm-up; it stops at
    ``samples`` once ``min_time_s`` has passed, or at ``min_samples`` once ``max_time_s`` has. A grid's
    timing, ``convbench measure``'s flags and an A/B pair's stopping rule all start from
    :data:`DEFAULT_TIMING`."""

    samples: int = 15
    min_samples: int = 5
    min_sample_s: float = 0.005
    max_time_s: float = 2.0
    max_warmup_s: float = 2.0
    min_time_s: float = 0.0


DEFAULT_TIMING = Timing()


def minor_faults() -> int:
    """Minor page faults of this process so far (all threads)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class BlockTimer:
    """Times a block of calls: ``start()`` synchronises and starts, ``stop()`` synchronises, returns seconds."""

    def __init__(self, synchronize: Callable[[], None]):
        self._sync = synchronize
        self._t0 = 0.0

    def start(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        self._sync()
        return time.perf_counter() - self._t0


class Clock(Protocol):
    """What :func:`time_callable` needs of a device: a block timer and its name (a
    :class:`bench_lib.measure.devices.Backend` is one)."""

    timer_name: str

    def block_timer(self) -> BlockTimer: ...


class HostClock:
    """The host's clock around a block, nothing to synchronise: a CPU's timer without the device module
    (what a plain process times with)."""

    timer_name = "perf_counter"

    def block_timer(self) -> BlockTimer:
        return BlockTimer(lambda: None)


HOST_CLOCK = HostClock()


def relative_iqr(samples: Sequence[float]) -> float:
    """(q75 − q25) / median of ``samples`` (inclusive quartiles); NaN with fewer than two samples."""
    if len(samples) < 2:
        return math.nan
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return (q[2] - q[0]) / statistics.median(samples)


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
    def relative_iqr(self) -> float:
        """IQR / median: the within-run noise (see :func:`relative_iqr`)."""
        return relative_iqr(self.samples_s)

    @property
    def noisy_reason(self) -> str | None:
        if len(self.samples_s) < 3:
            return f"only {len(self.samples_s)} samples"
        if self.relative_iqr > NOISY_RELATIVE_IQR:
            return f"relative IQR {self.relative_iqr:.1%} > {NOISY_RELATIVE_IQR:.0%}"
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
            "relative_iqr": self.relative_iqr,
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


def _timer_overhead(timer: BlockTimer, repeats: int = 25) -> float:
    return statistics.median(_time_block(timer, lambda: None, 0) for _ in range(repeats))


def _time_block(timer: BlockTimer, fn: Callable[[], Any], calls: int) -> float:
    timer.start()
    for _ in range(calls):
        fn()
    return timer.stop()


def _warm_up(timer, fn: Callable[[], Any], overhead: float, target: float, max_warmup_s: float) -> tuple[int, float]:
    """Run blocks of calls of about ``target`` seconds until the time per call has not fallen by 2 % for
    three blocks in a row, or ``max_warmup_s`` has passed: the first calls pay for lazy initialisation,
    caches and autotuning. Return (calls made, the best seconds per call, net of the timer's overhead)."""
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
    return calls, best


@dataclass
class Sampler:
    """Timing a sample at a time: :meth:`start` warms up and sizes the block, each :meth:`sample` times one
    block, :meth:`done` returns the :class:`Measurement`. :func:`time_callable` is its loop; an A/B pair
    alternates the samples of two processes with it (:mod:`bench_lib.suite.ab`), so both sides see the same
    moments of the machine."""

    fn: Callable[[], Any]
    backend: Clock
    min_sample_s: float = DEFAULT_TIMING.min_sample_s
    max_warmup_s: float = DEFAULT_TIMING.max_warmup_s
    block_multiple: int = 1
    context: dict[str, Any] | None = None
    taken: list[float] = field(default_factory=list)

    def start(self) -> int:
        """Warm up (see :func:`time_callable`) and size the block; return the calls per sample."""
        self.timer = self.backend.block_timer()
        self.overhead = _timer_overhead(self.timer)
        target = max(self.min_sample_s, self.overhead / OVERHEAD_FRACTION)
        started = time.perf_counter()
        self.warmup_calls, best = _warm_up(self.timer, self.fn, self.overhead, target, self.max_warmup_s)
        self.warmup_s = time.perf_counter() - started
        block = max(1, math.ceil(round(target / best, 6)))  # round: float noise must not add a call
        self.block = math.ceil(block / self.block_multiple) * self.block_multiple
        self.faults0 = minor_faults()
        return self.block

    def resize(self, calls: int) -> None:
        """Time ``calls`` calls per sample from now on: an A/B pair's sides time the same number of calls
        per sample (:func:`bench_lib.suite.ab.common_block`). ValueError unless a positive multiple of
        ``block_multiple`` (a planted slowdown must stay whole in every sample)."""
        if calls < 1 or calls % self.block_multiple:
            raise ValueError(f"a block of {calls} calls is not a positive multiple of {self.block_multiple}")
        self.block = calls

    def sample(self, warm_calls: int = 0) -> float:
        """Time one block; its seconds per call (kept). ``warm_calls`` untimed calls go first: an A/B turn
        refills the caches the other sides' processes left cold before the clock starts."""
        for _ in range(warm_calls):
            self.fn()
        self.taken.append(_time_block(self.timer, self.fn, self.block) / self.block)
        return self.taken[-1]

    def done(self) -> Measurement:
        faults = minor_faults() - self.faults0
        return Measurement(
            samples_s=tuple(self.taken),
            block=self.block,
            warmup_calls=self.warmup_calls,
            warmup_s=self.warmup_s,
            timer_overhead_s=self.overhead,
            page_faults_per_call=faults / (self.block * len(self.taken)),
            context={"timer": self.backend.timer_name, **(self.context or {})},
        )


def time_callable(
    fn: Callable[[], Any],
    backend: Clock,
    *,
    samples: int = DEFAULT_TIMING.samples,
    min_samples: int = DEFAULT_TIMING.min_samples,
    min_sample_s: float = DEFAULT_TIMING.min_sample_s,
    max_time_s: float = DEFAULT_TIMING.max_time_s,
    max_warmup_s: float = DEFAULT_TIMING.max_warmup_s,
    min_time_s: float = DEFAULT_TIMING.min_time_s,
    block_multiple: int = 1,
    context: dict[str, Any] | None = None,
) -> Measurement:
    """Time ``fn()`` on ``backend``; return seconds-per-call samples.

    Warm-up runs blocks of calls (each at least ``min_sample_s``) until the time per call has not fallen
    by more than 2% for three blocks in a row, or ``max_warmup_s`` has passed. Then up to ``samples``
    samples of ``block`` calls each, where ``block`` makes a sample last at least ``min_sample_s`` and
    at least 100× the timer's own overhead. Sampling stops once it has ``samples`` samples and has lasted
    ``min_time_s`` (a short op gets more samples, not a shorter window: a window of a few milliseconds
    sees one moment of the machine), or once it has ``min_samples`` and has lasted ``max_time_s``.
    ``block`` is rounded up to a multiple of ``block_multiple`` (a planted slowdown's period, so that every
    sample holds its share of the extra calls).
    """
    sampler = Sampler(fn, backend, min_sample_s, max_warmup_s, block_multiple, context)
    sampler.start()
    sampling_start = time.perf_counter()
    while True:
        sampler.sample()
        elapsed_s = time.perf_counter() - sampling_start
        if enough(len(sampler.taken), elapsed_s, samples, min_samples, min_time_s, max_time_s):
            break
    return sampler.done()


def enough(taken: int, elapsed_s: float, samples: int, min_samples: int, min_time_s: float, max_time_s: float) -> bool:
    """The stopping rule of :func:`time_callable`: ``samples`` samples over at least ``min_time_s``, or
    ``min_samples`` once ``max_time_s`` has passed."""
    return (taken >= samples and elapsed_s >= min_time_s) or (taken >= min_samples and elapsed_s > max_time_s)
