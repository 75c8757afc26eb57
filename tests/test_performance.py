"""Performance from label x prediction histograms against exact values on the same rows."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sparkdrift.performance import SCORE_BINS, auc_with_bounds, metrics
from sparkdrift.profile import Histogram


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
