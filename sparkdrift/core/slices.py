"""Slices: segments (one country, large amounts) counted beside the overall numbers, and where drift sits.

Drift confined to one segment is diluted in the overall histograms. Each
configured slice dimension labels every row with a value (its baseline's
most frequent ``max_values`` values, else `OTHER`; a null label is
`MISSING`); counts, statistics and table rows carry the (slice, value) pair,
and the overall ones carry `OVERALL` in both. A crossed slice (a pair of
dimensions) is one more dimension whose label joins the two labels
(``country×device``, value ``DE & ios``); the cap on slice values per monitor
is shared out by `cross_values`. Pure: no Spark.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sparkdrift.core.results import OVERALL, DriftResult

__all__ = ["OVERALL", "OTHER", "MISSING", "SliceFinding", "cross_name", "cross_values", "describe", "is_overall",
           "slice_values", "where_drift"]
#: slice value of labels outside the baseline's top values
OTHER = "__other__"
#: slice value of rows whose label is null
MISSING = "__null__"
#: joins the names of a crossed slice's two dimensions (no listed slice name can hold it)
CROSS = "×"
#: joins a crossed slice's two labels in its value; a row with either label null is `MISSING`
AND = " & "


def slice_values(top: Sequence[str]) -> tuple[str, ...]:
    """Every value of a dimension, in code order: its top values, then `OTHER`, then `MISSING`."""
    return (*top, OTHER, MISSING)


def is_overall(slice_name: str | None) -> bool:
    """Rows written before slices existed have no slice: they are overall."""
    return slice_name in (None, OVERALL)


def cross_name(a: str, b: str) -> str:
    """The name of the crossed slice of dimensions ``a`` and ``b``: ``country×device``."""
    return f"{a}{CROSS}{b}"


def cross_values(room: int, candidates: Sequence[Sequence[tuple[str, int]]]) -> list[tuple[str, ...]]:
    """Each crossed slice's values under ``room`` slice values: the baseline's most frequent combinations.

    ``candidates`` holds, per cross, its (combination, baseline rows) pairs.
    Every combination of every cross competes by rows (ties: cross order, then
    combination); a cross's first combination costs 3 (it brings the cross's
    other and null values), each next one 1. Biggest segments first: they are
    the ones with enough rows to be tested.
    """
    ranked = sorted((-rows, i, value) for i, pairs in enumerate(candidates) for value, rows in pairs)
    chosen: list[list[str]] = [[] for _ in candidates]
    for _, i, value in ranked:
        cost = 1 if chosen[i] else 3
        if cost <= room:
            chosen[i].append(value)
            room -= cost
    return [tuple(c) for c in chosen]


def describe(slice_name: str, value: str) -> str:
    """``country=DE``, ``country=(other)``, ``country=(null)``; crossed: ``country=DE & device=ios``."""
    names, parts = slice_name.split(CROSS), value.split(AND)
    if len(names) == 2 and len(parts) == 2:
        return AND.join(f"{n}={v}" for n, v in zip(names, parts))
    shown = {OTHER: "(other)", MISSING: "(null)"}.get(value, value)
    return f"{slice_name}={shown}"


@dataclass(frozen=True)
class SliceFinding:
    """One slice value's statistic for one drifted feature in one window, with its weight in the window."""

    window_start: datetime
    feature: str
    slice: str
    slice_value: str
    statistic: str
    value: float
    noise_floor: float | None
    contribution: float  # value past the noise floor (else past the threshold): the ranking key
    rows: int
    share: float  # of the window's rows
    counted: bool  # breached with at least policy.slice_min_rows rows

    @property
    def label(self) -> str:
        return describe(self.slice, self.slice_value)


def _contribution(r: DriftResult) -> float:
    if r.excess is not None and math.isfinite(r.excess):
        return r.excess
    if r.threshold is not None and math.isfinite(r.value):
        return r.value - r.threshold
    return -math.inf


def where_drift(results: Sequence[DriftResult], statistic: str, min_rows: int) -> dict[str, list[SliceFinding]]:
    """Per feature drifted overall or in a counted slice, in the latest such window: its slice values, ranked.

    Ranked by how far ``statistic`` lies past its noise floor (breaches with
    ``min_rows`` rows first), so the segment that carries the drift is named first.
    """
    base = [r for r in results if r.reference == "baseline" and r.signal in ("feature", "prediction")]
    overall_rows = {(r.window_start, r.feature): r.window_rows for r in base if is_overall(r.slice)}
    per_slice = [r for r in base if not is_overall(r.slice) and r.statistic == statistic]
    counted = {(r.window_start, r.feature) for r in per_slice if r.drifted and r.window_rows >= min_rows}
    counted |= {(r.window_start, r.feature) for r in base if is_overall(r.slice) and r.drifted}
    latest: dict[str, datetime] = {}
    for w, feature in counted:
        latest[feature] = max(latest.get(feature, w), w)
    out: dict[str, list[SliceFinding]] = {}
    for feature in sorted(latest):
        w = latest[feature]
        total = overall_rows.get((w, feature), 0)
        found = [
            SliceFinding(w, feature, r.slice, r.slice_value, r.statistic, r.value, r.noise_floor, _contribution(r),
                         r.window_rows, r.window_rows / total if total else math.nan,
                         r.drifted and r.window_rows >= min_rows)
            for r in per_slice if r.window_start == w and r.feature == feature and math.isfinite(r.value)
        ]
        if found:
            out[feature] = sorted(found, key=lambda f: (not f.counted, -f.contribution, f.label))
    return out
