"""What ``compare``'s ``--baseline`` and ``--candidate`` select: ``key=value`` terms over runs and rows
(machine, env, torch, commit, date, run, side, device, dtype, layout, batch, mode), parsed and matched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from bench_lib.catalogue.cases import key_values
from bench_lib.errors import ArgumentError

SELECTOR_KEYS = {
    "machine": "machine",
    "env": "env_name",
    "torch": "torch_version",
    "commit": "commit_hash",
    "date": "run_date",
    "run": "run_id",
    "side": "side",
    "device": "device",
    "dtype": "dtype",
    "layout": "layout",
    "batch": "batch",
    "mode": "mode",
}


# what each row carries, so a run is not chosen by it (an A/B run has two sides, a run several devices)
ROW_KEYS = ("torch", "side", "device", "dtype", "layout", "batch", "mode")


@dataclass(frozen=True)
class Selector:
    text: str
    terms: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Selector:
        terms = {}
        try:
            items = key_values(filter(None, (t.strip() for t in text.split(","))), f"selector {text!r}:")
        except ValueError as e:
            raise ArgumentError(str(e)) from None
        for key, value in items:
            if key not in SELECTOR_KEYS:
                raise ArgumentError(f"selector {text!r}: unknown key {key!r}; accepted: {', '.join(SELECTOR_KEYS)}")
            terms[key] = value
        if not terms:
            raise ArgumentError(f"selector {text!r} is empty; write key=value[,key=value...]")
        return cls(text, terms)

    def select_runs(self, runs: pd.DataFrame) -> pd.DataFrame:
        """The store's runs this selector can match (every term but ``torch``, which rows carry): what
        ``compare`` reads, and nothing more."""
        terms = {k: v for k, v in self.terms.items() if k not in ROW_KEYS}
        table = side_envs(runs.rename(columns={"started_at": "run_date"}))
        return runs.loc[Selector(self.text, terms).select(table).index.unique()] if terms else runs

    def partitions(self, store) -> tuple[set[str] | None, set[str] | None]:
        """The machine folders and months this selector can touch (None: all), so only they are listed."""
        machine, date = self.terms.get("machine"), self.terms.get("date")
        keys = None
        if machine:  # its name, or a prefix of name-<hardware id>; select() then decides row by row
            found = {k for k, _ in store.location.partitions("runs")}
            keys = {k for k in found if k.rsplit("-", 1)[0] == machine or k.startswith(machine)}
        return keys, store.months([date]) if date else None

    def select(self, df: pd.DataFrame) -> pd.DataFrame:
        mask = pd.Series(True, index=df.index)
        for key, value in self.terms.items():
            column = df[SELECTOR_KEYS[key]]
            hit = column.map(self._matcher(key, value, df)).fillna(False).astype(bool)
            if key == "machine" and "hardware_id" in df:  # a name, or name-<hardware id> where one is shared
                by = "run_id" if "run_id" in df else "machine"  # one machine per run: decide once per run
                pairs = df[[by, "machine", "hardware_id"]].drop_duplicates(by)
                keyed = {
                    k: f"{str(m).split('-')[0]}-{h}".startswith(value)
                    for k, m, h in pairs.itertuples(index=False, name=None)
                }
                hit = hit | df[by].map(keyed).astype(bool)
            if not (mask & hit).any():
                seen = sorted({str(v) for v in column.dropna().unique()})[:8]
                raise ArgumentError(
                    f"selector {self.text!r}: {key}={value} matches nothing"
                    f"{' after the other terms' if mask.sum() < len(mask) else ''}; seen: {', '.join(seen)}"
                )
            mask &= hit
        return df[mask]

    @staticmethod
    def _matcher(key: str, value: str, df: pd.DataFrame):
        """A function of one cell, evaluated once per distinct cell (``Series.map`` with a dict)."""
        column = df[SELECTOR_KEYS[key]]
        uniques = column.dropna().unique()
        if key == "date":
            text = {t: pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S") for t in uniques}
            return {t: x.startswith(value) for t, x in text.items()}
        if key == "commit":
            return {u: str(u).startswith(value) for u in uniques}
        if key == "torch":
            return {u: version_matches(value, str(u)) for u in uniques}
        return {u: str(u) == value for u in uniques}


def version_matches(wanted: str, version: str) -> bool:
    """``torch=2.13`` and ``torch=2.13.0`` match ``2.13.0+cpu``, ``torch=2.13.0+cu130`` only that build;
    ``torch=2.1`` does not match ``2.12.1`` (components, not characters)."""
    return version == wanted or version.startswith((wanted + ".", wanted + "+"))


def version_key(version: str) -> tuple:
    """``"0.1.0-12"`` → ``(0, 1, 0, 12)``: method versions compare as numbers, not as text."""
    return tuple(int(x) if x.isdigit() else x for x in str(version).replace("-", ".").split("."))


def side_envs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table with an A/B run once per side, under that side's environment name (so ``env=``
    finds the A/B runs holding that environment)."""
    if "sides" not in runs or runs["sides"].isna().all():
        return runs
    ab = runs[runs["sides"].notna()]
    names = ab["sides"].map(lambda text: [side.get("env_name") for side in json.loads(text)])
    return pd.concat([runs[runs["sides"].isna()], ab.assign(env_name=names).explode("env_name")])
