"""End to end on real Delta tables and a real MLflow store: baseline + detect with injected drift."""
from __future__ import annotations

import html.parser
import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from sparkdrift.core import stats
from sparkdrift.spark.profiling import build_baseline
from sparkdrift.store import DeltaStore
from sparkdrift.core.config import parse_config
from sparkdrift.detect import run_detect
from sparkdrift.store.tables import read_output
from sparkdrift.core.windows import Windows

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.e2e]

DAY0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
PER_DAY = 800
DRIFT_FROM = 3  # days 0..2 stable, 3.. drifted


def _rows(rng, n, drifted, start=None):
    x1 = rng.normal(1.0 if drifted else 0.0, 1.0, n)
    x2 = rng.normal(5.0, 2.0, n)
    c1 = rng.choice(["a", "b", "c", "d"], n, p=[0.1, 0.2, 0.3, 0.4] if drifted else [0.4, 0.3, 0.2, 0.1])
    score = 1 / (1 + np.exp(-(x1 - 0.5)))
    ts = [None] * n if start is None else [
        (start + timedelta(seconds=int(s))).replace(tzinfo=None) for s in rng.integers(0, 86400, n)
    ]
    return [(t, float(a), float(b), str(c), float(s)) for t, a, b, c, s in zip(ts, x1, x2, c1, score)]


SCHEMA = "ts timestamp, x1 double, x2 double, c1 string, score double"


@pytest.fixture(scope="module")
def case(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("detect")
    rng = np.random.default_rng(11)
    spark.createDataFrame(_rows(rng, 5000, False), SCHEMA).drop("ts").write.format("delta").save(str(tmp / "train"))
    prod = [r for d in range(6) for r in _rows(rng, PER_DAY, d >= DRIFT_FROM, DAY0 + timedelta(days=d))]
    spark.createDataFrame(prod, SCHEMA).write.format("delta").save(str(tmp / "log"))
    cfg = parse_config(
        {
            "monitor": "e2e",
            "baseline": {"table": str(tmp / "train")},
            "production": {"table": str(tmp / "log"), "timestamp_column": "ts", "granularity": "day", "lateness": "1h"},
            "features": {"numeric": ["x1", "x2"], "categorical": ["c1"]},
            "prediction": {"columns": ["score"]},
            "binning": {"fine_bins": 200},
            "output": {"location": str(tmp / "tables")},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "experiment": "e2e"},
        },
        "e2e.yaml",
    )
    DeltaStore.of(spark, cfg).save_profile(build_baseline(spark, cfg))
    first = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=6, hours=2))
    return spark, tmp, cfg, rng, first


def test_windows_flagged_where_drift_was_injected(case):
    _, _, _, _, out = case
    assert len(out.windows) == 6
    flagged = {(r.feature, r.window_start.day) for r in out.results if r.drifted and r.signal == "feature"}
    assert {f for f, _ in flagged} == {"x1", "c1"}  # x2 never drifts
    for feature in ("x1", "c1"):
        days = sorted(d for f, d in flagged if f == feature)
        assert days == [4, 5, 6], feature
    assert [d.severity for d in out.decisions][:3] == ["none"] * 3
    assert all(d.severity in ("moderate", "severe") for d in out.decisions[3:])
    pred = [r for r in out.results if r.signal == "prediction" and r.statistic == "psi"]
    assert len(pred) == 6 and all(r.drifted == (r.window_start.day >= 4) for r in pred)


def test_metrics_table_matches_statistics_from_stored_histograms(case):
    spark, _, cfg, _, out = case
    baseline = DeltaStore.of(spark, cfg).load_profile(cfg.baseline_id)
    stored = DeltaStore.of(spark, cfg).load_histograms(baseline.baseline_id)
    assert len(stored) == 6
    table = read_output(spark, cfg.output_table("metrics")).collect()
    assert len(table) == len(out.results)
    by_key = {(r.window_start, r.feature, r.statistic): r for r in table if r.signal in ("feature", "prediction")}
    checked = 0
    for w in stored:
        for name, hist in w.histograms.items():
            profile = baseline.features[name]
            for stat in ("psi", "js"):
                exp = stats.compute(stat, profile, profile.baseline, hist).value
                row = by_key[(w.window_start.replace(tzinfo=None), name, stat)]
                assert row.value == pytest.approx(exp, abs=1e-12)
                assert row.mlflow_run_id == out.run_id
                assert row.window_rows == PER_DAY
                checked += 1
    assert checked == 6 * 4 * 2


def test_mlflow_metric_history_steps_and_timestamps(case):
    from mlflow import MlflowClient

    _, _, cfg, _, out = case
    client = MlflowClient(cfg.mlflow.tracking_uri)
    run = client.get_run(out.run_id)
    assert run.data.tags["sparkdrift.monitor"] == "e2e"
    assert run.data.tags["sparkdrift.severity"] == out.severity
    assert run.data.params["binning.fine_bins"] == "200"
    for feature, drifted in (("x1", True), ("x2", False)):
        hist = sorted(client.get_metric_history(out.run_id, f"feature.{feature}/psi"), key=lambda m: m.step)
        expected = sorted(
            (r for r in out.results if r.feature == feature and r.statistic == "psi" and r.reference == "baseline"),
            key=lambda r: r.window_start,
        )
        assert [m.step for m in hist] == [Windows(seconds=86400).index(r.window_start) for r in expected]
        assert [m.timestamp for m in hist] == [int(r.window_start.timestamp() * 1000) for r in expected]
        assert [m.value for m in hist] == pytest.approx([r.value for r in expected], abs=1e-12)
        assert (max(m.value for m in hist) > 0.2) == drifted
    score = client.get_metric_history(out.run_id, "drift/score")
    assert len(score) == 6
    assert run.data.metrics["run_cost/wall_time_s"] > 0
    assert run.data.metrics["run_cost/scan_rows"] == 6 * PER_DAY


def test_report_artifacts_are_logged_and_readable(case):
    from mlflow import MlflowClient

    _, _, cfg, _, out = case
    client = MlflowClient(cfg.mlflow.tracking_uri)
    names = {a.path for a in client.list_artifacts(out.run_id)}
    assert {"drift_report.json", "drift_report.html", "plots"} <= names
    assert client.list_artifacts(out.run_id, "plots")
    report = json.loads((out.report_dir / "drift_report.json").read_text())
    assert len(report["results"]) == len(out.results)

    class Collect(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.imgs, self.text = 0, []

        def handle_starttag(self, tag, attrs):
            self.imgs += tag == "img"

        def handle_data(self, data):
            self.text.append(data)

    parser = Collect()
    parser.feed((out.report_dir / "drift_report.html").read_text())
    text = " ".join(parser.text)
    assert parser.imgs >= 2
    assert "x1" in text and "c1" in text


def test_rerun_changes_nothing_and_increment_reads_only_the_new_day(case):
    from mlflow import MlflowClient

    spark, tmp, cfg, rng, first = case
    before = read_output(spark, cfg.output_table("metrics")).count()
    again = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=6, hours=3))
    assert again.windows == [] and "no new complete windows" in again.message
    assert read_output(spark, cfg.output_table("metrics")).count() == before
    client = MlflowClient(cfg.mlflow.tracking_uri)
    assert len(client.get_metric_history(first.run_id, "feature.x1/psi")) == 6

    day7 = _rows(rng, PER_DAY, True, DAY0 + timedelta(days=6))
    spark.createDataFrame(day7, SCHEMA).write.format("delta").mode("append").save(str(tmp / "log"))
    inc = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=7, hours=2))
    assert [w.window_start for w in inc.windows] == [DAY0 + timedelta(days=6)]
    assert inc.cost["scan_rows"] == PER_DAY  # the older days' files were pruned
    assert read_output(spark, cfg.output_table("metrics")).count() == before + len(inc.results)
    assert inc.run_id != first.run_id
    assert not math.isnan(inc.cost["wall_time_s"])
