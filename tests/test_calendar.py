"""Calendar windows (granularity month / quarter) against dates worked out by hand, and the
Spark pass against Python counts of the same rows; fixed-length windows against the old formulas."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sparkdrift.core.binning import count_numeric
from sparkdrift.core.config import parse_config
from sparkdrift.core.profile import merge_all
from sparkdrift.core.windows import WindowHistograms, Windows, fill_empty_windows
from sparkdrift.detect import plan_range
from sparkdrift.errors import ConfigError
from sparkdrift.sinks.tracking import describe_windows, metric_step
from sparkdrift.spark.performance import label_horizon
from tests.helpers import categorical_profile, numeric_profile

UTC = timezone.utc
MONTH = Windows(months=1)
QUARTER = Windows(months=3)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _cfg(granularity: str, label: dict | None = None, **production):
    return parse_config({
        "monitor": "m",
        "baseline": {"table": "/data/train"},
        "production": {"table": "/data/log", "timestamp_column": "ts", "granularity": granularity, **production},
        "features": {"numeric": ["age"]},
        "prediction": {"columns": ["score"]},
        **({"label": label} if label else {}),
    })


# --------------------------------------------------------------------------- boundaries


def test_month_boundaries_are_exact():
    assert MONTH.start(datetime(2026, 1, 31, 23, 59, 59)) == utc(2026, 1, 1)
    assert MONTH.start(datetime(2026, 1, 31, 23, 59, 59, 999999)) == utc(2026, 1, 1)
    assert MONTH.start(datetime(2026, 2, 1)) == utc(2026, 2, 1)
    assert MONTH.end(utc(2026, 1, 1)) == utc(2026, 2, 1)
    assert MONTH.end(utc(2024, 2, 1)) == utc(2024, 3, 1)  # leap year: 29 days
    assert MONTH.end(utc(2024, 2, 1)) - utc(2024, 2, 1) == timedelta(days=29)
    assert MONTH.end(utc(2023, 2, 1)) - utc(2023, 2, 1) == timedelta(days=28)
    assert MONTH.start(datetime(2024, 2, 29, 12)) == utc(2024, 2, 1)
    assert MONTH.end(utc(2025, 12, 1)) == utc(2026, 1, 1)
    # an aware time is converted: 00:30 at UTC+1 on Feb 1 is 23:30 UTC on Jan 31
    assert MONTH.start(datetime(2026, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))) == utc(2026, 1, 1)
    assert MONTH.start(datetime(1969, 12, 15)) == utc(1969, 12, 1)


def test_quarters_start_in_january_april_july_october():
    first = {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 6: 4, 7: 7, 8: 7, 9: 7, 10: 10, 11: 10, 12: 10}
    for month, start in first.items():
        assert QUARTER.start(datetime(2026, month, 15, 8)) == utc(2026, start, 1)
    assert QUARTER.start(datetime(2026, 3, 31, 23, 59, 59)) == utc(2026, 1, 1)
    assert QUARTER.start(datetime(2026, 4, 1)) == utc(2026, 4, 1)
    assert QUARTER.end(utc(2026, 1, 1)) == utc(2026, 4, 1)
    assert QUARTER.end(utc(2025, 10, 1)) == utc(2026, 1, 1)
    assert QUARTER.start(datetime(1969, 11, 2)) == utc(1969, 10, 1)


def test_indexes_are_stable_and_consecutive():
    assert MONTH.index(utc(1970, 1, 1)) == 0
    assert MONTH.index(utc(2026, 1, 1)) == 56 * 12 == 672
    assert MONTH.index(datetime(2026, 1, 31, 23, 59, 59)) == 672  # any time in the month: the same step
    assert MONTH.index(utc(2026, 2, 1)) == 673
    assert MONTH.index(utc(1969, 12, 1)) == -1
    assert QUARTER.index(utc(2026, 1, 1)) == 56 * 4 == 224
    assert QUARTER.index(utc(2026, 12, 31, 23)) == 227
    assert QUARTER.index(utc(1969, 10, 1)) == -1
    assert metric_step(utc(2026, 3, 1), MONTH) == 674
    for cut, n in ((MONTH, 40), (QUARTER, 20)):
        start = utc(2023, 1, 1)
        for _ in range(n):
            nxt = cut.end(start)
            assert cut.index(nxt) == cut.index(start) + 1
            assert cut.at(cut.index(start)) == start and cut.start(nxt - timedelta(microseconds=1)) == start
            start = nxt
    assert start == utc(2028, 1, 1)  # 20 quarters after 2023-01
    assert MONTH.shift(utc(2026, 1, 1), -2) == utc(2025, 11, 1)


def test_window_labels_and_run_names():
    assert MONTH.label(utc(2026, 1, 1)) == "2026-01"
    assert QUARTER.label(utc(2026, 1, 1)) == "2026-Q1"
    assert QUARTER.label(utc(2026, 10, 1)) == "2026-Q4"
    assert describe_windows((utc(2026, 1, 1), utc(2026, 4, 1)), MONTH) == (3, "2026-01..2026-03")
    assert describe_windows((utc(2025, 10, 1), utc(2026, 7, 1)), QUARTER) == (3, "2025-Q4..2026-Q2")
    assert describe_windows((utc(2026, 2, 1), utc(2026, 3, 1)), MONTH) == (1, "2026-02")


def test_report_axis_names_months_and_quarters():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from sparkdrift.sinks.charts import _date_axis

    def ticks(x: list[datetime], cut: Windows) -> list[str]:
        fig = Figure()
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot(x, range(len(x)))
        _date_axis(ax, x, timedelta(days=28), cut)
        fig.canvas.draw()
        return [t.get_text() for t in ax.get_xticklabels()]

    assert ticks([datetime(2025, 11, 1), datetime(2025, 12, 1), datetime(2026, 1, 1)], MONTH) == [
        "2025-11", "2025-12", "2026-01"]
    assert ticks([datetime(2025, 10, 1), datetime(2026, 1, 1)], QUARTER) == ["2025-Q4", "2026-Q1"]
    months = [datetime(2024 + m // 12, m % 12 + 1, 1) for m in range(24)]
    assert ticks(months, MONTH) == ["2024-01", "2024-05", "2024-09", "2025-01", "2025-05", "2025-09"]  # every 4th


# --------------------------------------------------------------------------- fixed-length windows, as before


def _old_start(epoch: int, seconds: int) -> int:
    """The fixed-length rule before calendar windows: epoch-aligned, weeks from Monday 1970-01-05."""
    off = 4 * 86400 if seconds % (7 * 86400) == 0 else 0
    return (epoch - off) // seconds * seconds + off


@pytest.mark.parametrize("seconds", [60, 900, 3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400])
def test_fixed_windows_follow_the_old_formulas(seconds):
    cut = Windows(seconds=seconds)
    off = 4 * 86400 if seconds % (7 * 86400) == 0 else 0
    rng = np.random.default_rng(seconds)
    for epoch in rng.integers(-10**8, 2 * 10**9, 200).tolist():
        ts = datetime.fromtimestamp(epoch, tz=UTC)
        start = _old_start(epoch, seconds)
        assert cut.start(ts) == datetime.fromtimestamp(start, tz=UTC)
        assert cut.end(cut.start(ts)) == datetime.fromtimestamp(start + seconds, tz=UTC)
        assert cut.index(cut.start(ts)) == (start - off) // seconds == start // seconds  # old step rule too


def test_fixed_windows_by_hand():
    assert Windows(seconds=7 * 86400).start(datetime(2026, 1, 8, 15)) == utc(2026, 1, 5)  # Thursday -> Monday
    assert Windows(seconds=7 * 86400).end(utc(2026, 1, 5)) == utc(2026, 1, 12)
    assert Windows(seconds=2 * 86400).start(datetime(2026, 1, 8, 15)) == utc(2026, 1, 7)  # day 20461 -> 20460
    assert Windows(seconds=6 * 3600).start(datetime(2026, 1, 8, 17, 59)) == utc(2026, 1, 8, 12)
    assert Windows(seconds=86400).index(utc(2026, 1, 8)) == 20461
    assert Windows(seconds=86400).label(utc(2026, 1, 8)) == "2026-01-08"
    assert Windows(seconds=3600).label(utc(2026, 1, 8, 6)) == "2026-01-08T06:00"


# --------------------------------------------------------------------------- config and planning


def test_config_accepts_month_and_quarter_and_keeps_the_text():
    cfg = _cfg("month")
    assert cfg.production.granularity == "month" and cfg.to_dict()["production"]["granularity"] == "month"
    assert cfg.production.granularity.windows == MONTH
    assert _cfg("quarter").production.granularity.windows == QUARTER
    assert _cfg("week").production.granularity.windows == Windows(seconds=604800)
    for bad in ("months", "1mo", "fortnight", "Month"):
        with pytest.raises(ConfigError, match=r"production\.granularity: expected .*month/quarter"):
            _cfg(bad)


def test_plan_range_with_lateness_recompute_and_start():
    cfg = _cfg("month", lateness="1h")
    # February is complete only at March 1 01:00
    assert plan_range(utc(2026, 1, 1), cfg, utc(2026, 3, 1, 0, 30)) == (utc(2026, 2, 1), utc(2026, 2, 1))
    assert plan_range(utc(2026, 1, 1), cfg, utc(2026, 3, 1, 1)) == (utc(2026, 2, 1), utc(2026, 3, 1))
    again = _cfg("month", lateness="1h", recompute_windows=2)
    assert plan_range(utc(2026, 1, 1), again, utc(2026, 3, 1, 1)) == (utc(2025, 12, 1), utc(2026, 3, 1))
    backfill = _cfg("quarter", start="2025-05-20")
    assert plan_range(None, backfill, utc(2026, 2, 10)) == (utc(2025, 4, 1), utc(2026, 1, 1))


def test_label_horizon_reaches_back_to_the_window_of_max_delay():
    def horizon(granularity: str, max_delay: str) -> datetime:
        label = {"table": "/l", "id_column": "id", "column": "y", "max_delay": max_delay}
        return label_horizon(_cfg(granularity, label), utc(2026, 3, 1))

    assert horizon("month", "7d") == utc(2026, 2, 1)  # 7 days before March 1: Feb 22
    assert horizon("month", "40d") == utc(2026, 1, 1)  # Jan 20
    assert horizon("quarter", "7d") == utc(2026, 1, 1)


def test_outage_months_are_filled():
    p = numeric_profile("x", np.arange(100.0), fine_bins=10)
    jan = WindowHistograms(utc(2026, 1, 1), utc(2026, 2, 1), 5, {})
    mar = WindowHistograms(utc(2026, 3, 1), utc(2026, 4, 1), 7, {})
    out = fill_empty_windows([jan, mar], None, utc(2026, 5, 1), MONTH, [p])
    assert [(w.window_start, w.window_end, w.rows) for w in out] == [
        (utc(2026, 1, 1), utc(2026, 2, 1), 5),
        (utc(2026, 2, 1), utc(2026, 3, 1), 0),
        (utc(2026, 3, 1), utc(2026, 4, 1), 7),
        (utc(2026, 4, 1), utc(2026, 5, 1), 0),
    ]
    assert out[1].histograms["x"].n_rows == 0


# --------------------------------------------------------------------------- the Spark pass


@pytest.mark.spark
def test_spark_months_match_python_counts_and_merged_days(spark):
    from sparkdrift.spark.histograms import count_windows, sql_conf

    rng = np.random.default_rng(11)
    lo, hi = int(utc(2025, 11, 1).timestamp()), int(utc(2026, 4, 1).timestamp())
    ts = [datetime.fromtimestamp(int(s), tz=UTC) for s in rng.integers(lo, hi, 4000)]
    edges = [utc(2026, 1, 31, 23, 59, 59), utc(2026, 2, 1), utc(2025, 12, 31, 23, 59, 59), utc(2026, 1, 1),
             utc(2026, 3, 31, 23, 59, 59), utc(2026, 4, 1)]
    ts += edges
    x = rng.normal(0, 1, len(ts))
    cats = rng.choice(["a", "b", "c"], len(ts)).tolist()
    profiles = [numeric_profile("x", rng.normal(0, 1, 2000), fine_bins=50),
                categorical_profile("c", ["a", "b", "d"] * 10, top_k=2)]
    df = spark.createDataFrame([(t.replace(tzinfo=None), float(v), c) for t, v, c in zip(ts, x, cats)],
                               "ts timestamp, x double, c string")

    # the cut is at UTC month starts whatever the session's time zone
    with sql_conf(spark, **{"spark.sql.session.timeZone": "America/Los_Angeles"}):
        months = count_windows(df, profiles, "ts", MONTH).windows
    want = Counter((t.year, t.month) for t in ts)
    assert [(w.window_start.year, w.window_start.month, w.rows) for w in months] == [
        (y, m, want[(y, m)]) for y, m in sorted(want)]
    assert [w.window_start for w in months] == [utc(2025, 11, 1), utc(2025, 12, 1), utc(2026, 1, 1),
                                                utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 4, 1)]
    assert months[-1].rows == 1  # only the 2026-04-01 00:00:00 row
    month_of = np.array([t.year * 12 + t.month for t in ts])
    for w in months:
        inside = month_of == w.window_start.year * 12 + w.window_start.month
        assert w.histograms["x"] == count_numeric(x[inside], profiles[0].edges)
        assert w.window_end == MONTH.end(w.window_start)

    days = count_windows(df, profiles, "ts", Windows(seconds=86400)).windows
    for w in months:
        inside = [d for d in days if w.window_start <= d.window_start < w.window_end]
        for p in profiles:
            assert merge_all([d.histograms[p.name] for d in inside], p.n_bins) == w.histograms[p.name]

    quarters = count_windows(df, profiles, "ts", QUARTER).windows
    want_q = Counter((t.year, (t.month - 1) // 3) for t in ts)
    assert [w.rows for w in quarters] == [want_q[k] for k in sorted(want_q)]
    assert [w.window_start for w in quarters] == [utc(2025, 10, 1), utc(2026, 1, 1), utc(2026, 4, 1)]


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.e2e
def test_monthly_detect_fills_outages_and_steps_by_month(spark, tmp_path):
    from mlflow import MlflowClient

    from sparkdrift.detect import run_detect
    from sparkdrift.spark.profiling import build_baseline
    from sparkdrift.store import DeltaStore

    rng = np.random.default_rng(5)

    def rows(month_start: datetime | None, n: int) -> list[tuple]:
        if month_start is None:
            ts = [None] * n
        else:
            span = int((MONTH.end(month_start) - month_start).total_seconds())
            ts = [(month_start + timedelta(seconds=int(s))).replace(tzinfo=None) for s in rng.integers(0, span, n)]
        return [(t, float(v)) for t, v in zip(ts, rng.normal(0, 1, n))]

    schema = "ts timestamp, age double"
    spark.createDataFrame(rows(None, 2000), schema).drop("ts").write.format("delta").save(str(tmp_path / "train"))
    # no row in February (an outage); the last second of April is still April
    prod = rows(utc(2026, 1, 1), 300) + rows(utc(2026, 3, 1), 300) + rows(utc(2026, 4, 1), 299)
    prod.append((datetime(2026, 4, 30, 23, 59, 59), 0.0))
    spark.createDataFrame(prod, schema).write.format("delta").save(str(tmp_path / "log"))
    cfg = parse_config({
        "monitor": "monthly",
        "baseline": {"table": str(tmp_path / "train")},
        "production": {"table": str(tmp_path / "log"), "timestamp_column": "ts", "granularity": "month",
                       "lateness": "1h"},
        "features": {"numeric": ["age"]},
        "binning": {"fine_bins": 50},
        "output": {"location": str(tmp_path / "tables")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "monthly"},
    })
    DeltaStore.of(spark, cfg).save_profile(build_baseline(spark, cfg))

    out = run_detect(spark, cfg, as_of=utc(2026, 5, 1, 2))
    assert [(w.window_start, w.window_end, w.rows) for w in out.windows] == [
        (utc(2026, 1, 1), utc(2026, 2, 1), 300), (utc(2026, 2, 1), utc(2026, 3, 1), 0),
        (utc(2026, 3, 1), utc(2026, 4, 1), 300), (utc(2026, 4, 1), utc(2026, 5, 1), 300)]
    client = MlflowClient(cfg.mlflow.tracking_uri)
    run = client.get_run(out.run_id)
    assert run.data.tags["sparkdrift.windows"] == "4 (2026-01..2026-04)"
    severity = sorted(client.get_metric_history(out.run_id, "drift/severity"), key=lambda m: m.step)
    assert [m.step for m in severity] == [672, 673, 674, 675]  # months since 1970-01
    assert [m.timestamp for m in severity] == [int(utc(2026, m, 1).timestamp() * 1000) for m in (1, 2, 3, 4)]  # at each window's start
    assert {m.step for m in client.get_metric_history(out.run_id, "drift/score")} == {672, 674, 675}  # Feb: no score

    # May is not complete before June 1 01:00
    assert run_detect(spark, cfg, as_of=utc(2026, 6, 1, 0, 30)).windows == []
    spark.createDataFrame(rows(utc(2026, 5, 1), 200), schema).write.format("delta").mode("append").save(
        str(tmp_path / "log"))
    later = run_detect(spark, cfg, as_of=utc(2026, 6, 1, 1))
    assert [(w.window_start, w.rows) for w in later.windows] == [(utc(2026, 5, 1), 200)]
