"""The detect job: new complete windows -> histograms -> drift, quality -> tables, MLflow, report, policy.

Only rows of windows not finished before are read (a timestamp predicate
pushed to the scan), in one Spark pass; everything after that works on the
small histograms on the driver.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sparkdrift.baseline import load_baseline
from sparkdrift.config import MonitorConfig, duration_seconds, parse_timestamp
from sparkdrift.spark.cost import CostMeter
from sparkdrift.core.drift import alpha_per_test, drift_results, n_tests
from sparkdrift.errors import TableError
from sparkdrift.spark.histograms import (
    Slot,
    WindowHistograms,
    check_columns,
    count_windows,
    last_window_start,
    load_histograms,
    time_range_filter,
    write_histograms,
)
from sparkdrift.core.performance import SLOT, key_and_value, performance_results, slot_size
from sparkdrift.core.policy import WindowDecision, evaluate, score_statistic, severity_rank
from sparkdrift.core.quality import quality_results
from sparkdrift.core.results import DriftResult
from sparkdrift.spark.selection import try_cast
from sparkdrift.store.tables import merge_rows, read_table, require_columns
from sparkdrift.core.windows import as_utc, naive_utc, window_end, window_start

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("sparkdrift.detect")

METRIC_KEYS = ["monitor", "baseline_id", "window_start", "feature", "statistic", "reference"]
_METRICS_SCHEMA = (
    "monitor string, baseline_id string, window_start timestamp, window_end timestamp, feature string, "
    "signal string, kind string, statistic string, reference string, value double, lower double, "
    "upper double, p_value double, threshold double, drifted boolean, reference_rows long, "
    "window_rows long, reason string, noise_floor double, excess double, mlflow_run_id string, computed_at timestamp"
)


@dataclass
class DetectOutcome:
    """What a detect run did, for the CLI summary, the demo and tests."""

    message: str
    noise: str = ""
    windows: list[WindowHistograms] = field(default_factory=list)
    results: list[DriftResult] = field(default_factory=list)
    decisions: list[WindowDecision] = field(default_factory=list)
    actions: list = field(default_factory=list)
    run_id: str | None = None
    run_url: str | None = None
    report_dir: Path | None = None
    cost: dict[str, float] = field(default_factory=dict)
    baseline_id: str | None = None
    null_timestamps: int = 0
    mlflow_error: str | None = None  # MLflow failed: results are in the tables, the run is not (fully) tracked

    @property
    def severity(self) -> str:
        return max((d.severity for d in self.decisions), key=severity_rank, default="none")

    @property
    def errors(self) -> list[str]:
        """Statistics that could not be computed, per window: never reported as "no drift"."""
        return [f"{d.window_start:%Y-%m-%d %H:%M} {e}" for d in self.decisions for e in d.errors]


def plan_range(
    last_start: datetime | None, cfg: MonitorConfig, as_of: datetime
) -> tuple[datetime | None, datetime]:
    """[start, end) of the rows to read: from after the last stored window to the last complete one.

    A window is complete once its end plus the lateness has passed; the
    last ``recompute_windows`` stored windows are re-read and replaced whole.
    """
    g = duration_seconds(cfg.production.granularity)
    lateness = timedelta(seconds=duration_seconds(cfg.production.lateness))
    end = window_start(as_of - lateness, g)
    if last_start is not None:
        start = window_end(last_start, g) - timedelta(seconds=g * cfg.production.recompute_windows)
    elif cfg.production.start:
        start = window_start(parse_timestamp(cfg.production.start), g)
    else:
        start = None
    return start, end


def _metric_rows(results: list[DriftResult], run_id: str | None, now: datetime) -> list[tuple]:
    rows = []
    for r in results:
        d = r.to_dict()
        rows.append((
            d["monitor"], d["baseline_id"], naive_utc(r.window_start), naive_utc(r.window_end), d["feature"],
            d["signal"], d["kind"], d["statistic"], d["reference"], d["value"], d["lower"], d["upper"],
            d["p_value"], d["threshold"], bool(d["drifted"]), int(d["reference_rows"]), int(d["window_rows"]),
            d["reason"], d["noise_floor"], d["excess"], run_id, naive_utc(now),
        ))
    return rows


def window_summaries(
    results: list[DriftResult], decisions: list[WindowDecision], policy_score: str = "max:psi"
) -> list[dict]:
    """Per-window summary metrics for MLflow: score, drifted count/share, prediction drift, severity."""
    out = []
    for d in decisions:
        s = {
            "window_start": d.window_start,
            "window_end": d.window_end,
            "drift.score": d.score,
            "drift.n_drifted": d.n_drifted,
            "drift.share_drifted": d.share_drifted,
            "drift.severity": severity_rank(d.severity),
        }
        mine = [r for r in results if r.window_start == d.window_start and r.reference == "baseline"]
        pred = [r.value for r in mine if r.signal == "prediction" and r.statistic == "psi" and not math.isnan(r.value)]
        if pred:
            s["prediction.psi_max"] = max(pred)
        s["quality.n_breached"] = sum(1 for r in mine if r.signal == "quality" and r.drifted)
        s["drift.n_errors"] = len(d.errors)
        # one noise-floor series per column, for the score's statistic: the line its value must clear
        for r in mine:
            if r.statistic == score_statistic(policy_score) and r.noise_floor is not None and r.signal != "quality":
                s[f"{r.metric_name}.noise_floor"] = r.noise_floor
        out.append(s)
    return out


def run_detect(
    spark: "SparkSession",
    cfg: MonitorConfig,
    *,
    as_of: datetime | None = None,
    report_dir: str | Path | None = None,
) -> DetectOutcome:
    """Detect drift in every newly completed window; safe to rerun (MERGE, dedup)."""
    from sparkdrift import actions as actions_mod
    from sparkdrift.sinks import report
    from sparkdrift.sinks import tracking

    as_of = as_utc(as_of or datetime.now(timezone.utc))
    g = duration_seconds(cfg.production.granularity)
    meter = CostMeter(spark, "detect")
    try:
        with meter.stage("load_baseline"):
            baseline = load_baseline(spark, cfg)
            prod = read_table(spark, cfg.production.table, version=cfg.production.version, filter=cfg.production.filter)
            require_columns(prod, [cfg.production.timestamp_column])
            hist_table = cfg.output_table("histograms")
            done = last_window_start(spark, cfg.output_table("metrics"), cfg.monitor, baseline.baseline_id)
            start, end = plan_range(done, cfg, as_of)
        if start is not None and start >= end:
            message = (f"no new complete windows: next window ends after {naive_utc(end)} + lateness "
                       f"{cfg.production.lateness}")
            refreshed = _refresh_late_labels(spark, cfg, baseline, prod, end, hist_table)
            if refreshed:
                message += f"; performance of {refreshed} earlier windows refreshed from late labels"
            return DetectOutcome(message + "; nothing else to do" if refreshed else message + "; nothing to do",
                                 baseline_id=baseline.baseline_id)
        profiles = list(baseline.features.values())
        usable, issues = check_columns(prod.df, profiles)
        for issue in issues:
            log.warning("column %s in %s: %s (flagged, other columns proceed)", issue.feature, cfg.production.table, issue.detail)
        ts = cfg.production.timestamp_column
        # rows with no usable timestamp are read too (Delta's null counts skip files without any):
        # they belong to no window, but they are counted and reported, never dropped unseen
        rows = prod.df.filter(time_range_filter(ts, start, end) | try_cast(ts, "timestamp").isNull())
        slots = performance_slots(cfg, prod.df.columns)
        with meter.stage("count_windows"):
            counted = count_windows(rows, usable, ts, g, slots)
        windows = fill_empty_windows(counted.windows, start if done is not None else None, end, g, usable)
        if counted.null_timestamps:
            log.warning("%d rows in %s have a null or unparsable %s: counted in no window", counted.null_timestamps,
                        cfg.production.table, ts)
        empty = [w for w in windows if w.rows == 0]
        if empty:
            log.warning("%d windows of %s have no rows (e.g. %s): flagged by the volume check", len(empty),
                        cfg.production.table, naive_utc(empty[0].window_start))
        if not windows:
            return DetectOutcome(
                f"no rows in {cfg.production.table} between {naive_utc(start) if start else 'the beginning'} "
                f"and {naive_utc(end)}; nothing written",
                baseline_id=baseline.baseline_id,
                null_timestamps=counted.null_timestamps,
            )
        log.info("counted %d windows x %d columns (%s .. %s)", len(windows), len(usable),
                 naive_utc(windows[0].window_start), naive_utc(windows[-1].window_end))
        late_labels: list[WindowHistograms] = []
        if cfg.label.table and cfg.prediction.columns:
            with meter.stage("late_labels"):
                # a first run over history (a backfill) scores every window it computes, not only the recent ones
                late_labels = labels_pass(spark, cfg, prod.df, end, first=start)
        with meter.stage("write_histograms"):
            write_histograms(spark, hist_table, cfg.monitor, baseline.baseline_id, windows, prod.version)
            write_histograms(spark, hist_table, cfg.monitor, baseline.baseline_id, late_labels, prod.version)
            depth = max(cfg.references.rolling_windows, 7, cfg.policy.consecutive_windows)
            history = load_histograms(spark, hist_table, cfg.monitor, baseline.baseline_id,
                                      before=windows[0].window_start, last=depth)
        extra = _extra_columns(spark, cfg, baseline, prod.df.columns)
        with meter.stage("statistics"):
            results = drift_results(cfg, baseline, windows, history)
            results += quality_results(cfg, baseline, windows, history, issues, extra)
            if slots or late_labels:
                perf_windows = late_labels or windows
                results += performance_results(cfg, baseline.baseline_id, perf_windows, baseline.performance,
                                               alpha_per_test(cfg, baseline))
            past = drift_results(cfg, baseline, history) + quality_results(cfg, baseline, history)
            decisions_all = evaluate(cfg.policy, past + results)
            new_starts = {w.window_start for w in windows}
            decisions = [d for d in decisions_all if d.window_start in new_starts]
        window_range = (windows[0].window_start, windows[-1].window_end)
        versions = {"production": prod.version, "baseline": baseline.source_version}
        with ExitStack() as stack:
            with meter.stage("mlflow"):  # opening the run counts too: an unreachable store is bounded here
                run = stack.enter_context(tracking.start_run(
                    cfg, job="detect", window_range=window_range, baseline_id=baseline.baseline_id,
                    source_versions=versions))
            run_id = run.info.run_id
            with meter.stage("mlflow"):
                run.log_results(results, g)
                run.log_summaries(window_summaries(results, decisions, cfg.policy.score), g)
            with meter.stage("actions"):
                records = actions_mod.apply_actions(spark, cfg, decisions, run_id, run.info.url)
            # The metrics table is written last: it is the progress marker, so a run that
            # died before this point is redone whole next time (MERGE + action dedup make
            # that safe), and no window is ever skipped with its actions unapplied.
            with meter.stage("write_metrics"):
                now = datetime.now(timezone.utc)
                df = spark.createDataFrame(_metric_rows(results, run_id, now), _METRICS_SCHEMA)
                merge_rows(spark, df, cfg.output_table("metrics"), METRIC_KEYS)
            outcome = DetectOutcome(
                message=f"{len(windows)} windows checked",
                windows=windows, results=results, decisions=decisions, actions=records, run_id=run_id,
                run_url=run.info.url, baseline_id=baseline.baseline_id, null_timestamps=counted.null_timestamps,
                noise=_budget_text(cfg, baseline),
            )
            cost = meter.summary()
            cost.update(counted.scan.as_cost())
            outcome.cost = cost
            run.log_cost(cost)
            folder = Path(report_dir or cfg.output.report_dir or tempfile.mkdtemp(prefix="sparkdrift-report-"))
            if cfg.output.report_dir or report_dir:
                folder = folder / cfg.monitor / (run_id or naive_utc(as_of).strftime("%Y%m%dT%H%M%S"))
            report.write_report(
                folder,
                monitor=cfg.monitor,
                run_id=run_id,
                results=results,
                decisions=[_decision_dict(d) for d in decisions],
                overlays=_overlays(baseline, windows, results),
                cost=cost,
                noise=outcome.noise,
            )
            run.log_artifacts(folder)
            outcome.report_dir = folder
            run.set_tags({
                "sparkdrift.severity": outcome.severity,
                "sparkdrift.drifted_features": ",".join(sorted({f for d in decisions for f in d.drifted})) or "-",
                "sparkdrift.actions": _actions_text(records),
                "sparkdrift.null_timestamps": str(counted.null_timestamps),
                "sparkdrift.noise_floor": _budget_text(cfg, baseline),
                "sparkdrift.errors": str(sum(len(d.errors) for d in decisions)),
            })
            outcome.mlflow_error = run.error
        return outcome
    finally:
        meter.close()


def _actions_text(records) -> str:
    """``retrain:superseded x6, retrain:succeeded``: each action and status once, with its count."""
    counts = Counter(f"{a.action}:{a.status}" for a in records)
    return ", ".join(k if n == 1 else f"{k} x{n}" for k, n in counts.items()) or "-"


def _budget_text(cfg: MonitorConfig, baseline) -> str:
    """How the false-alarm budget was split, in words (MLflow tag, report, console)."""
    level = alpha_per_test(cfg, baseline)
    if level is None:
        return "off (fixed thresholds only)"
    n = n_tests(cfg, baseline)
    return f"on: false-alarm budget {cfg.policy.false_alarm_rate:g} per window over {n} tests -> {level:.2g} per test"


def fill_empty_windows(
    windows: list[WindowHistograms], start: datetime | None, end: datetime, g: int, profiles
) -> list[WindowHistograms]:
    """Every complete window in range, an empty one where no row arrived (an outage is a result, not an absence).

    From ``start`` (a run that continues stored windows) or else from the first
    window with rows, up to ``end``.
    """
    from sparkdrift.core.profile import Histogram

    first = start if start is not None else (windows[0].window_start if windows else None)
    if first is None:
        return windows
    have = {as_utc(w.window_start) for w in windows}
    out = list(windows)
    t = as_utc(first)
    while t < as_utc(end):
        if t not in have:
            out.append(WindowHistograms(t, window_end(t, g), 0, {p.name: Histogram.empty(p.n_bins) for p in profiles}))
        t = window_end(t, g)
    return sorted(out, key=lambda w: as_utc(w.window_start))


def performance_slots(cfg: MonitorConfig, columns: list[str]) -> list[Slot]:
    """The performance slot when labels sit in the production table itself (same pass, no extra scan)."""
    from sparkdrift.store.tables import qcol

    label = cfg.label.column
    if cfg.label.table or not label or not cfg.prediction.columns or label not in columns:
        return []
    pred = cfg.prediction.columns[0]
    if pred not in columns:
        return []
    key, value = key_and_value(cfg.prediction.kind, qcol(pred), qcol(label), cfg.label.positive)
    return [Slot(SLOT, key, value, slot_size(cfg.prediction.kind))]


def labels_pass(
    spark, cfg: MonitorConfig, production, end: datetime, first: datetime | None | bool = False
) -> list[WindowHistograms]:
    """Performance of recent windows from a separate, delayed labels table.

    Labels arrive days after predictions, so every window of the last
    ``label.max_delay`` is recomputed whole from (production x labels) and
    replaces its stored performance histogram: a window's performance
    improves in coverage as its labels arrive. ``first`` widens the range to
    the windows this run computes (None: from the beginning, a backfill).
    This is the one extra read of production rows, limited to that range and
    to id, time and prediction.
    """
    from sparkdrift.store.tables import qcol

    lab = read_table(spark, cfg.label.table)
    require_columns(lab, [cfg.label.id_column, cfg.label.column])
    g = duration_seconds(cfg.production.granularity)
    since = window_start(end - timedelta(seconds=duration_seconds(cfg.label.max_delay)), g)
    if first is None:
        since = None
    elif first is not False:
        since = min(since, first)
    ts, pred, key_col = cfg.production.timestamp_column, cfg.prediction.columns[0], cfg.label.id_column
    preds = production.filter(time_range_filter(ts, since, end)).select(
        qcol(key_col).alias("_id"), qcol(ts).alias("_ts"), qcol(pred).alias("_pred")
    )
    labels = lab.df.select(qcol(key_col).alias("_id"), qcol(cfg.label.column).alias("_label")).dropDuplicates(["_id"])
    joined = preds.join(labels, "_id", "inner")
    from pyspark.sql import functions as F

    key, value = key_and_value(cfg.prediction.kind, F.col("_pred"), F.col("_label"), cfg.label.positive)
    slot = Slot(SLOT, key, value, slot_size(cfg.prediction.kind))
    return count_windows(joined, [], "_ts", g, [slot]).windows


def _refresh_late_labels(spark, cfg: MonitorConfig, baseline, prod, end: datetime, hist_table: str) -> int:
    """Labels keep arriving when no new window is due: re-score recent windows anyway.

    Only the performance histograms and metric rows of those windows change
    (MERGE); the progress marker does not move, and no MLflow run is opened.
    """
    if not (cfg.label.table and cfg.prediction.columns):
        return 0
    late = labels_pass(spark, cfg, prod.df, end)
    stored = {
        w.window_start: w.histograms.get(SLOT)
        for w in load_histograms(spark, hist_table, cfg.monitor, baseline.baseline_id)
    }
    changed = [w for w in late if stored.get(w.window_start) != w.histograms[SLOT]]
    if not changed:
        return 0  # same labels as last time: a rerun writes nothing
    write_histograms(spark, hist_table, cfg.monitor, baseline.baseline_id, changed, prod.version)
    results = performance_results(cfg, baseline.baseline_id, changed, baseline.performance, alpha_per_test(cfg, baseline))
    if results:
        df = spark.createDataFrame(_metric_rows(results, None, datetime.now(timezone.utc)), _METRICS_SCHEMA)
        merge_rows(spark, df, cfg.output_table("metrics"), METRIC_KEYS)
    return len(changed)


def _decision_dict(d: WindowDecision) -> dict:
    return {
        "window_start": d.window_start,
        "window_end": d.window_end,
        "severity": d.severity,
        "score": d.score,
        "rules": list(d.rules),
        "n_drifted": d.n_drifted,
        "drifted": d.drifted,
        "errors": list(d.errors),
    }


def _overlays(baseline, windows: list[WindowHistograms], results: list[DriftResult]) -> dict:
    """Baseline vs latest-window histograms of the columns that drifted in any window."""
    drifted = {r.feature for r in results if r.drifted and r.signal in ("feature", "prediction")}
    last = windows[-1]
    out = {}
    for name in sorted(drifted):
        p = baseline.features.get(name)
        if p is not None and name in last.histograms:
            out[name] = (p, p.baseline, last.histograms[name])
    return out


def _extra_columns(spark, cfg: MonitorConfig, baseline, production_columns: list[str]) -> list[str]:
    """Production columns the baseline table never had (schema drift), from table metadata only."""
    try:
        base_cols = set(read_table(spark, baseline.source_table, version=baseline.source_version).df.columns)
    except TableError:
        return []
    ignore = {cfg.production.timestamp_column, cfg.id_column, cfg.label.column, *cfg.prediction.columns}
    return sorted(c for c in production_columns if c not in base_cols and c not in ignore)
