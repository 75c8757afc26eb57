"""Tumbling windows: their arithmetic and what one window holds.

All windows are cut in UTC. Fixed-length windows (``hour``, ``6h``, ``week``)
are aligned to the Unix epoch, weekly ones start on Monday; calendar windows
(``month``, ``quarter``) start on the first day of a month (of January, April,
July or October for quarters). `Windows` holds the one rule; the Spark pass
computes the same start per row (`spark.histograms.window_start_column`).
"""
from __future__ import annotations

from datetime import datetime, timezone
from dataclasses import dataclass

from sparkdrift.core.profile import Histogram
from sparkdrift.core.results import OVERALL

_WEEK = 7 * 86400
_MONDAY_OFFSET = 4 * 86400  # 1970-01-01 was a Thursday; 1970-01-05 a Monday
#: calendar granularities and their length in months
CALENDAR_MONTHS = {"month": 1, "quarter": 3}


def as_utc(ts: datetime) -> datetime:
    """Naive datetimes are taken as UTC (Spark sessions here run in UTC)."""
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def naive_utc(ts: datetime) -> datetime:
    """A naive UTC datetime, the form Spark returns and accepts for TIMESTAMP columns here."""
    return as_utc(ts).replace(tzinfo=None)


@dataclass(frozen=True)
class Windows:
    """The windows of one granularity: fixed-length (``seconds``) or calendar (``months``), never both.

    Windows are numbered from the one holding 1970-01-01 (a week: the one
    starting 1970-01-05): the number is a window's MLflow step, the same in
    every run, and consecutive windows have consecutive numbers, so
    "n windows later" is index arithmetic for months as for hours.
    """

    seconds: int = 0
    months: int = 0

    @property
    def offset(self) -> int:
        """Fixed-length windows: seconds from the epoch to the first window start (weeks start on Monday)."""
        return _MONDAY_OFFSET if self.seconds % _WEEK == 0 else 0

    def index(self, ts: datetime) -> int:
        """The number of the window holding ``ts``."""
        t = as_utc(ts)
        if self.months:
            return ((t.year - 1970) * 12 + t.month - 1) // self.months
        return (int(t.timestamp()) - self.offset) // self.seconds

    def at(self, index: int) -> datetime:
        """The start of window number ``index``."""
        if self.months:
            month = index * self.months
            return datetime(1970 + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
        return datetime.fromtimestamp(index * self.seconds + self.offset, tz=timezone.utc)

    def start(self, ts: datetime) -> datetime:
        """The start of the window holding ``ts``."""
        return self.at(self.index(ts))

    def shift(self, start: datetime, n: int) -> datetime:
        """The start of the window ``n`` windows after (n < 0: before) the one holding ``start``."""
        return self.at(self.index(start) + n)

    def end(self, start: datetime) -> datetime:
        """The end (exclusive) of the window holding ``start``: the next window's start."""
        return self.shift(start, 1)

    def label(self, start: datetime) -> str:
        """A window's short name: ``2026-01`` (month), ``2026-Q1`` (quarter), ``2026-01-14`` (day, week),
        ``2026-01-14T06:00`` (shorter windows)."""
        t = as_utc(start)
        if self.months == 3:
            return f"{t.year}-Q{(t.month - 1) // 3 + 1}"
        if self.months:
            return t.strftime("%Y-%m")
        midnight = t.hour == 0 and t.minute == 0 and t.second == 0 and t.microsecond == 0
        if self.seconds % 86400 == 0 and midnight:
            return t.strftime("%Y-%m-%d")
        if t.second or t.microsecond:
            return t.strftime("%Y-%m-%dT%H:%M:%S")
        return t.strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True)
class WindowHistograms:
    """Everything one window contributes: a histogram per column and its row count."""

    window_start: datetime
    window_end: datetime
    rows: int
    histograms: dict[str, Histogram]
    slice: str = OVERALL  # a slice's counts carry its dimension and value (core.slices)
    slice_value: str = OVERALL


def fill_empty_windows(
    windows: list[WindowHistograms], start: datetime | None, end: datetime, cut: Windows, profiles
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
            out.append(WindowHistograms(t, cut.end(t), 0, {p.name: Histogram.empty(p.n_bins) for p in profiles}))
        t = cut.end(t)
    return sorted(out, key=lambda w: as_utc(w.window_start))
