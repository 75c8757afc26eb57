"""Wide categorical columns: the Bloom filter of every baseline value, against plain-Python truth on the same rows.

The baseline column has far more distinct values than ``top_k +
max_tracked_categories``; production windows hold a known share of values
the baseline never had. Truth is a Python set of the baseline's values.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from sparkdrift.core.config import parse_config
from sparkdrift.core.quality import quality_results
from sparkdrift.core.windows import Windows
from sparkdrift.sinks.console import describe_baseline
from sparkdrift.spark import profiling
from sparkdrift.spark.histograms import count_windows
from sparkdrift.store import DeltaStore
from sparkdrift.store.delta import PROFILE_KEYS, PROFILE_SCHEMA, profile_rows
from sparkdrift.store.tables import merge_rows
from tests.helpers import baseline_with_scan_rows

pytestmark = [pytest.mark.spark, pytest.mark.e2e]

TOP_K, MAX_TRACKED = 5, 50
HOT = [f"h{k}" for k in range(TOP_K)]
WIDE = [f"b{k}" for k in range(3000)]  # 3005 distinct baseline values: far beyond top_k + max_tracked
T0 = datetime(2026, 1, 1)
NEW_IN_MIXED = 2000  # hour 1: 2000 baseline values and 2000 never-seen ones
NEW_ONLY = 20_000  # hour 2: never-seen values only, to measure the false-known rate


def _cfg(table: str, out: str):
    return parse_config({
        "monitor": "wide",
        "baseline": {"table": table},
        "production": {"table": table, "timestamp_column": "ts"},
        "features": {"categorical": ["c"]},
        "prediction": {"columns": []},
        "binning": {"top_k": TOP_K, "max_tracked_categories": MAX_TRACKED},
        "output": {"location": out},
    }, "test.yaml")


@pytest.fixture(scope="module")
def wide(spark, tmp_path_factory):
    """(config, profile, scan-2 rows, baseline values, production rows by hour, counted windows)."""
    rng = np.random.default_rng(11)
    base = [h for k, h in enumerate(HOT) for _ in range(400 - 50 * k)]
    base += [v for v in WIDE for _ in range(int(rng.integers(1, 4)))] + [None] * 30
    tmp = tmp_path_factory.mktemp("wide")
    path = str(tmp / "base")
    spark.createDataFrame([(T0, v) for v in base], "ts timestamp, c string").write.format("delta").save(path)
    cfg = _cfg(path, str(tmp / "out"))
    mp = pytest.MonkeyPatch()
    try:
        profile, collected = baseline_with_scan_rows(spark, cfg, mp)
    finally:
        mp.undo()

    known = HOT + WIDE
    hours = {
        0: known + [None] * 7,  # every baseline value: nothing is unseen
        1: rng.choice(known, NEW_IN_MIXED).tolist() + [f"n{k}" for k in range(NEW_IN_MIXED)],
        2: [f"q{k}" for k in range(NEW_ONLY)],
    }
    rows = [(T0 + timedelta(hours=h, minutes=1), v) for h, values in hours.items() for v in values]
    df = spark.createDataFrame(rows, "ts timestamp, c string")
    counted = {w.window_start.hour: w for w in count_windows(df, [profile.features["c"]], "ts", Windows(seconds=3600)).windows}
    return cfg, profile, collected, set(v for v in base if v is not None), hours, counted


def _truth(values: list, categories: tuple, seen: set) -> tuple[list[int], int, int, int]:
    """(top-K counts, other, unseen, nulls) by plain Python."""
    c = Counter(values)
    top = [c[k] for k in categories]
    other = sum(n for v, n in c.items() if v is not None and v in seen and v not in categories)
    unseen = sum(n for v, n in c.items() if v is not None and v not in seen)
    return top, other, unseen, c[None]


def test_wide_column_is_sketched_within_size_and_driver_budget(wide):
    _, profile, collected, seen, *_ = wide
    fp = profile.features["c"]
    assert fp.categories == tuple(HOT) and fp.tracked is None
    m = fp.members
    n = len(seen)
    assert m is not None and m.values == n and m.hashes == 7
    # m from the sizing rule, worked out here: 1 % at the best k needs -ln(0.01) / ln(2)^2 bits per value
    assert m.bits == math.ceil(n * -math.log(0.01) / math.log(2) ** 2 / 64) * 64
    assert m.false_positive_rate() == pytest.approx(0.01, rel=0.05)
    assert f"{n:,} sketched ({m.bits:,}-bit Bloom filter, {m.false_positive_rate():.2%}" in describe_baseline(profile)
    # what reached the driver: the top K plus at most one row per 64-bit word
    kinds = Counter(int(r["key"]) for r in collected if r["fi"] == 0)
    assert kinds[profiling.VALUE] == TOP_K and 0 < kinds[profiling.MEMBERS] <= m.bits // 64
    assert kinds[profiling.MEMBERS] == int(np.count_nonzero(m.words))
    assert set(kinds) == {profiling.VALUE, profiling.MEMBERS, profiling.NULL}  # NULL: the one null-count row


def test_no_baseline_value_is_ever_called_unseen(wide):
    _, profile, _, seen, hours, counted = wide
    fp = profile.features["c"]
    h = counted[0].histograms["c"]
    top, other, unseen, nulls = _truth(hours[0], fp.categories, seen)
    assert unseen == 0
    assert (list(h.counts), h.unseen, h.nulls) == (top + [other], 0, nulls)


def test_unseen_count_is_the_truth_less_at_most_the_false_known_rate(wide):
    _, profile, _, seen, hours, counted = wide
    fp = profile.features["c"]
    h = counted[1].histograms["c"]
    top, other, unseen, nulls = _truth(hours[1], fp.categories, seen)
    assert unseen == NEW_IN_MIXED
    missed = unseen - h.unseen  # never-seen values the filter called known
    p = fp.members.false_positive_rate()
    assert 0 <= missed <= unseen * p + 4 * math.sqrt(unseen * p)
    assert list(h.counts[:-1]) == top and h.counts[-1] == other + missed and h.nulls == nulls


def test_measured_false_known_rate_matches_the_formula(wide):
    _, profile, _, _, _, counted = wide
    m = profile.features["c"].members
    h = counted[2].histograms["c"]
    assert h.n_valid == NEW_ONLY
    measured = 1 - h.unseen / NEW_ONLY
    # given this filter, a random never-seen value is called known with chance (share of bits set)^k
    fill = sum(bin(int(w) & (2**64 - 1)).count("1") for w in m.words) / m.bits
    given = fill ** m.hashes
    sigma = math.sqrt(given * (1 - given) / NEW_ONLY)
    assert abs(measured - given) <= 4 * sigma
    assert abs(measured - m.false_positive_rate()) <= 4 * sigma + 0.1 * m.false_positive_rate()
    print(f"false-known rate: measured {measured:.4%}, given the filter {given:.4%}, "
          f"formula {m.false_positive_rate():.4%} (m={m.bits}, k={m.hashes}, n={m.values})")


def test_unseen_rate_breaches_where_never_seen_values_arrive(wide):
    cfg, profile, _, _, _, counted = wide
    results = quality_results(cfg, profile, list(counted.values()))
    unseen = {r.window_start.hour: r for r in results if r.statistic == "unseen_rate"}
    assert unseen[0].value == 0.0 and not unseen[0].drifted
    assert unseen[1].value == pytest.approx(0.5, abs=0.02) and unseen[1].drifted
    assert unseen[2].value == pytest.approx(1.0, abs=0.02) and unseen[2].drifted


def test_profile_roundtrips_and_an_older_profile_without_a_sketch_loads_and_counts_as_before(spark, wide):
    cfg, profile, _, seen, hours, _ = wide
    target = cfg.output_table("profiles")
    # a profiles table written before the sketch existed: no members columns at all
    old_schema = PROFILE_SCHEMA.split(", members array<bigint>")[0]
    old_rows = [{k: v for k, v in r.items() if not k.startswith("members")} for r in profile_rows(profile)]
    merge_rows(spark, spark.createDataFrame(old_rows, old_schema), target, PROFILE_KEYS)

    store = DeltaStore.of(spark, cfg)
    old = store.load_profile(profile.baseline_id).features["c"]
    assert old.members is None and old.tracked is None and old.categories == tuple(HOT)
    df = spark.createDataFrame([(T0 + timedelta(hours=1), v) for v in hours[1]], "ts timestamp, c string")
    (w,) = count_windows(df, [old], "ts", Windows(seconds=3600)).windows
    top, other, unseen, nulls = _truth(hours[1], old.categories, seen)
    assert list(w.histograms["c"].counts) == top + [other + unseen] and w.histograms["c"].unseen == 0

    # a new profile in the same table: the columns are added, both profiles load
    newer = replace(profile, baseline_id="newer")
    assert store.save_profile(newer) is True
    got = store.load_profile("newer").features["c"]
    assert np.array_equal(got.members.words, profile.features["c"].members.words)
    assert (got.members.hashes, got.members.values) == (7, len(seen))
    assert store.load_profile(profile.baseline_id).features["c"].members is None
