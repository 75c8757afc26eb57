"""`MonitorStore` on Delta tables, through SQL only (works on classic Spark and Spark Connect).

Each table is long and keyed, and written with one ``MERGE`` (`tables.merge_rows`),
so a rerun replaces its own rows and never duplicates them:

- profiles: one row per (monitor, baseline id, slice, slice value, column), plus a ``__performance__`` row
- histograms: one row per (monitor, baseline id, window, slice, slice value, column)
- metrics: one row per (monitor, baseline id, window, slice, slice value, column, statistic, reference)

Overall rows have slice = slice value = ``__all__``; tables written before
slices existed get both columns, filled with ``__all__``, on their next write.
- actions: one row per dedup key

Timestamps are stored as naive UTC (sessions here run in UTC) and read back as aware UTC.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sparkdrift.core.membership import Membership
from sparkdrift.core.performance import SLOT
from sparkdrift.core.planning import ActionRecord
from sparkdrift.core.profile import BaselineProfile, FeatureProfile, Histogram
from sparkdrift.core.results import DriftResult
from sparkdrift.core.slices import OVERALL, is_overall
from sparkdrift.core.windows import WindowHistograms, as_utc, naive_utc
from sparkdrift.store.base import TABLES, MonitorStore, Progress, Written
from sparkdrift.store.tables import local_frame, merge_rows, read_output, sql_string

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from sparkdrift.core.config import MonitorConfig

PROFILE_SCHEMA = (
    "monitor string, baseline_id string, created_at timestamp, source_table string, "
    "source_version bigint, config_hash string, row_count bigint, position int, "
    "feature string, kind string, role string, dtype string, "
    "edges array<double>, coarse array<int>, categories array<string>, tracked array<string>, "
    "counts array<bigint>, nulls bigint, nans bigint, underflow bigint, overflow bigint, "
    "unseen bigint, invalid bigint, value_sum double, value_sum_sq double, "
    "min double, max double, bin_sums array<double>, mean double, std double, slice string, slice_value string, "
    "members array<bigint>, members_hashes int, members_values bigint"
)
#: The Bloom filter of a wide categorical column (`core.membership`); null elsewhere and in rows written before it.
NO_MEMBERS = {"members": None, "members_hashes": None, "members_values": None}
PROFILE_KEYS = ["monitor", "baseline_id", "slice", "slice_value", "feature"]
#: key columns added after the tables' first version, and the value of the rows written before them
SLICE_DEFAULTS = {"slice": OVERALL, "slice_value": OVERALL}
#: ``feature`` of the row holding the baseline's label x prediction counts (kind "performance").
PERFORMANCE_ROW = "__performance__"

HISTOGRAM_SCHEMA = (
    "monitor string, baseline_id string, window_start timestamp, window_end timestamp, feature string, "
    "rows long, counts array<long>, nulls long, nans long, underflow long, overflow long, unseen long, "
    "invalid long, value_sum double, value_sum_sq double, min double, max double, bin_sums array<double>, "
    "source_version long, computed_at timestamp, slice string, slice_value string"
)
HISTOGRAM_KEYS = ["monitor", "baseline_id", "window_start", "slice", "slice_value", "feature"]

METRICS_SCHEMA = (
    "monitor string, baseline_id string, window_start timestamp, window_end timestamp, feature string, "
    "signal string, kind string, statistic string, reference string, value double, lower double, "
    "upper double, p_value double, threshold double, drifted boolean, reference_rows long, "
    "window_rows long, reason string, noise_floor double, excess double, mlflow_run_id string, computed_at timestamp, "
    "slice string, slice_value string"
)
METRIC_KEYS = ["monitor", "baseline_id", "window_start", "slice", "slice_value", "feature", "statistic", "reference"]

ACTIONS_SCHEMA = (
    "monitor string, window_start timestamp, window_end timestamp, severity string, rules string, "
    "action string, kind string, target string, status string, dedup_key string, drift_run_id string, "
    "retrain_run_id string, error string, decided_at timestamp, finished_at timestamp"
)


def _timestamp_sql(t: datetime | None) -> str:
    """An instant as SQL, whatever the session's time zone (a TIMESTAMP '...' literal is read in it)."""
    if t is None:
        return "NULL"
    delta = as_utc(t) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return f"timestamp_micros({(delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds})"


def _same(stored: ActionRecord | None, mine: ActionRecord) -> bool:
    """Whether the stored row is the one this run wrote (its decision time, to the microsecond, is its own)."""
    return (stored is not None and stored.status == mine.status and stored.drift_run_id == mine.drift_run_id
            and stored.decided_at is not None and mine.decided_at is not None
            and as_utc(stored.decided_at) == as_utc(mine.decided_at))


def _now() -> datetime:
    return naive_utc(datetime.now(timezone.utc))


def _none_if_nan(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _from_spark(dt: datetime | None) -> datetime | None:
    """PySpark returns timestamps as naive *local* time; make them aware UTC."""
    return None if dt is None else dt.astimezone(timezone.utc)  # naive: astimezone reads it as local


def profile_rows(profile: BaselineProfile) -> list[dict]:
    """The profiles-table rows of one profile (one per column, plus the performance row)."""
    common = {
        "monitor": profile.monitor,
        "baseline_id": profile.baseline_id,
        "created_at": as_utc(datetime.fromisoformat(profile.created_at)),
        "source_table": profile.source_table,
        "source_version": profile.source_version,
        "config_hash": profile.config_hash,
        "row_count": int(profile.row_count),
    }
    rows = []
    for position, fp in enumerate(profile.features.values()):
        mean, std = fp.mean_std()
        rows.append({
            **common, "position": position, "feature": fp.name, "kind": fp.kind, "role": fp.role,
            "dtype": fp.dtype, "edges": [float(e) for e in fp.edges], "coarse": [int(c) for c in fp.coarse],
            "categories": list(fp.categories), "tracked": None if fp.tracked is None else list(fp.tracked),
            **fp.baseline.to_dict(), "mean": _none_if_nan(mean), "std": _none_if_nan(std),
            "slice": OVERALL, "slice_value": OVERALL, **_members_row(fp.members),
        })
    if profile.performance is not None:
        rows.append({
            **common, "position": len(rows), "feature": PERFORMANCE_ROW, "kind": "performance",
            "role": "performance", "dtype": None, "edges": [], "coarse": [], "categories": [], "tracked": None,
            **profile.performance.to_dict(), "mean": None, "std": None, "slice": OVERALL, "slice_value": OVERALL,
            **NO_MEMBERS,
        })
    for (name, value), hists in profile.slices.items():  # the bins are the overall profile's
        for feature, hist in hists.items():
            fp = profile.features[feature]
            rows.append({
                **common, "position": len(rows), "feature": feature, "kind": fp.kind, "role": fp.role,
                "dtype": fp.dtype, "edges": [], "coarse": [], "categories": [], "tracked": None,
                **hist.to_dict(), "mean": None, "std": None, "slice": name, "slice_value": value, **NO_MEMBERS,
            })
    return rows


def _members_row(members: Membership | None) -> dict:
    if members is None:
        return NO_MEMBERS
    return {"members": [int(w) for w in members.words], "members_hashes": members.hashes,
            "members_values": members.values}


def profile_from_rows(rows: list[dict]) -> BaselineProfile:
    """The inverse of `profile_rows` (rows in ``position`` order, ``created_at`` aware)."""
    first = rows[0]
    features = {}
    performance = None
    slices: dict[tuple[str, str], dict[str, Histogram]] = {}
    for r in rows:
        hist = Histogram.from_dict(r)
        if not is_overall(r.get("slice")):
            slices.setdefault((r["slice"], r["slice_value"]), {})[r["feature"]] = hist
            continue
        if r["kind"] == "performance":
            performance = hist
            continue
        numeric = r["kind"] == "numeric"
        features[r["feature"]] = FeatureProfile(
            name=r["feature"], kind=r["kind"], baseline=hist, role=r["role"], dtype=r["dtype"],
            edges=tuple(float(e) for e in (r["edges"] or ())),
            coarse=tuple(int(c) for c in (r["coarse"] or ())),
            categories=tuple(r["categories"] or ()),
            tracked=None if r["tracked"] is None else tuple(r["tracked"]),
            members=None if r.get("members") is None else Membership(r["members"], r["members_hashes"],
                                                                      r["members_values"]),
            mean=(math.nan if r["mean"] is None else float(r["mean"])) if numeric else None,
            std=(math.nan if r["std"] is None else float(r["std"])) if numeric else None,
        )
    return BaselineProfile(
        monitor=first["monitor"], baseline_id=first["baseline_id"], created_at=first["created_at"].isoformat(),
        source_table=first["source_table"], source_version=first["source_version"],
        config_hash=first["config_hash"], row_count=int(first["row_count"]), features=features,
        performance=performance, slices=slices,
    )


def metric_row(r: DriftResult, run_id: str | None, now: datetime) -> tuple:
    """One metrics-table row (`METRICS_SCHEMA` order)."""
    d = r.to_dict()
    return (
        d["monitor"], d["baseline_id"], naive_utc(r.window_start), naive_utc(r.window_end), d["feature"],
        d["signal"], d["kind"], d["statistic"], d["reference"], d["value"], d["lower"], d["upper"],
        d["p_value"], d["threshold"], bool(d["drifted"]), int(d["reference_rows"]), int(d["window_rows"]),
        d["reason"], d["noise_floor"], d["excess"], run_id, now, r.slice, r.slice_value,
    )


class DeltaStore(MonitorStore):
    """The monitor's tables in Delta, by metastore name (``<schema>.<name>``) or path (``<location>/<name>``)."""

    def __init__(self, spark: "SparkSession", monitor: str, tables: Mapping[str, str]):
        self.spark = spark
        self.monitor = monitor
        self.tables = dict(tables)

    @classmethod
    def of(cls, spark: "SparkSession", cfg: "MonitorConfig") -> "DeltaStore":
        return cls(spark, cfg.monitor, {t: cfg.output_table(t) for t in TABLES})

    def where(self, table: str) -> str:
        return self.tables[table]

    def _mine(self, table: str, baseline_id: str | None = None) -> "DataFrame | None":
        """This monitor's rows of ``table`` (of one baseline), None before the table's first write."""
        from pyspark.sql import functions as F

        df = read_output(self.spark, self.tables[table])
        if df is None:
            return None
        cond = F.col("monitor") == F.lit(self.monitor)
        if baseline_id is not None:
            cond = cond & (F.col("baseline_id") == F.lit(baseline_id))
        return df.filter(cond)

    def _merge(self, table: str, rows: list, schema: str, keys: list[str]) -> None:
        if rows:
            merge_rows(self.spark, local_frame(self.spark, rows, schema), self.tables[table], keys, SLICE_DEFAULTS)

    # ----------------------------------------------------------------- profiles

    def has_profile(self, baseline_id: str) -> bool:
        df = self._mine("profiles", baseline_id)
        return df is not None and bool(df.limit(1).take(1))

    def _put_profile(self, profile: BaselineProfile) -> int:
        rows = profile_rows(profile)
        self._merge("profiles", rows, PROFILE_SCHEMA, PROFILE_KEYS)
        return len(rows)

    def _get_profile(self, baseline_id: str | None) -> BaselineProfile | None:
        """One query: the newest profile is picked by a join on its id (each query costs ~1 s of fixed work)."""
        from pyspark.sql import functions as F

        df = self._mine("profiles", baseline_id)
        if df is None:
            return None
        if baseline_id is None:
            newest = df.agg(F.max(F.struct("created_at", "baseline_id")).alias("m")).select("m.baseline_id")
            df = df.join(F.broadcast(newest), "baseline_id")
        rows = [r.asDict() for r in df.withColumn("created_us", F.unix_micros("created_at")).orderBy("position").collect()]
        if not rows:
            return None
        for r in rows:  # microseconds since the epoch: exact, whatever the session's time zone
            r["created_at"] = datetime.fromtimestamp(r["created_us"] / 1e6, tz=timezone.utc)
        return profile_from_rows(rows)

    # ----------------------------------------------------------------- histograms

    def write_histograms(self, baseline_id: str, windows: Sequence[WindowHistograms],
                         source_version: int | None) -> int:
        now = _now()
        rows = {}  # one row per key, the later entry winning: a MERGE source must not repeat a key
        for w in windows:
            for feature, h in w.histograms.items():
                d = h.to_dict()
                rows[(w.window_start, w.slice, w.slice_value, feature)] = ((
                    self.monitor, baseline_id, naive_utc(w.window_start), naive_utc(w.window_end), feature, w.rows,
                    d["counts"], d["nulls"], d["nans"], d["underflow"], d["overflow"], d["unseen"], d["invalid"],
                    d["value_sum"], d["value_sum_sq"], d["min"], d["max"], d["bin_sums"], source_version, now,
                    w.slice, w.slice_value,
                ))
        self._merge("histograms", list(rows.values()), HISTOGRAM_SCHEMA, HISTOGRAM_KEYS)
        return len(rows)

    def last_written(self, baseline_id: str, feature: str) -> Written | None:
        from pyspark.sql import functions as F

        df = self._mine("histograms", baseline_id)
        if df is None:
            return None
        overall = F.col("slice").isNull() | (F.col("slice") == F.lit(OVERALL))
        row = (df.filter((F.col("feature") == F.lit(feature)) & overall)
               .agg(F.max("computed_at"), F.max("source_version")).first())
        if not row or row[0] is None:
            return None
        return Written(as_utc(row[0]), None if row[1] is None else int(row[1]))

    def load_histograms(self, baseline_id: str, *, before: datetime | None = None,
                        last: int | None = None) -> list[WindowHistograms]:
        from pyspark.sql import functions as F

        df = self._mine("histograms", baseline_id)
        if df is None:
            return []
        if "slice" in df.columns:  # the overall windows (rows written before slices have none)
            df = df.filter(F.col("slice").isNull() | (F.col("slice") == F.lit(OVERALL)))
        if before is not None:
            df = df.filter(F.col("window_start") < F.lit(naive_utc(before)))
        if last is not None:
            starts = [r[0] for r in df.select("window_start").distinct().orderBy(F.desc("window_start"))
                      .limit(last).collect()]
            if not starts:
                return []
            df = df.filter(F.col("window_start") >= F.lit(min(starts)))
        by_window: dict[datetime, dict] = defaultdict(dict)
        meta: dict[datetime, tuple] = {}
        for r in df.collect():
            d = r.asDict()
            by_window[d["window_start"]][d["feature"]] = Histogram.from_dict(d)
            if d["feature"] != SLOT or d["window_start"] not in meta:  # see MonitorStore.load_histograms
                meta[d["window_start"]] = (d["window_end"], d["rows"])
        return [WindowHistograms(as_utc(s), as_utc(meta[s][0]), int(meta[s][1]), by_window[s])
                for s in sorted(by_window)]

    # ----------------------------------------------------------------- metrics

    def write_metrics(self, results: Sequence[DriftResult], run_id: str | None) -> None:
        now = _now()
        self._merge("metrics", [metric_row(r, run_id, now) for r in results], METRICS_SCHEMA, METRIC_KEYS)

    def progress(self, baseline_id: str) -> Progress:
        from pyspark.sql import functions as F

        df = self._mine("metrics", baseline_id)
        if df is None:
            return Progress()
        tracked = F.when(F.col("mlflow_run_id").isNotNull(), F.col("window_start"))
        row = df.agg(F.min("window_start"), F.max("window_start"), F.max(tracked)).first()
        return Progress(*(None if t is None else as_utc(t) for t in row))

    # ----------------------------------------------------------------- actions

    def read_actions(self) -> list[ActionRecord]:
        df = self._mine("actions")
        if df is None:
            return []
        out = []
        for row in df.collect():
            d = row.asDict()
            for k in ("window_start", "window_end", "decided_at", "finished_at"):
                d[k] = _from_spark(d[k])
            out.append(ActionRecord(**{f.name: d.get(f.name) for f in fields(ActionRecord)}))
        return out

    def write_actions(self, records: Sequence[ActionRecord]) -> None:
        by_key = {r.dedup_key: r for r in records}
        self._merge("actions", [r.to_row() for r in by_key.values()], ACTIONS_SCHEMA, ["dedup_key"])

    def claim_actions(self, records: Sequence[ActionRecord],
                      seen: Mapping[str, ActionRecord]) -> list[ActionRecord]:
        by_key = {r.dedup_key: r for r in records}
        if not by_key:
            return []
        # a stored row is replaced only if it is the one seen; a key seen absent is only inserted (a concurrent
        # insert of it makes Delta refuse one commit: redone, the MERGE finds the row and leaves it)
        guard = " OR ".join(
            f"(t.dedup_key = {sql_string(k)} AND t.status <=> {sql_string(r.status)} "
            f"AND t.decided_at <=> {_timestamp_sql(r.decided_at)})"
            for k, r in seen.items() if k in by_key) or "FALSE"
        rows = [r.to_row() for r in by_key.values()]
        merge_rows(self.spark, local_frame(self.spark, rows, ACTIONS_SCHEMA), self.tables["actions"],
                   ["dedup_key"], SLICE_DEFAULTS, matched_if=guard)
        stored = {r.dedup_key: r for r in self.read_actions()}
        return [r for k, r in by_key.items() if _same(stored.get(k), r)]
