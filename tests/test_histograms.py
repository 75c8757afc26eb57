"""The one-pass window histograms against exact counts done another way (numpy on the same rows)."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sparkdrift.core.binning import count_categorical, count_numeric
from sparkdrift.spark.histograms import check_columns, count_windows
from sparkdrift.core.windows import Windows
from sparkdrift.core.profile import merge_all
from tests.helpers import categorical_profile, numeric_profile

pytestmark = pytest.mark.spark

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _production(rng, n=6000, hours=48):
    ts = [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, hours * 3600, n)]
    x = rng.normal(0.3, 1.2, n)  # shifted and wider: under/overflow happen
    x[rng.random(n) < 0.02] = np.nan
    x_null = rng.random(n) < 0.03
    cats = rng.choice(["a", "b", "c", "d", "zz_new"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05]).tolist()
    cats = [None if rng.random() < 0.02 else c for c in cats]
    rows = [
        (t.replace(tzinfo=None), None if m else float(v), c)
        for t, v, m, c in zip(ts, x, x_null, cats)
    ]
    return ts, np.ma.masked_array(x, mask=x_null), cats, rows


@pytest.fixture(scope="module")
def setup(spark):
    rng = np.random.default_rng(7)
    base_x = rng.normal(0, 1, 5000)
    base_c = rng.choice(["a", "b", "c", "d", "e"], 5000).tolist()
    profiles = [numeric_profile("x", base_x, fine_bins=200), categorical_profile("c", base_c, top_k=3)]
    ts, x, cats, rows = _production(rng)
    df = spark.createDataFrame(rows, "ts timestamp, x double, c string")
    return profiles, ts, x, cats, df


def _expected(profiles, ts, x, cats, seconds):
    starts = np.array([int(t.timestamp()) // seconds * seconds for t in ts])
    out = {}
    for s in np.unique(starts):
        m = starts == s
        out[s] = {
            "x": count_numeric(x[m], profiles[0].edges),
            "c": count_categorical([c for c, k in zip(cats, m) if k], profiles[1].categories, profiles[1].tracked),
        }
    return out


def test_hourly_counts_equal_numpy_counts(setup):
    profiles, ts, x, cats, df = setup
    result = count_windows(df, profiles, "ts", Windows(seconds=3600))
    expected = _expected(profiles, ts, x, cats, 3600)
    assert result.null_timestamps == 0
    assert [int(w.window_start.timestamp()) for w in result.windows] == sorted(expected)
    for w in result.windows:
        exp = expected[int(w.window_start.timestamp())]
        assert w.histograms["x"] == exp["x"]
        assert w.histograms["c"] == exp["c"]
        assert w.window_end - w.window_start == timedelta(hours=1)
        assert w.rows == exp["x"].n_rows
    # the categorical side counts are really exercised
    assert sum(w.histograms["c"].unseen for w in result.windows) > 0
    assert sum(w.histograms["x"].overflow + w.histograms["x"].underflow for w in result.windows) > 0


def test_merged_hours_equal_the_day_counted_directly(setup):
    profiles, ts, x, cats, df = setup
    hours = count_windows(df, profiles, "ts", Windows(seconds=3600)).windows
    days = count_windows(df, profiles, "ts", Windows(seconds=86400)).windows
    assert len(days) == 2
    for day in days:
        inside = [h for h in hours if day.window_start <= h.window_start < day.window_end]
        assert len(inside) == 24
        for p in profiles:
            merged = merge_all([h.histograms[p.name] for h in inside], p.n_bins)
            assert merged == day.histograms[p.name]


def test_null_timestamps_are_counted_not_crashing(spark, setup):
    profiles, *_ = setup
    df = spark.createDataFrame(
        [(None, 1.0, "a"), (None, 2.0, "b"), (datetime(2026, 1, 1, 5), 0.5, "a")], "ts timestamp, x double, c string"
    )
    result = count_windows(df, profiles, "ts", Windows(seconds=86400))
    assert result.null_timestamps == 2
    assert len(result.windows) == 1 and result.windows[0].rows == 1


def test_missing_or_mistyped_column_is_flagged_others_proceed(spark, setup):
    profiles, *_ = setup
    df = spark.createDataFrame([(datetime(2026, 1, 1, 5), [1.0])], "ts timestamp, c array<double>")
    usable, issues = check_columns(df, profiles)
    assert usable == []
    assert [(i.feature, i.problem) for i in issues] == [("x", "missing"), ("c", "type")]


def test_strings_that_fail_the_numeric_type_count_as_invalid(spark, setup):
    profiles, *_ = setup
    df = spark.createDataFrame(
        [(datetime(2026, 1, 1, 5), "0.5", "a"), (datetime(2026, 1, 1, 6), "oops", "a"), (datetime(2026, 1, 1, 7), None, "a")],
        "ts timestamp, x string, c string",
    )
    (w,) = count_windows(df, profiles, "ts", Windows(seconds=86400)).windows
    h = w.histograms["x"]
    assert (h.invalid, h.nulls, int(h.counts.sum()) + h.underflow + h.overflow) == (1, 1, 1)


def test_time_filter_prunes_files_of_other_days(spark, tmp_path, setup):
    """Appending a day as a new commit, then reading only that day, scans only its file(s)."""
    from sparkdrift.spark.histograms import time_range_filter

    profiles, *_ = setup
    path = str(tmp_path / "log")
    day1 = [(datetime(2026, 1, 1, h), float(h), "a") for h in range(24)]
    day2 = [(datetime(2026, 1, 2, h), float(h), "b") for h in range(24)]
    schema = "ts timestamp, x double, c string"
    spark.createDataFrame(day1, schema).coalesce(1).write.format("delta").save(path)
    spark.createDataFrame(day2, schema).coalesce(1).write.format("delta").mode("append").save(path)
    df = spark.read.format("delta").load(path)
    cond = time_range_filter("ts", datetime(2026, 1, 2, tzinfo=timezone.utc), datetime(2026, 1, 3, tzinfo=timezone.utc))
    result = count_windows(df.filter(cond), profiles, "ts", Windows(seconds=86400))
    assert [w.rows for w in result.windows] == [24]
    assert (result.scan.files, result.scan.rows) == (1, 24)
    full = count_windows(df, profiles, "ts", Windows(seconds=86400))
    assert (full.scan.files, full.scan.rows) == (2, 48)


def test_a_failing_statistic_is_an_error_and_others_proceed(setup):
    """One bad column (here: a histogram with the wrong bin count) must not sink the others, and is an error, never "no drift"."""
    from sparkdrift.core.config import parse_config
    from sparkdrift.core.drift import compare
    from sparkdrift.core.profile import Histogram

    profiles, *_ = setup
    cfg = parse_config({"monitor": "m", "baseline": {"table": "/b"},
                        "production": {"table": "/p", "timestamp_column": "ts"},
                        "features": {"numeric": ["x"]}}, "m.yaml")
    bad = Histogram.empty(3)
    out = compare(cfg, "b1", profiles[0], profiles[0].baseline, "baseline", T0, T0, bad)
    assert out and all(math.isnan(r.value) and r.failed and r.reason.startswith("error: ") and not r.drifted for r in out)
    good = compare(cfg, "b1", profiles[0], profiles[0].baseline, "baseline", T0, T0, profiles[0].baseline)
    assert good[0].statistic == "psi" and good[0].value == 0.0


def test_negative_zero_and_booleans_bin_like_the_baseline(spark):
    """The production pass casts exactly as the baseline does: -0.0 is 0.0, not underflow."""
    from tests.helpers import numeric_profile

    p = numeric_profile("z", np.array([0.0] * 90 + list(range(1, 11))), fine_bins=100)
    df = spark.createDataFrame([(datetime(2026, 1, 1, 1), -0.0), (datetime(2026, 1, 1, 2), 0.0)], "ts timestamp, z double")
    (w,) = count_windows(df, [p], "ts", Windows(seconds=86400)).windows
    h = w.histograms["z"]
    assert (h.underflow, int(h.counts[0])) == (0, 2)


def test_sql_conf_restores_and_skips_confs_the_runtime_refuses(spark):
    from sparkdrift.spark.histograms import sql_conf

    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    # a static conf cannot be set on a running session: the query runs without it
    with sql_conf(spark, **{key: "123", "spark.sql.warehouse.dir": "/elsewhere"}):
        assert spark.conf.get(key) == "123"
    assert spark.conf.get(key) == before
    assert spark.conf.get("spark.sql.warehouse.dir") != "/elsewhere"
