"""Data-quality signals per window and column, from the same histograms (no extra scan).

Completeness, out-of-range rate, unseen-category rate, invalid-type rate,
missing/extra/mistyped columns and row volume, each as a DriftResult with
signal ``quality`` so they land in the metrics table and MLflow next to drift.
"""
from __future__ import annotations

import math
import statistics as pystats
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sparkdrift.core.config import MonitorConfig
from sparkdrift.core.noise import per_test_level
from sparkdrift.core.windows import WindowHistograms
from sparkdrift.core.profile import BaselineProfile, FeatureProfile, Histogram
from sparkdrift.core.results import DriftResult

ROWS = "__rows__"
VOLUME_MIN_HISTORY = 3


@dataclass(frozen=True)
class ColumnIssue:
    """A monitored column the production table cannot provide as the baseline did."""

    feature: str
    problem: str  # "missing" | "type"
    detail: str


def _rate(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _row(cfg, baseline_id, w_start, w_end, feature, statistic, value, threshold, drifted, kind, rows, ref_rows=0, reason=None):
    return DriftResult(
        monitor=cfg.monitor,
        baseline_id=baseline_id,
        window_start=w_start,
        window_end=w_end,
        feature=feature,
        statistic=statistic,
        value=value,
        threshold=threshold,
        drifted=drifted,
        signal="quality",
        kind=kind,
        reference_rows=ref_rows,
        window_rows=rows,
        reason=reason,
    )


def worse_than_baseline(window_rate: float, baseline_rate: float, n: int, m: int, alpha: float | None) -> bool:
    """Whether a window's rate (nulls, invalid values) is above its baseline's beyond chance; True without ``alpha``.

    A column whose baseline already misses a fixed limit (1.5 % nulls against
    a 99 % completeness minimum) would otherwise breach in about every
    window, though nothing changed. The margin is the normal (1 - alpha)
    quantile of the difference of two binomial shares at the baseline's rate.
    """
    if alpha is None:
        return True
    if not 0.0 < baseline_rate < 1.0:
        return window_rate > baseline_rate
    from scipy.stats import norm

    margin = float(norm.isf(alpha)) * math.sqrt(baseline_rate * (1 - baseline_rate) * (1 / n + 1 / m))
    return window_rate > baseline_rate + margin


def column_quality(cfg: MonitorConfig, baseline_id: str, profile: FeatureProfile, start: datetime, end: datetime,
                   h: Histogram, alpha: float | None = None) -> list[DriftResult]:
    """Completeness, invalid rate, and out-of-range (numeric) or unseen (categorical) rate.

    Completeness and the invalid rate breach past their limit only when also
    worse than the baseline's own beyond chance (`worse_than_baseline`, at the
    per-test level ``alpha``; None: the limit alone).
    """
    q = cfg.quality
    rows, b = h.n_rows, profile.baseline
    out = []
    missing = _rate(h.nulls + h.nans + h.invalid, rows)
    worse = worse_than_baseline(missing, _rate(b.nulls + b.nans + b.invalid, b.n_rows), rows, b.n_rows, alpha)
    completeness = 1.0 - missing
    out.append(_row(cfg, baseline_id, start, end, profile.name, "completeness", completeness,
                    q.completeness, completeness < q.completeness and worse, profile.kind, rows,
                    b.n_rows, reason=None if rows else "empty window"))
    invalid = _rate(h.invalid, rows)
    worse = worse_than_baseline(invalid, _rate(b.invalid, b.n_rows), rows, b.n_rows, alpha)
    out.append(_row(cfg, baseline_id, start, end, profile.name, "invalid_rate", invalid,
                    q.invalid_rate, invalid > q.invalid_rate and worse, profile.kind, rows, b.n_rows))
    if profile.kind == "numeric":
        oor = _rate(h.underflow + h.overflow, h.n_valid)
        out.append(_row(cfg, baseline_id, start, end, profile.name, "out_of_range_rate", oor,
                        q.out_of_range_rate, oor > q.out_of_range_rate, profile.kind, rows))
    else:
        unseen = _rate(h.unseen, h.n_valid)
        out.append(_row(cfg, baseline_id, start, end, profile.name, "unseen_rate", unseen,
                        q.unseen_rate, unseen > q.unseen_rate, profile.kind, rows))
    return out


def quality_results(
    cfg: MonitorConfig,
    baseline: BaselineProfile,
    windows: Sequence[WindowHistograms],
    history: Sequence[WindowHistograms] = (),
    issues: Sequence[ColumnIssue] = (),
    extra_columns: Sequence[str] = (),
) -> list[DriftResult]:
    """All quality signals for ``windows``; ``history`` gives the recent row volumes."""
    out: list[DriftResult] = []
    bid = baseline.baseline_id
    # completeness and invalid rate of every column share the false-alarm budget
    alpha = per_test_level(cfg.policy.false_alarm_rate, 2 * len(baseline.features)) if cfg.policy.noise_floor else None
    volumes = [w.rows for w in sorted(history, key=lambda w: w.window_start)]
    for w in sorted(windows, key=lambda w: w.window_start):
        s, e = w.window_start, w.window_end
        for name, h in w.histograms.items():
            profile = baseline.features.get(name)
            if profile is not None:
                out += column_quality(cfg, bid, profile, s, e, h, alpha)
        for issue in issues:
            stat = "missing_column" if issue.problem == "missing" else "type_mismatch"
            kind = baseline.features[issue.feature].kind if issue.feature in baseline.features else "numeric"
            out.append(_row(cfg, bid, s, e, issue.feature, stat, 1.0, 0.0, True, kind, w.rows, reason=issue.detail))
        for col in extra_columns:
            out.append(_row(cfg, bid, s, e, col, "extra_column", 1.0, None, False, "numeric", w.rows,
                            reason="column not in the baseline table"))
        recent = volumes[-7:]
        if len(recent) >= VOLUME_MIN_HISTORY:
            median = pystats.median(recent)
            ratio = _rate(w.rows, int(median))
            limit = cfg.quality.volume_ratio
            drifted = ratio == ratio and (ratio > limit or ratio < 1 / limit)
            out.append(_row(cfg, bid, s, e, ROWS, "volume_ratio", ratio, limit, drifted, "numeric", w.rows, int(median)))
        else:
            out.append(_row(cfg, bid, s, e, ROWS, "volume_ratio", float("nan"), cfg.quality.volume_ratio, False,
                            "numeric", w.rows, reason=f"fewer than {VOLUME_MIN_HISTORY} earlier windows"))
        volumes.append(w.rows)
    return out
