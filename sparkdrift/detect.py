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

from sparkdrift.actions import apply_actions
from sparkdrift.core.config import MonitorConfig, parse_timestamp
from sparkdrift.core.drift import (
    alpha_per_test,
    coarse_slice_columns,
    drift_results,
    n_slice_tests,
    n_tests,
    slice_alpha_per_test,
    slice_results,
)
from sparkdrift.core.performance import SLOT, baseline_metrics, performance_results
from sparkdrift.core.policy import WindowDecision, evaluate, score_statistic, severity_rank
from sparkdrift.core.quality import quality_results
from sparkdrift.core.results import DriftResult
from sparkdrift.core.slices import SliceFinding, is_overall, where_drift
from sparkdrift.core.windows import WindowHistograms, as_utc, fill_empty_windows, naive_utc
from sparkdrift.errors import TableError
from sparkdrift.sinks import report, tracking
from sparkdrift.spark.cost import CostMeter
from sparkdrift.spark.histograms import check_columns, count_windows, time_range_filter, window_row_counts
from sparkdrift.spark.performance import label_horizon, labels_pass, performance_slots
from sparkdrift.spark.selection import try_cast
from sparkdrift.spark.slicing import slice_columns
from sparkdrift.store import DeltaStore, MonitorStore, Progress, Written
from sparkdrift.store.tables import TableRead, earliest_added, last_commit, read_table, require_columns

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("sparkdrift.detect")

#: Delta commit times come from the storage's clock, ours from the driver's: this much apart counts as "maybe later".
CLOCK_SKEW = timedelta(minutes=5)

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
    where: dict[str, list[SliceFinding]] = field(default_factory=dict)  # drifted column -> slice values, ranked

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
    cut = cfg.production.granularity.windows
    end = cut.start(as_of - cfg.production.lateness.delta)
    if last_start is not None:
        start = cut.shift(last_start, 1 - cfg.production.recompute_windows)
    elif cfg.production.start:
        start = cut.start(parse_timestamp(cfg.production.start))
    else:
        start = None
    return start, end


def window_summaries(
    results: list[DriftResult], decisions: list[WindowDecision], policy_score: str = "max:psi"
) -> list[dict]:
    """Per-window summary metrics for MLflow: score, drifted count/share, prediction drift, severity."""
    out = []
    for d in decisions:
        s = {
            "window_start": d.window_start,
            "window_end": d.window_end,
            "drift/score": d.score,
            "drift/n_drifted": d.n_drifted,
            "drift/share_drifted": d.share_drifted,
            "drift/severity": severity_rank(d.severity),
        }
        mine = [r for r in results if r.window_start == d.window_start and r.reference == "baseline"]
        pred = [r.value for r in mine if r.signal == "prediction" and r.statistic == "psi" and not math.isnan(r.value)]
        if pred:
            s["drift/prediction_psi_max"] = max(pred)
        s["drift/quality_n_breached"] = sum(1 for r in mine if r.signal == "quality" and r.drifted)
        s["drift/n_errors"] = len(d.errors)
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
    store: MonitorStore | None = None,
) -> DetectOutcome:
    """Detect drift in every newly completed window; safe to rerun (upserts, dedup).

    ``store`` holds the monitor's tables (default: the Delta tables of ``cfg.output``).
    """
    store = store or DeltaStore.of(spark, cfg)
    as_of = as_utc(as_of or datetime.now(timezone.utc))
    cut = cfg.production.granularity.windows
    meter = CostMeter(spark, "detect")
    try:
        with meter.stage("load_baseline"):
            baseline = store.load_profile(cfg.baseline_id)
            prod = read_table(spark, cfg.production.table, version=cfg.production.version, filter=cfg.production.filter)
            require_columns(prod, [cfg.production.timestamp_column])
            progress = store.progress(baseline.baseline_id)
            done = progress.last
            start, end = plan_range(done, cfg, as_of)
        untracked = untracked_start(cfg, progress, start)
        if untracked is not None:
            log.warning("windows of %s from %s were not logged to MLflow by an earlier run: recomputed and logged",
                        cfg.monitor, naive_utc(untracked))
            start = untracked
        late: list[LateWindow] = []
        if start is not None and done is not None:
            with meter.stage("late_rows"):
                late = late_windows(spark, cfg, store, baseline, prod, start)
            for w in late:
                log.warning("window %s of %s had %d rows when computed and has %d now (rows arrived after its "
                            "lateness, or were removed): recomputed", naive_utc(w.start), cfg.production.table,
                            w.rows_then, w.rows_now)
            if late:
                start = min(start, late[0].start)  # every window from the first changed one is recounted
        if start is not None and start >= end:
            message = (f"no new complete windows: next window ends after {naive_utc(end)} + lateness "
                       f"{cfg.production.lateness}")
            refreshed = _refresh_late_labels(spark, cfg, store, baseline, prod, end)
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
        slices = slice_columns(prod.df, cfg.slices, baseline.slice_top(), cfg.slice_crosses)
        with meter.stage("count_windows"):
            counted = count_windows(rows, usable, ts, cut, slots, slices, coarse_slice_columns(cfg, baseline))
        windows = fill_empty_windows(counted.windows, start if done is not None else None, end, cut, usable)
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
                since = None if start is None else min(label_horizon(cfg, end), start)
                late_labels = labels_pass(spark, cfg, prod.df, since, end)
        with meter.stage("write_histograms"):
            # one commit for the run: the windows, their late-labelled performance (which wins), the slices
            store.write_histograms(baseline.baseline_id, [*windows, *late_labels, *counted.slices], prod.version)
            depth = max(cfg.references.rolling_windows, 7, cfg.policy.consecutive_windows)
            history = store.load_histograms(baseline.baseline_id, before=windows[0].window_start, last=depth)
        extra = _extra_columns(spark, cfg, baseline, prod.df.columns)
        with meter.stage("statistics"):
            results = drift_results(cfg, baseline, windows, history)
            results += quality_results(cfg, baseline, windows, history, issues, extra)
            if slots or late_labels:
                perf_windows = late_labels or windows
                results += performance_results(cfg, baseline.baseline_id, perf_windows, baseline.performance,
                                               alpha_per_test(cfg, baseline))
            results += slice_results(cfg, baseline, counted.slices)
            past = drift_results(cfg, baseline, history) + quality_results(cfg, baseline, history)
            decisions_all = evaluate(cfg.policy, past + results)
            new_starts = {w.window_start for w in windows}
            decisions = [d for d in decisions_all if d.window_start in new_starts]
            overall = [r for r in results if is_overall(r.slice)]  # what every sink showed before slices
        window_range = (windows[0].window_start, windows[-1].window_end)
        versions = {"production": prod.version, "baseline": baseline.source_version}
        with ExitStack() as stack:
            with meter.stage("mlflow"):  # opening the run counts too: an unreachable store is bounded here
                run = stack.enter_context(tracking.start_run(
                    cfg, job="detect", window_range=window_range, baseline_id=baseline.baseline_id,
                    source_versions=versions))
            run_id = run.info.run_id
            with meter.stage("mlflow"):
                run.log_results(tracked_results(results, cfg.policy.slice_min_rows, cfg.mlflow.max_slice_metrics))
                run.log_summaries(window_summaries(overall, decisions, cfg.policy.score))
            with meter.stage("actions"):
                # a failed action is recorded and returned: the results are still written (exit 1 per config)
                records = apply_actions(store, cfg, decisions, run_id, run.info.url, raise_failed=False)
            # The metrics table is written last: it is the progress marker, so a run that
            # died before this point is redone whole next time (MERGE + action dedup make
            # that safe), and no window is ever skipped with its actions unapplied.
            with meter.stage("write_metrics"):  # no run id when MLflow failed: the next run logs these again
                store.write_metrics(results, None if run.error else run_id)
            notes = [_late_text(late)] if late else []
            if untracked is not None:
                notes.append(f"windows from {naive_utc(untracked):%Y-%m-%d %H:%M} that MLflow missed logged again")
            outcome = DetectOutcome(
                message="; ".join([f"{len(windows)} windows checked", *notes]),
                windows=windows, results=results, decisions=decisions, actions=records, run_id=run_id,
                run_url=run.info.url, baseline_id=baseline.baseline_id, null_timestamps=counted.null_timestamps,
                noise=_budget_text(cfg, baseline),
                where=where_drift(results, score_statistic(cfg.policy.score), cfg.policy.slice_min_rows),
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
                results=overall,
                decisions=[_decision_dict(d) for d in decisions],
                overlays=_overlays(baseline, windows, overall),
                cost=cost,
                noise=outcome.noise,
                windows=cut,
                where=outcome.where,
                actions=records,
                retrain_synchronous=bool(cfg.actions.retrain and cfg.actions.retrain.synchronous),
                baseline_performance=baseline_metrics(cfg, baseline.performance),
            )
            run.log_artifacts(folder)
            outcome.report_dir = folder
            run.set_tags({
                "sparkdrift.severity": outcome.severity,
                "sparkdrift.drifted_features": ",".join(sorted({f for d in decisions for f in d.drifted})) or "-",
                "sparkdrift.actions": _actions_text(records),
                "sparkdrift.null_timestamps": str(counted.null_timestamps),
                "sparkdrift.noise_floor": outcome.noise,
                "sparkdrift.errors": str(sum(len(d.errors) for d in decisions)),
                "sparkdrift.late_windows": str(len(late)),
            })
            outcome.mlflow_error = run.error
            if run.error and run_id:  # it failed after the metrics were written with its id
                store.write_metrics(results, None)
        return outcome
    finally:
        meter.close()


def repair_horizon(cfg: MonitorConfig, start: datetime | None) -> datetime | None:
    """The first stored window a run starting at ``start`` may repair (``production.late_check``); None: off."""
    span = cfg.production.late_check.delta
    if not span or start is None:
        return None
    return cfg.production.granularity.windows.start(start - span)


def untracked_start(cfg: MonitorConfig, progress: Progress, start: datetime | None) -> datetime | None:
    """Where to restart so that stored windows MLflow never got are recomputed and logged; None if none are.

    A window written while MLflow failed has no run id in the metrics table.
    Those within ``production.late_check`` of ``start`` are redone whole by the
    next run with MLflow on: the same recount, and action dedup keeps alerts
    and retrains to one.
    """
    horizon = repair_horizon(cfg, start)
    if not (cfg.mlflow.enabled and horizon is not None and progress.last is not None):
        return None
    if progress.last_tracked is not None and progress.last_tracked >= progress.last:
        return None
    cut = cfg.production.granularity.windows
    first = max(horizon, progress.first)
    if progress.last_tracked is not None:
        first = max(first, cut.shift(progress.last_tracked, 1))
    return first if first < start else None


@dataclass(frozen=True)
class LateWindow:
    """A stored window whose row count in the table changed after it was computed."""

    start: datetime
    rows_then: int
    rows_now: int


def late_windows(spark, cfg: MonitorConfig, store: MonitorStore, baseline, prod: TableRead,
                 start: datetime) -> list[LateWindow]:
    """Stored windows before ``start``, ending within ``production.late_check``, whose rows changed; oldest first.

    Rows that arrive after a window's lateness would otherwise leave it stale
    for ever. Only a table with a commit since the windows were written can
    have changed (a newer Delta version than they were counted at; without
    versions, Delta's commit time, and if in doubt it is checked), and then
    one aggregate over the timestamp column recounts the recent windows.
    """
    first = repair_horizon(cfg, start)
    if first is None or not baseline.features:
        return []
    written = store.last_written(baseline.baseline_id, next(iter(baseline.features)))
    if written is None or not _changed_since(spark, prod, written) or _only_newer_rows(spark, cfg, prod, written, start):
        return []
    cut = cfg.production.granularity.windows
    n = cut.index(start) - cut.index(first)
    stored = [w for w in store.load_histograms(baseline.baseline_id, before=start, last=n) if w.window_start >= first]
    if not stored:
        return []
    now = window_row_counts(prod.df, cfg.production.timestamp_column, cut, stored[0].window_start, start)
    return [LateWindow(w.window_start, w.rows, now.get(w.window_start, 0))
            for w in stored if now.get(w.window_start, 0) != w.rows]


def _only_newer_rows(spark, cfg: MonitorConfig, prod: TableRead, written: Written, start: datetime) -> bool:
    """Whether the commits since the stored windows were counted only appended rows of ``start`` or later.

    Then no stored window can have changed, and the Delta log (a few JSON
    entries) says so without the recount's read of recent rows. A timestamp
    column of another type (its statistics need not sort as times) is recounted.
    """
    ts = cfg.production.timestamp_column
    if written.source_version is None or dict(prod.df.dtypes).get(ts) != "timestamp":
        return False
    earliest = earliest_added(spark, prod, written.source_version, ts)
    return earliest is not None and earliest >= start


def _changed_since(spark, table: str | TableRead, written: Written) -> bool:
    """Whether ``table`` may have a commit after ``written``.

    Production read at a version says it exactly: the version the stored
    windows were counted at is the one read now, or not. Otherwise Delta's
    commit time decides (within `CLOCK_SKEW`: maybe); a table read at its
    latest version knows its commit time already: no second history lookup.
    """
    if isinstance(table, TableRead):
        if table.version is not None and written.source_version is not None:
            return table.version != written.source_version
        committed = table.committed or last_commit(spark, table.table)
    else:
        committed = last_commit(spark, table)
    return committed >= written.at - CLOCK_SKEW


def _late_text(late: list[LateWindow]) -> str:
    shown = ", ".join(f"{naive_utc(w.start):%Y-%m-%d %H:%M} {w.rows_then}->{w.rows_now} rows" for w in late[:3])
    more = f" and {len(late) - 3} more" if len(late) > 3 else ""
    return f"{len(late)} earlier windows changed after they were computed ({shown}{more}): recomputed"


def tracked_results(results: list[DriftResult], min_rows: int, most: int) -> list[DriftResult]:
    """What MLflow gets: every overall result, and only breached slice results with enough rows (at most ``most``).

    The slice results that go furthest past their noise floor are kept; every
    slice result is in the metrics table either way.
    """
    overall = [r for r in results if is_overall(r.slice)]
    breached = [r for r in results if not is_overall(r.slice) and r.drifted and r.window_rows >= min_rows]
    breached.sort(key=lambda r: -(r.excess if r.excess is not None else r.value))
    return overall + breached[:most]


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
    text = f"on: false-alarm budget {cfg.policy.false_alarm_rate:g} per window over {n} tests -> {level:.2g} per test"
    if baseline.slices:
        text += (f"; slices: the same budget over {n_slice_tests(cfg, baseline)} tests ({len(baseline.slices)} "
                 f"slice values x columns, on {score_statistic(cfg.policy.score)}) -> "
                 f"{slice_alpha_per_test(cfg, baseline):.2g} per test")
    return text


def _refresh_late_labels(spark, cfg: MonitorConfig, store: MonitorStore, baseline, prod: TableRead,
                         end: datetime) -> int:
    """Labels keep arriving when no new window is due: re-score recent windows anyway.

    Only the performance histograms and metric rows of those windows change
    (upserts); the progress marker does not move, and no MLflow run is opened.
    """
    if not (cfg.label.table and cfg.prediction.columns):
        return 0
    scored = store.last_written(baseline.baseline_id, SLOT)
    if scored is not None and not _changed_since(spark, cfg.label.table, scored):
        log.info("no label arrived since the performance was last computed (%s): nothing to re-score",
                 naive_utc(scored.at))
        return 0  # the labels join is the one read of production rows left in a run with no new window
    late = labels_pass(spark, cfg, prod.df, label_horizon(cfg, end), end)
    stored = {w.window_start: w.histograms.get(SLOT) for w in store.load_histograms(baseline.baseline_id)}
    changed = [w for w in late if stored.get(w.window_start) != w.histograms[SLOT]]
    if not changed:
        return 0  # same labels as last time: a rerun writes nothing
    store.write_histograms(baseline.baseline_id, changed, prod.version)
    store.write_metrics(
        performance_results(cfg, baseline.baseline_id, changed, baseline.performance, alpha_per_test(cfg, baseline)),
        None,
    )
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
