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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from sparkdrift.spark import counting
from sparkdrift.core.binning import bin_splits
from sparkdrift.spark.counting import INVALID, MOMENTS, NAN, NULL, UNSEEN
from sparkdrift.core.profile import FeatureProfile, Histogram
from sparkdrift.core.quality import ColumnIssue
from sparkdrift.core.slices import OVERALL, slice_values
from sparkdrift.spark.cost import ScanMetrics, scan_metrics
from sparkdrift.spark.membership import positions
from sparkdrift.spark.selection import categorical_expr, numeric_expr, qcol, supports, try_cast
from sparkdrift.core.windows import WindowHistograms, Windows, naive_utc

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger("sparkdrift.spark.histograms")

#: Arrow batch size for the pass: fewer, larger numpy calls (50k rows x 30 columns is ~12 MB).
PASS_CONF = {"spark.sql.execution.arrow.maxRecordsPerBatch": "50000"}


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
        if not (supports(p.kind, dtype) or dtype == "string"):  # text is read too: bad values count as invalid
            issues.append(ColumnIssue(p.name, "type", f"type {dtype} cannot be read as {p.kind}"))
            continue
        usable.append(p)
    return usable, issues


def window_start_column(ts: "Column", windows: Windows) -> "Column":
    """Spark expression for the start of the window holding ``ts``: `Windows.start`'s rule, row by row.

    Calendar windows take the UTC date from the epoch seconds, not from the
    session's time zone: the cut is at UTC month starts on any session.
    """
    from pyspark.sql import functions as F

    epoch = F.unix_seconds(ts)
    if not windows.months:
        off, seconds = F.lit(windows.offset), F.lit(windows.seconds)
        return F.timestamp_seconds(F.floor((epoch - off) / seconds) * seconds + off)
    day = F.date_from_unix_date(F.floor(epoch / F.lit(86400)).cast("int"))
    index = F.floor(((F.year(day) - 1970) * 12 + F.month(day) - 1) / F.lit(windows.months))  # Windows.index
    first = F.add_months(F.lit(date(1970, 1, 1)), (index * F.lit(windows.months)).cast("int"))
    return F.timestamp_seconds(F.unix_date(first).cast("long") * F.lit(86400))


@dataclass(frozen=True)
class SlotColumns:
    """The Spark columns of an extra keyed count in the same pass (a `counting.Slot`; e.g. performance)."""

    name: str
    key: "Column"
    value: "Column"
    n_bins: int


@dataclass(frozen=True)
class SliceColumn:
    """A slice dimension in the pass: its name, the Spark column of its label, the baseline's top values."""

    name: str
    label: "Column"
    values: tuple[str, ...]


def slice_dims(slices: Sequence[SliceColumn], prefix: str = "sl") -> list[counting.SliceDim]:
    """`counting.SliceDim` per slice, on columns ``<prefix>0, <prefix>1, ...``, with codes that never collide."""
    dims, offset = [], counting.OVERALL + 1
    for j, sl in enumerate(slices):
        dims.append(counting.SliceDim(f"{prefix}{j}", sl.values, offset))
        offset = dims[-1].null + 1
    return dims


def decode_slice(dims: Sequence[counting.SliceDim], names: Sequence[str], code: int) -> tuple[str, str]:
    """(slice, slice value) of a slice code (`OVERALL` for code 0)."""
    for dim, name in zip(dims, names):
        if dim.offset <= code <= dim.null:
            return name, slice_values(dim.values)[code - dim.offset]
    return OVERALL, OVERALL


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


def map_partials(staged: "DataFrame", specs: list["counting.Spec"], window: str | None,
                 slices: Sequence[counting.SliceDim] = ()) -> "DataFrame":
    """`counting.partial_histograms` over every partition of ``staged`` (rows: `counting.OUTPUT_SCHEMA`).

    The counting module is pickled by value, so executors need only numpy
    and pyarrow, not sparkdrift (see `counting`'s doc).
    """
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(counting)
    body = functools.partial(counting.partial_histograms, specs=tuple(specs), window=window, slices=tuple(slices))
    return staged.mapInArrow(body, counting.OUTPUT_SCHEMA)


def coarse_keys(p: FeatureProfile) -> tuple[int, ...] | None:
    """Per bin key of a numeric profile (`counting`'s: 0 underflow, 1..k fine, k+1 overflow), its coarse bin's
    first key; None when the profile has no coarse bins."""
    if not (p.n_bins and len(p.coarse)):
        return None
    starts = np.asarray(p.coarse)
    first = starts[np.searchsorted(starts, np.arange(p.n_bins), side="right") - 1] + 1
    return (0, *first.tolist(), p.n_bins + 1)


def partial_counts(
    df: "DataFrame", profiles: list[FeatureProfile], ts_column: str, windows: Windows, slots: list[SlotColumns] = (),
    slices: Sequence[SliceColumn] = (), coarse_slices: frozenset[str] = frozenset(),
) -> "DataFrame":
    """Per-partition (window_us, slice, feature_idx, key, n, s, ss, lo, hi) rows, before the cross-partition sum.

    Slots follow the profiles, with feature indexes len(profiles), len(profiles) + 1, ...
    The numeric columns in ``coarse_slices`` are counted on their coarse bins in the slices (see `count_windows`).
    """
    from pyspark.sql import functions as F

    types = dict(df.dtypes)
    cols = [F.unix_micros(window_start_column(try_cast(ts_column, "timestamp"), windows)).alias("_w")]
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
            lump = coarse_keys(p) if p.name in coarse_slices else None
            specs.append(counting.Numeric(f"v{i}", splits, invalid, lump))
        else:
            value = categorical_expr(p.name)
            cols.append(value.alias(f"c{i}"))
            members = None
            if p.members is not None:  # Spark hashes as the baseline did; numpy tests the bits
                cols.append(positions(value, F.lit(p.members.bits), p.members.hashes).cast("array<int>").alias(f"h{i}"))
                members = counting.Members(f"h{i}", p.members.words)
            specs.append(counting.Categorical(f"c{i}", tuple(p.categories), p.tracked and tuple(p.tracked), members))
    for j, slot in enumerate(slots):
        cols += [slot.key.cast("int").alias(f"sk{j}"), slot.value.cast("double").alias(f"sv{j}")]
        specs.append(counting.Slot(f"sk{j}", f"sv{j}", slot.n_bins))
    dims = slice_dims(slices)
    cols += [sl.label.alias(dim.column) for sl, dim in zip(slices, dims)]
    return map_partials(df.select(*cols), specs, "_w", dims)


def sum_partials(
    partials: "DataFrame", by: tuple[str, ...] = ("window_us", "slice", "feature_idx", "key")
) -> "DataFrame":
    """Counts and moments per (window, slice, feature, key) summed over partitions: the only thing shuffled."""
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
    slice: np.ndarray
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
        return cls(col("window_us", np.int64, 0), has, col("slice", np.int64, 0), col("feature_idx", np.int64, 0),
                   col("key", np.int64, 0),
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
        return cls(window, has, num("slice", np.int64), num("feature_idx", np.int64), num("key", np.int64),
                   num("n", np.int64),
                   num("s", float), num("ss", float), num("lo", float), num("hi", float))


def assemble(
    agg: Aggregate, profiles: list[FeatureProfile], windows: Windows, slots: list[SlotColumns] = (),
    slices: Sequence[SliceColumn] = (),
) -> tuple[list[WindowHistograms], int, list[WindowHistograms]]:
    """Histograms per window from the aggregate, the rows with a null timestamp, and the slices' windows."""
    null_ts = int(agg.n[~agg.has_window & (agg.feature == 0) & (agg.slice == counting.OVERALL)].sum())
    v = agg.has_window
    order = np.lexsort((agg.feature[v], agg.slice[v], agg.window_us[v]))
    w, c, f = agg.window_us[v][order], agg.slice[v][order], agg.feature[v][order]
    k, n = agg.key[v][order], agg.n[v][order]
    moments = [a[v][order] for a in (agg.s, agg.ss, agg.lo, agg.hi)]
    new = (w[1:] != w[:-1]) | (c[1:] != c[:-1]) | (f[1:] != f[:-1])
    edge = np.flatnonzero(np.r_[True, new]) if len(w) else np.zeros(0, int)
    stops = np.r_[edge[1:], len(w)]
    groups = {(int(w[a]), int(c[a]), int(f[a])): slice(a, b) for a, b in zip(edge, stops)}
    empty = slice(0, 0)
    dims, names = slice_dims(slices), [sl.name for sl in slices]
    out, sliced = [], []
    for win, code in sorted({(g[0], g[1]) for g in groups}):
        hists = {}
        rows_in_window = 0
        for i, p in enumerate(profiles):
            sl = groups.get((win, code, i), empty)
            hists[p.name] = decode_profile_histogram(p, k[sl], n[sl], [m[sl] for m in moments])
            rows_in_window = max(rows_in_window, int(n[sl].sum()))
        start = datetime.fromtimestamp(win / 1_000_000, tz=timezone.utc)
        if code != counting.OVERALL:  # a slice: the monitored columns only (slots are overall)
            name, value = decode_slice(dims, names, code)
            sliced.append(WindowHistograms(start, windows.end(start), rows_in_window, hists, name, value))
            continue
        for j, slot in enumerate(slots):
            sl = groups.get((win, code, len(profiles) + j), empty)
            hists[slot.name] = slot_histogram(slot.n_bins, k[sl], n[sl], [m[sl] for m in moments])
        out.append(WindowHistograms(start, windows.end(start), rows_in_window, hists))
    return out, null_ts, sliced


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


def slot_histogram(n_bins: int, keys: np.ndarray, counts: np.ndarray, m: list[np.ndarray]) -> Histogram:
    """A slot's histogram from its (key, count) rows and `MOMENTS` rows (``m``: s, ss, lo, hi per row)."""
    return Histogram(counts=_spread(keys, counts, n_bins), nulls=int(counts[keys == NULL].sum()), **_moments(keys, m))


def decode_profile_histogram(p: FeatureProfile, keys: np.ndarray, counts: np.ndarray, m: list[np.ndarray]) -> Histogram:
    """A column's histogram from its (key, count) rows and `MOMENTS` rows: the production pass's decoder."""

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
class CountResult:
    windows: list[WindowHistograms]
    null_timestamps: int
    scan: ScanMetrics = ScanMetrics()
    slices: list[WindowHistograms] = field(default_factory=list)  # per (window, slice value), same pass


def count_windows(
    df: "DataFrame",
    profiles: list[FeatureProfile],
    ts_column: str,
    windows: Windows,
    slots: list[SlotColumns] = (),
    slices: Sequence[SliceColumn] = (),
    coarse_slices: frozenset[str] = frozenset(),
) -> CountResult:
    """Histograms per window for ``profiles`` over the rows of ``df`` (one scan), and per slice value.

    Rows with a null timestamp belong to no window; they are counted in the
    same aggregation and reported, not dropped silently. In the slices, the
    numeric columns named in ``coarse_slices`` are counted on their coarse
    bins: each coarse bin's count sits on its first fine bin (what the coarse
    statistics read is exact; the fine bins and per-bin value sums are not kept).
    """
    if not profiles and not slots:
        return CountResult([], 0)
    agg = sum_partials(partial_counts(df, profiles, ts_column, windows, slots, slices, coarse_slices))
    with sql_conf(agg.sparkSession, **PASS_CONF):
        collected = Aggregate.collect(agg)
    counted, null_ts, sliced = assemble(collected, profiles, windows, slots, slices)
    try:
        scan = scan_metrics(agg)
    except Exception as exc:  # plan internals differ across runtimes; metrics are a bonus
        log.debug("scan metrics unavailable: %s", exc)
        scan = ScanMetrics()  # unknown, not zero
    return CountResult(counted, null_ts, scan, sliced)


def window_row_counts(df: "DataFrame", ts_column: str, windows: Windows, start: datetime,
                      end: datetime) -> dict[datetime, int]:
    """Rows per window in [start, end): one aggregate over the timestamp column alone (Delta prunes by its stats)."""
    from pyspark.sql import functions as F

    start_us = F.unix_micros(window_start_column(try_cast(ts_column, "timestamp"), windows))  # no session time zone
    counted = df.filter(time_range_filter(ts_column, start, end)).groupBy(start_us.alias("w")).count().collect()
    return {datetime.fromtimestamp(r["w"] / 1_000_000, tz=timezone.utc): int(r["count"]) for r in counted}


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
