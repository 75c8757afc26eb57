"""Slices: per-segment counts in the same pass, equal to counts of the same rows done another way."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sparkdrift.core.binning import count_categorical, count_numeric
from sparkdrift.core.config import Slice
from sparkdrift.core.slices import MISSING, OTHER
from sparkdrift.core.windows import WindowHistograms, Windows
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
def test_slices_counted_on_coarse_bins_equal_numpy_coarse_counts(production):
    """What PSI reads of a slice (its coarse bins) is exact; the fine bins are lumped onto each coarse bin's first."""
    profiles, rows, df = production
    x = profiles[0]
    top = {"country": ("DE", "FR")}
    columns = slice_columns(df, (Slice("country"),), top)
    result = count_windows(df, profiles, "ts", Windows(seconds=86400), slices=columns, coarse_slices=frozenset({"x"}))
    fine = count_windows(df, profiles, "ts", Windows(seconds=86400), slices=columns)
    assert [w.histograms for w in result.windows] == [w.histograms for w in fine.windows]  # overall: fine as ever
    starts = set(x.coarse)
    assert len(result.slices) == len(fine.slices) > 0
    for w in result.slices:
        day = int(w.window_start.timestamp())
        mine = [r for r in rows if int(r[0].replace(tzinfo=timezone.utc).timestamp()) // 86400 * 86400 == day
                and (MISSING if r[2] is None else r[2] if r[2] in top["country"] else OTHER) == w.slice_value]
        h, oracle = w.histograms["x"], count_numeric(np.array([r[1] for r in mine]), x.edges)
        assert x.coarse_counts(h).tolist() == x.coarse_counts(oracle).tolist()
        assert {int(i) for i in np.flatnonzero(h.counts)} <= starts
        assert (h.nulls, h.nans, h.n_rows) == (oracle.nulls, oracle.nans, oracle.n_rows)
        assert w.histograms["c"] == count_categorical([r[3] for r in mine], profiles[1].categories,
                                                       profiles[1].tracked)


@pytest.mark.spark
def test_crossed_slice_window_histograms_equal_numpy_counts_of_the_same_rows(production):
    profiles, rows, df = production
    cross = "country×big"
    top = {"country": ("DE", "FR"), "big": ("false", "true"), cross: ("DE & true", "FR & false", "US & false")}
    slices = (Slice("country"), Slice("x > 1", name="big"))
    columns = slice_columns(df, slices, top, [("country", "big")])
    result = count_windows(df, profiles, "ts", Windows(seconds=86400), slices=columns)

    def label(row):  # the oracle: both labels joined, null when either is null, else a top combination or other
        if row[2] is None:
            return MISSING
        joined = f"{row[2]} & {'true' if row[1] > 1 else 'false'}"
        return joined if joined in top[cross] else OTHER

    def day(row):
        return int(row[0].replace(tzinfo=timezone.utc).timestamp()) // 86400 * 86400

    got = {(int(w.window_start.timestamp()), w.slice_value): w for w in result.slices if w.slice == cross}
    assert set(got) == {(day(r), label(r)) for r in rows}
    for (start, value), w in got.items():
        mine = [r for r in rows if day(r) == start and label(r) == value]
        assert w.rows == len(mine)
        assert w.histograms["x"] == count_numeric(np.array([r[1] for r in mine]), profiles[0].edges)
        assert w.histograms["c"] == count_categorical([r[3] for r in mine], profiles[1].categories,
                                                       profiles[1].tracked)
    # the listed slices are counted as without the cross
    alone = count_windows(df, profiles, "ts", Windows(seconds=86400), slices=columns[:2])
    assert alone.slices == [w for w in result.slices if w.slice != cross]


@pytest.mark.spark
def test_a_slice_on_a_missing_column_is_a_config_error_naming_it(production):
    _, _, df = production
    with pytest.raises(ConfigError, match=r"slices\[1\]\.expr.*'region'"):
        slice_columns(df, (Slice("country"), Slice("region = 'EU'")), {"country": ("DE",), "region = 'EU'": ()})


# --------------------------------------------------------------------------- baseline + detect, end to end

DAY0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
COUNTRIES = ["US", "FR", "DE", "IT", "ES"]
WEIGHTS = [0.4, 0.25, 0.15, 0.1, 0.05]  # + 5% null


def _log(rng, n, start=None, drift_de=0.0):
    country = rng.choice(COUNTRIES + [None], n, p=WEIGHTS + [0.05]).tolist()
    x = rng.normal(0.0, 1.0, n) + np.array([drift_de if c == "DE" else 0.0 for c in country])
    c = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    ts = [None] * n if start is None else [(start + timedelta(seconds=int(s))).replace(tzinfo=None)
                                           for s in rng.integers(0, 86400, n)]
    return [(t, float(v), k, cc) for t, v, k, cc in zip(ts, x, country, c)]


@pytest.fixture(scope="module")
def monitored(spark, tmp_path_factory):
    from sparkdrift.baseline import run_baseline
    from sparkdrift.core.config import parse_config
    from sparkdrift.store import MemoryStore

    tmp = tmp_path_factory.mktemp("slices")
    rng = np.random.default_rng(5)
    train = _log(rng, 4000)
    schema = "ts timestamp, x double, country string, c string"
    spark.createDataFrame(train, schema).drop("ts").write.format("delta").save(str(tmp / "train"))
    prod = _log(rng, 3000, DAY0, drift_de=1.5)
    spark.createDataFrame(prod, schema).write.format("delta").save(str(tmp / "log"))
    cfg = parse_config({
        "monitor": "sl",
        "baseline": {"table": str(tmp / "train")},
        "production": {"table": str(tmp / "log"), "timestamp_column": "ts", "granularity": "day", "lateness": "1h"},
        "features": {"numeric": ["x"], "categorical": ["c"]},
        "binning": {"fine_bins": 100, "top_k": 2},
        "slices": [{"expr": "country", "max_values": 3}, {"expr": "x > 1", "name": "high_x"}],
        "policy": {"slice_min_rows": 100},
        "mlflow": {"enabled": False},
    }, "sl.yaml")
    store = MemoryStore("sl")
    profile, _ = run_baseline(spark, cfg, store=store)
    return cfg, store, profile, train, prod, tmp


@pytest.mark.spark
def test_baseline_slices_keep_the_top_values_other_and_null_on_the_overall_bins(monitored):
    _, _, profile, train, _, _ = monitored
    seen = Counter(r[2] for r in train if r[2] is not None)
    top3 = tuple(v for v, _ in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    assert profile.slice_top()["country"] == top3
    assert set(k for k in profile.slices if k[0] == "country") == {("country", v) for v in (*top3, OTHER, MISSING)}
    x_edges, c = profile.features["x"].edges, profile.features["c"]
    for value in (*top3, OTHER, MISSING):
        mine = [r for r in train if (MISSING if r[2] is None else r[2] if r[2] in top3 else OTHER) == value]
        hists = profile.slices[("country", value)]
        assert hists["x"].counts.tolist() == count_numeric(np.array([r[1] for r in mine]), x_edges).counts.tolist()
        assert hists["x"].n_rows == len(mine)
        assert hists["c"] == count_categorical([r[3] for r in mine], c.categories, c.tracked)
    high = [r for r in train if r[1] > 1]
    assert profile.slices[("high_x", "true")]["x"].n_rows == len(high)
    # the overall profile is the whole table's, unchanged by slicing
    assert profile.features["x"].baseline.n_rows == len(train)


@pytest.mark.spark
def test_only_the_drifted_slice_is_detected_and_named_first(monitored, spark):
    from sparkdrift.detect import run_detect
    from sparkdrift.sinks.console import format_summary

    cfg, store, _, _, prod, tmp = monitored
    out = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=1, hours=2), store=store, report_dir=tmp / "reports")
    (d,) = out.decisions
    overall_x = [r for r in out.results if r.slice == "__all__" and r.feature == "x" and r.statistic == "psi"]
    assert overall_x and not overall_x[0].drifted  # diluted: the overall number stays under its threshold
    breached = {(r.slice, r.slice_value) for r in out.results if r.slice != "__all__" and r.drifted
                and r.feature == "x" and r.window_rows >= cfg.policy.slice_min_rows}
    assert ("country", "DE") in breached
    assert not {b for b in breached if b[0] == "country"} - {("country", "DE")}
    n_de = sum(1 for r in prod if r[2] == "DE")
    assert any(rule.startswith("slice country=DE: x ") and rule.endswith(f"(n={n_de})") for rule in d.rules)
    assert out.where["x"][0].label == "country=DE"
    assert out.where["x"][0].share == pytest.approx(n_de / len(prod))
    summary = format_summary(cfg, out)
    where = summary.split("where is the drift")[1]
    assert where.splitlines()[1].strip().startswith("x: country=DE psi=")
    html = (out.report_dir / "drift_report.html").read_text()
    table = html.split('<table id="slices">')[1]
    assert table.index("country=DE") < min(table.index(v) for v in ("country=US", "country=FR") if v in table)
    # the metrics carry the slice in their key: one row per (slice value, column, statistic)
    keys = [k for k in store.metrics if k[2] == "country" and k[3] == "DE" and k[4] == "x"]
    assert keys and len(keys) == len({k[5] for k in keys})


# --------------------------------------------------------------------------- crossed slices, end to end

DEVICES = ["ios", "android", "web"]
DEVICE_WEIGHTS = [0.55, 0.32, 0.1]  # + 3% null
#: country 3 + other + null, device 2 + other + null, then 7 for the cross: 5 combinations + other + null
CAP = 16


def _devices_log(rng, n, start=None, drift=0.0):
    """Rows (ts, x, country, c, device); ``drift`` shifts x only where country is DE and device is ios."""
    base = _log(rng, n, start)
    device = rng.choice(DEVICES + [None], n, p=DEVICE_WEIGHTS + [0.03]).tolist()
    return [(t, v + (drift if (k, d) == ("DE", "ios") else 0.0), k, c, d) for (t, v, k, c), d in zip(base, device)]


@pytest.fixture(scope="module")
def crossed(spark, tmp_path_factory):
    from sparkdrift.baseline import run_baseline
    from sparkdrift.core.config import parse_config
    from sparkdrift.detect import run_detect
    from sparkdrift.store import MemoryStore

    tmp = tmp_path_factory.mktemp("crossed")
    rng = np.random.default_rng(8)
    train = _devices_log(rng, 6000)
    schema = "ts timestamp, x double, country string, c string, device string"
    spark.createDataFrame(train, schema).drop("ts").write.format("delta").save(str(tmp / "train"))
    prod = _devices_log(rng, 4000, DAY0, drift=2.0)
    spark.createDataFrame(prod, schema).write.format("delta").save(str(tmp / "log"))
    cfg = parse_config({
        "monitor": "cross",
        "baseline": {"table": str(tmp / "train")},
        "production": {"table": str(tmp / "log"), "timestamp_column": "ts", "granularity": "day", "lateness": "1h"},
        "features": {"numeric": ["x"], "categorical": ["c"]},
        "binning": {"fine_bins": 100, "top_k": 2},
        "slices": [{"expr": "country", "max_values": 3}, {"expr": "device", "max_values": 2}],
        "slice_crosses": [["country", "device"]],
        "max_slice_values": CAP,
        "policy": {"slice_min_rows": 100},
        "mlflow": {"enabled": False},
    }, "cross.yaml")
    store = MemoryStore("cross")
    profile, _ = run_baseline(spark, cfg, store=store)
    out = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=1, hours=2), store=store, report_dir=tmp / "reports")
    return cfg, store, profile, train, prod, out


@pytest.mark.spark
def test_crossed_slices_respect_the_cap(crossed):
    _, store, profile, train, _, _ = crossed
    combos = Counter(f"{r[2]} & {r[4]}" for r in train if r[2] is not None and r[4] is not None)
    ranked = [v for v, _ in sorted(combos.items(), key=lambda kv: (-kv[1], kv[0]))]
    # 9 values for the listed slices leave 7: the 5 most frequent combinations, other and null
    assert profile.slice_top()["country×device"] == tuple(ranked[:5])
    stored = set(profile.slices)
    assert len(stored) == CAP
    assert {v for s, v in stored if s == "country×device"} == {*ranked[:5], OTHER, MISSING}
    for value in (*ranked[:5], OTHER, MISSING):
        mine = [r for r in train if (MISSING if r[2] is None or r[4] is None else
                                     f"{r[2]} & {r[4]}" if f"{r[2]} & {r[4]}" in ranked[:5] else OTHER) == value]
        assert profile.slices[("country×device", value)]["x"].n_rows == len(mine)
    written = {(s, v) for (_, _, s, v) in store.histograms if s != "__all__"}
    assert written and len(written) <= CAP and written <= stored


@pytest.mark.spark
def test_drift_in_one_combination_is_named_first(crossed):
    _, _, _, _, prod, out = crossed
    (d,) = out.decisions
    psi = {(r.slice, r.slice_value): r for r in out.results if r.feature == "x" and r.statistic == "psi"}
    both = psi[("country×device", "DE & ios")]
    assert both.drifted
    assert not psi[("__all__", "__all__")].drifted
    # the overall number and the single slices are diluted: each lies less far past its noise floor
    for key in [("__all__", "__all__"), ("country", "DE"), ("device", "ios")]:
        assert psi[key].excess < both.excess
    n = sum(1 for r in prod if (r[2], r[4]) == ("DE", "ios"))
    assert both.window_rows == n
    assert any(rule.startswith("slice country=DE & device=ios: x ") for rule in d.rules)
    assert out.where["x"][0].label == "country=DE & device=ios"


# --------------------------------------------------------------------------- pure: config, policy, ranking

def _cfg(**extra):
    from sparkdrift.core.config import parse_config

    return parse_config({"monitor": "m", "baseline": {"table": "a.b.c"},
                         "production": {"table": "a.b.d", "timestamp_column": "ts"},
                         "features": {"numeric": ["x"]}, **extra}, "m.yaml")


def test_slices_accept_a_column_or_an_expression_with_defaults():
    cfg = _cfg(slices=["country", {"expr": "amount > 1000", "name": "large", "max_values": 2}])
    assert [(s.expr, s.label, s.max_values) for s in cfg.slices] == [("country", "country", 10),
                                                                     ("amount > 1000", "large", 2)]
    assert cfg.policy.slice_min_rows == 500 and _cfg().slices == ()


@pytest.mark.parametrize("slices, message", [
    ([{"expr": "country", "max_values": 0}], r"m.yaml: slices\[0\]\.max_values: expected an integer >= 1"),
    ([{"expr": "country", "cap": 3}], r"m.yaml: slices\[0\]\.cap: unknown key"),
    ([{"name": "c"}], r"m.yaml: slices\[0\]\.expr: required key is missing"),
    (["country", "country"], r"m.yaml: slices\[1\]: slice 'country' is listed twice"),
    ([{"expr": "country", "name": "__all__"}], r"m.yaml: slices\[0\]\.name: expected letters"),
    ("country", None),
    ({"slice_crosses": [["country", "devise"]]}, r"m.yaml: slice_crosses\[0\]\[1\]: unknown slice 'devise' \(slices: country, device\)"),
    ({"slice_crosses": [["country"]]}, r"m.yaml: slice_crosses\[0\]: expected two different slice names"),
    ({"slice_crosses": [["country", "device"], ["device", "country"]]}, r"m.yaml: slice_crosses\[1\]: the pair .* twice"),
    ({"max_slice_values": 23}, r"m.yaml: max_slice_values: the slices take up to 24 values .* more than the cap of 23"),
])
def test_slice_config_errors_name_the_key(slices, message):
    if message is None:  # a single string is a one-item list, as elsewhere in the config
        assert [s.expr for s in _cfg(slices=slices).slices] == ["country"]
        return
    extra = {"slices": ["country", "device"], **slices} if isinstance(slices, dict) else {"slices": slices}
    with pytest.raises(ConfigError, match=message):
        _cfg(**extra)


def test_crossed_slices_share_what_the_listed_slices_leave_by_baseline_frequency():
    from sparkdrift.core.slices import cross_values, describe

    cfg = _cfg(slices=["country", {"expr": "device", "max_values": 2}], slice_crosses=[["country", "device"]])
    assert (cfg.slice_crosses, cfg.max_slice_values) == ((("country", "device"),), 200)
    a = [("DE & ios", 50), ("FR & ios", 30), ("DE & web", 5)]
    b = [("x & 1", 40), ("y & 1", 30)]
    # room 7: DE & ios (3: it brings its cross's other and null), x & 1 (3), then FR & ios (1: wins the tie, first cross)
    assert cross_values(7, [a, b]) == [("DE & ios", "FR & ios"), ("x & 1",)]
    assert cross_values(2, [a, b]) == [(), ()]  # no room for one combination with its other and null
    assert cross_values(100, [a, b]) == [("DE & ios", "FR & ios", "DE & web"), ("x & 1", "y & 1")]
    assert describe("country×device", "DE & ios") == "country=DE & device=ios"
    assert describe("country×device", "__other__") == "country×device=(other)"


def _r(value, slice_="__all__", slice_value="__all__", rows=1000, floor=0.05, drifted=None, statistic="psi"):
    from sparkdrift.core.results import DriftResult

    return DriftResult("m", "b", T0, T0 + timedelta(days=1), "x", statistic, value, 0.2,
                       value > 0.2 if drifted is None else drifted, window_rows=rows, noise_floor=floor,
                       excess=value - floor, slice=slice_, slice_value=slice_value)


def test_a_slice_breach_adds_a_rule_only_with_enough_rows_and_leaves_the_overall_rules_alone():
    from sparkdrift.core.policy import evaluate

    policy = _cfg(policy={"slice_min_rows": 300}).policy
    overall = [_r(0.03)]
    (plain,) = evaluate(policy, overall)
    (small,) = evaluate(policy, overall + [_r(0.9, "country", "IT", rows=299)])
    (big,) = evaluate(policy, overall + [_r(0.5, "country", "DE", rows=300)])
    assert (plain.severity, plain.rules) == ("none", ())
    assert (small.severity, small.rules) == ("none", ())  # 299 rows < slice_min_rows
    assert big.rules == ("slice country=DE: x psi=0.5 (n=300)",) and big.severity == "minor"
    assert (big.score, big.n_drifted, big.drifted) == (plain.score, plain.n_drifted, plain.drifted)


def test_where_drift_ranks_slice_values_by_excess_with_their_share_of_rows():
    from sparkdrift.core.slices import where_drift

    rows = [_r(0.03, rows=4000), _r(0.25, "country", "FR", rows=1000, floor=0.2),
            _r(0.6, "country", "DE", rows=400), _r(0.9, "country", "IT", rows=50), _r(0.01, "country", "US", rows=2550)]
    (found,) = where_drift(rows, "psi", min_rows=100).values()
    # counted breaches first (DE 0.55 past its floor, FR 0.05), then the rest by excess: IT has too few rows
    assert [f.label for f in found] == ["country=DE", "country=FR", "country=IT", "country=US"]
    assert [f.share for f in found[:2]] == [0.1, 0.25] and [f.counted for f in found] == [True, True, False, False]
    assert where_drift([_r(0.03), _r(0.9, "country", "IT", rows=50)], "psi", 100) == {}


def test_drift_free_slices_keep_the_false_alarm_budget():
    """12 slice values x 60 drift-free windows of 600 rows: the slice rules stay within the per-window budget.

    Each slice value repeats the column's test; at the overall per-test level
    12 values would give about 12 times the budget.
    """
    from sparkdrift.core.drift import slice_alpha_per_test, slice_results
    from sparkdrift.core.profile import BaselineProfile

    rng = np.random.default_rng(3)
    profile = numeric_profile("x", rng.normal(0, 1, 20_000), fine_bins=100)
    values = [f"v{i}" for i in range(12)]
    baseline = BaselineProfile(
        "m", "b", T0.isoformat(), "a.b.c", 1, "h", 20_000, features={"x": profile},
        slices={("country", v): {"x": count_numeric(rng.normal(0, 1, 2_000), profile.edges)} for v in values},
    )
    cfg = _cfg(slices=["country"], policy={"false_alarm_rate": 0.05})
    # one statistic (the score's, psi) per slice value and column: 12 tests share the window's budget
    assert slice_alpha_per_test(cfg, baseline) == pytest.approx(0.05 / 12)
    windows = [
        WindowHistograms(T0 + timedelta(days=d), T0 + timedelta(days=d + 1), 600,
                         {"x": count_numeric(rng.normal(0, 1, 600), profile.edges)}, "country", v)
        for d in range(60) for v in values
    ]
    results = slice_results(cfg, baseline, windows)
    assert len({(r.window_start, r.slice_value) for r in results}) == 60 * 12
    assert {r.statistic for r in results} == {"psi"}
    alarmed = {r.window_start for r in results if r.drifted}
    assert len(alarmed) <= 0.05 * 60, sorted(alarmed)
