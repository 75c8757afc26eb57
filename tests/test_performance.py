"""Performance from label x prediction histograms against exact values on the same rows."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sparkdrift.core.performance import SCORE_BINS, auc_with_bounds, metrics
from sparkdrift.core.profile import Histogram


def exact_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half, from numpy ranks (average ranks for ties)."""
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = y.sum(), (~y).sum()
    return (ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def score_histogram(y: np.ndarray, s: np.ndarray) -> Histogram:
    b = np.minimum(np.floor(s * SCORE_BINS).astype(int), SCORE_BINS - 1)
    return Histogram(counts=np.bincount(b + SCORE_BINS * y, minlength=2 * SCORE_BINS))


@pytest.mark.parametrize("seed,sep", [(1, 0.3), (2, 0.05), (3, 0.6)])
def test_score_metrics_equal_exact_counts_and_auc_within_bound(seed, sep):
    rng = np.random.default_rng(seed)
    y = rng.random(20_000) < 0.3
    s = np.clip(rng.normal(0.4 + sep * y, 0.2), 0, 1)
    m = metrics("score", score_histogram(y, s), threshold=0.5)
    pred = s >= 0.5
    tp, fp, fn, tn = (pred & y).sum(), (pred & ~y).sum(), (~pred & y).sum(), (~pred & ~y).sum()
    assert m["accuracy"][0] == pytest.approx((tp + tn) / len(y), abs=1e-12)
    assert m["precision"][0] == pytest.approx(tp / (tp + fp), abs=1e-12)
    assert m["recall"][0] == pytest.approx(tp / (tp + fn), abs=1e-12)
    p, r = tp / (tp + fp), tp / (tp + fn)
    assert m["f1"][0] == pytest.approx(2 * p * r / (p + r), abs=1e-12)
    auc, lo, hi = m["auc"]
    exact = exact_auc(y, s)
    assert lo <= exact <= hi
    assert hi - lo < 0.01  # 1000 score bins: same-bin pairs are rare
    assert abs(auc - exact) <= (hi - lo) / 2


def test_class_and_regression_metrics():
    h = Histogram(counts=np.array([50, 10, 5, 35]))  # tn, fp, fn, tp
    m = metrics("class", h)
    assert m["accuracy"][0] == pytest.approx(0.85)
    assert m["precision"][0] == pytest.approx(35 / 45) and m["recall"][0] == pytest.approx(35 / 40)
    err = np.array([0.5, -1.0, 2.0, 0.0])
    r = metrics("regression", Histogram(counts=np.array([4]), value_sum=np.abs(err).sum(), value_sum_sq=(err**2).sum()))
    assert r["mae"][0] == pytest.approx(np.abs(err).mean())
    assert r["rmse"][0] == pytest.approx(np.sqrt((err**2).mean()))


def test_one_class_window_gives_nan_auc_not_an_error():
    auc, lo, hi = auc_with_bounds(np.zeros(10), np.ones(10))
    assert math.isnan(auc) and lo is None and hi is None


def _class_window(tn: int, fp: int, fn: int, tp: int):
    from datetime import datetime

    from sparkdrift.core.windows import WindowHistograms
    from sparkdrift.core.performance import SLOT

    h = Histogram(counts=np.array([tn, fp, fn, tp]))
    return WindowHistograms(datetime(2026, 1, 1), datetime(2026, 1, 2), tn + fp + fn + tp, {SLOT: h})


def test_performance_breaches_only_below_its_noise_floor():
    """accuracy 0.80 on 300 labels vs a 0.85 floor: z(0.99) x sqrt(0.85 x 0.15 / 300) = 0.048 of chance."""
    from sparkdrift.core.config import parse_config
    from sparkdrift.core.performance import performance_results

    cfg = parse_config({"monitor": "m", "baseline": {"table": "/b"},
                        "production": {"table": "/p", "timestamp_column": "ts"},
                        "prediction": {"columns": ["pred"], "kind": "class"},
                        "label": {"column": "y"}, "performance": {"auc": 0.5}}, "m.yaml")
    floor = 0.85 - 2.3263478740408408 * math.sqrt(0.85 * 0.15 / 300)
    # 240 of 300 right (0.80): below 0.85, and below the floor 0.802
    (acc,) = [r for r in performance_results(cfg, "b", [_class_window(150, 30, 30, 90)], None, 0.01)
              if r.statistic == "accuracy"]
    assert acc.value == pytest.approx(0.8) and acc.noise_floor == pytest.approx(floor) and acc.drifted
    assert acc.excess == pytest.approx(floor - 0.8)
    # 243 of 300 (0.81): below 0.85 but within chance of it
    (acc,) = [r for r in performance_results(cfg, "b", [_class_window(152, 28, 29, 91)], None, 0.01)
              if r.statistic == "accuracy"]
    assert acc.value == pytest.approx(0.81) and not acc.drifted
    # noise floors off: fixed threshold only
    (acc,) = [r for r in performance_results(cfg, "b", [_class_window(152, 28, 29, 91)], None)
              if r.statistic == "accuracy"]
    assert acc.drifted and acc.noise_floor is None


def test_auc_noise_is_hanley_mcneil():
    from sparkdrift.core.performance import metric_noise

    a, n1, n2 = 0.8, 100, 300
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    by_hand = math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2))
    assert metric_noise("auc", a, (n1, n2)) == pytest.approx(by_hand)
    # and it is the spread of AUC on binormal draws at that size (within 15 %)
    rng = np.random.default_rng(0)
    d = math.sqrt(2) * 0.8416212335729143  # binormal separation with AUC = Phi(d / sqrt 2) = 0.8
    aucs = [exact_auc(np.r_[np.ones(n1, bool), np.zeros(n2, bool)], np.r_[rng.normal(d, 1, n1), rng.normal(0, 1, n2)])
            for _ in range(400)]
    assert np.std(aucs) == pytest.approx(by_hand, rel=0.15)
