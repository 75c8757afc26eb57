"""Policy: each severity from the right data, consecutive windows, hysteresis, NaN (pure, no Spark)."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from sparkdrift.core.config import Levels, Policy
from sparkdrift.core.policy import WindowDecision, at_least, drift_score, evaluate, severity_rank
from sparkdrift.core.results import DriftResult

T0 = datetime(2026, 1, 5)
DAY = timedelta(days=1)


def res(feature, statistic, value, drifted=False, *, day=0, signal="feature", threshold=None,
        reference="baseline", monitor="churn"):
    return DriftResult(
        monitor=monitor, baseline_id="b1", window_start=T0 + day * DAY, window_end=T0 + (day + 1) * DAY,
        feature=feature, statistic=statistic, value=value, threshold=threshold, drifted=drifted,
        signal=signal, reference=reference,
    )


def psi_window(values, day=0, threshold=0.2):
    """One window: feature f<i> with psi values[i], drifted when above the threshold."""
    return [res(f"f{i}", "psi", v, v == v and v > threshold, day=day, threshold=threshold)
            for i, v in enumerate(values)]


def one(policy, results, previous=()):
    (d,) = evaluate(policy, results, previous)
    return d


def test_severity_helpers():
    assert [severity_rank(s) for s in ("none", "minor", "moderate", "severe")] == [0, 1, 2, 3]
    assert at_least("severe", "moderate") and at_least("minor", "minor") and not at_least("minor", "moderate")
    with pytest.raises(ValueError, match="unknown severity 'high'"):
        severity_rank("high")


@pytest.mark.parametrize(
    "score, severity, rule",
    [
        (0.05, "none", None),
        (0.1, "minor", "score max:psi=0.1 >= minor 0.1"),
        (0.15, "minor", "score max:psi=0.15 >= minor 0.1"),
        (0.2, "moderate", "score max:psi=0.2 >= moderate 0.2"),
        (0.34, "severe", "score max:psi=0.34 >= severe 0.3"),
    ],
)
def test_score_levels(score, severity, rule):
    d = one(Policy(), psi_window([0.01, score, 0.02], threshold=0.25))
    assert d.severity == severity
    assert d.score == pytest.approx(score)
    assert d.rules == ((rule,) if rule else ())
    assert d.window_start == T0 and d.window_end == T0 + DAY and d.monitor == "churn"


def test_drifted_dict_counts_and_share():
    rows = psi_window([0.34, 0.25, 0.01, 0.02]) + [res("f0", "js", 0.12, True), res("f2", "js", 0.01, False)]
    d = one(Policy(), rows)
    assert d.drifted == {"f0": {"psi": 0.34, "js": 0.12}, "f1": {"psi": 0.25}}
    assert d.n_drifted == 2 and d.share_drifted == 0.5
    assert d.drifted_features == ("f0", "f1")


def test_score_kinds():
    rows = psi_window([0.1, 0.3, 0.2, 0.0]) + [res("f0", "mean_shift", -0.7), res("f1", "mean_shift", 0.4)]
    assert one(Policy(score="max:psi"), rows).score == pytest.approx(0.3)
    assert one(Policy(score="mean:psi"), rows).score == pytest.approx(0.15)
    assert one(Policy(score="share_drifted"), rows).score == pytest.approx(0.25)  # f1 only (> 0.2)
    assert one(Policy(score="mean_shift"), rows).score == pytest.approx(0.7)  # largest shift either way
    assert one(Policy(score="mean_shift"), rows).severity == "severe"
    with pytest.raises(ValueError, match="policy.score"):
        drift_score("median:psi", rows, 0.0)


def test_drifted_feature_count_rule():
    # every psi below the minor level, but four features drifted on another statistic
    rows = psi_window([0.05] * 5) + [res(f"f{i}", "js", 0.2, True) for i in range(4)]
    d = one(Policy(), rows)
    assert d.severity == "moderate"
    assert d.rules == ("4 drifted features >= 3",)
    d = one(Policy(drifted_features=5, drifted_features_severity="severe"), rows)
    assert d.severity == "none" and d.rules == ()


def test_prediction_rule():
    rows = psi_window([0.05]) + [res("churn_score", "psi", 0.21, True, signal="prediction"),
                                 res("churn_score", "js", 0.5, True, signal="prediction")]
    d = one(Policy(), rows)
    assert d.severity == "moderate"
    assert d.rules == ("prediction churn_score psi=0.21 > 0.15",)
    assert d.drifted == {}  # prediction columns are not features
    assert one(Policy(prediction_psi=0.25), rows).severity == "none"
    assert one(Policy(prediction_severity="severe"), rows).severity == "severe"


def test_quality_and_performance_rules():
    quality = [res("age", "completeness", 0.95, True, signal="quality", threshold=0.99),
               res("age", "out_of_range_rate", 0.005, False, signal="quality", threshold=0.01)]
    d = one(Policy(), psi_window([0.05]) + quality)
    assert (d.severity, d.rules) == ("minor", ("quality: age completeness 0.95 < 0.99",))

    perf = [res("churn_score", "auc", 0.81, True, signal="performance", threshold=0.9)]
    d = one(Policy(), psi_window([0.05]) + perf)
    assert (d.severity, d.rules) == ("severe", ("performance: churn_score auc 0.81 < 0.9",))

    rate = [res("contract", "unseen_rate", 0.04, True, signal="quality", threshold=0.01)]
    assert one(Policy(), psi_window([0.05]) + rate).rules == ("quality: contract unseen_rate 0.04 > 0.01",)


def test_severity_is_the_highest_rule():
    rows = (psi_window([0.12, 0.3, 0.25, 0.21])
            + [res("churn_score", "psi", 0.2, True, signal="prediction"),
               res("age", "completeness", 0.9, True, signal="quality", threshold=0.99)])
    d = one(Policy(), rows)
    assert d.severity == "severe"
    assert d.rules == (
        "score max:psi=0.3 >= severe 0.3",
        "3 drifted features >= 3",
        "prediction churn_score psi=0.2 > 0.15",
        "quality: age completeness 0.9 < 0.99",
    )


def test_only_baseline_reference_and_sorting():
    rows = (psi_window([0.4], day=2) + psi_window([0.05], day=0)
            + [res("f0", "psi", 0.9, True, day=1, reference="previous_window")]
            + psi_window([0.25], day=1)
            + [res("x", "psi", 0.5, True, monitor="other")])
    out = evaluate(Policy(), rows)
    assert [(d.monitor, d.window_start, d.severity) for d in out] == [
        ("churn", T0, "none"), ("churn", T0 + DAY, "moderate"), ("churn", T0 + 2 * DAY, "severe"),
        ("other", T0, "severe"),
    ]


def test_consecutive_windows():
    pol = Policy(consecutive_windows=2)
    rows = [r for day, v in enumerate([0.35, 0.35, 0.12, 0.35, 0.25]) for r in psi_window([v], day=day)]
    out = evaluate(pol, rows)
    assert [d.reached for d in out] == ["severe", "severe", "minor", "severe", "moderate"]
    assert [d.severity for d in out] == ["none", "severe", "minor", "minor", "moderate"]
    assert out[0].rules[-1] == "consecutive_windows 2: severe not sustained yet, active none"
    assert out[1].rules == ("score max:psi=0.35 >= severe 0.3",)


def test_consecutive_windows_across_runs():
    pol = Policy(consecutive_windows=3)
    rows = [r for day, v in enumerate([0.31, 0.32, 0.33, 0.34]) for r in psi_window([v], day=day)]
    first_two = evaluate(pol, [r for r in rows if r.window_start < T0 + 2 * DAY])
    assert [d.severity for d in first_two] == ["none", "none"]
    rest = evaluate(pol, [r for r in rows if r.window_start >= T0 + 2 * DAY], previous=first_two)
    assert rest == evaluate(pol, rows)[2:]
    assert [d.severity for d in rest] == ["severe", "severe"]
    # a recomputed window is decided again from the new results, not taken from `previous`
    again = evaluate(pol, psi_window([0.05], day=1) + psi_window([0.34], day=2), previous=first_two)
    assert [d.severity for d in again] == ["none", "none"]


def test_previous_decisions_made_elsewhere():
    prev = WindowDecision(monitor="churn", window_start=T0 - DAY, window_end=T0, score=0.5, severity="severe")
    assert prev.reached == "severe"
    d = one(Policy(consecutive_windows=2), psi_window([0.31]), previous=[prev])
    assert d.severity == "severe"
    # another monitor's history does not count
    other = WindowDecision(monitor="x", window_start=T0 - DAY, window_end=T0, score=0.5, severity="severe")
    assert one(Policy(consecutive_windows=2), psi_window([0.31]), previous=[other]).severity == "none"


def test_hysteresis():
    pol = Policy(hysteresis=0.05)
    rows = [r for day, v in enumerate([0.32, 0.27, 0.24, 0.26, 0.17, 0.12]) for r in psi_window([v], day=day)]
    out = evaluate(pol, rows)
    assert [d.severity for d in out] == ["severe", "severe", "moderate", "moderate", "moderate", "minor"]
    assert out[1].rules == ("score max:psi=0.27 >= severe 0.3 - hysteresis 0.05 (still active)",)
    assert out[3].rules == ("score max:psi=0.26 >= moderate 0.2",)  # 0.26 < 0.3: severe not re-entered
    # without an active level before, 0.27 is only moderate
    assert one(pol, psi_window([0.27])).severity == "moderate"
    # and without hysteresis it drops at once
    assert [d.severity for d in evaluate(Policy(), rows)] == ["severe", "moderate", "moderate", "moderate", "minor", "minor"]


def test_hysteresis_across_runs():
    pol = Policy(hysteresis=0.1)
    prev = evaluate(pol, psi_window([0.35], day=0))
    assert one(pol, psi_window([0.21], day=1), previous=prev).severity == "severe"


def test_nan_never_fires():
    nan = math.nan
    d = one(Policy(), psi_window([nan, nan]))
    assert math.isnan(d.score) and d.severity == "none" and d.rules == ()
    # a NaN flagged drifted (should not happen) does not count either
    d = one(Policy(drifted_features=1), [res("f0", "psi", nan, True), res("f1", "psi", 0.05)])
    assert d.drifted == {} and d.severity == "none" and d.score == pytest.approx(0.05)
    # NaN keeps no level active through hysteresis
    prev = evaluate(Policy(hysteresis=0.5), psi_window([0.4], day=0))
    assert one(Policy(hysteresis=0.5), psi_window([nan], day=1), previous=prev).severity == "none"
    # NaN prediction PSI does not fire; no features: share is NaN
    d = one(Policy(score="share_drifted"), [res("churn_score", "psi", nan, False, signal="prediction")])
    assert math.isnan(d.share_drifted) and d.severity == "none"
    assert d.to_dict()["score"] is None


def test_levels_are_configurable():
    pol = Policy(levels=Levels(minor=0.05, moderate=0.5, severe=0.9))
    assert one(pol, psi_window([0.34])).severity == "minor"
