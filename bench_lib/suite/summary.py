"""What a run did, from its events file: per combination and round, the counts, the time inside the
measuring windows, the processes' findings (allocator modes), and the summary printed at the end.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench_lib.files import read_json_lines
from bench_lib.measure import modes
from bench_lib.suite.combination import PLAIN, Combination


def read_events(path: Path) -> list[dict[str, Any]]:
    """The run's events (:class:`bench_lib.suite.combination.Event` lines), a half-written line skipped."""
    return read_json_lines(path)


@dataclass
class Summary:
    """How a run ended: its combinations' final words, and where its wall time went."""

    selected: int
    ok: int
    skipped: dict[str, int]
    failed: list[tuple[str, str]]  # (combination, error)
    excluded: dict[str, int]
    missing: int
    wall_s: float
    combinations_s: float  # inside the combinations' measuring windows
    run_level_s: float = 0.0  # inside the run's own windows: the roofline peaks, the canaries, the breakdowns
    interrupted: str | None = None  # the signal that stopped the run
    abandoned: int = 0  # combinations the stop left unmeasured
    kernels_s: float = 0.0  # in the kernels' windows (after each timed one: bench_lib.measure.kernels)
    multimodal: list[tuple[str, str]] = field(default_factory=list)  # (combination, its modes)
    allocator: list[tuple[str, str]] = field(default_factory=list)  # (plain combination, against steady)

    @property
    def measure_s(self) -> float:
        """Seconds inside every measuring window: the combinations' and the run's own."""
        return self.combinations_s + self.run_level_s

    @property
    def overhead_fraction(self) -> float:
        """The share of the wall time outside every measurement window: 1 - measure_s / wall_s."""
        return 1 - self.measure_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "selected": self.selected,
            "ok": self.ok,
            "skipped": self.skipped,
            "failed": [{"combination": c, "error": e} for c, e in self.failed],
            "excluded": self.excluded,
            "missing": self.missing,
            "wall_s": self.wall_s,
            "measure_s": self.measure_s,
            "run_level_s": self.run_level_s,
            "overhead_fraction": self.overhead_fraction,
            "interrupted": self.interrupted,
            "abandoned": self.abandoned,
            "kernels_s": self.kernels_s,
            "multimodal": [{"combination": c, "modes": t} for c, t in self.multimodal],
            "allocator_sensitive": [{"combination": c, "against_steady": t} for c, t in self.allocator],
        }


def summarise(
    selected: list[Combination],
    events: list[dict[str, Any]],
    excluded: Counter,
    wall_s: float,
    *,
    interrupted: str | None = None,
    attempted: set[Combination] | None = None,
    asv_errors: list[str] | None = None,
    run_level_s: float = 0.0,
) -> Summary:
    """Each selected combination's final word. One with no event at all was abandoned by a stop, or
    failed without a word: asv's error where asv itself failed, else a timeout or a dead worker.

    Time inside measurements: the combinations' events' ``measure_s``, and ``run_level_s``, the run's own
    windows (peaks, canaries, breakdowns) as the runner timed them (the canary's events are not counted
    again)."""
    last: dict[Combination, dict[str, Any]] = {}
    for e in events:
        last[Combination.from_event(e)] = e  # a combination's final word (setup and track both report)
    why = "; ".join(dict.fromkeys(asv_errors or [])) or "asv timed out or its worker died (see the asv log)"
    words = _final_words(selected, last, interrupted, attempted, why)
    combinations_s = sum(e.get("measure_s", 0.0) for e in events if e.get("suite") != "canary")
    kernels_s = sum(
        (e.get("kernels") or {}).get("capture_s") or 0.0 for e in events if isinstance(e.get("kernels"), dict)
    )
    multimodal, allocator = process_findings(events)
    return Summary(
        **words,
        multimodal=multimodal,
        allocator=allocator,
        selected=len(selected),
        excluded=dict(excluded),
        wall_s=wall_s,
        combinations_s=combinations_s,
        run_level_s=run_level_s,
        interrupted=interrupted,
        kernels_s=kernels_s,
    )


def _final_words(selected, last: dict, interrupted: str | None, attempted, why: str) -> dict[str, Any]:
    """Summary's counts from each selected combination's last event (``last``): ok, skipped by reason,
    failed with the error, and those with none: abandoned by a stop, else missing (failed with ``why``)."""
    skipped: Counter = Counter()
    failed = []
    ok = missing = abandoned = 0
    for p in selected:
        e = last.get(p)
        if e is None:
            if interrupted:
                abandoned += 1
            elif attempted is None or p in attempted:
                missing += 1
                failed.append((p.asv_name, f"no result: {why}"))
            continue
        if e["status"] == "ok":
            ok += 1
        elif e["status"] == "skipped":
            skipped[e["reason"]] += 1
        else:
            failed.append((p.asv_name, e.get("error", "unknown error")))
    return {"ok": ok, "skipped": dict(skipped), "failed": failed, "missing": missing, "abandoned": abandoned}


# How the sides' summaries of an A/B run make one (:func:`merge`): every field of Summary is in one of these
ADDED = ("selected", "ok", "missing", "combinations_s", "abandoned", "kernels_s")  # summed over the sides
COUNTED = ("skipped",)  # reason → count, added
LABELLED = ("failed", "multimodal", "allocator")  # (combination, text) lists: each named by its side
SHARED = ("excluded", "wall_s", "interrupted")  # the run's: the first side's
GIVEN = ("run_level_s",)  # the caller's


def merge(parts: list[Summary], labels: list[str], run_level_s: float) -> Summary:
    """One summary of an A/B run's sides' (``parts``, labelled ``labels``): by the tables above."""
    out: dict[str, Any] = {"run_level_s": run_level_s}
    for name in ADDED:
        out[name] = sum(getattr(p, name) for p in parts)
    for name in COUNTED:
        out[name] = dict(sum((Counter(getattr(p, name)) for p in parts), Counter()))
    for name in LABELLED:
        out[name] = [(f"side {x}: {c}", t) for x, p in zip(labels, parts, strict=True) for c, t in getattr(p, name)]
    for name in SHARED:
        out[name] = getattr(parts[0], name)
    return Summary(**out)


def process_findings(events: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What a run's per-process latencies say (:mod:`bench_lib.measure.modes`): the combinations whose
    processes fell into separate modes, and the plain-suite combinations whose fresh processes ran
    :data:`modes.ALLOCATOR_RATIO` or more slower than the same op under ``steady`` (the ops suite), each
    with its description. An A/B run's sides are judged apart."""
    values: dict[tuple, list[float]] = defaultdict(list)
    for e in events:
        median = (e.get("measurement") or {}).get("median_s") if isinstance(e.get("measurement"), dict) else None
        if e.get("status") == "ok" and e.get("metric") == "latency" and e.get("suite") != "canary" and median:
            values[(e.get("side"), Combination.from_event(e))].append(float(median))
    multimodal = []
    for (side, c), found in values.items():
        if modes.is_multimodal(m := modes.find(found)):
            multimodal.append((_named(c, side), modes.describe(m)))
    allocator = []
    for (side, c), found in values.items():
        steady = values.get((side, replace(c, suite="ops")))
        judged = modes.sensitivity(found, steady or []) if c.suite == PLAIN else None
        if judged and judged.sensitive:
            allocator.append((_named(c, side), judged.describe()))
    return multimodal, allocator


def _named(c: Combination, side: str | None) -> str:
    return c.asv_name + (f" [side {side}]" if side else "")


def print_summary(s: Summary, out=sys.stdout) -> None:
    print(
        f"\nconvbench run: {s.ok} combinations measured, {sum(s.skipped.values())} skipped, {len(s.failed)} "
        f"failed, of {s.selected} selected"
        + (f" (stopped by {s.interrupted}: {s.abandoned} not measured)" if s.interrupted else ""),
        file=out,
    )
    for reason, n in sorted(s.skipped.items(), key=lambda kv: -kv[1]):
        print(f"  skipped {n:4d}: {reason}", file=out)
    for reason, n in sorted(s.excluded.items(), key=lambda kv: -kv[1]):
        print(f"  not in this grid {n:4d}: {reason}", file=out)
    if s.multimodal:
        print(f"  multimodal {len(s.multimodal):4d}: per-process values in separate modes", file=out)
    for combo, text in s.multimodal[:50]:
        print(f"    {combo}: {text}", file=out)
    if s.allocator:
        print(f"  allocator-sensitive {len(s.allocator):4d}: fresh processes slower than steady", file=out)
    for combo, text in s.allocator[:50]:
        print(f"    {combo}: {text}", file=out)
    for combo, error in s.failed[:50]:
        print(f"  FAILED {combo}\n         {error}", file=out)
    if len(s.failed) > 50:
        print(f"  ... and {len(s.failed) - 50} more failures", file=out)
    print(
        f"  wall time {s.wall_s:.1f} s; inside measurements {s.measure_s:.1f} s (combinations "
        f"{s.combinations_s:.1f} s, peaks, canaries and breakdowns {s.run_level_s:.1f} s); overhead "
        f"{s.overhead_fraction:.1%} (asv discovery, process launch, setup, reference checks, kernel capture "
        f"{s.kernels_s:.1f} s = {s.kernels_s / s.wall_s if s.wall_s > 0 else 0.0:.1%} of the wall time)",
        file=out,
    )
