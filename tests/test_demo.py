"""`sparkdrift demo` end to end: local Spark + Delta + MLflow (SQLite) + the retrain project, and an MLflow server.

One demo run per module (about a minute on two cores); the tests then look at
what it left: the printed summary, the Delta tables, the MLflow store (through
the client and through a real `mlflow server` over HTTP), and a second run.
"""
from __future__ import annotations

import io
import json
import time
import urllib.parse
import urllib.request
from contextlib import redirect_stdout
from datetime import datetime, timezone

import pytest

from sparkdrift.demo import AS_OF, DRIFTED, demo_config, run_demo
from tests.browser import mlflow_server

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.e2e]

DRIFTED_FEATURES = {"monthly_charges", "contract", "support_calls"}
STABLE_FEATURES = {"tenure_months", "total_charges", "payment_method"}


def _run(spark, folder) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        rc = run_demo(spark, folder)
    return rc, out.getvalue()


def shared_demo(spark, tmp_path_factory) -> dict:
    """Run the demo once per test session (this module and test_notebooks share it) and return what it printed.

    Memoised in the session's base temp folder, so it holds whichever module asks first.
    """
    folder = tmp_path_factory.getbasetemp() / "shared-demo"
    done = folder / "first-run.json"
    if not done.exists():
        started = time.perf_counter()
        rc, text = _run(spark, folder)
        done.write_text(json.dumps({"rc": rc, "text": text, "elapsed": time.perf_counter() - started}))
    first = json.loads(done.read_text())
    return {"folder": folder, "cfg": demo_config(folder), **first}


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    result = shared_demo(spark, tmp_path_factory)
    print(result["text"])
    print(f"first demo run: {result['elapsed']:.1f}s")
    return result


def _detect_runs(cfg):
    from mlflow import MlflowClient

    client = MlflowClient(cfg.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(cfg.experiment_name)
    assert exp is not None, f"no MLflow experiment {cfg.experiment_name}"
    return client, client.search_runs([exp.experiment_id], filter_string="tags.`sparkdrift.job` = 'detect'")


def _retrains(spark, cfg) -> list:
    from sparkdrift.store import DeltaStore

    return [a for a in DeltaStore.of(spark, cfg).read_actions() if a.action == "retrain" and a.status in ("pending", "succeeded")]


def test_demo_data_is_deterministic():
    from sparkdrift.demo import _demo_rows

    a = _demo_rows(7, 300, 3)
    assert a == _demo_rows(7, 300, 3)
    assert a != _demo_rows(8, 300, 3)
    train, inference = a["churn_train"][0], a["churn_inference"][0]
    assert len(train) == 300
    nulls = sum(v is None for row in inference for v in row[2:8]) / (6 * len(inference))
    assert 0.001 < nulls < 0.015  # ~0.5% per feature column


def test_demo_tables_are_shaped_like_a_churn_model(spark, demo):
    from sparkdrift.demo import demo_tables

    paths = demo_tables(demo["folder"])
    train = spark.read.format("delta").load(paths["churn_train"])
    assert train.columns == ["customer_id", "tenure_months", "monthly_charges", "total_charges", "support_calls",
                             "contract", "payment_method", "churn_score", "churned"]
    assert train.count() == 20_000
    inference = spark.read.format("delta").load(paths["churn_inference"])
    assert "event_time" in inference.columns and "churned" not in inference.columns
    stats = inference.selectExpr("count(*)", "min(event_time)", "max(event_time)", "min(churn_score)",
                                 "max(churn_score)", "count(DISTINCT contract)").first()
    assert 40_000 <= stats[0] <= 60_000
    assert stats[1] >= datetime(2026, 1, 1) and stats[2] < datetime(2026, 1, 15)
    assert 0.0 <= stats[3] <= stats[4] <= 1.0
    assert stats[5] == 3
    labels = spark.read.format("delta").load(paths["churn_labels"])
    assert labels.columns == ["customer_id", "churned", "label_time"]
    joined = labels.join(inference, "customer_id")
    delays = joined.selectExpr("count(*)", "min(unix_timestamp(label_time) - unix_timestamp(event_time))",
                               "max(unix_timestamp(label_time) - unix_timestamp(event_time))").first()
    assert delays[0] == stats[0]
    assert 3 * 86400 <= delays[1] <= delays[2] < 10 * 86400


def test_demo_prints_summary_with_drifted_features_and_severity(demo):
    text = demo["text"]
    assert demo["rc"] == 0
    assert "overall severity: SEVERE" in text
    for feature in DRIFTED_FEATURES:
        assert feature in text
    assert "churn_score" in text  # prediction drift rule
    assert f"mlflow ui --backend-store-uri sqlite:///{demo['folder'].resolve()}/mlflow.db" in text
    assert "drift_report.html" in text
    assert str(demo["folder"].resolve() / "tables" / "drift_metrics") in text


def test_demo_drift_lands_in_the_metrics_table_only_where_injected(spark, demo):
    cfg = demo["cfg"]
    rows = (
        spark.read.format("delta").load(cfg.output_table("metrics"))
        .filter("reference = 'baseline' AND signal IN ('feature', 'prediction') AND drifted")
        .select("window_start", "feature").distinct().collect()
    )
    drifted = {r["feature"] for r in rows}
    assert DRIFTED_FEATURES <= drifted <= set(DRIFTED), drifted
    assert not drifted & STABLE_FEATURES
    assert min(r["window_start"] for r in rows) == datetime(2026, 1, 8)
    psi = {
        (r["window_start"], r["feature"]): r["value"]
        for r in spark.read.format("delta").load(cfg.output_table("metrics"))
        .filter("reference = 'baseline' AND statistic = 'psi'").collect()
    }
    assert psi[(datetime(2026, 1, 3), "monthly_charges")] < 0.05
    assert psi[(datetime(2026, 1, 10), "monthly_charges")] > 0.3
    # every breach is above its threshold and its noise floor; the floor is what chance gives at the window's size
    for r in (spark.read.format("delta").load(cfg.output_table("metrics"))
              .filter("reference = 'baseline' AND signal = 'feature' AND noise_floor IS NOT NULL").collect()):
        assert r["excess"] == pytest.approx(r["value"] - r["noise_floor"], abs=1e-12)
        if r["drifted"]:
            assert r["value"] > r["threshold"] and r["value"] > r["noise_floor"], r


def test_demo_mlflow_store_has_the_detect_run(demo):
    client, runs = _detect_runs(demo["cfg"])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["sparkdrift.severity"] == "severe"
    assert set(run.data.tags["sparkdrift.drifted_features"].split(",")) >= DRIFTED_FEATURES
    assert "drift/score" in run.data.metrics and "feature.monthly_charges/psi" in run.data.metrics
    history = client.get_metric_history(run.info.run_id, "feature.monthly_charges/psi")
    assert len(history) == 14  # one point per daily window
    floors = client.get_metric_history(run.info.run_id, "feature.monthly_charges/psi.noise_floor")
    assert len(floors) == 14 and all(0 < m.value < 0.1 for m in floors)  # ~3,600 rows a day
    assert run.data.tags["sparkdrift.noise_floor"].startswith("on: false-alarm budget 0.01 per window over ")
    assert run.data.tags["sparkdrift.errors"] == "0"
    assert run.data.tags["sparkdrift.actions"] == "retrain:superseded x6, retrain:succeeded"  # short enough to read
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"drift_report.html", "drift_report.json"} <= artifacts


def test_demo_rerun_is_idempotent(spark, demo):
    cfg = demo["cfg"]
    metrics = cfg.output_table("metrics")

    def snapshot():
        df = spark.read.format("delta").load(metrics)
        _, runs = _detect_runs(cfg)
        return df.count(), df.selectExpr("max(computed_at)").first()[0], len(_retrains(spark, cfg)), len(runs)

    before = snapshot()
    assert before[2] == 1, "the first run starts exactly one retrain"
    rc, text = _run(spark, demo["folder"])
    assert rc == 0
    assert "already stored (same table version and config): not rescanned" in text  # the job's rerun-safe path
    assert "nothing to do" in text
    assert "mlflow ui --backend-store-uri" in text and "drift_report.html" in text  # still says where to look
    assert snapshot() == before


def _get(base: str, path: str, **params) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def test_demo_results_over_the_mlflow_server(demo, tmp_path):
    _, runs = _detect_runs(demo["cfg"])
    run_id = runs[0].info.run_id
    with mlflow_server(demo["cfg"].mlflow.tracking_uri, tmp_path / "mlflow-server.log") as base:
        run = _get(base, "/api/2.0/mlflow/runs/get", run_id=run_id)["run"]
        assert run["info"]["status"] == "FINISHED"
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["sparkdrift.severity"] == "severe"

        history = _get(base, "/api/2.0/mlflow/metrics/get-history", run_id=run_id,
                       metric_key="feature.support_calls/psi")["metrics"]
        assert len(history) == 14
        by_time = sorted(history, key=lambda m: m["timestamp"])
        assert by_time[0]["value"] < 0.1 < 0.2 < by_time[-1]["value"]
        # the last window, 2026-01-14, is charted at its start: the date the report names it by
        assert by_time[-1]["timestamp"] == int(datetime(2026, 1, 14, tzinfo=timezone.utc).timestamp() * 1000)

        files = {f["path"] for f in _get(base, "/api/2.0/mlflow/artifacts/list", run_id=run_id)["files"]}
        assert {"drift_report.html", "drift_report.json"} <= files


def test_demo_as_of_is_two_hours_after_the_last_day():
    assert AS_OF.isoformat() == "2026-01-15T02:00:00+00:00"
