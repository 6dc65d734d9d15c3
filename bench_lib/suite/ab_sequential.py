"""Sequential sampling of an A/B run: which combinations still need pairs, and when the run's minutes end.

The run measures in passes, pass ``p`` giving pair ``p`` to every combination still *open*. At each look
(:func:`bench_lib.measure.intervals.looks` of the run's most pairs) a combination closes once every
comparison between its sides has a verdict (``slower``, ``faster`` or ``unchanged``) at the look's
confidence (:func:`bench_lib.measure.intervals.look_alpha`), or once a side has no measurement of it
(skipped or failed: more pairs would not tell more). The pairs left go to the combinations still open, up
to the run's most pairs or until its budget of minutes is spent: as Chromium's Pinpoint does, a run spends
its time where the answer is not yet known. Why the error rates hold under this stopping:
:mod:`bench_lib.measure.intervals`.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench_lib.measure import intervals
from bench_lib.suite.combination import Combination


@dataclass
class Sequential:
    """The open combinations of an A/B run of at most ``max_pairs`` pairs over the sides ``labels``, with a
    budget of ``budget_s`` seconds from ``started`` (None: no budget)."""

    combinations: list[Combination]
    labels: list[str]
    max_pairs: int
    budget_s: float | None = None
    started: float = field(default_factory=time.time)
    alpha: float = intervals.ALPHA
    factor: float = intervals.FACTOR
    closed: dict[int, int] = field(default_factory=dict)  # combination index → the pairs it had when closed
    skipped: list[int] = field(default_factory=list)  # looks not taken: the budget left too little after them
    look_alpha: float = field(init=False)  # the confidence of every look: alpha over the looks

    def __post_init__(self) -> None:
        self.look_alpha = intervals.look_alpha(self.alpha, self.max_pairs)

    @property
    def looks(self) -> tuple[int, ...]:
        return intervals.looks(self.max_pairs)

    def out_of_time(self, now: float | None = None) -> bool:
        """Whether the budget is spent (never, without one)."""
        return self.budget_s is not None and (now or time.time()) - self.started >= self.budget_s

    def open(self, pair: int, rounds_of) -> list[int]:
        """The indices of the combinations that get pair ``pair``: not closed, and measured that often
        (``rounds_of(c)`` is 1 for a metric measured once)."""
        return [i for i, c in enumerate(self.combinations) if i not in self.closed and pair < rounds_of(c)]

    def look(
        self, pairs: int, events: Callable[[], list[dict[str, Any]]], cut_short: bool = False, now: float | None = None
    ) -> list[int]:
        """After pass ``pairs`` (a count): at a look, close every open combination that is decided; return
        the indices closed now. ``events()`` reads the run's events, at a look only. A pass ``cut_short`` (by
        the budget or a stop) takes no look: it is the end, and a combination it left at fewer pairs is
        judged at the end at what its looks left (:func:`bench_lib.measure.intervals.end_alpha`), not at this
        look's count. A look the budget leaves too little time after (:func:`intervals.worth_a_look`, at
        ``now``) is skipped, and spends nothing."""
        if cut_short or pairs not in self.looks or pairs >= self.max_pairs:
            return []
        if not intervals.worth_a_look((now or time.time()) - self.started, self.budget_s):
            self.skipped.append(pairs)
            return []
        values = values_by_side(events())
        closing = []
        for i, c in enumerate(self.combinations):
            if i in self.closed:
                continue
            ratios = side_ratios(values.get(c, {}), self.labels)
            if ratios is None or intervals.decided(ratios, self.look_alpha, self.factor):
                self.closed[i] = pairs
                closing.append(i)
        return closing

    def describe(self) -> str:
        """A line on how the pairs were spent: combinations closed at each look, and those open at the end."""
        by_look = Counter(self.closed.values())
        closed = ", ".join(f"{k} at {pairs}" for pairs, k in sorted(by_look.items()))
        still = len(self.combinations) - len(self.closed)
        budget = f"; budget {self.budget_s / 60:g} min" if self.budget_s is not None else ""
        skipped = (
            f"; look at {', '.join(map(str, self.skipped))} skipped (the budget left too little after it)"
            if self.skipped
            else ""
        )
        return (
            f"  sequential (looks at {', '.join(map(str, self.looks))} pairs, each at alpha "
            f"{self.look_alpha:.2g}{budget}{skipped}): decided {closed or 'none'} "
            f"before the end; {still} measured to the end"
        )

    def as_dict(self) -> dict[str, Any]:
        """The run's record of it (the store's ``sequential``): what ``convbench compare`` needs to judge
        with the same confidence, and the rule the run stopped by."""
        return {
            "looks": list(self.looks),
            "alpha": self.alpha,
            "look_alpha": self.look_alpha,
            "factor": self.factor,
            "budget_s": self.budget_s,
            "skipped": list(self.skipped),
        }


@dataclass(frozen=True)
class Process:
    """One side's process of a pair: its value (seconds per call) and its samples in rounds (None where the
    pair was not interleaved)."""

    value_s: float
    samples_s: list[float] | None = None


def values_by_side(events: list[dict[str, Any]]) -> dict[Combination, dict[str, dict[int, Process]]]:
    """combination → side → pair → the process's value (the median of its samples, seconds per call) and,
    where the pair was interleaved (:attr:`Combination.interleaved`), its samples in the order of the pair's
    rounds; from the run's events: the ok ones with a side, a pair and a measurement."""
    found: dict[Combination, dict[str, dict[int, Process]]] = defaultdict(lambda: defaultdict(dict))
    for e in events:
        m = e.get("measurement") or {}
        if e.get("status") != "ok" or e.get("side") is None or e.get("pair") is None or "median_s" not in m:
            continue
        c = Combination.from_event(e)
        samples = m.get("samples_s") if c.interleaved else None
        found[c][e["side"]][int(e["pair"])] = Process(float(m["median_s"]), samples)
    return found


def side_ratios(by_side: dict[str, dict[int, Process]], labels: list[str]) -> list[list[float]] | None:
    """The log ratios of every two sides (in ``labels``' order) over the pairs both measured
    (:func:`bench_lib.measure.intervals.pair_log_ratio`); None where a side has no value at all (skipped or
    failed there: no comparison to wait for)."""
    if any(not by_side.get(label) for label in labels):
        return None
    out = []
    for a, b in itertools.combinations(labels, 2):
        shared = sorted(set(by_side[a]) & set(by_side[b]))
        d = [intervals.pair_log_ratio(*_args(by_side[a][p], by_side[b][p])) for p in shared]
        out.append([x for x in d if math.isfinite(x)])
    return out


def _args(a: Process, b: Process) -> tuple:
    return a.value_s, b.value_s, a.samples_s, b.samples_s
