"""ANSI mode (Spark 4's default, Databricks serverless) changes nothing we count.

Under ``spark.sql.ansi.enabled=true`` a plain cast of an invalid string
raises. Numbers and timestamps stored as text, with invalid values among
them, must give the same histograms with ANSI on and off, and those must
equal counts made with numpy on the same values (the oracle below parses the
text in Python, independently of Spark).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sparkdrift.core.binning import count_numeric
from sparkdrift.spark.histograms import count_windows, sql_conf, time_range_filter
from sparkdrift.core.windows import Windows
from tests.helpers import categorical_profile, numeric_profile

pytestmark = [pytest.mark.spark, pytest.mark.e2e]

T0 = datetime(2026, 2, 1, tzinfo=timezone.utc)
INVALID_NUMBERS = ["abc", "", "1,5", "--2", "1.2.3", "one"]
INVALID_TIMES = ["not a time", "2026-13-45 00:00:00", "yesterday"]


def _case(n=3000):
    rng = np.random.default_rng(23)
    x = rng.normal(0.2, 1.1, n)
    text, parsed = [], []
    for i, v in enumerate(x):
        r = rng.random()
        if r < 0.03:
            text.append(INVALID_NUMBERS[i % len(INVALID_NUMBERS)])
            parsed.append("invalid")
        elif r < 0.05:
            text.append(None)
            parsed.append(None)
        else:
            text.append(repr(float(v)) if i % 3 else f" {v:.6f} ")  # Spark trims blanks, as float() does
            parsed.append(float(text[-1]))
    times = [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 3 * 86400, n)]
    ts_text = [t.strftime("%Y-%m-%d %H:%M:%S") for t in times]
    for i in rng.choice(n, 40, replace=False):
        ts_text[i] = INVALID_TIMES[i % len(INVALID_TIMES)]
        times[i] = None
    cats = rng.choice(["a", "b", "c"], n).tolist()
    return list(zip(ts_text, text, cats)), times, parsed, cats


def _oracle(profile, times, parsed):
    """numpy counts per day from the Python-parsed values; invalid text is counted as invalid."""
    out = {}
    for day in range(3):
        start = T0 + timedelta(days=day)
        sel = [i for i, t in enumerate(times) if t is not None and start <= t < start + timedelta(days=1)]
        values = [parsed[i] for i in sel]
        valid = np.ma.masked_array([0.0 if v is None else v for v in values if v != "invalid"],
                                   mask=[v is None for v in values if v != "invalid"])
        h = count_numeric(valid, profile.edges)
        out[start.replace(tzinfo=None)] = (h, sum(v == "invalid" for v in values))
    return out


@pytest.mark.parametrize("bounded", [False, True])
def test_text_numbers_and_times_count_the_same_with_ansi_on_and_off(spark, bounded):
    rows, times, parsed, cats = _case()
    rng = np.random.default_rng(3)
    profiles = [numeric_profile("x", rng.normal(0, 1, 4000), fine_bins=100), categorical_profile("c", cats)]
    df = spark.createDataFrame(rows, "ts string, x string, c string")
    if bounded:  # the time-range predicate detect uses, on a text timestamp
        df = df.filter(time_range_filter("ts", T0, T0 + timedelta(days=3)))
    results = {}
    for ansi in ("true", "false"):
        with sql_conf(spark, **{"spark.sql.ansi.enabled": ansi}):
            results[ansi] = count_windows(df, profiles, "ts", Windows(seconds=86400))
    on, off = results["true"], results["false"]
    assert on.null_timestamps == off.null_timestamps == (0 if bounded else 40)
    assert [w.window_start for w in on.windows] == [w.window_start for w in off.windows]
    expected = _oracle(profiles[0], times, parsed)
    assert len(on.windows) == 3
    for w_on, w_off in zip(on.windows, off.windows):
        a, b = w_on.histograms["x"], w_off.histograms["x"]
        assert a.to_dict() == b.to_dict()
        want, invalid = expected[w_on.window_start.replace(tzinfo=None)]
        assert a.invalid == invalid > 0
        assert (a.nulls, a.nans, a.underflow, a.overflow) == (want.nulls, want.nans, want.underflow, want.overflow)
        assert a.counts.tolist() == want.counts.tolist()
        assert w_on.histograms["c"].to_dict() == w_off.histograms["c"].to_dict()
