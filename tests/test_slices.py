"""Slices: per-segment counts in the same pass, equal to counts of the same rows done another way."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sparkdrift.core.binning import count_categorical, count_numeric
from sparkdrift.core.config import Slice
from sparkdrift.core.slices import MISSING, OTHER
from sparkdrift.core.windows import Windows
from sparkdrift.errors import ConfigError
from sparkdrift.spark.histograms import count_windows
from sparkdrift.spark.slicing import slice_columns
from tests.helpers import categorical_profile, numeric_profile

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _rows(rng, n=4000, days=3):
    ts = [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, days * 86400, n)]
    x = rng.normal(0.2, 1.1, n)
    country = [None if rng.random() < 0.05 else c for c in rng.choice(["DE", "FR", "US", "IT", "ES"], n).tolist()]
    cats = rng.choice(["a", "b", "c", "zz"], n).tolist()
    return [(t.replace(tzinfo=None), float(v), c, k) for t, v, c, k in zip(ts, x, country, cats)]


@pytest.fixture(scope="module")
def production(spark):
    rng = np.random.default_rng(11)
    rows = _rows(rng)
    profiles = [numeric_profile("x", rng.normal(0, 1, 3000), fine_bins=100),
                categorical_profile("c", rng.choice(["a", "b", "c"], 3000).tolist(), top_k=2)]
    return profiles, rows, spark.createDataFrame(rows, "ts timestamp, x double, country string, c string")


@pytest.mark.spark
def test_slice_window_histograms_equal_numpy_counts_of_the_same_rows(production):
    profiles, rows, df = production
    top = {"country": ("DE", "FR"), "big": ("false", "true")}
    slices = (Slice("country"), Slice("x > 1", name="big"))
    result = count_windows(df, profiles, "ts", Windows(seconds=86400), slices=slice_columns(df, slices, top))

    def label(row, name):  # the oracle: each row's slice value, by hand
        if name == "country":
            return MISSING if row[2] is None else (row[2] if row[2] in top["country"] else OTHER)
        return "true" if row[1] > 1 else "false"

    day = {int(w.window_start.timestamp()) for w in result.windows}
    expected = Counter()
    for r in rows:
        start = int(r[0].replace(tzinfo=timezone.utc).timestamp()) // 86400 * 86400
        for name in ("country", "big"):
            expected[(start, name, label(r, name))] += 1
    got = {(int(w.window_start.timestamp()), w.slice, w.slice_value): w for w in result.slices}
    assert set(got) == set(expected)
    assert {s for s, _, _ in got} == day
    for (start, name, value), n in expected.items():
        w = got[(start, name, value)]
        mine = [r for r in rows if int(r[0].replace(tzinfo=timezone.utc).timestamp()) // 86400 * 86400 == start
                and label(r, name) == value]
        assert w.rows == n == len(mine)
        assert w.histograms["x"] == count_numeric(np.array([r[1] for r in mine]), profiles[0].edges)
        assert w.histograms["c"] == count_categorical([r[3] for r in mine], profiles[1].categories,
                                                       profiles[1].tracked)
    # the overall windows are what they were without slices
    plain = count_windows(df, profiles, "ts", Windows(seconds=86400))
    assert [w.histograms for w in plain.windows] == [w.histograms for w in result.windows]
    assert plain.slices == []


@pytest.mark.spark
def test_a_slice_on_a_missing_column_is_a_config_error_naming_it(production):
    _, _, df = production
    with pytest.raises(ConfigError, match=r"slices\[1\]\.expr.*'region'"):
        slice_columns(df, (Slice("country"), Slice("region = 'EU'")), {"country": ("DE",), "region = 'EU'": ()})
