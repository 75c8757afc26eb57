"""Severity per window: the playbook's levels and rules, applied to DriftResult rows.

Pure Python, no Spark: ``evaluate`` turns the long-format results of a detect
run into one ``WindowDecision`` per window, which ``sparkdrift.actions`` acts on.

Rules, each giving a severity (the window's severity is the highest):

- drift score (``policy.score``) against ``policy.levels``
  (minor >= 0.1 notify, moderate >= 0.2 investigate, severe >= 0.3 retrain);
- ``policy.drifted_features`` or more drifted features -> ``drifted_features_severity``;
- persistence (``policy.persistence``): a CUSUM per feature over the windows,
  S = max(0, S + value - max(noise floor, allowance * threshold)), fires
  ``persistence.severity`` once S >= limit * threshold: slow drift that stays
  under the per-window threshold for many windows;
- a prediction column with PSI above ``policy.prediction_psi`` -> ``prediction_severity``;
- a data-quality breach -> ``quality_severity``; a performance breach -> ``performance_severity``.

Two damping rules act on the result:

- ``consecutive_windows`` N: a level is active only when the last N evaluated
  windows (decisions of earlier runs passed as ``previous`` included) all
  reached it. Windows with no data are not evaluated, so a gap does not break
  the chain. Until N windows exist, nothing fires.
- ``hysteresis`` h: a level active in the previous window stays reached while
  the score is at least ``level - h`` (only the score rule is damped; the other
  rules are yes/no).

A NaN score never reaches a level (no data is no evidence of drift). With
noise floors on, the score counts only values above their noise floor, so a
small window's chance PSI never reaches a level. A statistic that failed with
an error is listed in ``errors``: visible, never read as "no drift".
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sparkdrift.core.config import SEVERITIES, Policy
from sparkdrift.core.results import DriftResult
from sparkdrift.core.slices import describe, is_overall
from sparkdrift.core.windows import as_utc

LEVELS: tuple[str, ...] = SEVERITIES[1:]  # minor, moderate, severe


def severity_rank(s: str) -> int:
    """none 0, minor 1, moderate 2, severe 3; anything else is a ValueError."""
    try:
        return SEVERITIES.index(s)
    except ValueError:
        raise ValueError(f"unknown severity {s!r} (expected one of {', '.join(SEVERITIES)})") from None


def at_least(s: str, min_severity: str) -> bool:
    """True when severity ``s`` is ``min_severity`` or higher."""
    return severity_rank(s) >= severity_rank(min_severity)


def _max_sev(a: str, b: str) -> str:
    return a if severity_rank(a) >= severity_rank(b) else b


@dataclass(frozen=True)
class WindowDecision:
    """The policy's verdict on one window.

    ``severity`` is the active severity (after the consecutive-window rule);
    ``reached`` is what the window reached on its own (hysteresis included),
    which the next windows' consecutive rule needs. ``rules`` are the rules
    that fired, human readable. ``drifted`` maps each drifted feature to its
    breached statistics and their values.
    """

    monitor: str
    window_start: datetime
    window_end: datetime
    score: float
    severity: str
    rules: tuple[str, ...] = ()
    drifted: dict[str, dict[str, float]] = field(default_factory=dict, hash=False)
    n_drifted: int = 0
    share_drifted: float = 0.0
    reached: str = ""
    errors: tuple[str, ...] = ()  # "feature statistic: reason" of statistics that could not be computed

    def __post_init__(self) -> None:
        severity_rank(self.severity)
        if not self.reached:
            object.__setattr__(self, "reached", self.severity)
        severity_rank(self.reached)

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(sorted(self.drifted))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rules"] = list(self.rules)
        d["errors"] = list(self.errors)
        if not math.isfinite(d["score"]):
            d["score"] = None
        if not math.isfinite(d["share_drifted"]):
            d["share_drifted"] = None
        return d


def _finite(v: float | None) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def above_noise(r: DriftResult) -> bool:
    """A finite value beyond its noise floor (always true where no floor applies)."""
    return _finite(r.value) and (r.noise_floor is None or r.value > r.noise_floor)


def score_statistic(spec: str) -> str:
    """The statistic a ``policy.score`` spec is built from (psi for share_drifted)."""
    if spec == "mean_shift":
        return "mean_shift"
    return spec.partition(":")[2] or "psi"


def drift_score(spec: str, feature_results: Sequence[DriftResult], share: float) -> float:
    """The window's drift score per ``policy.score``; NaN when nothing defines it.

    Values within their noise floor count as 0: chance is not drift.
    """
    if spec == "share_drifted":
        return share
    agg, sep, stat = spec.partition(":")
    if spec != "mean_shift" and (not sep or agg not in ("mean", "max") or not stat):
        raise ValueError(f"policy.score: expected share_drifted, mean_shift, mean:<stat> or max:<stat>, got {spec!r}")
    stat = score_statistic(spec)
    vals = [
        (abs(r.value) if stat == "mean_shift" else r.value) if above_noise(r) else 0.0
        for r in feature_results
        if r.statistic == stat and _finite(r.value)
    ]
    if not vals:
        return math.nan
    return sum(vals) / len(vals) if agg == "mean" else max(vals)


class Cusum:
    """Per-feature CUSUM of the excess over max(noise floor, allowance * threshold), across windows."""

    def __init__(self, policy: Policy):
        self.cfg = policy.persistence
        self.statistic = self.cfg.statistic or score_statistic(policy.score)
        self.sums: dict[str, float] = {}
        self.runs: dict[str, int] = {}

    def update(self, rows: Sequence[DriftResult]) -> list[tuple[str, float, float, int]]:
        """Feed one window; returns (feature, sum, limit, windows accumulating) for features at the limit."""
        fired = []
        for r in rows:
            if r.statistic != self.statistic or r.signal not in ("feature", "prediction"):
                continue
            if r.threshold is None or not _finite(r.value) or r.threshold <= 0:
                continue
            reference = max(r.noise_floor or 0.0, self.cfg.allowance * r.threshold)
            total = max(0.0, self.sums.get(r.feature, 0.0) + r.value - reference)
            self.sums[r.feature] = total
            self.runs[r.feature] = self.runs.get(r.feature, 0) + 1 if total > 0 else 0
            limit = self.cfg.limit * r.threshold
            if total >= limit:
                fired.append((r.feature, total, limit, self.runs[r.feature]))
        return fired


def _breach_rule(prefix: str, r: DriftResult) -> str:
    if r.threshold is None or not _finite(r.value):
        value = _fmt(r.value) if _finite(r.value) else "n/a"
        return f"{prefix}: {r.feature} {r.statistic} {value} breached" + (f" ({r.reason})" if r.reason else "")
    op = "<" if r.value < r.threshold else ">"
    return f"{prefix}: {r.feature} {r.statistic} {_fmt(r.value)} {op} {r.threshold:g}"


def slice_rules(policy: Policy, rows: Sequence[DriftResult]) -> list[str]:
    """One rule per breached (slice value, column) with at least ``slice_min_rows`` rows, the score's statistic first.

    E.g. ``slice country=DE: age psi=0.41 (n=1200)``.
    """
    wanted = score_statistic(policy.score)
    breached: dict[tuple[str, str, str], DriftResult] = {}
    for r in rows:
        if r.signal not in ("feature", "prediction") or not r.drifted or r.window_rows < policy.slice_min_rows:
            continue
        key = (r.slice, r.slice_value, r.feature)
        held = breached.get(key)
        if held is None or (r.statistic == wanted and held.statistic != wanted):
            breached[key] = r
    return [
        f"slice {describe(r.slice, r.slice_value)}: {r.feature} {r.statistic}={_fmt(r.value)} (n={r.window_rows})"
        for _, r in sorted(breached.items())
    ]


def _window_decision(
    policy: Policy,
    monitor: str,
    window_start: datetime,
    window_end: datetime,
    rows: Sequence[DriftResult],
    earlier: Sequence[WindowDecision],
    cusum: Cusum | None = None,
) -> WindowDecision:
    slice_rows = [r for r in rows if not is_overall(r.slice)]
    rows = [r for r in rows if is_overall(r.slice)]  # every overall rule sees exactly what it saw before slices
    feature_rows = [r for r in rows if r.signal == "feature"]
    features = {r.feature for r in feature_rows}
    drifted: dict[str, dict[str, float]] = {}
    for r in feature_rows:
        if r.drifted and _finite(r.value):
            drifted.setdefault(r.feature, {})[r.statistic] = float(r.value)
    drifted = {k: drifted[k] for k in sorted(drifted)}
    n_drifted = len(drifted)
    share = n_drifted / len(features) if features else math.nan
    score = drift_score(policy.score, feature_rows, share)

    rules: list[str] = []
    reached = "none"
    prev = earlier[-1] if earlier else None

    # 1. drift score against the levels (with hysteresis); NaN never fires
    if _finite(score):
        for level in reversed(LEVELS):
            thr = getattr(policy.levels, level)
            held = prev is not None and policy.hysteresis > 0 and at_least(prev.severity, level)
            if score >= thr:
                rules.append(f"score {policy.score}={_fmt(score)} >= {level} {thr:g}")
            elif held and score >= thr - policy.hysteresis:
                rules.append(
                    f"score {policy.score}={_fmt(score)} >= {level} {thr:g} - hysteresis {policy.hysteresis:g}"
                    " (still active)"
                )
            else:
                continue
            reached = level
            break

    # 2. number of drifted features
    if n_drifted >= policy.drifted_features:
        rules.append(f"{n_drifted} drifted features >= {policy.drifted_features}")
        reached = _max_sev(reached, policy.drifted_features_severity)

    # 2b. persistence: slow drift accumulated over windows
    if cusum is not None and policy.persistence.enabled:
        fired = cusum.update(rows)
        for feature, total, limit, runs in fired if severity_rank(reached) < severity_rank(policy.persistence.severity) else ():
            rules.append(
                f"persistence: {feature} {cusum.statistic} CUSUM {_fmt(total)} >= {_fmt(limit)} over {runs} windows"
            )
            reached = _max_sev(reached, policy.persistence.severity)

    # 3. prediction drift (above its noise floor)
    for r in rows:
        if (r.signal == "prediction" and r.statistic == "psi" and above_noise(r)
                and r.value > policy.prediction_psi):
            rules.append(f"prediction {r.feature} psi={_fmt(r.value)} > {policy.prediction_psi:g}")
            reached = _max_sev(reached, policy.prediction_severity)

    # 4. data quality and 5. performance breaches
    for signal, severity in (("quality", policy.quality_severity), ("performance", policy.performance_severity)):
        for r in rows:
            if r.signal == signal and r.drifted:
                rules.append(_breach_rule(signal, r))
                reached = _max_sev(reached, severity)

    # 6. slices: a breach in a segment with enough rows in the window
    for rule in slice_rules(policy, slice_rows):
        rules.append(rule)
        reached = _max_sev(reached, policy.slice_severity)

    # consecutive windows: the active level is the lowest reached over the last N windows
    n = policy.consecutive_windows
    if n <= 1:
        severity = reached
    else:
        chain = [d.reached for d in earlier[-(n - 1):]] + [reached]
        if len(chain) < n:
            severity = "none"
        else:
            severity = min(chain, key=severity_rank)
        if severity != reached:
            rules.append(f"consecutive_windows {n}: {reached} not sustained yet, active {severity}")

    return WindowDecision(
        monitor=monitor,
        window_start=window_start,
        window_end=window_end,
        score=float(score),
        severity=severity,
        rules=tuple(rules),
        drifted=drifted,
        n_drifted=n_drifted,
        share_drifted=float(share),
        reached=reached,
        errors=tuple(sorted(f"{r.feature} {r.statistic}: {r.reason}" for r in rows if r.failed)),
    )


def evaluate(
    policy: Policy, results: Iterable[DriftResult], previous: Iterable[WindowDecision] = ()
) -> list[WindowDecision]:
    """One decision per (monitor, window), sorted by monitor then window_start.

    Only results compared with the baseline (``reference == "baseline"``) count.
    ``previous`` are decisions of earlier runs: they feed the consecutive-window
    and hysteresis rules but are not returned; a window present in both is
    decided again from ``results``.
    """
    groups: dict[tuple[str, datetime], list[DriftResult]] = {}
    ends: dict[tuple[str, datetime], datetime] = {}
    starts: dict[tuple[str, datetime], datetime] = {}
    for r in results:
        if r.reference != "baseline":
            continue
        key = (r.monitor, as_utc(r.window_start))
        groups.setdefault(key, []).append(r)
        starts.setdefault(key, r.window_start)
        ends.setdefault(key, r.window_end)

    previous = list(previous)
    out: list[WindowDecision] = []
    for monitor in sorted({m for m, _ in groups}):
        keys = sorted(k for k in groups if k[0] == monitor)
        cusum = Cusum(policy)
        current = {k[1] for k in keys}
        chain = sorted(
            (p for p in previous if p.monitor == monitor and as_utc(p.window_start) not in current),
            key=lambda p: as_utc(p.window_start),
        )
        for key in keys:
            earlier = [d for d in chain if as_utc(d.window_start) < key[1]]
            decision = _window_decision(policy, monitor, starts[key], ends[key], groups[key], earlier, cusum)
            out.append(decision)
            chain = earlier + [decision] + [d for d in chain if as_utc(d.window_start) > key[1]]
    return out
