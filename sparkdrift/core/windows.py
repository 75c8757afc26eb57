"""Tumbling windows: their arithmetic and what one window holds.

Windows are aligned to the Unix epoch in UTC; weekly windows start on Monday.
The Spark pass computes the same start per row (`spark.histograms.window_start_column`,
from `window_offset`).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from dataclasses import dataclass

from sparkdrift.core.profile import Histogram

_WEEK = 7 * 86400
_MONDAY_OFFSET = 4 * 86400  # 1970-01-01 was a Thursday; 1970-01-05 a Monday


def window_offset(seconds: int) -> int:
    """Seconds from the epoch to the first window start: weeks start on Monday, the rest at 1970-01-01."""
    return _MONDAY_OFFSET if seconds % _WEEK == 0 else 0


def as_utc(ts: datetime) -> datetime:
    """Naive datetimes are taken as UTC (Spark sessions here run in UTC)."""
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def window_start(ts: datetime, seconds: int) -> datetime:
    epoch = int(as_utc(ts).timestamp())
    off = window_offset(seconds)
    start = (epoch - off) // seconds * seconds + off
    return datetime.fromtimestamp(start, tz=timezone.utc)


def window_end(start: datetime, seconds: int) -> datetime:
    return as_utc(start) + timedelta(seconds=seconds)


def window_index(start: datetime, seconds: int) -> int:
    """A stable index for a window (MLflow `step`): the same window has the same index in every run."""
    return (int(as_utc(start).timestamp()) - window_offset(seconds)) // seconds


def naive_utc(ts: datetime) -> datetime:
    """A naive UTC datetime, the form Spark returns and accepts for TIMESTAMP columns here."""
    return as_utc(ts).replace(tzinfo=None)


@dataclass(frozen=True)
class WindowHistograms:
    """Everything one window contributes: a histogram per column and its row count."""

    window_start: datetime
    window_end: datetime
    rows: int
    histograms: dict[str, Histogram]


def fill_empty_windows(
    windows: list[WindowHistograms], start: datetime | None, end: datetime, g: int, profiles
) -> list[WindowHistograms]:
    """Every complete window in range, an empty one where no row arrived (an outage is a result, not an absence).

    From ``start`` (a run that continues stored windows) or else from the first
    window with rows, up to ``end``.
    """
    first = start if start is not None else (windows[0].window_start if windows else None)
    if first is None:
        return windows
    have = {as_utc(w.window_start) for w in windows}
    out = list(windows)
    t = as_utc(first)
    while t < as_utc(end):
        if t not in have:
            out.append(WindowHistograms(t, window_end(t, g), 0, {p.name: Histogram.empty(p.n_bins) for p in profiles}))
        t = window_end(t, g)
    return sorted(out, key=lambda w: as_utc(w.window_start))
