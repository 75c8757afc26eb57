"""Variants of the production pass and the baseline job, measured next to the real ones.

Nothing here is used by sparkdrift. The first round of this file prototyped
three fixes (CASE/InSet category keys, Arrow collect + numpy assembly,
``spark.sql.codegen.hugeMethodLimit=8000`` for the pass); all three are now
in ``sparkdrift/histograms.py``. What stays:

* ``count_windows_variant(..., jit=False)``: the pass with the codegen limit
  back at Spark's default (65535), i.e. the generated method of the whole
  stage too large for HotSpot to JIT-compile: what the JIT fix is worth;
* ``baseline_with_conf``: the baseline job with the same limit, which
  ``sparkdrift/baseline.py`` does not set (yet);
* ``count_windows_columnar``: a prototype of a different production pass:
  ``mapInArrow`` hands each Arrow batch to numpy, which bins every column with
  ``searchsorted`` and counts (window, column, key) with ``bincount``; Spark
  then sums these per-batch partial histograms (a few thousand rows per batch
  instead of 26 entries per input row through a hash aggregate). Same keys,
  same `Aggregate`/`assemble`, checked identical to count_windows.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from sparkdrift import histograms as H

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from sparkdrift.profile import FeatureProfile

JIT_CONF = {"spark.sql.codegen.hugeMethodLimit": "8000"}


@contextlib.contextmanager
def sql_conf(spark: "SparkSession", **conf: str) -> Iterator[None]:
    """Set runtime SQL confs for the block, then restore them."""
    old = {k: spark.conf.get(k, None) for k in conf}
    for k, v in conf.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


@contextlib.contextmanager
def pass_conf(conf: dict[str, str]) -> Iterator[None]:
    """Replace `histograms.PASS_CONF` (the confs count_windows sets for its query) for the block."""
    original = H.PASS_CONF
    H.PASS_CONF = conf
    try:
        yield
    finally:
        H.PASS_CONF = original


def count_windows_variant(
    spark: "SparkSession",
    df: "DataFrame",
    profiles: list["FeatureProfile"],
    ts_column: str,
    granularity_s: int,
    *,
    jit: bool = True,
) -> H.CountResult:
    """`histograms.count_windows`, optionally without its codegen limit (Spark's default 65535 instead)."""
    conf = dict(H.PASS_CONF) if jit else {k: "65535" for k in H.PASS_CONF}
    with pass_conf(conf):
        return H.count_windows(df, profiles, ts_column, granularity_s)


def baseline_with_conf(spark: "SparkSession", cfg, conf: dict[str, str] | None = None):
    """`build_baseline` with runtime SQL confs set around it (default: the pass's JIT-friendly limit)."""
    from sparkdrift.baseline import build_baseline

    with sql_conf(spark, **(conf or JIT_CONF)):
        return build_baseline(spark, cfg)


MOMENTS_KEY = -100  # a row per (window, column) carrying the value moments, n = 0


def _partial_histograms(batches, profiles, ts_column: str, granularity_s: int):
    """mapInArrow body: per batch, (window, feature, key) counts and (window, feature) moments."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from sparkdrift.binning import spark_splits

    splits = {i: np.asarray(spark_splits(p.edges)) for i, p in enumerate(profiles) if p.kind == "numeric" and p.edges}
    top = {i: pa.array(list(p.categories), pa.string()) for i, p in enumerate(profiles) if p.kind == "categorical"}
    rest = {i: pa.array([c for c in (p.tracked or ()) if c not in set(p.categories)], pa.string())
            for i, p in enumerate(profiles) if p.kind == "categorical"}
    g_us = granularity_s * 1_000_000
    for batch in batches:
        if batch.num_rows == 0:
            continue
        ts = batch.column(ts_column)
        has_ts = ~ts.is_null().to_numpy(zero_copy_only=False)
        us = ts.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        window = np.where(has_ts, us // g_us * g_us, np.iinfo(np.int64).min)
        wins, w_idx = np.unique(window, return_inverse=True)
        out = {k: [] for k in ("window_start", "feature_idx", "key", "n", "s", "ss", "lo", "hi")}

        def emit(f, keys, values=None):
            # (window, key) counts by bincount over a dense code; keys >= -4
            span = int(keys.max()) + 5
            code = w_idx * span + (keys + 4)
            counts = np.bincount(code, minlength=len(wins) * span)
            nz = np.flatnonzero(counts)
            out["window_start"].append(wins[nz // span])
            out["feature_idx"].append(np.full(nz.size, f, np.int32))
            out["key"].append((nz % span - 4).astype(np.int32))
            out["n"].append(counts[nz].astype(np.int64))
            for m in ("s", "ss", "lo", "hi"):
                out[m].append(np.full(nz.size, np.nan))
            if values is None:
                return
            fin = np.isfinite(values)
            for wi in range(len(wins)):
                sel = fin & (w_idx == wi)
                v = values[sel]
                out["window_start"].append(wins[wi:wi + 1])
                out["feature_idx"].append(np.array([f], np.int32))
                out["key"].append(np.array([MOMENTS_KEY], np.int32))
                out["n"].append(np.array([0], np.int64))
                out["s"].append(np.array([v.sum() if v.size else np.nan]))
                out["ss"].append(np.array([(v * v).sum() if v.size else np.nan]))
                out["lo"].append(np.array([v.min() if v.size else np.nan]))
                out["hi"].append(np.array([v.max() if v.size else np.nan]))

        for i, p in enumerate(profiles):
            col = batch.column(p.name)
            is_null = col.is_null().to_numpy(zero_copy_only=False)
            if p.kind == "numeric":
                v = col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(float)  # nulls -> NaN
                v = np.where(v == 0.0, 0.0, v)  # -0.0 -> 0.0, like selection.numeric_expr
                isnan = np.isnan(v) & ~is_null
                if i in splits:
                    sp = splits[i]
                    b = np.clip(np.searchsorted(sp, np.where(np.isnan(v), 0.0, v), side="right") - 1, 0, sp.size - 2)
                else:
                    b = np.zeros(v.size, np.int64)
                keys = np.where(is_null, -1, np.where(isnan, -2, b)).astype(np.int64)
                emit(i, keys, np.where(is_null | isnan, np.nan, v))
            else:
                other = len(p.categories)
                idx = pc.index_in(col, value_set=top[i]).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
                if p.tracked is None:
                    fallback = np.full(idx.size, other)
                else:
                    known = pc.is_in(col, value_set=rest[i]).fill_null(False).to_numpy(zero_copy_only=False)
                    fallback = np.where(known, other, -4)
                keys = np.where(is_null, -1, np.where(idx >= 0, idx, fallback)).astype(np.int64)
                emit(i, keys)
        ws = np.concatenate(out["window_start"])
        yield pa.RecordBatch.from_arrays(
            [pa.array(ws, pa.int64(), mask=ws == np.iinfo(np.int64).min).cast(pa.timestamp("us", tz="UTC")),
             *[pa.array(np.concatenate(out[k])) for k in ("feature_idx", "key", "n", "s", "ss", "lo", "hi")]],
            names=list(out),
        )


def count_windows_columnar(
    spark: "SparkSession", df: "DataFrame", profiles: list["FeatureProfile"], ts_column: str, granularity_s: int
) -> H.CountResult:
    """The prototype production pass (see the module doc); same result as `histograms.count_windows`."""
    from pyspark.sql import functions as F

    cols = [ts_column, *[p.name for p in profiles]]
    schema = ("window_start timestamp, feature_idx int, key int, n long, s double, ss double, lo double, hi double")
    partial = df.select(*cols).mapInArrow(
        lambda it: _partial_histograms(it, profiles, ts_column, granularity_s), schema
    )
    agg = partial.groupBy("window_start", "feature_idx", "key").agg(
        F.sum("n").alias("n"), F.sum("s").alias("s"), F.sum("ss").alias("ss"), F.min("lo").alias("lo"),
        F.max("hi").alias("hi"),
    )
    collected = H.Aggregate.collect(agg)
    windows, null_ts = H.assemble(collected, profiles, granularity_s)
    return H.CountResult(windows, null_ts)


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


__all__ = ["JIT_CONF", "baseline_with_conf", "count_windows_columnar", "count_windows_variant", "same_windows",
           "sql_conf"]
