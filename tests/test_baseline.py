"""The baseline job against exact answers computed another way (numpy / Counter on the same rows)."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from sparkdrift.baseline import run_baseline
from sparkdrift.sinks.console import describe_baseline
from sparkdrift.spark import profiling
from sparkdrift.spark.profiling import build_baseline
from sparkdrift.store import DeltaStore
from sparkdrift.store.delta import PROFILE_SCHEMA
from sparkdrift.core.binning import count_categorical, count_numeric
from sparkdrift.core.config import parse_config
from sparkdrift.errors import BaselineError, TableError
from sparkdrift.store.tables import latest_version, read_output
from tests.helpers import baseline_with_scan_rows

pytestmark = [pytest.mark.spark, pytest.mark.e2e]

N = 20_000
SOURCE_SCHEMA = (
    "x double, i bigint, flag boolean, z double, const double, allnull double, "
    "cat string, b boolean, score double, churned int"
)
NUMERIC = ["x", "i", "z", "const", "allnull"]
CATEGORICAL = ["cat", "b", "flag"]


def _cfg(table: str, out: str, features: dict | None = None, **over) -> "object":
    data = {
        "monitor": "churn",
        "baseline": {"table": table},
        "production": {"table": table, "timestamp_column": "event_time"},
        "features": features or {"numeric": NUMERIC, "categorical": CATEGORICAL},
        "prediction": {"columns": ["score"], "kind": "score"},
        "label": {"column": "churned"},
        "binning": {"top_k": 5},
        "output": {"location": out},
    }
    data.update(over)
    return parse_config(data, "test.yaml")


def _write(spark, path, rows, schema, mode="error"):
    spark.createDataFrame(rows, schema).write.format("delta").mode(mode).save(path)


def _rows(rng, n):
    x = rng.normal(10.0, 3.0, n)
    x_nan = rng.random(n) < 0.01
    x_null = rng.random(n) < 0.02
    i = rng.integers(0, 10, n)
    flag = rng.random(n) < 0.3
    z = np.where(rng.random(n) < 0.9, 0.0, rng.exponential(2.0, n))
    z[(z == 0.0) & (rng.random(n) < 0.5)] = -0.0  # half the zeros are negative zeros
    words = [f"w{k:02d}" for k in range(40)]
    weights = 1.0 / np.arange(1, 41)
    cat = rng.choice(words, n, p=weights / weights.sum()).tolist()
    cat = [None if u < 0.05 else c for c, u in zip(cat, rng.random(n))]
    b = rng.random(n) < 0.6
    score = rng.beta(2, 5, n)
    rows = []
    for k in range(n):
        xv = None if x_null[k] else (float("nan") if x_nan[k] else float(x[k]))
        label = None if k % 97 == 0 else int(rng.random() < score[k])
        rows.append((xv, int(i[k]), bool(flag[k]), float(z[k]), 7.5, None, cat[k], bool(b[k]), float(score[k]), label))
    return rows


@pytest.fixture(scope="module")
def source(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    path = str(root / "train")
    rows = _rows(np.random.default_rng(42), N)
    _write(spark, path, rows, SOURCE_SCHEMA)
    return path, rows, str(root / "out")


@pytest.fixture(scope="module")
def built(spark, source):
    path, rows, out = source
    cfg = _cfg(path, out)
    return cfg, build_baseline(spark, cfg)


def _column(rows, name):
    idx = ["x", "i", "flag", "z", "const", "allnull", "cat", "b", "score", "churned"].index(name)
    return [r[idx] for r in rows]


def _masked(values):
    arr = np.array([np.nan if v is None else float(v) for v in values])
    return np.ma.masked_array(arr, mask=[v is None for v in values])


# ----------------------------------------------------------------------------- numeric


def _assert_rank_error(edges, finite, fine_bins, accuracy):
    """Each edge e_i sits at a rank of the sorted data within 1/accuracy + 1/n of i/fine_bins."""
    v = np.sort(finite)
    n = v.size
    tol = 1.0 / accuracy + 1.0 / n
    assert len(edges) == fine_bins + 1  # continuous data: no quantile collapsed
    worst = 0.0
    for i, e in enumerate(edges):
        p = i / fine_bins
        lo = np.searchsorted(v, e, side="left")  # ranks lo+1..hi hold the value e
        hi = np.searchsorted(v, e, side="right")
        assert hi > lo, f"edge {e} is not a data value"
        dist = max(0.0, (lo + 1) / n - p, p - hi / n)
        worst = max(worst, dist)
        assert dist <= tol, f"edge {i} = {e}: rank {lo + 1}..{hi} of {n}, target p={p}"
    return worst


def test_edges_within_stated_rank_error_of_exact_quantiles(built, source):
    cfg, profile = built
    x = _masked(_column(source[1], "x")).compressed()
    finite = x[~np.isnan(x)]
    fp = profile.features["x"]
    assert fp.edges[0] == finite.min() and fp.edges[-1] == finite.max()
    _assert_rank_error(fp.edges, finite, cfg.binning.fine_bins, cfg.binning.quantile_accuracy)


def test_edges_rank_error_at_low_accuracy(spark, source):
    path, rows, out = source
    cfg = _cfg(path, out, features={"numeric": ["x", "score"]}, prediction={"columns": []},
               binning={"fine_bins": 100, "quantile_accuracy": 200})
    profile = build_baseline(spark, cfg)
    for name in ("x", "score"):
        values = _masked(_column(rows, name)).compressed()
        finite = values[~np.isnan(values)]
        _assert_rank_error(profile.features[name].edges, finite, 100, 200)


def test_sampled_quantiles_keep_counts_exact_and_are_reproducible(spark, source):
    path, rows, out = source
    cfg = _cfg(path, out, features={"numeric": ["x"]}, prediction={"columns": []},
               binning={"fine_bins": 100, "quantile_sample_rows": 10_000})  # half of the 20k rows
    profile = build_baseline(spark, cfg)
    values = _masked(_column(rows, "x"))
    finite = values.compressed()[~np.isnan(values.compressed())]
    fp = profile.features["x"]
    assert fp.baseline == count_numeric(values, fp.edges)  # bins from the sample, counts from every row
    assert fp.edges[0] == finite.min() and fp.edges[-1] == finite.max()
    inner = fp.edges[1:-1]
    ranks = np.searchsorted(np.sort(finite), inner, side="left") / finite.size
    targets = np.arange(1, 100) / 100
    # a sample of ~10k values: the rank standard error is <= 0.005; 4 of them, plus the sketch's own error
    assert len(inner) == 99 and np.abs(ranks - targets).max() < 4 * 0.005 + 1 / 10_000
    assert np.abs(ranks - targets).max() > 1 / 10_000 + 1 / finite.size  # it did sample
    assert build_baseline(spark, cfg).features["x"].edges == fp.edges  # seeded: the same sample


@pytest.mark.parametrize("name", NUMERIC[:-1] + ["score"])
def test_fine_counts_equal_numpy_reference_on_the_same_rows(built, source, name):
    _, profile = built
    fp = profile.features[name]
    values = _masked(_column(source[1], name))
    expected = count_numeric(values, fp.edges)
    assert fp.baseline == expected  # counts, nulls, NaNs, under/overflow, sums, min, max
    assert fp.baseline.underflow == fp.baseline.overflow == 0  # the baseline's own range
    finite = values.compressed()
    assert int(fp.baseline.counts.sum()) == int((~np.isnan(finite)).sum())
    assert fp.baseline.n_rows == profile.row_count == N
    mean, std = profile.features[name].mean_std()
    assert mean == pytest.approx(np.nanmean(finite), rel=1e-12)
    assert std == pytest.approx(np.nanstd(finite), rel=1e-9)


def test_coarse_bins_are_unions_of_fine_bins(built):
    _, profile = built
    for name in ("x", "score"):
        fp = profile.features[name]
        starts = np.asarray(fp.coarse)
        assert starts[0] == 0 and np.all(np.diff(starts) > 0) and starts[-1] < len(fp.edges)
        coarse = fp.coarse_counts(fp.baseline)
        inner = coarse[1:-1]
        assert inner.sum() == fp.baseline.counts.sum()
        bounds = list(starts) + [len(fp.edges)]
        assert list(inner) == [fp.baseline.counts[a:b].sum() for a, b in zip(bounds, bounds[1:])]
        # quantile coarse bins: each holds ~10% of the values
        assert len(inner) == 10
        np.testing.assert_allclose(inner / inner.sum(), 0.1, atol=0.002)


def test_degenerate_numeric_columns(built, source):
    _, profile = built
    rows = source[1]
    # integers: each value is an atom, a fine bin of its own [v, next float after v) (binning.make_edges)
    fi = profile.features["i"]
    atoms = [float(k) for k in range(10)]
    assert fi.edges == tuple(sorted(atoms + [float(np.nextafter(k, np.inf)) for k in atoms[:-1]]))
    exact = Counter(_column(rows, "i"))
    assert list(fi.baseline.counts[0::2]) == [exact[k] for k in range(10)]
    assert not fi.baseline.counts[1::2].any()  # nothing strictly between two integers
    # constant: one cut, one bin
    fc = profile.features["const"]
    assert fc.edges == (7.5,) and fc.coarse == (0,) and list(fc.baseline.counts) == [N]
    assert profile.features["const"].mean_std() == (7.5, 0.0)
    # 90% zeros (half of them -0.0): the zero atom is one fine bin and its own coarse bin
    fz = profile.features["z"]
    zeros = sum(v == 0.0 for v in _column(rows, "z"))
    assert fz.edges[0] == 0.0 and math.copysign(1.0, fz.edges[0]) == 1.0
    assert fz.edges[1] == np.nextafter(0.0, 1.0)
    assert fz.baseline.counts[0] == zeros
    assert fz.coarse[:2] == (0, 1)
    assert fz.coarse_counts(fz.baseline)[1] == zeros
    # all null: recorded, no bins
    fn = profile.features["allnull"]
    assert fn.edges == () and fn.coarse == () and fn.all_null
    assert fn.baseline.counts.size == 0 and fn.baseline.nulls == N and fn.baseline.n_rows == N
    assert profile.features["allnull"].mean_std()[0] != profile.features["allnull"].mean_std()[0]  # NaN


# ----------------------------------------------------------------------------- categorical


def test_categorical_top_k_other_nulls_and_tracked_are_exact(built, source):
    _, profile = built
    values = _column(source[1], "cat")
    counts = Counter(v for v in values if v is not None)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    fp = profile.features["cat"]
    assert fp.categories == tuple(c for c, _ in ranked[:5])
    assert fp.tracked == tuple(sorted(c for c, _ in ranked[5:]))
    assert fp.baseline == count_categorical(values, fp.categories, fp.tracked)
    assert fp.baseline.counts[-1] == sum(n for _, n in ranked[5:])
    assert fp.baseline.nulls == sum(v is None for v in values)
    # booleans as categories: "true"/"false", by count
    fb = profile.features["b"]
    b = Counter("true" if v else "false" for v in _column(source[1], "b"))
    assert fb.categories == tuple(c for c, _ in b.most_common()) and fb.tracked == ()
    assert list(fb.baseline.counts) == [n for _, n in b.most_common()] + [0]


def test_high_cardinality_collects_only_top_k_and_decides_tracking_by_distinct_count(spark, tmp_path, monkeypatch):
    n = 30_000
    rng = np.random.default_rng(3)
    hot = rng.choice(["h1", "h2", "h3", "h4"], n // 3, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    ids = hot + [f"id{k}" for k in range(n - len(hot))]  # ~20k distinct values
    small = [f"s{k % 8}" for k in range(n)]  # 8 distinct = top_k + max_tracked: tracked
    nine = [f"t{k % 9}" for k in range(n)]  # 9 distinct: one too many to track
    path = str(tmp_path / "hc")
    _write(spark, path, list(zip(ids, small, nine)), "id string, small string, nine string")
    cfg = _cfg(path, str(tmp_path / "out"), features={"categorical": ["id", "small", "nine"]},
               prediction={"columns": []}, binning={"top_k": 3, "max_tracked_categories": 5})
    profile, collected = baseline_with_scan_rows(spark, cfg, monkeypatch)
    per_feature = Counter(r["fi"] for r in collected if r["key"] != profiling.MEMBERS)
    assert per_feature == {0: 3, 1: 8, 2: 3}  # never more than top_k + max_tracked per column
    words = Counter(r["fi"] for r in collected if r["key"] == profiling.MEMBERS)  # the untracked ones' Bloom filters
    assert set(words) == {0, 2} and all(words[i] <= profile.features[c].members.bits // 64 for i, c in ((0, "id"), (2, "nine")))

    fid = profile.features["id"]
    exact = Counter(ids)
    assert fid.categories == ("h1", "h2", "h3") and fid.tracked is None
    assert list(fid.baseline.counts) == [exact["h1"], exact["h2"], exact["h3"], n - sum(exact[h] for h in ("h1", "h2", "h3"))]
    assert profile.features["small"].tracked == ("s3", "s4", "s5", "s6", "s7") and profile.features["small"].members is None
    assert profile.features["nine"].tracked is None
    assert profile.features["nine"].baseline.counts[-1] == n - 3 * (n // 9 + (1 if n % 9 else 0))


# ----------------------------------------------------------------------------- store and identity


def test_save_load_roundtrip_and_idempotent_rerun(spark, source, built):
    path, _, _ = source
    cfg, profile = built
    target = cfg.output_table("profiles")
    assert DeltaStore.of(spark, cfg).save_profile(profile) is True
    version = latest_version(spark, target)
    stored = read_output(spark, target)
    assert stored.count() == len(profile.features) + 1 == 10  # + the performance row
    declared = spark.createDataFrame([], PROFILE_SCHEMA)
    assert stored.dtypes == declared.dtypes
    types = dict(stored.dtypes)
    assert types["edges"] == "array<double>" and types["coarse"] == "array<int>"
    assert types["counts"] == "array<bigint>" and types["created_at"] == "timestamp"
    assert types["tracked"] == "array<string>" and types["source_version"] == "bigint"
    row = stored.filter("feature = 'x'").first()
    assert row["tracked"] is None and row["source_table"] == path and row["source_version"] == 0

    loaded = DeltaStore.of(spark, cfg).load_profile(cfg.baseline_id)
    assert loaded.baseline_id == profile.baseline_id and loaded.row_count == N
    assert loaded.created_at == profile.created_at
    assert list(loaded.features) == list(profile.features)
    for name, fp in profile.features.items():
        got = loaded.features[name]
        assert got.baseline == fp.baseline, name
        assert (got.edges, got.coarse, got.categories, got.tracked, got.kind, got.role, got.dtype) == (
            fp.edges, fp.coarse, fp.categories, fp.tracked, fp.kind, fp.role, fp.dtype
        )
        a, b = loaded.features[name].mean_std(), profile.features[name].mean_std()
        assert a == pytest.approx(b, nan_ok=True)
    assert loaded.features["score"].role == "prediction"
    assert loaded.performance == profile.performance and profile.performance is not None

    # rerun on the unchanged source: same id, nothing written, first created_at kept
    again = build_baseline(spark, cfg)
    assert again.baseline_id == profile.baseline_id
    assert DeltaStore.of(spark, cfg).save_profile(again) is False
    same, rebuilt = run_baseline(spark, cfg)
    assert rebuilt is False and same.baseline_id == profile.baseline_id
    assert latest_version(spark, target) == version
    assert read_output(spark, target).count() == 10
    assert DeltaStore.of(spark, cfg).load_profile(cfg.baseline_id).created_at == profile.created_at


def test_new_source_version_or_changed_config_gives_a_new_id(spark, tmp_path):
    path, out = str(tmp_path / "src"), str(tmp_path / "out")
    rng = np.random.default_rng(5)
    _write(spark, path, _rows(rng, 2000), SOURCE_SCHEMA)
    cfg = _cfg(path, out)
    first, written = run_baseline(spark, cfg)
    assert written and first.source_version == 0

    _write(spark, path, _rows(rng, 500), SOURCE_SCHEMA, mode="append")
    second, written = run_baseline(spark, cfg)
    assert written and second.source_version == 1 and second.row_count == 2500
    assert second.baseline_id != first.baseline_id and second.config_hash == first.config_hash

    coarser = _cfg(path, out, binning={"top_k": 5, "coarse_bins": 5})
    third = build_baseline(spark, coarser)
    assert third.source_version == 1 and third.baseline_id not in (first.baseline_id, second.baseline_id)
    assert third.config_hash != first.config_hash
    # config sections that do not shape the profile leave the id alone
    other = _cfg(path, out, policy={"consecutive_windows": 2})
    assert profiling.baseline_identity(spark, other)[0] == second.baseline_id

    assert DeltaStore.of(spark, cfg).load_profile(cfg.baseline_id).baseline_id == second.baseline_id  # latest by created_at
    assert DeltaStore.of(spark, cfg).load_profile(first.baseline_id).source_version == 0
    pinned = _cfg(path, out, baseline_id=first.baseline_id)
    assert DeltaStore.of(spark, pinned).load_profile(pinned.baseline_id).baseline_id == first.baseline_id
    # time travel to the old version: the old id again (the version read is what counts)
    old = _cfg(path, out, baseline={"table": path, "version": 0})
    assert profiling.baseline_identity(spark, old) == (first.baseline_id, 0, first.config_hash)


def test_filter_and_sample_are_applied_and_reproducible(spark, source):
    path, rows, out = source
    cfg = _cfg(path, out, features={"numeric": ["i"], "categorical": ["cat"]}, prediction={"columns": []},
               baseline={"table": path, "filter": "i < 5", "sample_fraction": 0.5})
    a = build_baseline(spark, cfg)
    b = build_baseline(spark, cfg)
    below = sum(1 for v in _column(rows, "i") if v < 5)
    assert 0.45 * below < a.row_count < 0.55 * below
    assert a.baseline_id == b.baseline_id and a.row_count == b.row_count
    assert a.features["i"].edges[0::2] == (0.0, 1.0, 2.0, 3.0, 4.0)  # atoms, as binning.make_edges cuts them
    for name in ("i", "cat"):
        assert a.features[name].baseline == b.features[name].baseline


# ----------------------------------------------------------------------------- errors


def test_missing_table_column_and_empty_table_are_named(spark, source, tmp_path):
    path, _, out = source
    missing = str(tmp_path / "nope")
    with pytest.raises(TableError, match=f"table {missing}: no Delta table at this path"):
        build_baseline(spark, _cfg(missing, out))
    with pytest.raises(TableError, match=f"table {path}: missing feature column 'tenure'"):
        build_baseline(spark, _cfg(path, out, features={"numeric": ["x", "tenure"]}))
    empty = _cfg(path, out, baseline={"table": path, "filter": "i > 100"})
    with pytest.raises(TableError, match=f"table {path}: no rows to build a baseline from .*filter 'i > 100'"):
        build_baseline(spark, empty)
    # a handful of rows is not a baseline: refused with the count and the key, not profiled into all-severe windows
    few = "x > 19 AND NOT isnan(x)"
    n = sum(1 for r in source[1] if r[0] is not None and not math.isnan(r[0]) and r[0] > 19)
    assert 0 < n < 100
    with pytest.raises(TableError) as err:
        build_baseline(spark, _cfg(path, out, baseline={"table": path, "filter": few}))
    assert str(err.value) == (
        f"table {path}: {n} rows ({path} version 0, filter {few!r}), fewer than baseline.min_rows = 100: too few "
        "to place quantile bins on or to compare windows with; use more rows (or lower baseline.min_rows)")
    assert build_baseline(spark, _cfg(path, out, baseline={"table": path, "filter": few, "min_rows": n})).features


def test_load_without_a_stored_baseline_says_what_to_run(spark, source, tmp_path):
    path, _, _ = source
    cfg = _cfg(path, str(tmp_path / "empty_out"))
    target = cfg.output_table("profiles")
    with pytest.raises(BaselineError, match=f"no baseline for monitor churn in {target}: run `sparkdrift baseline --config"):
        DeltaStore.of(spark, cfg).load_profile(cfg.baseline_id)
    profile = build_baseline(spark, _cfg(path, str(tmp_path / "empty_out"), features={"numeric": ["i"]},
                                         prediction={"columns": []}))
    DeltaStore.of(spark, cfg).save_profile(profile)
    other = _cfg(path, str(tmp_path / "empty_out"), monitor="other")
    with pytest.raises(BaselineError, match="no baseline for monitor other"):
        DeltaStore.of(spark, other).load_profile(other.baseline_id)
    with pytest.raises(BaselineError, match="baseline deadbeef of monitor churn is not in"):
        DeltaStore.of(spark, cfg).load_profile("deadbeef")


# ----------------------------------------------------------------------------- cost


def _jobs(spark, group, fn):
    sc = spark.sparkContext
    sc.setJobGroup(group, group)
    try:
        fn()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    return len(sc.statusTracker().getJobIdsForGroup(group))


@pytest.mark.classic_only
def test_spark_jobs_do_not_grow_with_the_number_of_columns(spark, tmp_path):
    rng = np.random.default_rng(11)
    n = 3000
    cols = [rng.normal(k, 1 + k, n) for k in range(15)] + [rng.choice(list("abcdefg"), n) for _ in range(5)]
    rows = [tuple(float(c[r]) if k < 15 else str(c[r]) for k, c in enumerate(cols)) for r in range(n)]
    schema = ", ".join([f"n{k} double" for k in range(15)] + [f"c{k} string" for k in range(5)])
    path = str(tmp_path / "wide")
    _write(spark, path, rows, schema)
    out = str(tmp_path / "out")
    narrow = _cfg(path, out, features={"numeric": ["n0"], "categorical": ["c0"]}, prediction={"columns": []})
    wide = _cfg(path, out, features={"numeric": [f"n{k}" for k in range(15)], "categorical": [f"c{k}" for k in range(5)]},
                prediction={"columns": []})
    build_baseline(spark, narrow)  # warm the Delta snapshot cache
    jobs_2 = _jobs(spark, "sd-jobs-2", lambda: build_baseline(spark, narrow))
    jobs_20 = _jobs(spark, "sd-jobs-20", lambda: build_baseline(spark, wide))
    # 1 Delta history lookup (DESCRIBE HISTORY) + scan 1's two aggregations + scan 2, each a few AQE jobs
    # (Spark 4: 12); never per column
    assert 0 < jobs_2 == jobs_20 <= 12


def test_baseline_performance_counts_label_by_score_bin(built, source):
    from sparkdrift.core.performance import SCORE_BINS, metrics

    _, profile = built
    score, label = _column(source[1], "score"), _column(source[1], "churned")
    counts = np.zeros(2 * SCORE_BINS, dtype=np.int64)
    for s, y in zip(score, label):
        if y is not None:
            counts[y * SCORE_BINS + min(max(int(np.floor(s * SCORE_BINS)), 0), SCORE_BINS - 1)] += 1
    h = profile.performance
    assert np.array_equal(h.counts, counts)
    assert h.nulls == sum(y is None for y in label)
    labelled = [(s, y) for s, y in zip(score, label) if y is not None]
    accuracy = sum((s >= 0.5) == (y == 1) for s, y in labelled) / len(labelled)
    assert metrics("score", h, 0.5)["accuracy"][0] == pytest.approx(accuracy)


def test_describe_baseline_is_readable(built):
    _, profile = built
    text = describe_baseline(profile)
    assert profile.baseline_id in text and "version 0" in text and f"{N:,}" in text
    lines = {line.split()[0]: line for line in text.splitlines()[6:-1]}
    assert set(lines) == set(profile.features)
    assert "1001 fine / 10 coarse bins" in lines["x"] and "mean 10" in lines["x"]
    assert "no finite values" in lines["allnull"]
    assert "top 5: 'w00'" in lines["cat"] and "35 tracked" in lines["cat"]
    assert "[prediction]" in lines["score"]
    assert text.splitlines()[-1].startswith("  performance: label x prediction counts over")
