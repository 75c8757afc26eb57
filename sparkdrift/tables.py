"""Delta I/O: reads by name or path with time travel, and idempotent MERGE writes.

Nothing here builds SQL from strings: identifiers are quoted Column objects,
and the only user-written SQL is a config `filter`, applied as a predicate.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sparkdrift.errors import TableError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


def qcol(name: str, alias: str | None = None) -> "Column":
    """A column reference that is safe for any name (dots, spaces, backticks)."""
    from pyspark.sql import functions as F

    quoted = "`" + name.replace("`", "``") + "`"
    return F.col(f"{alias}.{quoted}" if alias else quoted)


def is_path(ref: str) -> bool:
    """Paths and URIs contain '/' (or a scheme); metastore names are dotted identifiers."""
    return "/" in ref or ref.startswith((".", "~")) or ":" in ref


@dataclass(frozen=True)
class TableRead:
    """What was read: the DataFrame and the Delta version it came from."""

    df: "DataFrame"
    table: str
    version: int | None


def _delta_table(spark: "SparkSession", ref: str):
    from delta.tables import DeltaTable

    if is_path(ref):
        path = os.path.expanduser(ref)
        if not DeltaTable.isDeltaTable(spark, path):
            raise TableError(f"table {ref}: no Delta table at this path")
        return DeltaTable.forPath(spark, path)
    if not spark.catalog.tableExists(ref):
        raise TableError(f"table {ref}: not found in the metastore")
    return DeltaTable.forName(spark, ref)


def table_exists(spark: "SparkSession", ref: str) -> bool:
    from delta.tables import DeltaTable

    if is_path(ref):
        return DeltaTable.isDeltaTable(spark, os.path.expanduser(ref))
    return spark.catalog.tableExists(ref)


def latest_version(spark: "SparkSession", ref: str) -> int:
    """The newest committed version of a Delta table."""
    return int(_delta_table(spark, ref).history(1).select("version").first()[0])


def version_at(spark: "SparkSession", ref: str, timestamp: str) -> int:
    """The version a timestamp-based time travel resolves to (latest commit at or before it)."""
    from pyspark.sql import functions as F

    hist = _delta_table(spark, ref).history().select("version", "timestamp")
    row = hist.filter(F.col("timestamp") <= F.to_timestamp(F.lit(timestamp))).agg(F.max("version")).first()
    if row is None or row[0] is None:
        raise TableError(f"table {ref}: no version at or before {timestamp}")
    return int(row[0])


def read_table(
    spark: "SparkSession",
    ref: str,
    *,
    version: int | None = None,
    timestamp: str | None = None,
    filter: str | None = None,
) -> TableRead:
    """Read a Delta table by name or path, optionally at a version or timestamp.

    Returns the version actually read, so results can name their input exactly.
    """
    from pyspark.sql.utils import AnalysisException

    if version is None:
        version = version_at(spark, ref, timestamp) if timestamp else latest_version(spark, ref)
    reader = spark.read.format("delta").option("versionAsOf", version)
    try:
        df = reader.load(os.path.expanduser(ref)) if is_path(ref) else reader.table(ref)
    except AnalysisException as exc:
        raise TableError(f"table {ref}: cannot read version {version}: {exc.desc.splitlines()[0]}") from None
    if filter:
        try:
            df = df.filter(filter)
        except AnalysisException as exc:
            raise TableError(f"table {ref}: filter {filter!r} is invalid: {exc.desc.splitlines()[0]}") from None
    return TableRead(df=df, table=ref, version=version)


def require_columns(read: TableRead, columns: list[str]) -> None:
    missing = [c for c in columns if c not in read.df.columns]
    if missing:
        raise TableError(
            f"table {read.table}: missing column {missing[0]!r} (has: {', '.join(read.df.columns)})"
        )


def merge_rows(spark: "SparkSession", df: "DataFrame", target: str, keys: list[str]) -> None:
    """Upsert ``df`` into ``target`` on ``keys``: one atomic Delta commit, rerun-safe.

    The table is created from ``df``'s schema on first write. Matching rows
    are replaced, new rows inserted, nothing else touched, so writing the same
    rows twice leaves the table as after the first write.
    """
    if not table_exists(spark, target):
        writer = df.write.format("delta").mode("errorifexists")
        if is_path(target):
            writer.save(os.path.expanduser(target))
        else:
            writer.saveAsTable(target)
        return
    _add_missing_columns(spark, df, target)
    cond = functools.reduce(
        lambda a, b: a & b, [qcol(k, "t").eqNullSafe(qcol(k, "s")) for k in keys]
    )
    (
        _delta_table(spark, target)
        .alias("t")
        .merge(df.alias("s"), cond)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def _sql_name(ref: str) -> str:
    """A table reference for SQL: delta.`path` or each name part backtick-quoted."""
    if is_path(ref):
        return "delta.`" + os.path.expanduser(ref).replace("`", "``") + "`"
    return ".".join("`" + part.replace("`", "``") + "`" for part in ref.split("."))


def _add_missing_columns(spark: "SparkSession", df: "DataFrame", target: str) -> None:
    """Columns a newer sparkdrift writes (e.g. noise_floor) are added to an older table before MERGE."""
    have = set(read_output(spark, target).columns)
    missing = [f for f in df.schema.fields if f.name not in have]
    if missing:
        cols = ", ".join(f"`{f.name.replace('`', '``')}` {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE {_sql_name(target)} ADD COLUMNS ({cols})")


def read_output(spark: "SparkSession", ref: str) -> "DataFrame | None":
    """An output table if it exists yet (None before the first write)."""
    if not table_exists(spark, ref):
        return None
    return spark.read.format("delta").load(os.path.expanduser(ref)) if is_path(ref) else spark.table(ref)
