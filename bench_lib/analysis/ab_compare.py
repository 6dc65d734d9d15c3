"""``convbench compare`` over A/B runs: each combination's pairs of processes, judged by the paired test.

When both selectors pick sides of the same A/B runs (``side=A`` / ``side=B``, or ``env=``/``torch=`` that
tell the sides apart), the evidence is each pair's log ratio (:mod:`bench_lib.analysis.paired`), not two
sets of runs minutes apart: drift common to a pair cancels, and the noise is that of the pairs themselves,
measured in the same run. Rows of other runs are left out (the note says so). The note also says what
differs between the sides besides their names: the torch build, oneDNN, MKL, CUDA, cuDNN, the CPU
capability and the variables each side set.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from bench_lib.analysis import noise, paired, series, verdicts
from bench_lib.errors import ArgumentError
from bench_lib.measure import intervals
from bench_lib.suite.combination import benchmark_name, interleaved

COMBINATION = series.COMBINATION
PAIR_KEYS = ["machine", *COMBINATION, "run_id", "pair"]


def _measured(rows: pd.DataFrame) -> pd.DataFrame:
    if "pair" not in rows:
        return rows.iloc[:0]
    return rows[(rows["suite"] != "canary") & rows["pair"].notna()]


def shared_runs(b_rows: pd.DataFrame, c_rows: pd.DataFrame) -> set[str]:
    """The A/B runs both selections have sides of."""
    b, c = _measured(b_rows), _measured(c_rows)
    return set(b["run_id"]) & set(c["run_id"]) if len(b) and len(c) else set()


def is_paired(b_rows: pd.DataFrame, c_rows: pd.DataFrame) -> bool:
    """Whether the comparison is paired: both selections hold sides of at least one common A/B run. An
    ArgumentError where both pick the same side of a run (a pair of a process with itself)."""
    shared = shared_runs(b_rows, c_rows)
    if not shared:
        return False
    b, c = _measured(b_rows), _measured(c_rows)
    both = set(zip(b["run_id"], b["side"], strict=True)) & set(zip(c["run_id"], c["side"], strict=True))
    if both:
        run_id, side = sorted(both)[0]
        raise ArgumentError(
            f"--baseline and --candidate both select side {side} of A/B run {run_id}: "
            "select one side each (side=A, side=B; or env=/torch= that tell them apart)"
        )
    return True


def compare(
    b_rows: pd.DataFrame, c_rows: pd.DataFrame, factor: float, alpha: float, runs: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, str]:
    """The paired comparison table (worst change first) and its note (see the module docstring)."""
    shared = shared_runs(b_rows, c_rows)
    b = _measured(b_rows)[lambda x: x["run_id"].isin(shared)]
    c = _measured(c_rows)[lambda x: x["run_id"].isin(shared)]
    left_out = (len(b_rows) - len(b)) + (len(c_rows) - len(c))
    merged = b.merge(c, on=PAIR_KEYS, suffixes=("_b", "_c"))
    at, keys = looks_of(runs), ["machine", *COMBINATION]
    counted = (pd.concat([b, c]).groupby(keys, sort=False)["pair"].max() + 1).to_dict()  # failed pairs too
    rotated = set(at) if runs is not None else None
    rows = [
        _row(key, g, factor, _alpha(g["run_id"].unique(), int(counted[key]), at, alpha), rotated)
        for key, g in merged.groupby(keys, sort=False)
    ]
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values("change", ascending=False, na_position="first").reset_index(drop=True)
    sides_b, sides_c = sorted(set(b["side"])), sorted(set(c["side"]))
    note = (
        f"paired: {len(shared)} A/B run(s), side {'/'.join(sides_b)} vs side {'/'.join(sides_c)}; per "
        f"combination the log ratios of its pairs of processes (interleaved, no sample after its own side's: a "
        f"pair's, the median of its rounds' log ratios; else of its processes' medians): "
        f"{paired.DESCRIPTION[paired.DEFAULT_TEST]}"
    )
    if any(len(at[r][0]) > 1 for r in shared if r in at):
        note += (
            f"; sequential ({_looks_text(at, shared)}): each interval at what its run's looks left of alpha "
            f"{alpha:g} (alpha / K at a look, all of it where the run ended before the first look; runs pooled: "
            "alpha over the sum of their looks)"
        )
    if left_out:
        note += f"; {left_out} rows of other runs or the canary left out"
    differs = identity_differences(runs, b, c) if runs is not None else ""
    return table, note + (f"; the sides differ in {differs}" if differs else "")


def looks_of(runs: pd.DataFrame | None) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """run id → (the looks of its sequential A/B run, the last its most pairs; the looks it skipped), from
    its ``sequential``; runs before schema 6 are absent (they looked once, at the end)."""
    if runs is None or "sequential" not in runs:
        return {}
    found = {}
    for r, text in zip(runs["run_id"], runs["sequential"], strict=True):
        if isinstance(text, str):
            record = json.loads(text)
            found[r] = (tuple(record["looks"]), tuple(record.get("skipped", ())))
    return found


def _alpha(runs, pairs: int, at: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], alpha: float) -> float:
    """The confidence of one combination's interval: in one sequential run, what its looks left after the
    ``pairs`` it was measured in (:func:`bench_lib.measure.intervals.judged_alpha`; failed pairs counted, as
    the run counted them; a look it skipped spent nothing); pooled over several runs, alpha over the sum of
    their looks (the union bound over every look that could have stopped them)."""
    if len(runs) == 1 and runs[0] in at:
        looks, skipped = at[runs[0]]
        return intervals.judged_alpha(alpha, looks, pairs, skipped)
    return alpha / sum(len(at[r][0]) if r in at else 1 for r in runs)


def _looks_text(at: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], shared: set[str]) -> str:
    found = {r: v for r, v in at.items() if r in shared}

    def said(looks: tuple[int, ...], skipped: tuple[int, ...]) -> str:
        left_out = f", {', '.join(map(str, skipped))} skipped" if skipped else ""
        return f"looks at {', '.join(map(str, looks))} pairs{left_out}"

    return "; ".join(said(*v) for v in dict.fromkeys(found.values()))


def _value(g: pd.DataFrame, suffix: str) -> pd.Series:
    v = g[f"{paired.VALUE}{suffix}"].where(g[f"{paired.VALUE}{suffix}"].gt(0), g[f"value{suffix}"])
    return v.where(g[f"status{suffix}"].eq("ok") & v.gt(0))


def _row(key: tuple, g: pd.DataFrame, factor: float, alpha: float, rotated: set[str] | None) -> dict:
    """One combination's paired row. ``rotated``: the runs whose turns never let a sample follow its own
    side's (those recording ``sequential``, schema 6 on; None: every run), whose interleaved pairs are read
    by their rounds."""
    out = dict(zip(["machine", *COMBINATION], key, strict=True))
    vb, vc = _value(g, "_b"), _value(g, "_c")
    ok = vb.notna() & vc.notna()
    rounds = g["run_id"].isin(rotated) if rotated is not None else pd.Series(True, index=g.index)
    rounds &= interleaved(out["suite"], out["metric"])
    judged = paired.judge(_log_ratios(g[ok], vb[ok], vc[ok], rounds[ok].to_numpy()), alpha)
    injected = g["injected_c"].dropna().tolist() + g["injected_b"].dropna().tolist()
    kernel_b, kernel_c = (_most_common(g, f"kernel{suffix}") for suffix in ("_b", "_c"))
    out.update(
        benchmark=benchmark_name(out["suite"], out["metric"]),
        unit=g["unit_b"].iloc[0],
        baseline=float(vb[ok].median()) if ok.any() else math.nan,
        candidate=float(vc[ok].median()) if ok.any() else math.nan,
        runs=f"{g['run_id'].nunique()}",
        rounds=f"{len(g)}/{len(g)}",
        pairs=judged["pairs"],
        injected=injected[0] if injected else None,
        noise_source=f"paired: {judged['pairs']} pairs",
        kernel_baseline=kernel_b,
        kernel_candidate=kernel_c,
        kernels=verdicts.kernel_note(kernel_b, kernel_c),
        **_percent(judged),
    )
    if not ok.any():
        status_b, status_c = _status(g, "_b"), _status(g, "_c")
        verdict = {("ok", "failed"): verdicts.NEW_FAILURE, ("failed", "ok"): verdicts.FIXED}.get((status_b, status_c))
        return {**out, "verdict": verdict or f"{status_b} / {status_c}"}
    return {**out, "verdict": verdicts.by_interval(judged["low"], judged["high"], factor)}


def _log_ratios(g: pd.DataFrame, vb: pd.Series, vc: pd.Series, rounds: np.ndarray) -> np.ndarray:
    """Each pair's ``d`` (:func:`bench_lib.measure.intervals.pair_log_ratio`): the median of its rounds' log
    ratios where ``rounds`` says so for its row and both processes kept their samples, else their values'.

    Only turns where no sample follows its own side's make a round's two samples alike: in the order of
    before (A B B A), sample k of one side followed its own and sample k of the other did not, every other
    round, and the rounds' ratios alternated by the 7-8 % that costs (docs/ab.md, "Which value per pair")."""
    none = [None] * len(g)
    sb, sc = (g.get(f"samples{s}", none) for s in ("_b", "_c"))
    return np.array(
        [
            intervals.pair_log_ratio(b, c, _listed(xb) if r else None, _listed(xc) if r else None)
            for b, c, xb, xc, r in zip(vb.to_numpy(dtype=float), vc.to_numpy(dtype=float), sb, sc, rounds, strict=True)
        ]
    )


def _listed(samples) -> list[float] | None:
    """A row's samples as a list (None where it kept none)."""
    return None if samples is None or not hasattr(samples, "__len__") or len(samples) == 0 else list(samples)


def _most_common(g: pd.DataFrame, column: str) -> str | None:
    """The kernel most of a side's processes ran (None where none was recorded)."""
    if column not in g:
        return None
    found = g[column].dropna()
    return str(found.mode().iloc[0]) if len(found) else None


def _percent(judged: dict) -> dict:
    change, detectable = judged["change"], judged["detectable"]
    return {
        "change": noise.percent(change) if math.isfinite(change) else math.nan,
        "ratio": math.exp(change) if math.isfinite(change) else math.nan,
        "detectable": noise.percent(detectable) if math.isfinite(detectable) else math.inf,
        "low": noise.percent(judged["low"]) if math.isfinite(judged["low"]) else -math.inf,
        "high": noise.percent(judged["high"]) if math.isfinite(judged["high"]) else math.inf,
    }


def _status(g: pd.DataFrame, suffix: str) -> str:
    statuses = set(g[f"status{suffix}"])
    return "ok" if "ok" in statuses else sorted(statuses)[0]


IDENTITY = ("torch_version", "torch_git", "cuda_version", "cudnn_version", "onednn_version", "mkl_version")
IDENTITY += ("cpu_capability", "python")


def side_identities(runs: pd.DataFrame, chosen: pd.DataFrame) -> list[dict]:
    """The ``sides`` entries (label, python, variables, env_name, identity) of the (run, side) pairs in
    ``chosen`` rows, from the runs table."""
    wanted = set(zip(chosen["run_id"], chosen["side"], strict=True))
    found = []
    for run_id, text in zip(runs["run_id"], runs["sides"], strict=True):
        if isinstance(text, str):
            found += [s for s in json.loads(text) if (run_id, s.get("label")) in wanted]
    return found


def identity_differences(runs: pd.DataFrame, b: pd.DataFrame, c: pd.DataFrame) -> str:
    """What differs between the two selections' sides: ``torch_version 2.12.1+cu128 → 2.13.0+cpu; ...``,
    their variables included ("" where nothing does)."""
    facts = []
    for chosen in (b, c):
        sides = side_identities(runs, chosen)
        merged: dict[str, set] = {}
        for s in sides:
            variables = {f"${k}": v for k, v in (s.get("variables") or {}).items()}  # $: a variable, not a fact
            for k, v in {**(s.get("identity") or {}), **variables}.items():
                merged.setdefault(k, set()).add(str(v))
        facts.append({k: " or ".join(sorted(v)) for k, v in merged.items()})
    keys = [k for k in IDENTITY if k in facts[0] or k in facts[1]]
    keys += sorted(k for k in {*facts[0], *facts[1]} if k.startswith("$"))
    return "; ".join(
        f"{k.lstrip('$')} {facts[0].get(k, '(unset)')} → {facts[1].get(k, '(unset)')}"
        for k in keys
        if facts[0].get(k) != facts[1].get(k)
    )
