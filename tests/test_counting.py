"""The pass's numpy counting against the numpy reference counters (`binning`), without Spark."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sparkdrift.spark import counting
from sparkdrift.core.binning import bin_splits, count_categorical, count_numeric, make_edges

DAY = 86_400_000_000


def _run(batches, specs, window="w"):
    return pa.Table.from_batches(list(counting.partial_histograms(iter(batches), tuple(specs), window))).to_pydict()


def _rows(out, feature, window):
    return {
        k: (n, s, ss, lo, hi)
        for w, f, k, n, s, ss, lo, hi in zip(*(out[c] for c in ("window_us", "feature_idx", "key", "n", "s", "ss", "lo", "hi")))
        if f == feature and w == window
    }


def test_numeric_counts_match_the_reference_per_window_across_batches():
    rng = np.random.default_rng(3)
    n = 30_000
    values = rng.lognormal(size=n)
    values[rng.random(n) < 0.02] = np.nan
    values[:5] = [np.inf, -5.0, 0.0, 1e9, -1.0]  # +inf is overflow and in the sums, like Spark's
    nulls = rng.random(n) < 0.03
    windows = np.sort(rng.integers(0, 3, n)) * DAY  # time-ordered files: most batches hold one window
    windows[rng.random(n) < 0.01] = -1  # a null timestamp
    edges = make_edges(np.quantile(values[np.isfinite(values) & ~nulls][5_000:], np.linspace(0, 1, 51)), 0.01, 50.0)
    spec = counting.Numeric("v", tuple(bin_splits(edges)))
    w_arr = pa.array(np.where(windows < 0, 0, windows), mask=windows < 0)
    batch = pa.RecordBatch.from_arrays([w_arr, pa.array(values, mask=nulls)], names=["w", "v"])
    out = _run([batch.slice(i, 7_000) for i in range(0, n, 7_000)], [spec])

    for w in (0, DAY, 2 * DAY, None):
        sel = (windows < 0) if w is None else (windows == w)
        ref = count_numeric(np.ma.masked_array(values[sel], mask=nulls[sel]), edges)
        got = _rows(out, 0, w)
        counts = {k: v[0] for k, v in got.items() if k != counting.MOMENTS}
        k = len(edges)
        assert [counts.get(i + 1, 0) for i in range(k)] == ref.counts.tolist()
        assert counts.get(0, 0) == ref.underflow and counts.get(k + 1, 0) == ref.overflow
        assert counts.get(counting.NULL, 0) == ref.nulls and counts.get(counting.NAN, 0) == ref.nans
        _, s, ss, lo, hi = got[counting.MOMENTS]
        assert s == pytest.approx(ref.value_sum, rel=1e-12) and ss == pytest.approx(ref.value_sum_sq, rel=1e-12)
        assert (lo, hi) == (ref.min, ref.max)


def test_invalid_values_and_all_null_baselines():
    v = pa.array([1.0, None, None, np.nan, 5.0])
    invalid = pa.array([False, True, False, False, False])
    batch = pa.RecordBatch.from_arrays([pa.array([0] * 5, pa.int64()), v, invalid], names=["w", "v", "x"])
    out = _run([batch], [counting.Numeric("v", None, "x")])
    counts = {k: n for k, n in zip(out["key"], out["n"]) if k != counting.MOMENTS}
    assert counts == {0: 2, counting.INVALID: 1, counting.NULL: 1, counting.NAN: 1}


def test_categorical_keys_match_the_reference():
    rng = np.random.default_rng(5)
    pool = [f"c{i}" for i in range(30)] + ["new1", "new2", None]
    values = [pool[i] for i in rng.integers(0, len(pool), 20_000)]
    top, tracked = ("c3", "c1", "c0"), tuple(f"c{i}" for i in range(30))
    batch = pa.RecordBatch.from_arrays([pa.array([DAY] * len(values), pa.int64()), pa.array(values)], names=["w", "c"])
    for kept in (tracked, None):
        out = _run([batch.slice(0, 9_000), batch.slice(9_000)], [counting.Categorical("c", top, kept)])
        ref = count_categorical(values, top, kept)
        counts = {k: n for k, n in zip(out["key"], out["n"])}
        assert [counts.get(i, 0) for i in range(4)] == ref.counts.tolist()
        assert counts.get(counting.NULL, 0) == ref.nulls and counts.get(counting.UNSEEN, 0) == ref.unseen


def test_categorical_bloom_filter_tells_other_from_unseen():
    rng = np.random.default_rng(9)
    baseline = [f"c{i}" for i in range(30)]
    pool = baseline + [f"new{i}" for i in range(300)] + [None]
    m, k = 256, 7  # a small, crowded filter: many never-seen values look known
    where = {v: rng.integers(0, m, k).tolist() for v in pool}  # stands in for Spark's xxhash64 positions
    bits = 0
    for v in baseline:
        for p in where[v]:
            bits |= 1 << p
    words = np.array([(bits >> (64 * j)) & (2**64 - 1) for j in range(m // 64)], dtype=np.uint64).view(np.int64)
    values = [pool[i] for i in rng.integers(0, len(pool), 20_000)]
    batch = pa.RecordBatch.from_arrays(
        [pa.array([DAY] * len(values), pa.int64()), pa.array(values),
         pa.array([where[v] for v in values], pa.list_(pa.int32()))], names=["w", "c", "h"])
    top = ("c3", "c1", "c0")
    spec = counting.Categorical("c", top, None, counting.Members("h", words))
    out = _run([batch.slice(0, 9_000), batch.slice(9_000)], [spec])
    counts = {k: n for k, n in zip(out["key"], out["n"])}
    known = {v for v in pool if v is not None and all(bits >> p & 1 for p in where[v])}
    assert set(baseline) <= known and len(known) > len(baseline)  # never unseen; some false "known"
    assert [counts.get(i, 0) for i in range(3)] == [values.count(c) for c in top]
    assert counts.get(3, 0) == sum(v in known and v not in top for v in values)
    assert counts.get(counting.UNSEEN, 0) == sum(v is not None and v not in known for v in values)
    assert counts.get(counting.NULL, 0) == values.count(None)


def test_value_counts_over_the_whole_input():
    values = ["b", "a", None, "b", "c", "b", None, "a"]
    batch = pa.RecordBatch.from_arrays([pa.array(values)], names=["c"])
    out = _run([batch.slice(0, 3), batch.slice(3)], [counting.Values("c")], window=None)
    got = sorted(zip(out["key"], out["value"], out["n"]), key=str)
    assert got == sorted([(counting.NULL, None, 2), (0, "a", 2), (0, "b", 3), (0, "c", 1)], key=str)
    assert set(out["window_us"]) == {None}
    with pytest.raises(ValueError, match="window=None"):
        _run([batch], [counting.Values("c")], window="w")


def test_slot_keys_out_of_range_are_an_error():
    batch = pa.RecordBatch.from_arrays(
        [pa.array([0, 0], pa.int64()), pa.array([0, 4], pa.int32()), pa.array([None, None], pa.float64())],
        names=["w", "k", "v"],
    )
    with pytest.raises(ValueError, match="slot key column k"):
        _run([batch], [counting.Slot("k", "v", 4)])


def test_slot_counts_and_value_moments():
    keys = pa.array([0, 1, None, 1, -1], pa.int32())
    values = pa.array([0.5, 2.0, None, np.nan, 1.5])
    batch = pa.RecordBatch.from_arrays([pa.array([0] * 5, pa.int64()), keys, values], names=["w", "k", "v"])
    out = _run([batch], [counting.Slot("k", "v", 2)])
    got = _rows(out, 0, 0)
    assert {k: v[0] for k, v in got.items() if k != counting.MOMENTS} == {0: 1, 1: 2, counting.NULL: 2}
    assert got[counting.MOMENTS][1:] == (4.0, 0.25 + 4.0 + 2.25, 0.5, 2.0)
    bad = pa.RecordBatch.from_arrays([pa.array([0], pa.int64()), pa.array([-2], pa.int32()), pa.array([0.0])],
                                     names=["w", "k", "v"])
    with pytest.raises(ValueError, match="slot key column k"):
        _run([bad], [counting.Slot("k", "v", 2)])
