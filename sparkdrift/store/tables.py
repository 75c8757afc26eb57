"""The store: all Delta I/O of the inputs and the result tables, through SQL and the DataFrame API.

Only what works the same on classic Spark, Spark Connect (Databricks
serverless, standard access mode) and Databricks is used: the DataFrame
reader/writer with ``versionAsOf``, ``DESCRIBE HISTORY``, ``MERGE INTO`` from
a temporary view, and the catalog's ``tableExists``. The Delta Python API
(``delta.tables``) is not needed, so a Connect server without the Delta
Connect plugin serves every job.

Identifiers are quoted part by part (``catalog.schema.table`` ->
`` `catalog`.`schema`.`table` ``, backticks doubled), paths become
``delta.`/the/path```; the only user-written SQL is a config ``filter``,
applied as a predicate.
"""
from __future__ import annotations

import logging
import os
import random
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sparkdrift.core.windows import as_utc
from sparkdrift.errors import ConcurrentRunError, TableError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_log = logging.getLogger("sparkdrift.store")


def is_path(ref: str) -> bool:
    """Paths and URIs contain '/' (or a scheme); metastore names are dotted identifiers."""
    return "/" in ref or ref.startswith((".", "~")) or ":" in ref


def location(ref: str) -> str:
    """A path as Spark gets it: ``~`` expanded and a local relative path made absolute here.

    The Python process and the JVM need not share a working directory (a
    notebook's cwd, Spark Connect's server), so a relative path is resolved
    once, where the user wrote it.
    """
    path = os.path.expanduser(ref)
    return path if "://" in path or ":" in path.split("/")[0] else os.path.abspath(path)


@dataclass(frozen=True)
class TableRead:
    """What was read: the DataFrame, the Delta version it came from, and that version's commit time when the
    latest version was read (one history lookup serves both)."""

    df: "DataFrame"
    table: str
    version: int | None
    committed: datetime | None = None


def _quote(part: str) -> str:
    return "`" + part.replace("`", "``") + "`"


def name_parts(ref: str) -> list[str]:
    """The parts of a metastore name: ``cat.schema.t`` or with backtick-quoted parts (```my.cat`.s.t``)."""
    parts, cur, i, quoted = [], [], 0, False
    while i < len(ref):
        ch = ref[i]
        if quoted:
            if ch == "`":
                if ref[i + 1 : i + 2] == "`":
                    cur.append("`")
                    i += 1
                else:
                    quoted = False
            else:
                cur.append(ch)
        elif ch == "`":
            quoted = True
        elif ch == ".":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    if quoted or any(not p.strip() for p in parts) or len(parts) > 3:
        raise TableError(f"table {ref}: not a valid table name (expected [catalog.][schema.]table)")
    return parts


def sql_name(ref: str) -> str:
    """The table as a SQL identifier: each name part quoted, or ``delta.`path``` for a path."""
    if is_path(ref):
        return "delta." + _quote(location(ref))
    return ".".join(_quote(p) for p in name_parts(ref))


def _message(exc: Exception) -> str:
    """The first line of what Spark said (a raw py4j error's own first line only names the call)."""
    java = getattr(exc, "java_exception", None)
    text = (str(java.toString()) if java is not None else None) or getattr(exc, "desc", None) or str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _history(spark: "SparkSession", ref: str, limit: int | None = None) -> "DataFrame":
    """``DESCRIBE HISTORY`` (version, timestamp) of an existing Delta table; TableError naming it otherwise."""
    from pyspark.errors import AnalysisException

    if not is_path(ref) and not table_exists(spark, ref):
        raise TableError(f"table {ref}: not found in the metastore")
    query = f"DESCRIBE HISTORY {sql_name(ref)}" + (f" LIMIT {int(limit)}" if limit else "")
    try:
        hist = spark.sql(query).select("version", "timestamp")
        hist.schema  # Spark Connect analyses lazily: fail here, with the table's name
    except AnalysisException as exc:
        if is_path(ref):
            raise TableError(f"table {ref}: no Delta table at this path") from None
        raise TableError(f"table {ref}: not a Delta table ({_message(exc)})") from None
    return hist


def table_exists(spark: "SparkSession", ref: str) -> bool:
    """Whether a Delta table is at this path, or a table of this name is in the catalog."""
    from pyspark.errors import AnalysisException

    if is_path(ref):
        try:
            spark.sql(f"DESCRIBE HISTORY {sql_name(ref)} LIMIT 1").collect()
        except AnalysisException:  # nothing there, or not a Delta table
            return False
        return True
    try:
        return bool(spark.catalog.tableExists(sql_name(ref)))
    except AnalysisException:  # e.g. a catalog that does not exist
        return False


def _newest(spark: "SparkSession", ref: str) -> tuple[int, datetime]:
    """The newest committed version of a Delta table and its commit time (UTC)."""
    row = _history(spark, ref, 1).first()
    return int(row["version"]), as_utc(row["timestamp"])


def latest_version(spark: "SparkSession", ref: str) -> int:
    """The newest committed version of a Delta table."""
    return _newest(spark, ref)[0]


def last_commit(spark: "SparkSession", ref: str) -> datetime:
    """When the newest version of a Delta table was committed (UTC)."""
    return _newest(spark, ref)[1]


#: Beyond this many commits since, reading their log entries is no cheaper than recounting.
MOST_COMMITS_READ = 100


def earliest_added(spark: "SparkSession", read: TableRead, since: int, column: str) -> datetime | None:
    """The smallest ``column`` value in rows that commits after version ``since`` added, from the Delta log.

    Returns a time (the latest representable one when those commits added no
    rows, as a minimum over nothing); None when the log cannot say: a commit removed rows (a delete, update or overwrite; compaction,
    which moves rows without changing them, does not count), a file has no
    ``column`` statistics, the table is a metastore name (its log is not read by
    path), or the log entries are gone or too many (`MOST_COMMITS_READ`). It
    reads only the commits' JSON entries, never a data file.
    """
    from pyspark.sql import functions as F

    if read.version is None or not is_path(read.table) or not 0 < read.version - since <= MOST_COMMITS_READ:
        return None
    log_dir = location(read.table).rstrip("/") + "/_delta_log"
    files = [f"{log_dir}/{v:020d}.json" for v in range(since + 1, read.version + 1)]
    schema = "add struct<stats: string, dataChange: boolean>, remove struct<dataChange: boolean>"
    minimum = F.try_to_timestamp(F.get_json_object("add.stats", f"$.minValues.{column}"))
    added = F.col("add").isNotNull() & F.col("add.dataChange")
    try:
        row = spark.read.schema(schema).json(files).agg(
            F.count(F.when(F.col("remove").isNotNull() & F.col("remove.dataChange"), 1)).alias("removed"),
            F.count(F.when(added & minimum.isNull()
                           & (F.get_json_object("add.stats", "$.numRecords").cast("long") != 0), 1)).alias("unknown"),
            F.min(F.when(added, minimum)).alias("earliest"),
        ).first()
    except Exception as exc:  # noqa: BLE001 - unreadable log (cleaned up, no access): the caller recounts
        _log.debug("table %s: cannot read its log since version %d (%s)", read.table, since, _message(exc))
        return None
    if row["removed"] or row["unknown"]:
        return None
    return as_utc(datetime.max) if row["earliest"] is None else as_utc(row["earliest"])


def version_at(spark: "SparkSession", ref: str, timestamp: str) -> int:
    """The version a timestamp-based time travel resolves to (latest commit at or before it)."""
    from pyspark.sql import functions as F

    hist = _history(spark, ref)
    bound = F.try_to_timestamp(F.lit(timestamp))
    row = hist.agg(F.max(F.when(F.col("timestamp") <= bound, F.col("version"))).alias("v"),
                   F.max(bound.isNull().cast("int")).alias("bad")).first()
    if row is not None and row["bad"]:
        raise TableError(f"table {ref}: {timestamp!r} is not a timestamp")
    if row is None or row["v"] is None:
        raise TableError(f"table {ref}: no version at or before {timestamp}")
    return int(row["v"])


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
    from pyspark.errors import AnalysisException

    committed = None
    if version is None and timestamp:
        version = version_at(spark, ref, timestamp)
    elif version is None:
        version, committed = _newest(spark, ref)
    reader = spark.read.format("delta").option("versionAsOf", version)
    try:
        df = reader.load(location(ref)) if is_path(ref) else reader.table(sql_name(ref))
        df.schema  # analysed now on every runtime (Spark Connect defers it)
    except AnalysisException as exc:
        raise TableError(f"table {ref}: cannot read version {version}: {_message(exc)}") from None
    if filter:
        try:
            df = df.filter(filter)
            df.isLocal()  # forces analysis (Spark Connect keeps the parent's schema for a filter)
        except AnalysisException as exc:
            raise TableError(f"table {ref}: filter {filter!r} is invalid: {_message(exc)}") from None
    return TableRead(df=df, table=ref, version=version, committed=committed)


def require_columns(read: TableRead, columns: list[str]) -> None:
    missing = [c for c in columns if c not in read.df.columns]
    if missing:
        raise TableError(
            f"table {read.table}: missing column {missing[0]!r} (has: {', '.join(read.df.columns)})"
        )


#: Delta's optimistic-concurrency conflicts (another writer committed first): retrying the write is safe.
_CONFLICT = re.compile(
    r"Concurrent\w*Exception|MetadataChangedException|ProtocolChangedException"
    r"|DELTA_CONCURRENT_\w+|DELTA_METADATA_CHANGED|DELTA_PROTOCOL_CHANGED"
)
#: Another writer created the table between our existence check and our create.
_CREATED_MEANWHILE = re.compile(r"DELTA_PATH_EXISTS|TABLE_OR_VIEW_ALREADY_EXISTS|already exists", re.IGNORECASE)
#: Attempts of one write under conflicts, and the first pause (doubled each time, with jitter).
CONFLICT_ATTEMPTS = 6
CONFLICT_PAUSE_SECONDS = 0.5


def local_frame(spark: "SparkSession", rows: list, schema: str) -> "DataFrame":
    """Rows built by this package as a DataFrame of ``schema``.

    Classic Spark checks every value against the schema in Python first: with
    slices (tens of thousands of histogram rows of arrays) that check cost
    most of a write. The rows are made to the schema here, so it is skipped;
    Spark Connect converts them to Arrow instead and has no such check.
    """
    if hasattr(spark, "_jsparkSession"):  # classic: a JVM session behind it
        return spark.createDataFrame(rows, schema, verifySchema=False)
    return spark.createDataFrame(rows, schema)


def merge_rows(spark: "SparkSession", df: "DataFrame", target: str, keys: list[str],
               defaults: Mapping[str, str] | None = None, matched_if: str | None = None) -> None:
    """Upsert ``df`` into ``target`` on ``keys``: one atomic Delta commit, rerun-safe.

    The table is created from ``df``'s schema on first write. Matching rows
    are replaced, new rows inserted, nothing else touched, so writing the same
    rows twice leaves the table as after the first write. The rows go through
    a uniquely named temporary view, dropped afterwards. ``defaults``: the
    value existing rows get in a column added now (a new key column must
    match the rows written before it, or a rerun would duplicate them).
    ``matched_if``: a condition on the existing row (``t``) and the new one
    (``s``) for replacing it; rows that fail it stay as they are (a compare-and-set).

    Another run writing the same table at the same moment makes Delta refuse
    one of the commits; since the write is an idempotent upsert it is simply
    redone (backing off), and only a conflict that outlasts every attempt is
    an error. Any other failure (e.g. a read-only location) is a `TableError`
    naming the table; the table is as before the write, never half-written.
    """
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            _merge_once(spark, df, target, keys, defaults, matched_if)
            return
        except _spark_errors() as exc:  # what Spark raised, classic or Connect; our own errors pass through
            text = f"{type(exc).__name__}: {exc}"
            retry = _CONFLICT.search(text) or _CREATED_MEANWHILE.search(text)
            if not retry:
                raise TableError(f"table {target}: cannot write ({_message(exc)}); "
                                 "check that the output location exists and is writable") from exc
            if attempt == CONFLICT_ATTEMPTS - 1:
                raise ConcurrentRunError(
                    f"table {target}: another run kept writing it at the same time ({retry.group(0)}, "
                    f"{CONFLICT_ATTEMPTS} attempts); nothing was half-written, rerun when it has finished"
                ) from exc
            pause = CONFLICT_PAUSE_SECONDS * 2 ** attempt * (1 + random.random())
            _log.info("table %s: %s, another writer committed first; retrying in %.1f s",
                      target, retry.group(0), pause)
            time.sleep(pause)


def _spark_errors() -> tuple[type[BaseException], ...]:
    """Spark's own exceptions: pyspark's, and a JVM exception py4j hands over unconverted (e.g. Delta's conflicts)."""
    from pyspark.errors import PySparkException

    try:
        from py4j.protocol import Py4JJavaError
    except ImportError:  # the Spark Connect client alone has no py4j
        return (PySparkException,)
    return (PySparkException, Py4JJavaError)


def _merge_once(spark: "SparkSession", df: "DataFrame", target: str, keys: list[str],
                defaults: Mapping[str, str] | None, matched_if: str | None) -> None:
    existing = read_output(spark, target)  # one lookup: whether it exists, and its columns
    if existing is None:
        writer = df.write.format("delta").mode("error")
        if is_path(target):
            writer.save(location(target))
        else:
            writer.saveAsTable(sql_name(target))
        return
    for name in _add_missing_columns(spark, df, target, existing.columns):
        if defaults and name in defaults:
            spark.sql(f"UPDATE {sql_name(target)} SET {_quote(name)} = {sql_string(defaults[name])} "
                      f"WHERE {_quote(name)} IS NULL").collect()
    view = f"sparkdrift_merge_{uuid.uuid4().hex}"
    on = " AND ".join(f"t.{_quote(k)} <=> s.{_quote(k)}" for k in keys)
    df.createOrReplaceTempView(view)
    try:
        spark.sql(
            f"MERGE INTO {sql_name(target)} AS t USING {_quote(view)} AS s ON {on} "
            f"WHEN MATCHED{f' AND ({matched_if})' if matched_if else ''} THEN UPDATE SET * "
            "WHEN NOT MATCHED THEN INSERT *"
        ).collect()
    finally:
        spark.catalog.dropTempView(view)


def _add_missing_columns(spark: "SparkSession", df: "DataFrame", target: str, have: list[str]) -> list[str]:
    """Columns a newer sparkdrift writes (e.g. noise_floor) are added to an older table before MERGE; their names."""
    missing = [f for f in df.schema.fields if f.name not in have]
    if missing:
        cols = ", ".join(f"{_quote(f.name)} {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE {sql_name(target)} ADD COLUMNS ({cols})")
    return [f.name for f in missing]


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def read_output(spark: "SparkSession", ref: str) -> "DataFrame | None":
    """An output table if it exists yet (None before the first write).

    A path is read straight away, its absence caught: asking first (``DESCRIBE
    HISTORY``) cost a second query of ~1 s per read, seven times in a run.
    """
    from pyspark.errors import AnalysisException

    reader = spark.read.format("delta")
    if not is_path(ref):
        return reader.table(sql_name(ref)) if table_exists(spark, ref) else None
    try:
        df = reader.load(location(ref))
        df.schema  # Spark Connect analyses lazily: a missing table shows here
    except AnalysisException:  # nothing there yet, or not a Delta table
        return None
    return df
