"""Tumbling-window arithmetic, identical on the driver (Python) and in Spark (Column).

Windows are aligned to the Unix epoch in UTC; weekly windows start on Monday.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column

_WEEK = 7 * 86400
_MONDAY_OFFSET = 4 * 86400  # 1970-01-01 was a Thursday; 1970-01-05 a Monday


def _offset(seconds: int) -> int:
    return _MONDAY_OFFSET if seconds % _WEEK == 0 else 0


def as_utc(ts: datetime) -> datetime:
    """Naive datetimes are taken as UTC (Spark sessions here run in UTC)."""
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def window_start(ts: datetime, seconds: int) -> datetime:
    epoch = int(as_utc(ts).timestamp())
    off = _offset(seconds)
    start = (epoch - off) // seconds * seconds + off
    return datetime.fromtimestamp(start, tz=timezone.utc)


def window_end(start: datetime, seconds: int) -> datetime:
    return as_utc(start) + timedelta(seconds=seconds)


def window_index(start: datetime, seconds: int) -> int:
    """A stable index for a window (MLflow `step`): the same window has the same index in every run."""
    return (int(as_utc(start).timestamp()) - _offset(seconds)) // seconds


def window_start_column(ts: "Column", seconds: int) -> "Column":
    """Spark expression for the start of the window holding ``ts`` (same rule as window_start)."""
    from pyspark.sql import functions as F

    off = _offset(seconds)
    epoch = F.unix_seconds(ts)
    return F.timestamp_seconds(F.floor((epoch - F.lit(off)) / F.lit(seconds)) * F.lit(seconds) + F.lit(off))


def naive_utc(ts: datetime) -> datetime:
    """A naive UTC datetime, the form Spark returns and accepts for TIMESTAMP columns here."""
    return as_utc(ts).replace(tzinfo=None)
