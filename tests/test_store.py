"""One contract, two stores: the in-memory twin behaves as the Delta tables do.

Every expectation is written out by hand (which window replaces which, which
profile is the latest); the same test body runs on `MemoryStore` (no Spark)
and on `DeltaStore` (real Delta tables under tmp_path).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sparkdrift.core.planning import ActionRecord
from sparkdrift.core.profile import BaselineProfile, Histogram
from sparkdrift.core.results import DriftResult
from sparkdrift.core.performance import SLOT
from sparkdrift.core.windows import WindowHistograms
from sparkdrift.errors import BaselineError
from sparkdrift.store import DeltaStore, MemoryStore, Progress
from tests.helpers import categorical_profile, numeric_profile

UTC = timezone.utc
T0 = datetime(2026, 1, 5, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(params=["memory", pytest.param("delta", marks=[pytest.mark.spark, pytest.mark.e2e])])
def store(request, tmp_path):
    if request.param == "memory":
        return MemoryStore("churn")
    spark = request.getfixturevalue("spark")
    tables = {t: str(tmp_path / t) for t in ("profiles", "histograms", "metrics", "actions")}
    return DeltaStore(spark, "churn", tables)


def _profile(baseline_id: str, created: datetime) -> BaselineProfile:
    rng = np.random.default_rng(7)
    age = numeric_profile("age", rng.normal(40, 10, 500), fine_bins=20, coarse_bins=5)
    plan = categorical_profile("plan", ["a"] * 30 + ["b"] * 20 + ["c"] * 5, top_k=2)
    return BaselineProfile(
        monitor="churn", baseline_id=baseline_id, created_at=created.isoformat(), source_table="src",
        source_version=3, config_hash="cafe", row_count=555, features={"age": age, "plan": plan},
        performance=Histogram(counts=np.array([5, 1, 2, 7]), nulls=1),
    )


def _window(day: int, age_count: int, features=("age",)) -> WindowHistograms:
    hists = {f: Histogram(counts=np.full(3, age_count), nulls=day) for f in features}
    return WindowHistograms(T0 + day * DAY, T0 + (day + 1) * DAY, 3 * age_count, hists)


def _result(day: int, value: float, statistic: str = "psi") -> DriftResult:
    return DriftResult("churn", "b1", T0 + day * DAY, T0 + (day + 1) * DAY, "age", statistic, value, 0.2,
                       value > 0.2)


def test_profiles_saved_once_latest_by_created_at(store):
    with pytest.raises(BaselineError, match="no baseline for monitor churn in .*profiles: run `sparkdrift baseline"):
        store.load_profile()
    old, new = _profile("b-old", T0), _profile("b-new", T0 + DAY)
    assert store.save_profile(new) is True
    assert store.save_profile(old) is True
    assert store.save_profile(new) is False  # already stored: nothing written
    assert store.has_profile("b-old") and not store.has_profile("b-none")
    latest = store.load_profile()
    assert latest.baseline_id == "b-new"  # by created_at, not by write order
    assert store.load_profile("b-old").baseline_id == "b-old"
    with pytest.raises(BaselineError, match="baseline deadbeef of monitor churn is not in"):
        store.load_profile("deadbeef")
    # the values survive the round trip
    assert list(latest.features) == ["age", "plan"]
    for name, fp in new.features.items():
        got = latest.features[name]
        assert got.baseline == fp.baseline
        assert (got.edges, got.coarse, got.categories, got.tracked) == (fp.edges, fp.coarse, fp.categories, fp.tracked)
    assert latest.features["age"].mean_std() == pytest.approx(new.features["age"].mean_std())
    assert all(math.isnan(v) for v in latest.features["plan"].mean_std())
    assert latest.performance == new.performance
    assert (latest.row_count, latest.source_version, latest.config_hash) == (555, 3, "cafe")


def test_histograms_upsert_per_window_and_feature(store):
    assert store.load_histograms("b1") == []
    assert store.write_histograms("b1", [_window(0, 1), _window(1, 2), _window(2, 3)], 5) == 3
    store.write_histograms("b1", [_window(1, 20)], 6)  # a recomputed window replaces, never adds
    store.write_histograms("b1", [_window(1, 9, features=("plan",))], 6)  # another column joins it
    store.write_histograms("b2", [_window(0, 100)], 6)  # another baseline is apart
    got = store.load_histograms("b1")
    assert [w.window_start for w in got] == [T0, T0 + DAY, T0 + 2 * DAY]
    assert [int(w.histograms["age"].counts[0]) for w in got] == [1, 20, 3]
    assert set(got[1].histograms) == {"age", "plan"} and got[1].histograms["plan"].nulls == 1
    assert got[2].window_end == T0 + 3 * DAY
    last_two_before_day2 = store.load_histograms("b1", before=T0 + 2 * DAY, last=2)
    assert [w.window_start for w in last_two_before_day2] == [T0, T0 + DAY]
    assert [w.window_start for w in store.load_histograms("b1", last=1)] == [T0 + 2 * DAY]
    written = store.last_written("b1", "plan")
    assert written is not None and abs(written.at - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert written.source_version == 6  # the newest version its windows were counted at
    assert store.last_written("b1", "income") is None and store.last_written("b3", "age") is None
    # the performance slot counts only the labelled rows: the window's row count stays its columns' count
    store.write_histograms("b1", [_window(2, 1, features=(SLOT,))], 7)
    assert [w.rows for w in store.load_histograms("b1", last=1)] == [9]


def test_metrics_mark_progress_per_baseline(store):
    assert store.progress("b1") == Progress()
    store.write_metrics([_result(0, 0.1), _result(3, 0.3), _result(3, 0.05, "ks")], "run1")
    store.write_metrics([_result(3, 0.4)], "run2")  # the same key again: replaced
    assert store.progress("b1") == Progress(T0, T0 + 3 * DAY, T0 + 3 * DAY)
    assert store.progress("b2") == Progress()
    store.write_metrics([], None)  # nothing to write is a no-op
    # windows whose MLflow logging failed are written without a run id: tracked progress stays behind
    store.write_metrics([_result(4, 0.2), _result(5, 0.2)], None)
    assert store.progress("b1") == Progress(T0, T0 + 5 * DAY, T0 + 3 * DAY)
    store.write_metrics([_result(5, 0.2)], "run3")
    assert store.progress("b1") == Progress(T0, T0 + 5 * DAY, T0 + 5 * DAY)


def test_actions_upsert_on_dedup_key(store):
    assert store.read_actions() == []
    pending = ActionRecord("churn", T0, T0 + DAY, "severe", "r", "retrain", "command", "python", "pending", "k1",
                           decided_at=T0 + DAY)
    other = ActionRecord("churn", T0 + DAY, T0 + 2 * DAY, "minor", "", "alert", "webhook", "https://h/***",
                         "succeeded", "k2", drift_run_id="d1", decided_at=T0 + 2 * DAY, finished_at=T0 + 2 * DAY)
    store.write_actions([pending, other])
    done = ActionRecord(**{**pending.__dict__, "status": "succeeded", "retrain_run_id": "pid:7"})
    store.write_actions([done])
    assert sorted(store.read_actions(), key=lambda r: r.dedup_key) == [done, other]


def test_an_action_is_claimed_by_one_run_only(store):
    """Two runs decide the same action from the same (empty) table: the first claim wins, the second finds the
    row changed and writes nothing; an update claims only over the row it saw."""
    from dataclasses import replace

    def pending(run: str, decided: datetime) -> ActionRecord:
        return ActionRecord("churn", T0, T0 + DAY, "severe", "r", "retrain", "command", "python", "pending", "k1",
                            drift_run_id=run, decided_at=decided)

    first, second = pending("run-a", T0 + DAY), pending("run-b", T0 + DAY + timedelta(microseconds=1))
    assert store.claim_actions([first], {}) == [first]
    assert store.claim_actions([second], {}) == []  # it saw no row; there is one now
    assert store.read_actions() == [first]
    failed = replace(first, status="failed", error="exit 3")
    store.write_actions([failed])
    retry_a, retry_b = pending("run-c", T0 + 2 * DAY), pending("run-d", T0 + 2 * DAY + timedelta(microseconds=1))
    assert store.claim_actions([retry_a], {"k1": failed}) == [retry_a]
    assert store.claim_actions([retry_b], {"k1": failed}) == []  # what it saw was replaced meanwhile
    assert store.read_actions() == [retry_a]


def _sliced(profile: BaselineProfile) -> BaselineProfile:
    from dataclasses import replace

    de = {"age": Histogram(counts=np.arange(20), underflow=1), "plan": Histogram(counts=np.array([4, 3, 1]), nulls=2)}
    null = {"age": Histogram(counts=np.ones(20, dtype=np.int64))}
    return replace(profile, slices={("country", "DE"): de, ("country", "__null__"): null,
                                    ("country×device", "DE & ios"): null})


def test_profile_slices_round_trip_on_the_overall_bins(store):
    p = _sliced(_profile("b-s", T0))
    store.save_profile(p)
    got = store.load_profile("b-s")
    assert set(got.slices) == {("country", "DE"), ("country", "__null__"), ("country×device", "DE & ios")}
    assert got.slices[("country", "DE")]["age"] == p.slices[("country", "DE")]["age"]
    assert got.slices[("country", "DE")]["plan"] == p.slices[("country", "DE")]["plan"]
    assert got.slice_top() == {"country": ("DE",), "country×device": ("DE & ios",)}  # a crossed slice too
    assert list(got.features) == ["age", "plan"] and got.features["age"].baseline == p.features["age"].baseline


def test_slice_windows_upsert_apart_from_the_overall_ones(store):
    from dataclasses import replace

    de = replace(_window(0, 7), slice="country", slice_value="DE")
    store.write_histograms("b1", [_window(0, 1), de], 5)
    store.write_histograms("b1", [replace(de, histograms={"age": Histogram(counts=np.full(3, 8))})], 5)
    (got,) = store.load_histograms("b1")  # the history is the overall windows only
    assert int(got.histograms["age"].counts[0]) == 1 and got.slice == "__all__"


@pytest.mark.spark
def test_tables_from_before_slices_get_overall_slice_values_and_reruns_replace(spark, tmp_path):
    from sparkdrift.store.delta import METRICS_SCHEMA, metric_row

    tables = {t: str(tmp_path / t) for t in ("profiles", "histograms", "metrics", "actions")}
    old_schema = METRICS_SCHEMA.rsplit(", slice string", 1)[0]
    old_row = metric_row(_result(0, 0.1), "run0", datetime(2026, 1, 1))[:-2]
    spark.createDataFrame([old_row], old_schema).write.format("delta").save(tables["metrics"])
    store = DeltaStore(spark, "churn", tables)
    store.write_metrics([_result(0, 0.5)], "run1")  # the same key as the old row: replaces it
    from dataclasses import replace

    store.write_metrics([replace(_result(0, 0.7), slice="country", slice_value="DE")], "run1")
    rows = spark.read.format("delta").load(tables["metrics"]).collect()
    got = sorted((r["slice"], r["slice_value"], r["value"]) for r in rows)
    assert got == [("__all__", "__all__", 0.5), ("country", "DE", 0.7)]
