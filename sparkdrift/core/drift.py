"""Profile x window histograms -> long-format DriftResults. Pure: no Spark, no I/O.

References: the baseline profile, optionally the previous window, and a
rolling reference merged from the last N windows' histograms (no rescans).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sparkdrift.core.config import MonitorConfig
from sparkdrift.core.windows import WindowHistograms
from sparkdrift.core.noise import noise_floor, per_test_level
from sparkdrift.core.policy import score_statistic
from sparkdrift.core.profile import BaselineProfile, FeatureProfile, Histogram, merge_all
from sparkdrift.core.results import ERROR_PREFIX, DriftResult
from sparkdrift.core.stats import (
    DEFAULT_PREDICTION_THRESHOLDS,
    DEFAULT_STATISTICS,
    STATISTICS,
    StatParams,
    StatResult,
    breached,
    cells_read,
    compute,
)

log = logging.getLogger("sparkdrift.core.drift")


def statistics_for(cfg: MonitorConfig, profile: FeatureProfile) -> tuple[str, ...]:
    chosen = getattr(cfg.statistics, profile.kind)
    return tuple(chosen) if chosen is not None else DEFAULT_STATISTICS[profile.kind]


def threshold_for(cfg: MonitorConfig, profile: FeatureProfile, statistic: str) -> float | None:
    """Most specific wins: per feature, then prediction thresholds, then global, then the registry default."""
    per_feature = cfg.feature_thresholds.get(profile.name, {})
    if statistic in per_feature:
        return per_feature[statistic]
    if profile.role == "prediction":
        if statistic in cfg.prediction_thresholds:
            return cfg.prediction_thresholds[statistic]
        if statistic in DEFAULT_PREDICTION_THRESHOLDS:
            return DEFAULT_PREDICTION_THRESHOLDS[statistic]
    if statistic in cfg.thresholds:
        return cfg.thresholds[statistic]
    return STATISTICS[statistic].default_threshold


def params_for(cfg: MonitorConfig) -> StatParams:
    s = cfg.statistics
    return StatParams(epsilon=s.epsilon, ks_alpha=s.ks_alpha, divergence_bins=s.divergence_bins)


def n_tests(cfg: MonitorConfig, baseline: BaselineProfile) -> int:
    """How many (column, statistic) pairs can breach in one window: the false-alarm budget is split over them."""
    return sum(
        1
        for p in baseline.features.values()
        for name in statistics_for(cfg, p)
        if p.kind in STATISTICS[name].kinds and threshold_for(cfg, p, name) is not None
    )


def alpha_per_test(cfg: MonitorConfig, baseline: BaselineProfile) -> float | None:
    """The per-test level in force (None when noise floors are off)."""
    if not cfg.policy.noise_floor:
        return None
    return per_test_level(cfg.policy.false_alarm_rate, n_tests(cfg, baseline))


def slice_statistic(cfg: MonitorConfig, profile: FeatureProfile) -> str:
    """The one statistic a slice is tested on: the policy score's, where the column's kind has it, else PSI.

    A slice answers *where* the drift sits, which the score's statistic ranks;
    the full battery on every slice value would multiply the tests (and their
    chances to cry wolf) and the cost by the number of statistics.
    """
    wanted = score_statistic(cfg.policy.score)
    return wanted if wanted in STATISTICS and profile.kind in STATISTICS[wanted].kinds else "psi"


def coarse_slice_columns(cfg: MonitorConfig, baseline: BaselineProfile) -> frozenset[str]:
    """Numeric columns whose slice statistic reads only the coarse bins: their slices need no fine counts."""
    params = params_for(cfg)
    return frozenset(p.name for p in baseline.features.values()
                     if p.kind == "numeric" and cells_read(slice_statistic(cfg, p), p.kind, params) == "coarse")


def n_slice_tests(cfg: MonitorConfig, baseline: BaselineProfile) -> int:
    """Slice tests per window: every slice value x every column whose slice statistic has a threshold."""
    columns = sum(1 for p in baseline.features.values()
                  if threshold_for(cfg, p, slice_statistic(cfg, p)) is not None)
    return columns * len(baseline.slices)


def slice_alpha_per_test(cfg: MonitorConfig, baseline: BaselineProfile) -> float | None:
    """The per-test level of slice tests: the same false-alarm budget again, split over every slice test.

    At the overall level, 3 slices of 12 values would make 36 times the
    chances to cry wolf.
    """
    if not cfg.policy.noise_floor:
        return None
    return per_test_level(cfg.policy.false_alarm_rate, n_slice_tests(cfg, baseline))


def compare(
    cfg: MonitorConfig,
    baseline_id: str,
    profile: FeatureProfile,
    reference: Histogram,
    reference_label: str,
    window_start: datetime,
    window_end: datetime,
    window: Histogram,
    alpha: float | None = None,
    statistics: Sequence[str] | None = None,
) -> list[DriftResult]:
    """Every configured statistic (or those named) of one column for one window against one reference.

    With ``alpha`` (the per-test level), each result carries its noise floor and
    breaches only when above both its threshold and that floor.
    """
    params = params_for(cfg)
    out = []
    for name in statistics or statistics_for(cfg, profile):
        stat = STATISTICS[name]
        if profile.kind not in stat.kinds:
            continue
        try:
            res = compute(name, profile, reference, window, params)
            floor = (noise_floor(name, profile, window, reference, alpha, params, siblings=not statistics)
                     if alpha else None)
        except Exception as exc:  # one bad column must not sink the others' results
            log.error("%s on %s failed: %s", name, profile.name, exc)
            res, floor = StatResult(name, math.nan, reason=f"{ERROR_PREFIX}{type(exc).__name__}: {exc}"), None
        threshold = threshold_for(cfg, profile, name)
        excess = res.value - floor if floor is not None and res.defined else None
        above_noise = floor is None or (res.defined and res.value > floor)
        out.append(
            DriftResult(
                monitor=cfg.monitor,
                baseline_id=baseline_id,
                window_start=window_start,
                window_end=window_end,
                feature=profile.name,
                statistic=name,
                value=res.value,
                threshold=threshold,
                drifted=breached(stat, res.value, threshold) and above_noise,
                signal="prediction" if profile.role == "prediction" else "feature",
                kind=profile.kind,
                reference=reference_label,
                lower=res.lower,
                upper=res.upper,
                p_value=res.p_value,
                reference_rows=reference.n_rows,
                window_rows=window.n_rows,
                reason=res.reason,
                noise_floor=floor,
                excess=excess,
            )
        )
    return out


def drift_results(
    cfg: MonitorConfig,
    baseline: BaselineProfile,
    windows: Sequence[WindowHistograms],
    history: Sequence[WindowHistograms] = (),
) -> list[DriftResult]:
    """Results for ``windows`` against every configured reference.

    ``history`` holds earlier stored windows (oldest first) so the first new
    window still has a previous-window and a rolling reference.
    """
    refs = cfg.references
    alpha = alpha_per_test(cfg, baseline)
    ordered = sorted([*history, *windows], key=lambda w: w.window_start)
    wanted = {w.window_start for w in windows}
    out: list[DriftResult] = []
    for pos, w in enumerate(ordered):
        if w.window_start not in wanted:
            continue
        earlier = ordered[:pos]
        for name, hist in w.histograms.items():
            profile = baseline.features.get(name)
            if profile is None:
                continue
            args = (w.window_start, w.window_end, hist, alpha)
            if refs.baseline:
                out += compare(cfg, baseline.baseline_id, profile, profile.baseline, "baseline", *args)
            if refs.previous_window and earlier and name in earlier[-1].histograms:
                prev = earlier[-1].histograms[name]
                out += compare(cfg, baseline.baseline_id, profile, prev, "previous_window", *args)
            if refs.rolling_windows and earlier:
                recent = [e.histograms[name] for e in earlier[-refs.rolling_windows:] if name in e.histograms]
                rolling = merge_all(recent, profile.n_bins)
                label = f"rolling_{refs.rolling_windows}"
                out += compare(cfg, baseline.baseline_id, profile, rolling, label, *args)
    return out


def slice_results(
    cfg: MonitorConfig, baseline: BaselineProfile, windows: Sequence[WindowHistograms]
) -> list[DriftResult]:
    """Each slice window against the same slice of the baseline, on `slice_statistic` (its own noise floor at
    its own size, at `slice_alpha_per_test`).

    Only the baseline reference: a slice's drift is judged against what that
    segment looked like, never against other segments or earlier windows.
    """
    alpha = slice_alpha_per_test(cfg, baseline)
    out: list[DriftResult] = []
    for w in windows:
        reference = baseline.slices.get((w.slice, w.slice_value), {})
        for name, hist in w.histograms.items():
            profile = baseline.features.get(name)
            if profile is None or name not in reference:
                continue
            rows = compare(cfg, baseline.baseline_id, profile, reference[name], "baseline", w.window_start,
                           w.window_end, hist, alpha, (slice_statistic(cfg, profile),))
            out += [replace(r, slice=w.slice, slice_value=w.slice_value) for r in rows]
    return out
