"""One combination inside the asv worker: ``setup`` prepares it (or skips with the reason), ``track``
measures its metric. Every step reports one line to the events file (``CONVBENCH_EVENTS``).

Environment (the same at asv's discovery and run, which ``convbench run`` guarantees): see
:mod:`bench_lib.suite.grids` for ``CONVBENCH_GRID`` and ``CONVBENCH_DEVICES``;
``CONVBENCH_EVENTS`` is the JSON-lines file that gets one line per step (ok / skipped / failed with the
reason, time spent measuring, the measurement's context), appended atomically; ``CONVBENCH_CHECKS`` is
the run's JSON-lines file of reference checks already passed (the first process of a combination checks
its answer against float64, later rounds and metrics reuse the error it found).

Fault injection, to prove the path from a worker to a verdict:

- ``CONVBENCH_FAIL``: a regular expression; matching cases fail in ``setup`` (one failing combination
  loses no other result).
- ``CONVBENCH_SLOWDOWN``: ``REGEX=FACTOR``; matching cases do FACTOR times the work per timed call (real
  extra calls of the step, spread evenly: :func:`bench_lib.measure.harness.slowed`). Every latency and
  energy result it touched says so in its ``injected`` field.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from bench_lib.files import append_line, read_json_lines
from bench_lib.measure import devices, fresh, harness, kernels, metrics
from bench_lib.measure import timing as measuring
from bench_lib.suite.combination import PLAIN, Combination, Event
from bench_lib.suite.grids import Grid, grid

TRACEBACK_FRAMES = 5  # frames of a failure's traceback kept in its event
MAX_SLOWDOWN = 100.0  # the largest CONVBENCH_SLOWDOWN factor accepted


@dataclass(frozen=True)
class Slowdown:
    """A planted regression: cases matching ``pattern`` do ``factor`` times the work per call."""

    pattern: str
    factor: float

    @classmethod
    def parse(cls, text: str) -> Slowdown:
        """``'REGEX=FACTOR'`` (the last ``=`` splits, so the regex may hold ``=``); ValueError naming the
        variable and the accepted form otherwise."""
        where = f"CONVBENCH_SLOWDOWN={text!r}"
        regex, sep, factor_text = text.rpartition("=")
        if not sep or not regex:
            raise ValueError(f"{where}: write REGEX=FACTOR, e.g. '^depthwise\\(=1.25'")
        try:
            re.compile(regex)
            factor = float(factor_text)
        except re.error as e:
            raise ValueError(f"{where}: {regex!r} is not a regular expression: {e}") from None
        except ValueError:
            raise ValueError(f"{where}: factor {factor_text!r} is not a number (accepted: 1 to 100)") from None
        if not 1 <= factor <= MAX_SLOWDOWN:
            raise ValueError(f"{where}: factor {factor:g} is out of range (accepted: 1 to {MAX_SLOWDOWN:g})")
        return cls(regex, factor)

    def touches(self, c: Combination) -> bool:
        """Latency and energy of matching cases (not the plain suite: its process is a fresh interpreter)."""
        planted = c.metric in ("latency", "energy") and c.suite != PLAIN
        return planted and re.search(self.pattern, c.case) is not None

    def describe(self) -> str:
        return f"slowdown x{self.factor:g} (CONVBENCH_SLOWDOWN={self.pattern}={self.factor:g})"


def slowdown() -> Slowdown | None:
    text = os.environ.get("CONVBENCH_SLOWDOWN")
    return Slowdown.parse(text) if text else None


@dataclass
class Ready:
    """A prepared combination: what ``setup`` leaves for the ``track_*`` method."""

    combination: Combination
    prepared: harness.Prepared
    grid: Grid
    planted: Slowdown | None = None  # the slowdown planted in this combination, if any

    @property
    def injected(self) -> str | None:
        return self.planted.describe() if self.planted else None


def side_fields() -> dict[str, Any]:
    """The A/B side and pair this process measures (``CONVBENCH_SIDE``, ``CONVBENCH_PAIR``: set by
    :mod:`bench_lib.suite.ab`), or nothing outside an A/B run."""
    side, pair = os.environ.get("CONVBENCH_SIDE"), os.environ.get("CONVBENCH_PAIR")
    return {"side": side, "pair": int(pair) if pair else None} if side else {}


def _event(c: Combination, status: str, pid: int | str | None = None, **fields: Any) -> None:
    path = os.environ.get("CONVBENCH_EVENTS")
    if path:
        found = {**side_fields(), **fields}  # a field given here (a dead process's pair) wins
        Event(c, status, found, pid=pid or os.getpid(), torch_version=torch.__version__).append_to(path)


def died(c: Combination, why: str, pid: int | None, pair: int | None) -> None:
    """The failure of a measuring process that could not say it (killed by a signal, or timed out), written
    by its server for it."""
    _event(c, "failed", pid=pid, error=f"the measuring process {why}", pair=pair)


def canary(spec: str, when: str) -> tuple[list[tuple[Any, metrics.Record]], float]:
    """Time the canary on ``spec`` and append its events (suite ``canary``, process ``canary-start`` or
    ``canary-end``); return what was timed and the seconds inside its windows. Raises where it fails."""
    from bench_lib.measure import canary as canaries

    timed = canaries.measure(spec)
    spent_s = 0.0
    for c, record in timed:
        combination = Combination("canary", "latency", c.case, c.batch, spec, "nchw", "float32", "inference")
        _event(combination, "ok", pid=f"canary-{when}", measure_s=record.measure_s, **record.fields)
        spent_s += record.measure_s
    return timed, spent_s


def _failure(e: BaseException) -> dict[str, str]:
    return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=TRACEBACK_FRAMES)}


@dataclass
class Fresh:
    """A combination of the plain suite, ready: what its fresh process will measure, the answer checked."""

    combination: Combination
    spec: fresh.ProcessSpec


def setup(c: Combination) -> Ready | Fresh:
    """Prepare one combination, or raise ``NotImplementedError`` (asv: skipped) with the reason.

    A wrong result or any other error is logged as a failure and re-raised (asv: failed).
    """
    g = grid()
    try:
        if c.suite == PLAIN:
            return _setup_plain(c, g)
        prepared = _prepare(c, g)
        planted = slowdown()
        if planted and planted.touches(c):
            prepared.step = harness.slowed(prepared.step, planted.factor)
        else:
            planted = None
    except NotImplementedError as e:
        _event(c, "skipped", reason=str(e))
        raise
    except Exception as e:
        _event(c, "failed", **_failure(e))
        raise
    return Ready(c, prepared, g, planted)


def _setup_plain(c: Combination, g: Grid) -> Fresh:
    """The plain suite's combination: its answer checked in a fresh process of its own (or by an earlier
    process of the run: the ops suite's same combination shares the check), so that the measured process
    never holds the float64 reference's large buffers (:mod:`bench_lib.measure.fresh`)."""
    reason = g.excluded(c)
    if reason:
        raise harness.Unsupported(reason)
    _inject_failure(c)
    spec = fresh.ProcessSpec(c.task(allocator="plain"), timing=dict(g.timing), checked_error=_checked_error(c))
    if spec.checked_error is None:
        spec = replace(spec, checked_error=fresh.check(spec))
        _remember_check(c, spec.checked_error)
    return Fresh(c, spec)


def _inject_failure(c: Combination) -> None:
    inject = os.environ.get("CONVBENCH_FAIL")  # fault injection: proves one failure loses nothing else
    if inject and re.search(inject, c.case):
        raise RuntimeError(f"injected failure: CONVBENCH_FAIL={inject!r} matches {c.case!r}")


def _check_key(c: Combination) -> str:
    """The reference check's identity: every parameter but the metric (rounds and metrics share it)."""
    return "|".join(str(p) for p in c.params)


def _checked_error(c: Combination) -> float | None:
    """The relative error an earlier process of this run found for ``c``, or None (check it here)."""
    path = os.environ.get("CONVBENCH_CHECKS")
    if not path or not os.path.exists(path):
        return None
    key = _check_key(c)
    for record in read_json_lines(path):
        if record.get("key") == key and isinstance(record.get("relative_error"), float):
            return record["relative_error"]
    return None


def _remember_check(c: Combination, error: float) -> None:
    path = os.environ.get("CONVBENCH_CHECKS")
    if path:
        append_line(path, json.dumps({"key": _check_key(c), "relative_error": float(error)}))


def _prepare(c: Combination, g: Grid) -> harness.Prepared:
    reason = g.excluded(c)
    if reason:
        raise harness.Unsupported(reason)
    _inject_failure(c)
    backend = devices.backend(c.device)
    ok, why = metrics.get(c.metric).available(backend)
    if not ok:
        raise harness.Unsupported(f"{c.device}: {why}")
    known = _checked_error(c)
    references = os.environ.get("CONVBENCH_REFERENCES")
    prepared = harness.prepare(c.task(), backend=backend, checked_error=known, reference_dir=references)
    if known is None:
        _remember_check(c, prepared.relative_error)
    return prepared


def interleaved(ready: Ready, ask: Callable[[], str], answer: Callable[[str], None]) -> None:
    """Latency a sample at a time, on request (an A/B pair: :mod:`bench_lib.suite.ab` alternates the
    samples of its sides' processes): warm up and answer ``ready BLOCK MULTIPLE`` (its calls per sample, and
    the number they must stay a multiple of), then answer each ``sample [WARM]`` with its seconds per call
    (timed after ``WARM`` untimed calls), until ``done``; ``block N`` makes every later sample N calls
    (answered ``ok``); then the kernels' window, and the event as :func:`track` writes it."""
    c, prepared, timing = ready.combination, ready.prepared, ready.grid.timing
    period = harness.slowdown_period(ready.planted.factor) if ready.planted else 1
    sampler = measuring.Sampler(
        prepared.step,
        prepared.backend,
        min_sample_s=timing.get("min_sample_s", measuring.DEFAULT_TIMING.min_sample_s),
        max_warmup_s=timing.get("max_warmup_s", measuring.DEFAULT_TIMING.max_warmup_s),
        block_multiple=period,
        context=prepared.context,
    )
    try:
        with prepared.grad_mode():
            answer(f"ready {sampler.start()} {period}")
            while (request := ask()).startswith(("sample", "block")):
                if request.startswith("block"):
                    sampler.resize(int(request.split()[1]))
                    answer("ok")
                else:
                    _, _, warm = request.partition(" ")
                    answer(repr(sampler.sample(int(warm or 0))))
        m = sampler.done()
    except Exception as e:
        _event(c, "failed", **_failure(e))
        raise
    measure_s = m.warmup_s + sum(m.samples_s) * m.block
    extra = {"injected": ready.injected} if ready.injected else {}
    extra.update(kernels.capture(prepared).fields())
    _event(c, "ok", measure_s=measure_s, measurement=m.summary(), interleaved=True, **extra)


def track(ready: Ready | Fresh) -> Any:
    """Measure the combination's metric (:func:`bench_lib.measure.metrics.measure`; the plain suite: one
    fresh process, :func:`track_fresh`); return what asv stores (the metric's unit)."""
    if isinstance(ready, Fresh):
        return track_fresh(ready)
    started = time.perf_counter()
    period = harness.slowdown_period(ready.planted.factor) if ready.planted else 1
    settings = metrics.Settings(timing=ready.grid.timing, block_multiple=period)
    try:
        record = metrics.measure(ready.prepared, ready.combination.metric, settings)
    except Exception as e:
        _event(ready.combination, "failed", **_failure(e), measure_s=time.perf_counter() - started)
        raise
    extra = {"injected": ready.injected} if ready.injected else {}
    if ready.combination.metric == "latency":  # which kernel ran: a window of its own, after the timed one
        extra.update(kernels.capture(ready.prepared).fields())
    _event(ready.combination, "ok", measure_s=record.measure_s, **record.fields, **extra)
    return record.value


def track_fresh(ready: Fresh) -> float:
    """One fresh process of a plain-suite combination (:func:`bench_lib.measure.fresh.one`): its event
    holds the measurement, the kernels and what the process had (``process``, with the process's whole
    ``wall_s``: starting an interpreter and importing torch are outside ``measure_s``); returns its median."""
    c, started = ready.combination, time.perf_counter()
    try:
        record = fresh.one(ready.spec)
    except NotImplementedError as e:
        _event(c, "skipped", reason=str(e))
        raise
    except Exception as e:
        _event(c, "failed", **_failure(e), measure_s=time.perf_counter() - started)
        raise
    process = {k: record.get(k) for k in fresh.PROCESS_FACTS}
    found = {k: record.get(k) for k in ("kernel", "kernel_fallback", "kernels")}
    m = record["measurement"]
    measure_s = m["warmup_s"] + sum(m["samples_s"]) * m["block"]  # its timed window, as for every latency
    process["wall_s"] = time.perf_counter() - started
    _event(c, "ok", measure_s=measure_s, measurement=m, process=process, **found)
    return record["median_s"]
