"""The production pass: per-window histograms of every monitored column in ONE scan.

Spark reads and casts the monitored columns (the casts in `selection`, the
window start in `windows`) and hands each partition to numpy as Arrow
batches (``mapInArrow``): `counting.partial_histograms` bins and counts them
per (window, column, key). Spark then sums those partial counts across
partitions, so what is shuffled and collected is windows x columns x bins,
never rows. Bin keys are `counting`'s.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from sparkdrift.spark import counting
from sparkdrift.core.binning import bin_splits
from sparkdrift.spark.counting import INVALID, MOMENTS, NAN, NULL, UNSEEN
from sparkdrift.core.profile import FeatureProfile, Histogram
from sparkdrift.spark.selection import categorical_expr, numeric_expr, try_cast
from sparkdrift.store.tables import qcol
from sparkdrift.core.windows import naive_utc, window_start_column

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger("sparkdrift.spark.histograms")

#: Arrow batch size for the pass: fewer, larger numpy calls (50k rows x 30 columns is ~12 MB).
PASS_CONF = {"spark.sql.execution.arrow.maxRecordsPerBatch": "50000"}
_NUMERIC_TYPES = ("double", "float", "int", "bigint", "smallint", "tinyint", "boolean")


@dataclass(frozen=True)
class WindowHistograms:
    """Everything one window contributes: a histogram per column and its row count."""

    window_start: datetime
    window_end: datetime
    rows: int
    histograms: dict[str, Histogram]


@dataclass(frozen=True)
class ColumnIssue:
    """A monitored column the production table cannot provide as the baseline did."""

    feature: str
    problem: str  # "missing" | "type"
    detail: str


def check_columns(df: "DataFrame", profiles: list[FeatureProfile]) -> tuple[list[FeatureProfile], list[ColumnIssue]]:
    """Split columns into those we can count and those flagged for the quality signal.

    A missing column or an uncastable type flags that column only; the others proceed.
    """
    types = dict(df.dtypes)
    usable, issues = [], []
    for p in profiles:
        if p.name not in types:
            issues.append(ColumnIssue(p.name, "missing", "column not in the production table"))
            continue
        dtype = types[p.name]
        castable = dtype.startswith("decimal") or dtype in _NUMERIC_TYPES or dtype == "string"
        if p.kind == "categorical":
            castable = castable or dtype in ("date", "timestamp")
        if not castable:
            issues.append(ColumnIssue(p.name, "type", f"type {dtype} cannot be read as {p.kind}"))
            continue
        usable.append(p)
    return usable, issues


@dataclass(frozen=True)
class Slot:
    """An extra keyed count in the same pass (e.g. performance by label x prediction)."""

    name: str
    key: "Column"
    value: "Column"
    n_bins: int


@contextlib.contextmanager
def sql_conf(spark, **conf: str) -> Iterator[None]:
    """Set runtime SQL confs for one query, then restore them (the user's session is left as it was).

    These confs tune speed, never results: a runtime that refuses one (Databricks
    serverless allows few) runs the query without it.
    """
    old = {}
    for k, v in conf.items():
        try:
            previous = spark.conf.get(k, None)
            spark.conf.set(k, v)
        except Exception as exc:  # noqa: BLE001 - e.g. CONFIG_NOT_AVAILABLE on serverless
            log.debug("runtime refused %s=%s (%s): running without it", k, v, exc)
            continue
        old[k] = previous
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def map_partials(staged: "DataFrame", specs: list["counting.Spec"], window: str | None) -> "DataFrame":
    """`counting.partial_histograms` over every partition of ``staged`` (rows: `counting.OUTPUT_SCHEMA`).

    The counting module is pickled by value, so executors need only numpy
    and pyarrow, not sparkdrift (see `counting`'s doc).
    """
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(counting)
    body = functools.partial(counting.partial_histograms, specs=tuple(specs), window=window)
    return staged.mapInArrow(body, counting.OUTPUT_SCHEMA)


def partial_counts(
    df: "DataFrame", profiles: list[FeatureProfile], ts_column: str, granularity_s: int, slots: list[Slot] = ()
) -> "DataFrame":
    """Per-partition (window_us, feature_idx, key, n, s, ss, lo, hi) rows, before the cross-partition sum.

    Slots follow the profiles, with feature indexes len(profiles), len(profiles) + 1, ...
    """
    from pyspark.sql import functions as F

    types = dict(df.dtypes)
    cols = [F.unix_micros(window_start_column(try_cast(ts_column, "timestamp"), granularity_s)).alias("_w")]
    specs: list[counting.Spec] = []
    for i, p in enumerate(profiles):
        if p.kind == "numeric":
            value = numeric_expr(p.name)  # the baseline's cast: -0.0 is 0.0, booleans 1/0
            cols.append(value.alias(f"v{i}"))
            invalid = None
            if types[p.name] == "string":
                invalid = f"x{i}"
                cols.append((qcol(p.name).isNotNull() & value.isNull()).alias(invalid))
            splits = tuple(bin_splits(p.edges)) if p.edges else None
            specs.append(counting.Numeric(f"v{i}", splits, invalid))
        else:
            cols.append(categorical_expr(p.name).alias(f"c{i}"))
            specs.append(counting.Categorical(f"c{i}", tuple(p.categories), p.tracked and tuple(p.tracked)))
    for j, slot in enumerate(slots):
        cols += [slot.key.cast("int").alias(f"sk{j}"), slot.value.cast("double").alias(f"sv{j}")]
        specs.append(counting.Slot(f"sk{j}", f"sv{j}", slot.n_bins))
    return map_partials(df.select(*cols), specs, "_w")


def sum_partials(partials: "DataFrame", by: tuple[str, ...] = ("window_us", "feature_idx", "key")) -> "DataFrame":
    """Counts and moments per (window, feature, key) summed over partitions: the only thing shuffled."""
    from pyspark.sql import functions as F

    return partials.groupBy(*by).agg(
        F.sum("n").alias("n"), F.sum("s").alias("s"), F.sum("ss").alias("ss"),
        F.min("lo").alias("lo"), F.max("hi").alias("hi"),
    )


@dataclass(frozen=True)
class Aggregate:
    """The collected (window, feature, key) aggregate as numpy columns (microseconds for windows)."""

    window_us: np.ndarray
    has_window: np.ndarray
    feature: np.ndarray
    key: np.ndarray
    n: np.ndarray
    s: np.ndarray
    ss: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def from_rows(cls, rows: list) -> "Aggregate":
        """From collected Rows (runtimes without the Arrow collect)."""

        def col(name, dtype, null=np.nan):
            return np.array([null if r[name] is None else r[name] for r in rows], dtype=dtype)

        has = np.array([r["window_us"] is not None for r in rows], dtype=bool)
        return cls(col("window_us", np.int64, 0), has, col("feature_idx", np.int64, 0), col("key", np.int64, 0),
                   col("n", np.int64, 0), col("s", float), col("ss", float), col("lo", float), col("hi", float))

    @classmethod
    def collect(cls, agg: "DataFrame") -> "Aggregate":
        """Collect through Arrow: windows x columns x bins rows as columns, no per-row Python objects.

        ``toArrow`` (Spark 4, classic and Connect); on classic Spark 3.5 its
        private forerunner; elsewhere (Connect on 3.5) plain rows.
        """
        import pyarrow as pa

        if hasattr(agg, "toArrow"):
            t = agg.toArrow()
        else:
            try:
                batches = agg._collect_as_arrow()
            except Exception as exc:  # a runtime without the private Arrow path
                log.debug("arrow collect unavailable (%s): collecting rows", exc)
                return cls.from_rows(agg.collect())
            if not batches:
                return cls.from_rows([])
            t = pa.Table.from_batches(batches)
        if t.num_rows == 0:
            return cls.from_rows([])

        def num(name, dtype):
            return t.column(name).to_numpy(zero_copy_only=False).astype(dtype)

        ws = t.column("window_us")
        has = ~ws.is_null().to_numpy(zero_copy_only=False)
        window = ws.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(window, has, num("feature_idx", np.int64), num("key", np.int64), num("n", np.int64),
                   num("s", float), num("ss", float), num("lo", float), num("hi", float))


def assemble(
    agg: Aggregate, profiles: list[FeatureProfile], granularity_s: int, slots: list[Slot] = ()
) -> tuple[list[WindowHistograms], int]:
    """Histogram values per window from the aggregate, plus the rows with a null timestamp."""
    from datetime import timezone

    from sparkdrift.core.windows import window_end

    null_ts = int(agg.n[~agg.has_window & (agg.feature == 0)].sum())
    v = agg.has_window
    order = np.lexsort((agg.feature[v], agg.window_us[v]))
    w, f, k, n = agg.window_us[v][order], agg.feature[v][order], agg.key[v][order], agg.n[v][order]
    moments = [a[v][order] for a in (agg.s, agg.ss, agg.lo, agg.hi)]
    edge = np.flatnonzero(np.r_[True, (w[1:] != w[:-1]) | (f[1:] != f[:-1])]) if len(w) else np.zeros(0, int)
    stops = np.r_[edge[1:], len(w)]
    groups = {(int(w[a]), int(f[a])): slice(a, b) for a, b in zip(edge, stops)}
    empty = slice(0, 0)
    out = []
    for win in np.unique(w):
        hists = {}
        rows_in_window = 0
        for i, p in enumerate(profiles):
            sl = groups.get((int(win), i), empty)
            hists[p.name] = _histogram(p, k[sl], n[sl], [m[sl] for m in moments])
            rows_in_window = max(rows_in_window, int(n[sl].sum()))
        for j, slot in enumerate(slots):
            sl = groups.get((int(win), len(profiles) + j), empty)
            hists[slot.name] = _slot_histogram(slot, k[sl], n[sl], [m[sl] for m in moments])
        start = datetime.fromtimestamp(int(win) / 1_000_000, tz=timezone.utc)
        out.append(WindowHistograms(start, window_end(start, granularity_s), rows_in_window, hists))
    return out, null_ts


def _spread(keys: np.ndarray, counts: np.ndarray, n_bins: int, offset: int = 0) -> np.ndarray:
    """Counts per bin from (key, count) pairs, keys offset..offset+n_bins-1."""
    out = np.zeros(n_bins, dtype=np.int64)
    ok = (keys >= offset) & (keys < offset + n_bins)
    np.add.at(out, keys[ok] - offset, counts[ok])
    return out


def _moments(keys: np.ndarray, m: list[np.ndarray]) -> dict:
    """Value sum, sum of squares, min and max from a group's `MOMENTS` rows."""
    s, ss, lo, hi = (a[keys == MOMENTS] for a in m)
    finite = ~np.isnan(s)
    return dict(
        value_sum=float(s[finite].sum()),
        value_sum_sq=float(ss[finite].sum()),
        min=float(np.nanmin(lo)) if (~np.isnan(lo)).any() else float("nan"),
        max=float(np.nanmax(hi)) if (~np.isnan(hi)).any() else float("nan"),
    )


def _slot_histogram(slot: Slot, keys: np.ndarray, counts: np.ndarray, m: list[np.ndarray]) -> Histogram:
    return Histogram(
        counts=_spread(keys, counts, slot.n_bins), nulls=int(counts[keys == NULL].sum()), **_moments(keys, m)
    )


def _histogram(p: FeatureProfile, keys: np.ndarray, counts: np.ndarray, m: list[np.ndarray]) -> Histogram:
    def side(code: int) -> int:
        return int(counts[keys == code].sum())

    common = dict(nulls=side(NULL), nans=side(NAN), invalid=side(INVALID))
    if p.kind == "categorical":
        return Histogram(counts=_spread(keys, counts, p.n_bins), unseen=side(UNSEEN), **common)
    nb = p.n_bins
    if nb:
        fine, under, over = _spread(keys, counts, nb, offset=1), side(0), side(nb + 1)
        sums = bin_sums(keys, m[0], nb)
    else:  # all-null baseline: any value is out of the (empty) range
        fine, under, over, sums = np.zeros(0, dtype=np.int64), 0, side(0), None
    return Histogram(counts=fine, underflow=under, overflow=over, bin_sums=sums, **common, **_moments(keys, m))


def bin_sums(keys: np.ndarray, s: np.ndarray, n_bins: int) -> np.ndarray:
    """Value sum per fine bin (keys 1..n_bins) from the key rows' ``s``."""
    out = np.zeros(n_bins)
    ok = (keys >= 1) & (keys <= n_bins) & ~np.isnan(s)
    np.add.at(out, keys[ok] - 1, s[ok])
    return out


@dataclass(frozen=True)
class ScanMetrics:
    """What the production scan really read (from the executed plan): proof of pruning, and cost.

    None where the runtime does not say (the plan's metrics were not available).
    """

    rows: int | None = None
    files: int | None = None
    bytes: int | None = None
    scans: int | None = None  # file-scan nodes in the executed plan: 1 = one pass over the table

    def as_cost(self) -> dict[str, float | None]:
        """The ``scan_*`` cost entries (None: unknown)."""
        def f(v):
            return None if v is None else float(v)
        return {"scan_rows": f(self.rows), "scan_files": f(self.files), "scan_bytes": f(self.bytes)}


@dataclass(frozen=True)
class CountResult:
    windows: list[WindowHistograms]
    null_timestamps: int
    scan: ScanMetrics = ScanMetrics()


def scan_metrics(df: "DataFrame") -> ScanMetrics:
    """Sum the file-scan node metrics of an executed DataFrame.

    Classic Spark: the executed plan (descending through AQE stages). Spark
    Connect: the plan metrics the server returned with the last result
    (``executionInfo``, Spark 4). Unknown (all None) when neither is there.
    """
    from sparkdrift.spark.session import is_connect

    if is_connect(df.sparkSession):
        return _connect_scan_metrics(df)
    rows = files = size = scans = 0
    stack = [df._jdf.queryExecution().executedPlan()]
    while stack:
        node = stack.pop()
        name = node.getClass().getSimpleName()
        if name == "AdaptiveSparkPlanExec":
            stack.append(node.executedPlan())
            continue
        if name.endswith("QueryStageExec"):
            stack.append(node.plan())
            continue
        if name == "FileSourceScanExec":
            metrics = node.metrics()
            def value(key: str) -> int:
                m = metrics.get(key)
                return int(m.get().value()) if m.isDefined() else 0
            scans += 1
            rows += value("numOutputRows")
            files += value("numFiles")
            size += value("filesSize")
        children = node.children()
        stack.extend(children.apply(i) for i in range(children.size()))
    return ScanMetrics(rows, files, size, scans)


def _connect_scan_metrics(df: "DataFrame") -> ScanMetrics:
    info = getattr(df, "executionInfo", None)
    collected = info.metrics if info is not None else None
    nodes = getattr(collected, "_metrics", None)
    if not nodes:
        return ScanMetrics()
    rows = files = size = scans = 0
    for node in nodes:
        if not node.name.startswith("Scan "):  # FileSourceScanExec: "Scan parquet", ...
            continue
        values = {m.name: m.value for m in node.metrics}
        scans += 1
        rows += int(values.get("numOutputRows", 0))
        files += int(values.get("numFiles", 0))
        size += int(values.get("filesSize", 0))
    return ScanMetrics(rows, files, size, scans)


def count_windows(
    df: "DataFrame",
    profiles: list[FeatureProfile],
    ts_column: str,
    granularity_s: int,
    slots: list[Slot] = (),
) -> CountResult:
    """Histograms per window for ``profiles`` over the rows of ``df`` (one scan).

    Rows with a null timestamp belong to no window; they are counted in the
    same aggregation and reported, not dropped silently.
    """
    if not profiles and not slots:
        return CountResult([], 0)
    agg = sum_partials(partial_counts(df, profiles, ts_column, granularity_s, slots))
    with sql_conf(agg.sparkSession, **PASS_CONF):
        collected = Aggregate.collect(agg)
    windows, null_ts = assemble(collected, profiles, granularity_s, slots)
    try:
        scan = scan_metrics(agg)
    except Exception as exc:  # plan internals differ across runtimes; metrics are a bonus
        log.debug("scan metrics unavailable: %s", exc)
        scan = ScanMetrics()  # unknown, not zero
    return CountResult(windows, null_ts, scan)


def time_range_filter(ts_column: str, start: datetime | None, end: datetime | None) -> "Column":
    """A pushed-down predicate ``start <= ts < end`` (either side optional).

    The column is read with ``TRY_CAST(... AS TIMESTAMP)``: a no-op for a
    timestamp column (pruning is unchanged), and for timestamps stored as
    text an unparsable value is null (outside every range) with ANSI mode on
    or off.
    """
    from pyspark.sql import functions as F

    ts = try_cast(ts_column, "timestamp")
    cond = F.lit(True)
    if start is not None:
        cond = cond & (ts >= F.lit(naive_utc(start)))
    if end is not None:
        cond = cond & (ts < F.lit(naive_utc(end)))
    return cond


HISTOGRAM_KEYS = ["monitor", "baseline_id", "window_start", "feature"]
_HISTOGRAM_SCHEMA = (
    "monitor string, baseline_id string, window_start timestamp, window_end timestamp, feature string, "
    "rows long, counts array<long>, nulls long, nans long, underflow long, overflow long, unseen long, "
    "invalid long, value_sum double, value_sum_sq double, min double, max double, bin_sums array<double>, "
    "source_version long, computed_at timestamp"
)


def write_histograms(
    spark, table: str, monitor: str, baseline_id: str, windows: list[WindowHistograms], source_version: int | None
) -> int:
    """MERGE window histograms on (monitor, baseline id, window, feature): a recomputed window replaces, never adds."""
    from datetime import datetime, timezone

    from sparkdrift.store.tables import merge_rows

    now = naive_utc(datetime.now(timezone.utc))
    rows = []
    for w in windows:
        for feature, h in w.histograms.items():
            d = h.to_dict()
            rows.append((
                monitor, baseline_id, naive_utc(w.window_start), naive_utc(w.window_end), feature, w.rows,
                d["counts"], d["nulls"], d["nans"], d["underflow"], d["overflow"], d["unseen"], d["invalid"],
                d["value_sum"], d["value_sum_sq"], d["min"], d["max"], d["bin_sums"], source_version, now,
            ))
    if rows:
        merge_rows(spark, spark.createDataFrame(rows, _HISTOGRAM_SCHEMA), table, HISTOGRAM_KEYS)
    return len(rows)


def load_histograms(
    spark, table: str, monitor: str, baseline_id: str, *, before: datetime | None = None, last: int | None = None
) -> list[WindowHistograms]:
    """Stored windows (oldest first) for a monitor and baseline; optionally only the ``last`` N before a time."""
    from pyspark.sql import functions as F

    from sparkdrift.store.tables import read_output
    from sparkdrift.core.windows import as_utc

    df = read_output(spark, table)
    if df is None:
        return []
    df = df.filter((F.col("monitor") == monitor) & (F.col("baseline_id") == baseline_id))
    if before is not None:
        df = df.filter(F.col("window_start") < F.lit(naive_utc(before)))
    if last is not None:
        starts = [r[0] for r in df.select("window_start").distinct().orderBy(F.desc("window_start")).limit(last).collect()]
        if not starts:
            return []
        df = df.filter(F.col("window_start") >= F.lit(min(starts)))
    by_window: dict[datetime, dict] = defaultdict(dict)
    meta: dict[datetime, tuple] = {}
    for r in df.collect():
        d = r.asDict()
        by_window[d["window_start"]][d["feature"]] = Histogram.from_dict(d)
        meta[d["window_start"]] = (d["window_end"], d["rows"])
    return [
        WindowHistograms(as_utc(s), as_utc(meta[s][0]), int(meta[s][1]), by_window[s]) for s in sorted(by_window)
    ]


def last_window_start(spark, table: str, monitor: str, baseline_id: str) -> datetime | None:
    """Start of the newest window stored in ``table`` for a monitor and baseline."""
    from pyspark.sql import functions as F

    from sparkdrift.store.tables import read_output
    from sparkdrift.core.windows import as_utc

    df = read_output(spark, table)
    if df is None:
        return None
    row = df.filter((F.col("monitor") == monitor) & (F.col("baseline_id") == baseline_id)).agg(
        F.max("window_start")
    ).first()
    return as_utc(row[0]) if row and row[0] is not None else None
