"""Delayed labels: performance per window from a separate labels table, updated as labels arrive."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sparkdrift.spark.profiling import build_baseline
from sparkdrift.store import DeltaStore
from sparkdrift.core.config import parse_config
from sparkdrift.detect import run_detect
from sparkdrift.store.tables import read_output

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.e2e]
DAY0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
N = 400


def _day(rng, day, first_id):
    ids = np.arange(first_id, first_id + N)
    y = rng.random(N) < 0.4
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1)
    ts = [(DAY0 + timedelta(days=day, seconds=int(s))).replace(tzinfo=None) for s in rng.integers(0, 86400, N)]
    rows = [(int(i), t, float(rng.normal()), float(s)) for i, t, s in zip(ids, ts, score)]
    labels = [(int(i), int(v)) for i, v in zip(ids, y)]
    return rows, labels, y, score


def _exact(y, score):
    pred = score >= 0.5
    return {"accuracy": float((pred == y).mean()), "recall": float((pred & y).sum() / y.sum())}


def _config(tmp_path, monitor: str, max_delay: str):
    """Tables under tmp_path: train, log (production) and labels, joined on id."""
    return parse_config(
        {
            "monitor": monitor,
            "baseline": {"table": str(tmp_path / "train")},
            "production": {"table": str(tmp_path / "log"), "timestamp_column": "ts", "lateness": "1h"},
            "features": {"numeric": ["x"]},
            "id_column": "id",
            "prediction": {"columns": ["score"]},
            "label": {"table": str(tmp_path / "labels"), "id_column": "id", "column": "y", "max_delay": max_delay},
            "output": {"location": str(tmp_path / "tables")},
            "mlflow": {"enabled": False},
        },
        f"{monitor}.yaml",
    )


def test_late_labels_update_the_earlier_window(spark, tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    days = [_day(rng, d, d * N) for d in range(4)]
    schema = "id long, ts timestamp, x double, score double"
    spark.createDataFrame([r for rows, *_ in days[:3] for r in rows], schema).write.format("delta").save(str(tmp_path / "log"))
    spark.createDataFrame(days[0][0], schema).drop("ts").write.format("delta").save(str(tmp_path / "train"))
    spark.createDataFrame(days[0][1], "id long, y int").write.format("delta").save(str(tmp_path / "labels"))
    cfg = _config(tmp_path, "labels", max_delay="7d")
    DeltaStore.of(spark, cfg).save_profile(build_baseline(spark, cfg))

    first = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=3, hours=2))
    perf = {(r.window_start.day, r.statistic): r.value for r in first.results if r.signal == "performance"}
    assert {d for d, _ in perf} == {1}  # only day 0 (May 1st) has labels yet
    exact0 = _exact(days[0][2], days[0][3])
    assert perf[(1, "accuracy")] == pytest.approx(exact0["accuracy"], abs=1e-12)
    assert perf[(1, "recall")] == pytest.approx(exact0["recall"], abs=1e-12)

    # day 1's labels arrive late, together with day 3's traffic
    spark.createDataFrame(days[1][1], "id long, y int").write.format("delta").mode("append").save(str(tmp_path / "labels"))
    spark.createDataFrame(days[3][0], schema).write.format("delta").mode("append").save(str(tmp_path / "log"))
    second = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=4, hours=2))
    assert [w.window_start.day for w in second.windows] == [4]
    table = read_output(spark, cfg.output_table("metrics")).filter("signal = 'performance'").collect()
    stored = {(r.window_start.day, r.statistic): r.value for r in table}
    exact1 = _exact(days[1][2], days[1][3])
    assert stored[(2, "accuracy")] == pytest.approx(exact1["accuracy"], abs=1e-12)
    assert stored[(1, "accuracy")] == pytest.approx(exact0["accuracy"], abs=1e-12)
    assert (3, "accuracy") not in stored  # day 2 still has no labels

    # day 2's labels arrive when no new window is due: a run still re-scores it
    spark.createDataFrame(days[2][1], "id long, y int").write.format("delta").mode("append").save(str(tmp_path / "labels"))
    third = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=4, hours=3))
    assert third.windows == [] and "refreshed from late labels" in third.message
    table = read_output(spark, cfg.output_table("metrics")).filter("signal = 'performance'").collect()
    stored = {(r.window_start.day, r.statistic): r.value for r in table}
    assert stored[(3, "accuracy")] == pytest.approx(_exact(days[2][2], days[2][3])["accuracy"], abs=1e-12)

    # no label since then: the labels join is not run again (commit times compared without a skew margin here)
    from sparkdrift import detect

    monkeypatch.setattr(detect, "CLOCK_SKEW", timedelta(0))
    monkeypatch.setattr(detect, "labels_pass", lambda *a, **k: pytest.fail("the labels were joined again"))
    fourth = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=4, hours=4))
    assert fourth.windows == [] and "refreshed" not in fourth.message


def test_a_backfill_scores_every_labelled_window(spark, tmp_path):
    """The first run over weeks of history computes performance for every window it computes, not only the recent ones."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(8)
    days = [_day(rng, d, d * N) for d in range(6)]
    schema = "id long, ts timestamp, x double, score double"
    spark.createDataFrame([r for rows, *_ in days for r in rows], schema).write.format("delta").save(str(tmp_path / "log"))
    spark.createDataFrame(days[0][0], schema).drop("ts").write.format("delta").save(str(tmp_path / "train"))
    spark.createDataFrame([l for _, labels, *_ in days for l in labels], "id long, y int").write.format("delta").save(
        str(tmp_path / "labels"))
    cfg = _config(tmp_path, "backfill", max_delay="1d")
    DeltaStore.of(spark, cfg).save_profile(build_baseline(spark, cfg))
    out = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=6, hours=2))
    auc = {r.window_start.day: r.value for r in out.results if r.signal == "performance" and r.statistic == "auc"}
    assert sorted(auc) == [1, 2, 3, 4, 5, 6]  # max_delay 1d no longer limits a first run
    for d, (_, _, y, s) in enumerate(days):
        ranks = rankdata(s)
        exact = (ranks[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum())
        assert auc[d + 1] == pytest.approx(exact, abs=1e-3)  # 1000 score bins: within half a bin's ties
