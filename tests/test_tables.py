"""Delta round trips through the session: paths, names, time travel, idempotent MERGE."""
from __future__ import annotations

import re

import pytest

from sparkdrift.errors import TableError
from sparkdrift.store.tables import latest_version, merge_rows, read_output, read_table, require_columns

pytestmark = [pytest.mark.spark, pytest.mark.e2e]


def test_read_by_path_with_time_travel(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.createDataFrame([(1, "a")], "id int, v string").write.format("delta").save(path)
    spark.createDataFrame([(2, "b")], "id int, v string").write.format("delta").mode("append").save(path)

    latest = read_table(spark, path)
    assert latest.version == 1
    assert sorted(r.id for r in latest.df.collect()) == [1, 2]

    old = read_table(spark, path, version=0)
    assert old.version == 0
    assert [tuple(r) for r in old.df.collect()] == [(1, "a")]

    filtered = read_table(spark, path, filter="id > 1")
    assert [r.id for r in filtered.df.collect()] == [2]


def test_read_by_name_with_time_travel(spark):
    spark.sql("CREATE SCHEMA IF NOT EXISTS sd_test")
    spark.createDataFrame([(1,)], "id int").write.format("delta").mode("overwrite").saveAsTable("sd_test.named")
    spark.createDataFrame([(2,)], "id int").write.format("delta").mode("append").saveAsTable("sd_test.named")
    assert latest_version(spark, "sd_test.named") == 1
    assert sorted(r.id for r in read_table(spark, "sd_test.named").df.collect()) == [1, 2]
    assert [r.id for r in read_table(spark, "sd_test.named", version=0).df.collect()] == [1]


def test_time_travel_by_timestamp(spark, tmp_path):
    path = str(tmp_path / "ts")
    spark.createDataFrame([(1,)], "id int").write.format("delta").save(path)
    spark.createDataFrame([(2,)], "id int").write.format("delta").mode("append").save(path)
    read = read_table(spark, path, timestamp="2999-01-01 00:00:00")
    assert read.version == 1
    with pytest.raises(TableError, match="no version at or before 2000-01-01"):
        read_table(spark, path, timestamp="2000-01-01 00:00:00")


def test_missing_table_and_column_are_named(spark, tmp_path):
    with pytest.raises(TableError, match=r"table .*nope: no Delta table at this path"):
        read_table(spark, str(tmp_path / "nope"))
    with pytest.raises(TableError, match="table sd_missing.t: not found in the metastore"):
        read_table(spark, "sd_missing.t")
    path = str(tmp_path / "c")
    spark.createDataFrame([(1,)], "id int").write.format("delta").save(path)
    with pytest.raises(TableError, match=r"missing column 'age' \(has: id\)"):
        require_columns(read_table(spark, path), ["id", "age"])
    with pytest.raises(TableError, match="filter 'nope > 1' is invalid"):
        read_table(spark, path, filter="nope > 1").df.collect()


def test_merge_is_idempotent(spark, tmp_path):
    target = str(tmp_path / "out")
    rows = [("m", 1, 0.5), ("m", 2, 0.7)]
    df = spark.createDataFrame(rows, "monitor string, window int, value double")
    merge_rows(spark, df, target, ["monitor", "window"])
    merge_rows(spark, df, target, ["monitor", "window"])
    out = read_output(spark, target)
    assert sorted(tuple(r) for r in out.collect()) == sorted(rows)

    update = spark.createDataFrame([("m", 2, 0.9), ("m", 3, 0.1)], df.schema)
    merge_rows(spark, update, target, ["monitor", "window"])
    assert sorted(tuple(r) for r in read_output(spark, target).collect()) == [
        ("m", 1, 0.5),
        ("m", 2, 0.9),
        ("m", 3, 0.1),
    ]
    # three writes, three commits: nothing is rewritten twice
    assert latest_version(spark, target) == 2


def test_read_output_before_first_write(spark, tmp_path):
    assert read_output(spark, str(tmp_path / "none")) is None


def test_names_are_quoted_part_by_part():
    from sparkdrift.store.tables import name_parts, sql_name

    assert sql_name("main.ml.churn") == "`main`.`ml`.`churn`"
    assert sql_name("churn") == "`churn`"
    assert name_parts("`my.cat`.s.`we``ird`") == ["my.cat", "s", "we`ird"]
    assert sql_name("`my.cat`.s.`we``ird`") == "`my.cat`.`s`.`we``ird`"
    assert sql_name("/data/x`y") == "delta.`/data/x``y`"
    for bad in ("a..b", "a.b.c.d", "`open.b", "a."):
        with pytest.raises(TableError, match=rf"table {re.escape(bad)}: not a valid table name"):
            sql_name(bad)


def test_three_part_names_and_temp_views_are_dropped(spark):
    spark.sql("CREATE SCHEMA IF NOT EXISTS spark_catalog.sd_three")
    name = "spark_catalog.sd_three.results"
    df = spark.createDataFrame([("m", 1, 0.5)], "monitor string, window int, value double")
    merge_rows(spark, df, name, ["monitor", "window"])
    merge_rows(spark, spark.createDataFrame([("m", 1, 0.25), ("m", 2, 1.0)], df.schema), name, ["monitor", "window"])
    assert latest_version(spark, name) == 1
    assert sorted(tuple(r) for r in read_table(spark, name).df.collect()) == [("m", 1, 0.25), ("m", 2, 1.0)]
    assert [tuple(r) for r in read_table(spark, name, version=0).df.collect()] == [("m", 1, 0.5)]
    assert read_output(spark, "spark_catalog.sd_three.nothing_yet") is None
    views = [t.name for t in spark.catalog.listTables() if t.isTemporary]
    assert not [v for v in views if v.startswith("sparkdrift_merge_")], views


def _slow(df, seconds: float):
    """The same rows, produced only after ``seconds``: holds a MERGE between its snapshot and its commit."""
    import time

    from pyspark.sql import functions as F

    pause = F.udf(lambda v: time.sleep(seconds) or v, "int")
    return df.coalesce(1).withColumn("window", pause("window"))


def _merge_concurrently(spark, target, caplog):
    """Two writers MERGE disjoint rows into one table at once: Delta lets one commit and refuses the other."""
    import threading
    import time

    first = spark.createDataFrame([("a", 1, 0.1), ("a", 2, 0.2)], "monitor string, window int, value double")
    merge_rows(spark, first, target, ["monitor", "window"])  # the table exists; both writers read all of it
    slow = _slow(spark.createDataFrame([("b", 1, 1.0)], first.schema), 6)
    fast = spark.createDataFrame([("c", 1, 2.0)], first.schema)
    errors: list[BaseException] = []

    def write(df):
        try:
            merge_rows(spark, df, target, ["monitor", "window"])
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(slow,)), threading.Thread(target=write, args=(fast,))]
    threads[0].start()
    time.sleep(1.5)  # the slow writer has its snapshot; the fast one commits while it is still reading
    threads[1].start()
    for t in threads:
        t.join(120)
    return errors


def test_concurrent_writers_both_land_once(spark, tmp_path, caplog):
    target = str(tmp_path / "out")
    with caplog.at_level("INFO", logger="sparkdrift.store"):
        errors = _merge_concurrently(spark, target, caplog)
    assert errors == []
    rows = sorted(tuple(r) for r in read_output(spark, target).collect())
    assert rows == [("a", 1, 0.1), ("a", 2, 0.2), ("b", 1, 1.0), ("c", 1, 2.0)]
    # the conflict really happened and was retried (not two writers that merely took turns)
    assert any("another writer committed first" in r.getMessage() for r in caplog.records)


def test_a_conflict_that_outlasts_the_retries_is_one_line_and_writes_nothing(spark, tmp_path, caplog, monkeypatch):
    from sparkdrift.errors import ConcurrentRunError
    from sparkdrift.store import tables

    monkeypatch.setattr(tables, "CONFLICT_ATTEMPTS", 1)
    target = str(tmp_path / "out")
    errors = _merge_concurrently(spark, target, caplog)
    assert len(errors) == 1 and isinstance(errors[0], ConcurrentRunError)
    message = str(errors[0])
    assert "\n" not in message and message.startswith(f"table {target}: another run kept writing it")
    rows = sorted(tuple(r) for r in read_output(spark, target).collect())
    # the winner's row landed; the loser's commit never happened, whole
    assert rows in ([("a", 1, 0.1), ("a", 2, 0.2), ("c", 1, 2.0)], [("a", 1, 0.1), ("a", 2, 0.2), ("b", 1, 1.0)])


def test_an_output_location_that_cannot_be_written_is_one_line(spark, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    df = spark.createDataFrame([("m", 1, 0.5)], "monitor string, window int, value double")
    with pytest.raises(TableError) as err:
        merge_rows(spark, df, str(blocker / "out"), ["monitor", "window"])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"table {blocker / 'out'}: cannot write (") and "writable" in message


def test_a_filter_that_is_not_one_predicate_is_refused_with_spark_s_reason(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.createDataFrame([(1,)], "i int").write.format("delta").save(path)
    with pytest.raises(TableError) as err:
        read_table(spark, path, filter="1=1; DROP TABLE x")
    message = str(err.value)
    prefix = f"table {path}: filter '1=1; DROP TABLE x' is invalid: "
    assert message.startswith(prefix) and len(message) > len(prefix) + 5 and "\n" not in message, message
