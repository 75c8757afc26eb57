"""The baseline scans: a versioned profile of the reference table in two scans.

Scan 1 is two aggregations over every numeric column at once: (a) exact
count, min, max, mean, population std, sum, sum of squares, null and NaN
counts; (b) approximate quantiles on the fine grid (``percentile_approx``
with an explicit accuracy) over a random sample of about
``binning.quantile_sample_rows`` rows when the table is larger. They are
apart because ``percentile_approx`` would take (a) off Spark's generated
code. The driver turns the quantiles into cut points (`binning.make_edges`)
and coarse PSI bins (`binning.coarse_starts`).

Scan 2 counts every column into its own bins with the production pass's
engine (`counting`, numpy over Arrow batches): exact fine-bin counts of
numeric columns and exact per-value counts of categorical ones, summed
across partitions in Spark, so what is shuffled is columns x bins (x
distinct categories), never rows. Top-K categories are ranked in Spark
(window ``row_number`` over count desc, value asc), so the driver receives
at most ``top_k + max_tracked_categories`` rows per categorical column and
the fine-bin counts of each numeric column. A categorical column with more
distinct values than that is also sketched, in the same query, into a Bloom
filter of all its values (`spark.membership`): at most m / 64 more rows.

Both scans are a fixed number of Spark jobs whatever the number of columns.

Numeric statistics (quantiles, min/max, mean, std, sums) are over the finite
values: nulls, NaNs and +-infinity are left out (infinities are then counted
as underflow/overflow, since they lie outside [min, max]).

The profile is identified by a hash of (source table, Delta version read,
the config sections that shape it), so a rerun on an unchanged source gets the
same id and writes nothing; a new table version or a changed config gets a
new id.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from sparkdrift.spark import counting
from sparkdrift.core.binning import bin_splits, coarse_starts, make_edges, quantile_probabilities
from sparkdrift.spark.counting import NAN, NULL
from sparkdrift.errors import TableError
from sparkdrift.core.membership import HASHES, Membership
from sparkdrift.core.performance import slot_size
from sparkdrift.core.profile import BaselineProfile, FeatureProfile, Histogram
from sparkdrift.core.slices import cross_values
from sparkdrift.spark.performance import performance_key
from sparkdrift.spark.histograms import SliceColumn, slice_dims
from sparkdrift.spark.membership import MEMBERS
from sparkdrift.spark.selection import ColumnSpec, categorical_expr, numeric_expr, select_columns
from sparkdrift.spark.slicing import slice_labels
from sparkdrift.store.tables import TableRead, read_table

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from sparkdrift.core.config import MonitorConfig

log = logging.getLogger("sparkdrift.baseline")

#: Seed of ``baseline.sample_fraction``: the same table version gives the same sample.
SAMPLE_SEED = 20240229
#: Seed of the quantiles' sample (``binning.quantile_sample_rows``).
QUANTILE_SEED = 20240301
#: Bumped when the way a profile is computed changes, so old and new profiles get different ids.
PROFILE_FORMAT = 2
#: Config sections (top level) that shape a profile, hashed into the baseline id.
PROFILE_SECTIONS = ("baseline", "features", "prediction", "binning", "id_column")

# Scan-2 keys are `counting`'s: numeric 0 = underflow, 1..k = fine bins, k + 1 = overflow; categorical VALUE or NULL.
VALUE = 0
#: Splits of a numeric column with no finite baseline value: key 0 = -inf (underflow), 1 = +inf (overflow).
NO_EDGES_SPLITS = (-math.inf, 0.0, math.inf)

# --------------------------------------------------------------------------- identity


def profile_config_hash(cfg: "MonitorConfig") -> str:
    """Hash of everything in the config that changes what a profile contains.

    The sections in `PROFILE_SECTIONS`, plus the production timestamp column and
    the label column (both are kept out of inferred features), the positive
    label (it keys the baseline performance counts), plus `PROFILE_FORMAT`.
    ``baseline.version``/``baseline.timestamp`` are left out: they only choose
    the Delta version, and the version actually read is part of the id, so
    pinning the version that is also the latest gives the same id.
    ``baseline.min_rows`` only accepts or refuses a profile, never changes one.
    """
    plain = cfg.to_dict()
    shaped = {k: plain[k] for k in PROFILE_SECTIONS}
    shaped["baseline"] = {k: v for k, v in shaped["baseline"].items() if k not in ("version", "timestamp", "min_rows")}
    shaped["production.timestamp_column"] = cfg.production.timestamp_column
    shaped["label.column"] = cfg.label.column
    shaped["label.positive"] = cfg.label.positive
    shaped["format"] = PROFILE_FORMAT
    if cfg.slices:  # only when set: profiles of configs without slices keep their ids
        shaped["slices"] = plain["slices"]
    if cfg.slice_crosses:  # the cap shapes only the crosses' values
        shaped["slice_crosses"] = plain["slice_crosses"]
        shaped["max_slice_values"] = cfg.max_slice_values
    return hashlib.sha256(json.dumps(shaped, sort_keys=True).encode()).hexdigest()[:16]


def baseline_id_for(source_table: str, source_version: int | None, config_hash: str) -> str:
    """Deterministic id of a profile: same source version + same config -> same id."""
    text = json.dumps([source_table, source_version, config_hash])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_source(spark: "SparkSession", cfg: "MonitorConfig") -> TableRead:
    src = cfg.baseline
    read = read_table(spark, src.table, version=src.version, timestamp=src.timestamp, filter=src.filter)
    if src.sample_fraction is not None and src.sample_fraction < 1.0:
        read = TableRead(
            df=read.df.sample(withReplacement=False, fraction=src.sample_fraction, seed=SAMPLE_SEED),
            table=read.table,
            version=read.version,
        )
    return read


def _describe_read(cfg: "MonitorConfig", read: TableRead) -> str:
    parts = [f"{read.table} version {read.version}"]
    if cfg.baseline.filter:
        parts.append(f"filter {cfg.baseline.filter!r}")
    if cfg.baseline.sample_fraction is not None and cfg.baseline.sample_fraction < 1.0:
        parts.append(f"sample {cfg.baseline.sample_fraction:g} (seed {SAMPLE_SEED})")
    return ", ".join(parts)


# --------------------------------------------------------------------------- scans


def _finite(c: "Column") -> "Column":
    from pyspark.sql import functions as F

    return F.when(~F.isnan(c) & (F.abs(c) != F.lit(float("inf"))), c)


def _quantile_fraction(rows: int, sample_rows: int | None) -> float:
    """Share of rows whose values feed the quantiles: about ``sample_rows`` of them (1.0 = every row).

    ``percentile_approx`` costs ~1 us per value and dominates the job; quantiles from
    a 1M-row sample are within ~5e-4 in rank (its standard error), while every
    count, moment and the bins' counts stay exact.
    """
    return 1.0 if sample_rows is None or rows <= sample_rows else sample_rows / rows


def _scan_moments(
    df: "DataFrame", numeric: list[int], slice_caps: list[int] = ()
) -> tuple[int, dict[int, dict], dict[int, tuple[tuple[str, int], ...]]]:
    """Scan 1a: row count and exact moments of every numeric column, in one aggregation.

    With slices (label columns ``sl0, sl1, ...``, each capped at ``slice_caps[j]``
    values), the same aggregation also counts each slice's labels: every row is
    repeated once per slice with its label (the moments read only the
    overall copy), and Spark keeps each slice's most frequent labels. Returns
    the row count, the moments, and each slice's top (label, rows), most rows first.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    overall = F.lit(-1)
    if slice_caps:
        groups = [F.struct(overall.alias("d"), F.lit(None).cast("string").alias("l"))]
        groups += [F.struct(F.lit(j).alias("d"), F.col(f"sl{j}").alias("l")) for j in range(len(slice_caps))]
        df = df.select("*", F.explode(F.array(*groups)).alias("_g")).select("*", "_g.d", "_g.l")

    def col(i: int) -> "Column":
        return F.when(F.col("d") == overall, F.col(f"c{i}")) if slice_caps else F.col(f"c{i}")

    aggs = [F.count(F.lit(1)).alias("rows")]
    for i in numeric:
        c = col(i)
        fin = _finite(c)
        aggs += [
            F.count(fin).alias(f"n{i}"),
            F.min(fin).alias(f"lo{i}"),
            F.max(fin).alias(f"hi{i}"),
            F.avg(fin).alias(f"mean{i}"),
            F.stddev_pop(fin).alias(f"std{i}"),
            F.sum(fin).alias(f"s{i}"),
            F.sum(fin * fin).alias(f"ss{i}"),
            F.sum(F.when(c.isNull(), 1).otherwise(0)).alias(f"null{i}"),
            F.sum(F.when(F.isnan(c), 1).otherwise(0)).alias(f"nan{i}"),
        ]
    top: dict[int, tuple[tuple[str, int], ...]] = {}
    if slice_caps:
        grouped = df.groupBy("d", "l").agg(*aggs)
        rank = F.row_number().over(Window.partitionBy("d").orderBy(F.col("rows").desc(), F.col("l").asc()))
        cap = F.element_at(F.array(*[F.lit(k) for k in slice_caps]), (F.col("d") + 1).cast("int"))
        labels = grouped.filter(F.col("l").isNotNull() | (F.col("d") == overall)).select("*", rank.alias("rank"))
        rows = labels.filter((F.col("d") == overall) | (F.col("rank") <= cap)).collect()
        (row,) = [r for r in rows if r["d"] == -1]
        for j in range(len(slice_caps)):
            ranked = sorted((r for r in rows if r["d"] == j), key=lambda r: r["rank"])
            top[j] = tuple((r["l"], int(r["rows"])) for r in ranked)
    else:
        # collect(), not first(): first() plans a limit over the aggregate and is ~3x slower here
        (row,) = df.agg(*aggs).collect()
    stats = {}
    for i in numeric:
        stats[i] = {
            "n": int(row[f"n{i}"] or 0),
            # -0.0 and 0.0 are one value (see selection.numeric_expr)
            "min": None if row[f"lo{i}"] is None else row[f"lo{i}"] + 0.0,
            "max": None if row[f"hi{i}"] is None else row[f"hi{i}"] + 0.0,
            "mean": row[f"mean{i}"],
            "std": row[f"std{i}"],
            "sum": float(row[f"s{i}"] or 0.0),
            "sum_sq": float(row[f"ss{i}"] or 0.0),
            "nulls": int(row[f"null{i}"] or 0),
            "nans": int(row[f"nan{i}"] or 0),
        }
    return int(row["rows"]), stats, top


def _scan_quantiles(
    df: "DataFrame", numeric: list[int], probabilities: list[float], accuracy: int, fraction: float
) -> dict[int, list[float]]:
    """Scan 1b: the quantile grid of every numeric column over a ``fraction`` sample of the rows.

    Apart from scan 1a because ``percentile_approx`` is an imperative aggregate:
    next to it, Spark runs every other aggregate of the query without generated
    code (measured in bench/: the moments then cost more than the quantiles).
    The probabilities are one array column shared by every column's aggregate:
    a Python list would be turned into its own literals per column (a py4j call
    each: 21 columns x 1,000 probabilities took 27 s of a 50k-row baseline).
    """
    from pyspark.sql import functions as F

    grid = F.array(*[F.lit(float(p)) for p in probabilities])
    sampled = df if fraction >= 1.0 else df.sample(withReplacement=False, fraction=fraction, seed=QUANTILE_SEED)
    (row,) = sampled.agg(
        *[F.percentile_approx(_finite(F.col(f"c{i}")), grid, accuracy).alias(f"q{i}") for i in numeric]
    ).collect()
    return {i: [v + 0.0 for v in row[f"q{i}"] or () if v is not None] for i in numeric}


def _scan_counts(
    df: "DataFrame",
    specs: list[ColumnSpec],
    edges: dict[int, tuple[float, ...]],
    top_k: int,
    max_tracked: int,
    performance_bins: int | None = None,
    slices: list["counting.SliceDim"] = (),
) -> list:
    """Scan 2: fine-bin counts of numeric columns and ranked category counts, in one pass.

    Each partition is counted in numpy (`counting`, the production pass's
    engine); Spark sums the partitions and ranks categories. Returns rows
    (fi, key, value, n, s, ss, lo, hi, rank, distinct, total) with
    `counting`'s keys: for numeric columns every (bin, n); for categorical
    ones the null count and the top ``top_k`` values, plus the next
    ``max_tracked`` when the column has at most ``top_k + max_tracked``
    distinct values, and otherwise its Bloom filter's words (key `MEMBERS`,
    ``rank`` = word index, ``n`` = word, ``total`` = bits; ``distinct`` as on
    value rows). With ``performance_bins``, the label x prediction slot
    (columns ``pk``/``pv`` of ``df``) has feature index ``len(specs)``.

    With ``slices`` every row is also counted under its slice code (rows with
    ``slice`` > 0): numeric bins in full, and of categorical columns the values
    that are overall top-K categories (plus each slice's rank-1 row, which
    carries the slice's non-null total, so ``other`` is exact).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from sparkdrift.spark.histograms import PASS_CONF, map_partials, sql_conf, sum_partials
    from sparkdrift.spark.membership import with_sketch

    count_specs: list[counting.Spec] = []
    for i, s in enumerate(specs):
        if s.kind == "categorical":
            count_specs.append(counting.Values(f"c{i}"))
        else:  # no finite baseline value: anything else is -inf (key 0) or +inf (key 1)
            splits = bin_splits(edges[i]) if i in edges else NO_EDGES_SPLITS
            count_specs.append(counting.Numeric(f"c{i}", tuple(splits)))
    if performance_bins is not None:
        count_specs.append(counting.Slot("pk", "pv", performance_bins))
    counted = sum_partials(
        map_partials(df, count_specs, None, slices), ("slice", "feature_idx", "key", "value")
    ).withColumnRenamed("feature_idx", "fi")
    part = Window.partitionBy("slice", "fi", "key")
    ranked = counted.select(
        "*",
        F.row_number().over(part.orderBy(F.col("n").desc(), F.col("value").asc())).alias("rank"),
        F.count(F.lit(1)).over(part).alias("distinct"),
        F.sum("n").over(part).alias("total"),
    )
    categorical = [i for i, s in enumerate(specs) if s.kind == "categorical"]
    values = F.col("fi").isin(categorical) & (F.col("key") == F.lit(VALUE))
    keep = (
        ~values
        | (F.col("rank") <= F.lit(top_k))
        | (F.col("distinct") <= F.lit(top_k + max_tracked))
    )
    overall = F.col("slice") == F.lit(counting.OVERALL)
    wide = overall & values & (F.col("distinct") > F.lit(top_k + max_tracked))
    kept_rows = overall & keep
    if slices:
        # a slice keeps its bins, the overall top-K categories, and its rank-1 row; one filter, not a union of
        # branches, which Spark would each count from the table again (it does not reuse mapInArrow's shuffle)
        overall_top = (overall & values & (F.col("rank") <= F.lit(top_k))).cast("int")
        ranked = ranked.withColumn("_top", F.max(overall_top).over(Window.partitionBy("fi", "value")))
        kept_rows = kept_rows | (~overall & (~values | (F.col("_top") == 1) | (F.col("rank") == 1)))
    kept = with_sketch(ranked, kept_rows, wide)
    with sql_conf(df.sparkSession, **PASS_CONF):
        return kept.collect()


def _performance_histogram(rows: list, n_bins: int) -> Histogram:
    """The label x prediction slot's histogram from scan 2's rows (the production pass's decoder)."""
    from sparkdrift.spark.histograms import slot_histogram

    keys = np.array([int(r["key"]) for r in rows], dtype=np.int64)
    counts = np.array([int(r["n"]) for r in rows], dtype=np.int64)
    moments = [np.array([np.nan if r[c] is None else float(r[c]) for r in rows]) for c in ("s", "ss", "lo", "hi")]
    return slot_histogram(n_bins, keys, counts, moments)


# --------------------------------------------------------------------------- assembly


def _numeric_profile(
    spec: ColumnSpec, st: dict, edges: tuple[float, ...] | None, rows: list, coarse_bins: int
) -> FeatureProfile:
    keys: dict[int, int] = {int(r["key"]): int(r["n"]) for r in rows}
    sums: dict[int, float] = {int(r["key"]): float(r["s"]) for r in rows if r["s"] is not None}
    if not edges:  # all null / NaN / infinite: record it, no bins
        hist = Histogram(
            counts=np.zeros(0, dtype=np.int64),
            nulls=keys.get(NULL, 0),
            nans=keys.get(NAN, 0),
            underflow=keys.get(0, 0),
            overflow=keys.get(1, 0),
        )
        return FeatureProfile(spec.name, "numeric", hist, spec.role, spec.dtype)
    coarse = coarse_starts(edges, coarse_bins, st["quantiles"])
    k = len(edges)
    hist = Histogram(
        counts=np.array([keys.get(i, 0) for i in range(1, k + 1)], dtype=np.int64),
        nulls=keys.get(NULL, 0),
        nans=keys.get(NAN, 0),
        underflow=keys.get(0, 0),
        overflow=keys.get(k + 1, 0),
        value_sum=st["sum"],
        value_sum_sq=st["sum_sq"],
        min=float(st["min"]),
        max=float(st["max"]),
        bin_sums=np.array([sums.get(i, 0.0) for i in range(1, k + 1)]),
    )
    return FeatureProfile(spec.name, "numeric", hist, spec.role, spec.dtype, edges=edges, coarse=coarse,
                          mean=float(st["mean"]), std=float(st["std"]) if st["std"] is not None else math.nan)


def _categorical_profile(spec: ColumnSpec, rows: list, top_k: int, max_tracked: int) -> FeatureProfile:
    nulls = sum(int(r["n"]) for r in rows if r["key"] == NULL)
    values = sorted((r for r in rows if r["key"] == VALUE), key=lambda r: r["rank"])
    top = values[:top_k]
    distinct = int(values[0]["distinct"]) if values else 0
    total = _category_total(rows)
    categories = tuple(r["value"] for r in top)
    counts = np.array([int(r["n"]) for r in top] + [total - sum(int(r["n"]) for r in top)], dtype=np.int64)
    tracked: tuple[str, ...] | None = None
    members: Membership | None = None
    if distinct <= top_k + max_tracked:
        tracked = tuple(sorted(r["value"] for r in values[top_k:]))
    else:
        words = [r for r in rows if r["key"] == MEMBERS]
        bitset = np.zeros(int(words[0]["total"]) // 64, dtype=np.int64)
        bitset[[int(r["rank"]) for r in words]] = [int(r["n"]) for r in words]
        members = Membership(bitset, HASHES, distinct)
    hist = Histogram(counts=counts, nulls=nulls)
    return FeatureProfile(
        spec.name, "categorical", hist, spec.role, spec.dtype, categories=categories, tracked=tracked, members=members
    )


def _slice_histograms(
    rows: list, features: list[FeatureProfile], dims: list["counting.SliceDim"], names: list[str]
) -> dict[tuple[str, str], dict[str, Histogram]]:
    """Scan 2's slice rows as histograms on the overall profile's bins, decoded as the production pass does."""
    from sparkdrift.spark.histograms import decode_profile_histogram, decode_slice

    grouped: dict[tuple[int, int], list] = defaultdict(list)
    for r in rows:
        if r["slice"] != counting.OVERALL and int(r["fi"]) < len(features):
            grouped[(int(r["slice"]), int(r["fi"]))].append(r)
    out: dict[tuple[str, str], dict[str, Histogram]] = {}
    for (code, fi), group in sorted(grouped.items()):
        fp = features[fi]
        if fp.kind == "numeric" and not fp.edges:
            continue  # no bins to count on
        if fp.kind == "categorical":  # values -> category keys; other = the slice's non-null total minus the top
            index = {c: i for i, c in enumerate(fp.categories)}
            values = {r["value"]: int(r["n"]) for r in group if r["key"] == VALUE}
            top = {index[v]: n for v, n in values.items() if v in index}
            keys = [*top, len(fp.categories), NULL]
            counts = [*top.values(), _category_total(group) - sum(top.values()),
                      sum(int(r["n"]) for r in group if r["key"] == NULL)]
            moments = [np.full(len(keys), np.nan)] * 4
        else:
            keys = [int(r["key"]) for r in group]
            counts = [int(r["n"]) for r in group]
            moments = [np.array([np.nan if r[c] is None else float(r[c]) for r in group]) for c in ("s", "ss", "lo", "hi")]
        hist = decode_profile_histogram(fp, np.array(keys, dtype=np.int64), np.array(counts, dtype=np.int64), moments)
        out.setdefault(decode_slice(dims, names, code), {})[fp.name] = hist
    return out


def _slice_tops(cfg: "MonitorConfig", names: list[str], ranked: dict[int, tuple[tuple[str, int], ...]]
                ) -> list[SliceColumn]:
    """The slices counted in scan 2 (label columns ``sl<j>``) with their values, under ``max_slice_values``.

    The listed slices keep their top labels (the config check keeps them under
    the cap, other and null included); the crosses share what is left
    (`core.slices.cross_values`), and a cross that gets no value is not counted.
    """
    from pyspark.sql import functions as F

    n = len(cfg.slices)
    values = [tuple(label for label, _ in ranked[j]) for j in range(n)]
    room = cfg.max_slice_values - sum(len(v) + 2 for v in values)
    values += cross_values(room, [ranked[j] for j in range(n, len(names))])
    for name, v in zip(names[n:], values[n:]):
        if not v:
            log.warning("baseline %s: no room for crossed slice %s under max_slice_values=%d: not counted",
                        cfg.monitor, name, cfg.max_slice_values)
    return [SliceColumn(name, F.col(f"sl{j}"), v) for j, (name, v) in enumerate(zip(names, values)) if v or j < n]


def _category_total(rows: list) -> int:
    """Non-null rows of a categorical column: carried on every collected value row."""
    for r in rows:
        if r["key"] == VALUE:
            return int(r["total"])
    return 0


def build_baseline(spark: "SparkSession", cfg: "MonitorConfig") -> BaselineProfile:
    """Profile ``cfg.baseline`` in two scans (see the module doc). Nothing is written.

    Raises `TableError` when the table is missing, lacks a configured column,
    or has no rows after ``filter``/``sample_fraction``.
    """
    started = time.perf_counter()
    b = cfg.binning
    read = _read_source(spark, cfg)
    specs = select_columns(read.df.schema, cfg, read.table)
    if not specs:
        raise TableError(f"table {read.table}: no columns to profile (no numeric, string or boolean columns inferred)")
    config_hash = profile_config_hash(cfg)
    baseline_id = baseline_id_for(read.table, read.version, config_hash)
    numeric = [i for i, s in enumerate(specs) if s.kind == "numeric"]
    n_cat = len(specs) - len(numeric)
    log.info(
        "baseline %s: profiling %d numeric and %d categorical columns of %s (baseline id %s)",
        cfg.monitor, len(numeric), n_cat, _describe_read(cfg, read), baseline_id,
    )
    perf = performance_key(cfg, read.df.columns)
    projected = [
        (numeric_expr(s.name, s.dtype) if s.kind == "numeric" else categorical_expr(s.name, s.dtype)).alias(f"c{i}")
        for i, s in enumerate(specs)
    ]
    if perf is not None:
        projected += [perf[0].alias("pk"), perf[1].cast("double").alias("pv")]
        log.info(
            "baseline %s: label %r and prediction %r are in the baseline table: also counting baseline performance",
            cfg.monitor, cfg.label.column, cfg.prediction.columns[0],
        )
    labels = slice_labels(read.df, cfg.slices, cfg.slice_crosses)
    projected_names = [f"c{i}" for i in range(len(specs))] + (["pk", "pv"] if perf is not None else [])
    df = read.df.select(*projected, *[label.alias(f"sl{j}") for j, (_, label) in enumerate(labels)])

    probabilities = quantile_probabilities(b.fine_bins)
    log.info("scan 1 of 2: row count and moments of %d numeric columns", len(numeric))
    t0 = time.perf_counter()
    caps = [sl.max_values for sl in cfg.slices] + [cfg.max_slice_values] * len(cfg.slice_crosses)
    row_count, stats, ranked = _scan_moments(df, numeric, caps)
    if row_count == 0:
        raise TableError(f"table {read.table}: no rows to build a baseline from ({_describe_read(cfg, read)})")
    if row_count < cfg.baseline.min_rows:
        raise TableError(
            f"table {read.table}: {row_count} rows ({_describe_read(cfg, read)}), fewer than baseline.min_rows = "
            f"{cfg.baseline.min_rows}: too few to place quantile bins on or to compare windows with; "
            "use more rows (or lower baseline.min_rows)")
    fraction = _quantile_fraction(row_count, b.quantile_sample_rows)
    if numeric:
        log.info(
            "scan 1 of 2: %d-quantile grid (accuracy %d) of %d numeric columns from %s",
            b.fine_bins, b.quantile_accuracy, len(numeric),
            "every row" if fraction >= 1.0 else f"a {fraction:.3g} sample (~{b.quantile_sample_rows:,} rows)",
        )
        for i, q in _scan_quantiles(df, numeric, probabilities, b.quantile_accuracy, fraction).items():
            st = stats[i]
            # the 0 and 1 quantiles are the exact extremes (a sample's own lie inside them)
            st["quantiles"] = [st["min"], *q[1:-1], st["max"]] if st["min"] is not None else []
    log.info("scan 1 of 2 done in %.1fs: %d rows", time.perf_counter() - t0, row_count)

    edges: dict[int, tuple[float, ...]] = {}
    for i in numeric:
        st = stats[i]
        if st["min"] is not None:
            edges[i] = make_edges(st["quantiles"], st["min"], st["max"])
        else:
            log.warning("baseline %s: numeric column %r has no finite value (all null/NaN)", cfg.monitor, specs[i].name)

    log.info(
        "scan 2 of 2: counting %d numeric columns into their fine bins and top-%d categories of %d categorical columns",
        len(numeric), b.top_k, n_cat,
    )
    t0 = time.perf_counter()
    perf_bins = slot_size(cfg.prediction.kind) if perf is not None else None
    slices = _slice_tops(cfg, [name for name, _ in labels], ranked)
    dims = slice_dims(slices, prefix="k")  # the kept slices' labels, renamed k0, k1, ...: a cross may be left out
    counted = df.select(*projected_names, *[sl.label.alias(d.column) for sl, d in zip(slices, dims)])
    rows = _scan_counts(counted, specs, edges, b.top_k, b.max_tracked_categories, perf_bins, dims)
    log.info("scan 2 of 2 done in %.1fs: %d aggregate rows collected", time.perf_counter() - t0, len(rows))

    by_feature: dict[int, list] = defaultdict(list)
    for r in rows:
        if r["slice"] == counting.OVERALL:
            by_feature[int(r["fi"])].append(r)
    features: dict[str, FeatureProfile] = {}
    for i, spec in enumerate(specs):
        if spec.kind == "numeric":
            fp = _numeric_profile(spec, stats[i], edges.get(i), by_feature[i], b.coarse_bins)
        else:
            fp = _categorical_profile(spec, by_feature[i], b.top_k, b.max_tracked_categories)
        if fp.baseline.n_rows != row_count:
            log.warning(
                "baseline %s: column %r counted %d rows in scan 2 but scan 1 saw %d",
                cfg.monitor, spec.name, fp.baseline.n_rows, row_count,
            )
        features[spec.name] = fp
    performance = _performance_histogram(by_feature[len(specs)], perf_bins) if perf_bins is not None else None
    sliced = _slice_histograms(rows, list(features.values()), dims, [sl.name for sl in slices])

    profile = BaselineProfile(
        monitor=cfg.monitor,
        baseline_id=baseline_id,
        created_at=datetime.now(timezone.utc).isoformat(),
        source_table=read.table,
        source_version=read.version,
        config_hash=config_hash,
        row_count=row_count,
        features=features,
        performance=performance,
        slices=sliced,
    )
    log.info(
        "baseline %s: built profile %s of %d columns over %d rows in %.1fs",
        cfg.monitor, baseline_id, len(features), row_count, time.perf_counter() - started,
    )
    return profile


def baseline_identity(spark: "SparkSession", cfg: "MonitorConfig") -> tuple[str, int | None, str]:
    """(baseline id, source version, config hash) the config would produce now, without scanning."""
    src = cfg.baseline
    read = read_table(spark, src.table, version=src.version, timestamp=src.timestamp, filter=src.filter)
    config_hash = profile_config_hash(cfg)
    return baseline_id_for(read.table, read.version, config_hash), read.version, config_hash
