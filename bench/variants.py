"""Other ways to run the production pass, measured next to sparkdrift's own.

Nothing here is used by sparkdrift.

* ``count_windows_stack``: the pass sparkdrift used before the numpy
  counting (`sparkdrift.spark.counting`): every row becomes one (window, column,
  key, value) entry per column with ``stack`` (numeric keys from Spark ML's
  ``Bucketizer``, category keys from a CASE/InSet), grouped by a hash
  aggregate. Kept to show what the switch is worth on the same data, and
  checked to give identical histograms.
* ``arrow_noop``: the pass's projection handed to Python through
  ``mapInArrow`` and dropped there: the cost of the JVM -> Arrow -> Python
  transfer alone, without any counting.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sparkdrift.spark import histograms as H
from sparkdrift.core.binning import bin_splits
from sparkdrift.spark.counting import INVALID, MOMENTS, NAN, NULL, OVERALL, UNSEEN
from sparkdrift.spark.selection import categorical_expr, numeric_expr, qcol
from sparkdrift.spark.histograms import window_start_column
from sparkdrift.core.windows import Windows

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from sparkdrift.core.profile import FeatureProfile


def _categorical_key(p: "FeatureProfile", raw: "Column") -> "Column":
    from pyspark.sql import functions as F

    other = len(p.categories)
    key = F.when(raw.isNull(), F.lit(NULL))
    for i, c in enumerate(p.categories):
        key = key.when(raw == F.lit(c), F.lit(i))
    if p.tracked is None:
        return key.otherwise(F.lit(other))
    rest = [c for c in p.tracked if c not in set(p.categories)]
    if rest:
        key = key.when(raw.isin(rest), F.lit(other))
    return key.otherwise(F.lit(UNSEEN))


def stack_entries(df: "DataFrame", profiles: list["FeatureProfile"], ts_column: str, windows: Windows) -> "DataFrame":
    """One (window_us, feature_idx, key, value) row per input row and column."""
    from pyspark.ml.feature import Bucketizer
    from pyspark.sql import functions as F

    types = dict(df.dtypes)
    cols = [F.unix_micros(window_start_column(qcol(ts_column), windows)).alias("window_us")]
    numeric = [(i, p) for i, p in enumerate(profiles) if p.kind == "numeric" and p.edges]
    for i, p in enumerate(profiles):
        cols.append((qcol(p.name) if p.kind == "numeric" else categorical_expr(p.name)).alias(f"r{i}"))
        if p.kind == "numeric":
            value = numeric_expr(p.name)
            cols += [value.alias(f"v{i}"), F.coalesce(F.when(~F.isnan(value), value), F.lit(0.0)).alias(f"b{i}")]
    staged = df.select(*cols)
    if numeric:
        staged = Bucketizer(splitsArray=[bin_splits(p.edges) for _, p in numeric],
                            inputCols=[f"b{i}" for i, _ in numeric], outputCols=[f"k{i}" for i, _ in numeric],
                            handleInvalid="keep").transform(staged)
    parts = []
    for i, p in enumerate(profiles):
        raw = F.col(f"r{i}")
        if p.kind == "numeric":
            value = F.col(f"v{i}")
            key = F.when(raw.isNull(), F.lit(NULL))
            if types[p.name] == "string":
                key = key.when(value.isNull(), F.lit(INVALID))
            key = key.when(F.isnan(value), F.lit(NAN)).otherwise(F.col(f"k{i}").cast("int") if p.edges else F.lit(0))
        else:
            value, key = F.lit(None).cast("double"), _categorical_key(p, raw)
        parts += [F.lit(i), key, value]
    staged = staged.select("window_us", *[c.alias(f"col{j}") for j, c in enumerate(parts)])
    exprs = ", ".join(f"col{j}" for j in range(len(parts)))
    return staged.select("window_us", F.expr(f"stack({len(profiles)}, {exprs}) as (feature_idx, key, value)"))


def count_windows_stack(
    df: "DataFrame", profiles: list["FeatureProfile"], ts_column: str, windows: Windows
) -> H.CountResult:
    """The previous production pass (see the module doc); same result as `histograms.count_windows`."""
    from pyspark.sql import functions as F

    entries = stack_entries(df, profiles, ts_column, windows)
    finite = F.when(~F.isnan("value"), F.col("value"))
    moments = (F.sum(finite).alias("s"), F.sum(finite * finite).alias("ss"), F.min(finite).alias("lo"),
               F.max(finite).alias("hi"))
    per_key = entries.groupBy("window_us", "feature_idx", "key").agg(F.count(F.lit(1)).alias("n"), *moments)
    # one MOMENTS row per (window, column), as the numpy pass yields
    per_window = entries.groupBy("window_us", "feature_idx").agg(
        F.lit(MOMENTS).alias("key"), F.lit(0).cast("long").alias("n"), *moments
    )
    agg = per_key.unionByName(per_window).withColumn("slice", F.lit(OVERALL).cast("long"))  # no slices here
    with H.sql_conf(df.sparkSession, **{"spark.sql.codegen.hugeMethodLimit": "8000"}):
        collected = H.Aggregate.collect(agg)
    counted, null_ts, _ = H.assemble(collected, profiles, windows)
    return H.CountResult(counted, null_ts)


def _drop(batches):
    import pyarrow as pa

    rows = sum(b.num_rows for b in batches)
    yield pa.RecordBatch.from_arrays([pa.array([rows], pa.int64())], names=["rows"])


def arrow_noop(df: "DataFrame", profiles: list["FeatureProfile"], ts_column: str) -> int:
    """Ship the pass's columns to Python as Arrow batches and drop them; returns the rows seen."""
    from pyspark.sql import functions as F

    staged = df.select(qcol(ts_column), *[
        (numeric_expr(p.name) if p.kind == "numeric" else categorical_expr(p.name)).alias(f"c{i}")
        for i, p in enumerate(profiles)
    ])
    with H.sql_conf(df.sparkSession, **H.PASS_CONF):
        return int(staged.mapInArrow(_drop, "rows long").agg(F.sum("rows")).collect()[0][0])


def same_windows(a: H.CountResult, b: H.CountResult) -> bool:
    """Identical windows, rows and histograms (Histogram equality: counts exact, sums to 1e-9)."""
    if a.null_timestamps != b.null_timestamps or len(a.windows) != len(b.windows):
        return False
    for x, y in zip(a.windows, b.windows):
        if x.window_start != y.window_start or x.rows != y.rows or x.histograms.keys() != y.histograms.keys():
            return False
        if any(x.histograms[k] != y.histograms[k] for k in x.histograms):
            return False
    return True


__all__ = ["arrow_noop", "count_windows_stack", "same_windows", "stack_entries"]
