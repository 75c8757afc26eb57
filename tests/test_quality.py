"""Data-quality and performance signals: each triggered by a crafted window, none by a clean one, no extra scan."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sparkdrift.core.config import parse_config
from sparkdrift.core.quality import ColumnIssue
from sparkdrift.core.windows import WindowHistograms, Windows
from sparkdrift.core.profile import BaselineProfile, Histogram
from sparkdrift.core.quality import quality_results
from tests.helpers import categorical_profile, numeric_profile

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
CFG = parse_config(
    {"monitor": "q", "baseline": {"table": "/b"}, "production": {"table": "/p", "timestamp_column": "ts"},
     "features": {"numeric": ["x"], "categorical": ["c"]}},
    "q.yaml",
)


@pytest.fixture(scope="module")
def baseline():
    rng = np.random.default_rng(5)
    x = numeric_profile("x", rng.normal(0, 1, 2000), fine_bins=100)
    c = categorical_profile("c", rng.choice(["a", "b", "c"], 2000).tolist(), top_k=3)
    return BaselineProfile("q", "b1", "now", "/b", 0, "h", 2000, {"x": x, "c": c})


def _window(day, x: Histogram, c: Histogram, rows=1000):
    start = T0 + timedelta(days=day)
    return WindowHistograms(start, start + timedelta(days=1), rows, {"x": x, "c": c})


def _clean(baseline, n=1000):
    x = Histogram(counts=np.full(baseline.features["x"].n_bins, n // baseline.features["x"].n_bins))
    c = Histogram(counts=np.array([n // 3, n // 3, n - 2 * (n // 3), 0]))
    return x, c


def _breached(results):
    return {(r.feature, r.statistic) for r in results if r.drifted}


def test_clean_windows_trigger_nothing(baseline):
    windows = [_window(d, *_clean(baseline)) for d in range(5)]
    assert _breached(quality_results(CFG, baseline, windows)) == set()


@pytest.mark.parametrize(
    "craft,expected",
    [
        (lambda x, c: (Histogram(counts=x.counts, nulls=50), c), ("x", "completeness")),
        (lambda x, c: (Histogram(counts=x.counts, nans=30), c), ("x", "completeness")),
        (lambda x, c: (Histogram(counts=x.counts, overflow=40), c), ("x", "out_of_range_rate")),
        (lambda x, c: (Histogram(counts=x.counts, underflow=40), c), ("x", "out_of_range_rate")),
        (lambda x, c: (x, Histogram(counts=c.counts, unseen=40)), ("c", "unseen_rate")),
        (lambda x, c: (Histogram(counts=x.counts, invalid=40), c), ("x", "invalid_rate")),
    ],
)
def test_each_signal_triggered_by_a_crafted_window(baseline, craft, expected):
    windows = [_window(0, *craft(*_clean(baseline)))]
    assert expected in _breached(quality_results(CFG, baseline, windows))


def test_missing_and_mistyped_columns_and_volume(baseline):
    history = [_window(d, *_clean(baseline)) for d in range(4)]
    spike = _window(4, *_clean(baseline, 5000), rows=5000)
    issues = [ColumnIssue("x", "missing", "column not in the production table")]
    res = quality_results(CFG, baseline, [spike], history, issues, extra_columns=["new_col"])
    breached = _breached(res)
    assert ("x", "missing_column") in breached
    assert ("__rows__", "volume_ratio") in breached
    extra = [r for r in res if r.statistic == "extra_column"]
    assert [r.feature for r in extra] == ["new_col"]
    normal = _window(4, *_clean(baseline))
    assert ("__rows__", "volume_ratio") not in _breached(quality_results(CFG, baseline, [normal], history))


@pytest.mark.spark
def test_performance_and_quality_add_no_scan(spark, baseline, tmp_path):
    """The performance slot rides in the same pass: still one file scan of the production table."""
    from sparkdrift.core.config import parse_config as pc
    from sparkdrift.spark.performance import performance_slots
    from sparkdrift.spark.histograms import count_windows

    rows = [(datetime(2026, 1, 1, h), float(h % 3), "a", h / 24, h % 2) for h in range(24)]
    spark.createDataFrame(rows, "ts timestamp, x double, c string, score double, y int").write.format(
        "delta").save(str(tmp_path / "log"))
    df = spark.read.format("delta").load(str(tmp_path / "log"))
    cfg = pc({"monitor": "q", "baseline": {"table": "/b"}, "production": {"table": "/p", "timestamp_column": "ts"},
              "features": {"numeric": ["x"]}, "prediction": {"columns": ["score"]}, "label": {"column": "y"}}, "q.yaml")
    slots = performance_slots(cfg, df.columns)
    assert len(slots) == 1
    profiles = list(baseline.features.values())
    plain = count_windows(df, profiles, "ts", Windows(seconds=86400))
    with_perf = count_windows(df, profiles, "ts", Windows(seconds=86400), slots)
    assert plain.scan.scans == with_perf.scan.scans == 1
    perf = with_perf.windows[0].histograms["__performance__"]
    assert int(perf.counts.sum()) == 24
    # label 1 rows land in the upper half of the slot (label * 1000 + score bin)
    assert int(perf.counts[1000:].sum()) == 12


def test_a_baseline_with_nulls_sets_the_line_for_completeness():
    """1.5 % nulls in the baseline and in every window (below the 0.99 minimum): no alarm in 200 windows,
    while a window with 3 % nulls still breaches. Oracle: binomial draws; the breach decision by hand."""
    rng = np.random.default_rng(11)
    rate, m = 0.015, 20_000
    x = numeric_profile("x", np.where(rng.random(m) < rate, np.nan, rng.normal(0, 1, m)), fine_bins=20)
    assert x.baseline.nulls + x.baseline.nans == pytest.approx(rate * m, rel=0.1)
    base = BaselineProfile("q", "b1", "now", "/b", 0, "h", m, {"x": x})
    source = {"monitor": "q", "baseline": {"table": "/b"}, "production": {"table": "/p", "timestamp_column": "ts"},
              "features": {"numeric": ["x"]}}
    cfg = parse_config(source, "q.yaml")
    n = 2000

    def window(day, nulls):
        start = T0 + timedelta(days=day)
        counts = np.full(x.n_bins, (n - nulls) // x.n_bins)
        counts[0] += n - nulls - counts.sum()
        return WindowHistograms(start, start + timedelta(days=1), n, {"x": Histogram(counts=counts, nulls=nulls)})

    drawn = rng.binomial(n, rate, 200)
    assert (1 - drawn / n < 0.99).mean() > 0.3  # the fixed minimum alone would cry wolf in about half of them
    results = quality_results(cfg, base, [window(d, int(k)) for d, k in enumerate(drawn)])
    completeness = [r for r in results if r.statistic == "completeness"]
    assert len(completeness) == 200 and sum(r.drifted for r in completeness) <= 0.05 * 200 / 2
    (worse,) = [r for r in quality_results(cfg, base, [window(0, int(0.03 * n))]) if r.statistic == "completeness"]
    assert worse.value == pytest.approx(0.97) and worse.drifted
    off = parse_config({**source, "policy": {"noise_floor": False}}, "q.yaml")
    (fixed,) = [r for r in quality_results(off, base, [window(0, int(0.012 * n))]) if r.statistic == "completeness"]
    assert fixed.drifted  # without noise floors the fixed minimum alone decides, as before
