"""`sparkdrift init`: a first monitor config, proposed from two tables' schemas and a small sample.

What the tables say is gathered in Spark (`table_facts`, `time_facts`: the
schema, one aggregate over a sample of rows, and min/max/count of the
timestamp column, which Delta answers from file statistics); what to monitor
is decided from those facts alone (`propose`, pure), and written as a
commented YAML (`render`) that the loader then validates like any other.
Every guess is written down next to its key, so the user reviews a short file
instead of writing one from the reference.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml

from sparkdrift.errors import TableError

if TYPE_CHECKING:
    from sparkdrift.store.tables import TableRead

SAMPLE_ROWS = 10_000
#: Rows a window should hold for its noise floors to let real drift through (README: noise floors).
ROWS_PER_WINDOW = 2_000

_NUMERIC = re.compile(r"^(tinyint|smallint|int|bigint|float|double|decimal.*)$")
_TIME_TYPES = ("timestamp", "timestamp_ntz", "date")
_EVENT_TIME = re.compile(r"(^|_)(event_?time|time|ts|timestamp|datetime)$", re.I)  # when it happened
_TIME_NAME = re.compile(r"(^|_)(date|dt)$|_at$", re.I)  # when it was written, often
_ID_NAME = re.compile(r"(^|_)(id|key|uuid)$", re.I)
_LABEL_NAME = re.compile(r"^(label|target|y|outcome|actual|ground_truth)$|_(label|target)$", re.I)
_PREDICTION_NAME = re.compile(r"(^|_)(prediction|predicted|pred|score|prob|probability|y_?hat)($|_)", re.I)


@dataclass(frozen=True)
class TableFacts:
    """A table's columns and what a sample of its rows shows."""

    table: str
    types: dict[str, str]  # column -> Spark type name, in schema order
    sample_rows: int = 0
    distinct: dict[str, int] = field(default_factory=dict)  # approximate distinct values in the sample
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # numeric columns: sample min, max


@dataclass(frozen=True)
class TimeFacts:
    column: str
    first: datetime
    last: datetime
    rows: int


@dataclass
class Proposal:
    """The config mapping to write, and one note per guess (key path -> why)."""

    data: dict[str, Any]
    notes: dict[str, str]


def timestamp_column(production: TableFacts) -> str:
    """The production column windows are cut on: a timestamp or date column, by name if several."""
    candidates = [c for c, t in production.types.items() if t in _TIME_TYPES]
    if not candidates:
        raise TableError(f"table {production.table}: no timestamp or date column to cut windows on "
                         f"(has: {', '.join(production.types)})")
    return max(candidates, key=lambda c: (bool(_EVENT_TIME.search(c)), bool(_TIME_NAME.search(c))))


#: Window sizes `init` chooses from, with their (mean) length in hours.
_SIZES = (("hour", 1.0), ("day", 24.0), ("week", 168.0), ("month", 730.5), ("quarter", 2191.5))


def granularity(time: TimeFacts) -> tuple[str, float]:
    """The shortest window size that holds about `ROWS_PER_WINDOW` rows (else a quarter), and its rows."""
    span_hours = max((time.last - time.first).total_seconds() / 3600.0, 1.0)
    per_hour = time.rows / span_hours
    for name, hours in _SIZES:
        if per_hour * hours >= ROWS_PER_WINDOW:
            return name, per_hour * hours
    return _SIZES[-1][0], per_hour * _SIZES[-1][1]


def _prediction_kind(facts: TableFacts, column: str) -> str:
    dtype = facts.types[column]
    low, high = facts.ranges.get(column, (float("nan"), float("nan")))
    if dtype in ("float", "double") and 0.0 <= low and high <= 1.0:
        return "score"
    if not _NUMERIC.match(dtype) or (dtype in ("tinyint", "smallint", "int", "bigint")
                                      and facts.distinct.get(column, 99) <= 20):
        return "class"
    return "regression"


def _looks_like_id(facts: TableFacts, column: str) -> bool:
    many = facts.sample_rows and facts.distinct.get(column, 0) >= 0.9 * facts.sample_rows
    return bool(many) and (bool(_ID_NAME.search(column)) or not _NUMERIC.match(facts.types[column]))


def propose(monitor: str, baseline: TableFacts, production: TableFacts, time: TimeFacts) -> Proposal:
    """What to monitor, from the facts alone: features by kind, id, prediction, label, windows."""
    notes: dict[str, str] = {}
    ts = time.column
    shared = [c for c in baseline.types if c in production.types and c != ts]
    ids = [c for c in shared if _looks_like_id(production, c)]
    id_column = next((c for c in ids if _ID_NAME.search(c)), ids[0] if ids else None)
    named = [c for c in baseline.types if _LABEL_NAME.search(c) and c != ts]
    binary = [c for c in baseline.types if c not in production.types and baseline.distinct.get(c) == 2]
    label = (named or binary or [None])[0]
    preds = [c for c in shared if _PREDICTION_NAME.search(c) and c not in (label, id_column)]
    pred = preds[0] if preds else None
    numeric, categorical, skipped = [], [], []
    for c in shared:
        if c in (id_column, label, pred):
            continue
        dtype = baseline.types[c]
        if _NUMERIC.match(dtype):
            numeric.append(c)
        elif dtype in ("string", "boolean"):
            (skipped if _looks_like_id(baseline, c) else categorical).append(c)
        else:
            skipped.append(c)
    window, per_window = granularity(time)

    data: dict[str, Any] = {
        "monitor": monitor,
        "baseline": {"table": baseline.table},
        "production": {"table": production.table, "timestamp_column": ts, "granularity": window},
        "features": {"numeric": numeric, "categorical": categorical},
    }
    notes["production.timestamp_column"] = f"type {production.types[ts]}"
    notes["production.granularity"] = (f"{time.rows:,} rows from {time.first:%Y-%m-%d} to {time.last:%Y-%m-%d}: "
                                       f"about {per_window:,.0f} rows per {window}")
    if skipped:
        notes["features"] = "left out (identifier-like or unsupported type): " + ", ".join(skipped)
    only_baseline = [c for c in baseline.types if c not in production.types and c != label]
    if only_baseline:
        notes["features.numeric"] = "only in the baseline table, not monitored: " + ", ".join(only_baseline)
    if id_column:
        data["id_column"] = id_column
        notes["id_column"] = "distinct on almost every sampled row"
    if pred:
        kind = _prediction_kind(production, pred)
        data["prediction"] = {"columns": [pred], "kind": kind}
        notes["prediction"] = f"named like a model output; kind {kind} from its type and sampled values"
    if label:
        data["label"] = {"column": label}
        why = "named like a label" if label in named else "two values, and not in the production table"
        where = "both tables" if label in production.types else "the baseline table only (baseline performance)"
        notes["label"] = f"{why}; in {where}"
        if pred and data["prediction"]["kind"] == "class":
            data["label"]["positive"] = "1"
            notes["label"] += "; check label.positive"
    return Proposal(data, notes)


def render(proposal: Proposal, baseline: TableFacts, production: TableFacts) -> str:
    """The proposal as YAML, each guess explained in a comment above its key."""
    lines = [
        f"# sparkdrift monitor proposed by `sparkdrift init` from {baseline.table} (baseline)",
        f"# and {production.table} (production). Review the guesses below, then run",
        "# `sparkdrift validate` on this file. Every key: README, Config reference.",
    ]

    def emit(value: dict[str, Any], path: str, indent: int) -> None:
        for key, v in value.items():
            here = f"{path}.{key}" if path else key
            if here in proposal.notes:
                lines.append(" " * indent + "# " + proposal.notes[here])
            if isinstance(v, dict):
                lines.append(" " * indent + f"{key}:")
                emit(v, here, indent + 2)
            else:
                text = yaml.safe_dump({key: v}, default_flow_style=True, width=10_000).strip()
                lines.append(" " * indent + text.strip("{}"))

    for key, value in proposal.data.items():
        block = {key: value}
        if isinstance(value, dict) and key != "monitor":
            lines.append("")
        emit(block, "", 0)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Spark


def table_facts(read: "TableRead") -> TableFacts:
    """Schema, plus approximate distinct counts and numeric ranges over the first `SAMPLE_ROWS` rows."""
    from pyspark.sql import functions as F

    from sparkdrift.spark.selection import qcol

    df, table = read.df, read.table
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    simple = [c for c, t in types.items() if _NUMERIC.match(t) or t in ("string", "boolean")]
    sample = df.select(*[qcol(c) for c in simple]).limit(SAMPLE_ROWS)
    aggs = [F.count(F.lit(1)).alias("_n")]
    for i, c in enumerate(simple):
        aggs.append(F.approx_count_distinct(qcol(c)).alias(f"d{i}"))
        if _NUMERIC.match(types[c]):
            value = qcol(c).cast("double")
            aggs += [F.min(value).alias(f"lo{i}"), F.max(value).alias(f"hi{i}")]
    row = sample.agg(*aggs).first().asDict()
    distinct = {c: int(row[f"d{i}"]) for i, c in enumerate(simple)}
    ranges = {c: (row[f"lo{i}"], row[f"hi{i}"]) for i, c in enumerate(simple)
              if f"lo{i}" in row and row[f"lo{i}"] is not None}
    return TableFacts(table, types, int(row["_n"]), distinct, ranges)


def time_facts(read: "TableRead", column: str) -> TimeFacts:
    """First and last timestamp and the row count (from Delta's file statistics where it can)."""
    from pyspark.sql import functions as F

    from sparkdrift.spark.selection import qcol

    ts = qcol(column).cast("timestamp")
    row = read.df.agg(F.min(ts), F.max(ts), F.count(F.lit(1))).first()
    if row[0] is None:
        raise TableError(f"table {read.table}: column {column!r} has no timestamps to cut windows on")
    return TimeFacts(column, row[0], row[1], int(row[2]))


def monitor_name(table: str) -> str:
    """A monitor name from a table's last name part: ``main.ml.churn_inference`` -> ``churn_inference``."""
    last = re.split(r"[./]", table.rstrip("/"))[-1].strip("`")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", last) or "monitor"
