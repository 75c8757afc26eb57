"""MLflow logging against a real SQLite tracking store (no mocks)."""
from __future__ import annotations

import math
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sparkdrift.core.config import (
    Actions,
    MonitorConfig,
    ProductionSource,
    TableSource,
    Tracking,
    Webhook,
)
from sparkdrift.core.results import DriftResult
from sparkdrift.core.windows import Windows
from sparkdrift.sinks.tracking import (
    RUN_TAB,
    NoOpRun,
    config_params,
    describe_windows,
    log_artifacts,
    log_cost,
    log_results,
    log_summaries,
    metric_step,
    run_url,
    set_tags,
    start_run,
)

DAY = 86400
DAILY = Windows(seconds=DAY)
DAY0 = datetime(2026, 1, 8)
WINDOWS = (DAY0, DAY0 + timedelta(days=3))


@pytest.fixture(scope="module")
def _migrated_db(tmp_path_factory) -> Path:
    """Creating MLflow's schema takes ~1 s; do it once and copy the file per test."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def uri(tracking_uri, _migrated_db) -> str:
    """A fresh, empty store per test at the shared fixture's location."""
    shutil.copy(_migrated_db, tracking_uri[len("sqlite:///") :])
    return tracking_uri


def _cfg(uri: str | None, **tracking) -> MonitorConfig:
    return MonitorConfig(
        monitor="churn_model",
        baseline=TableSource(table="data/churn_train"),
        production=ProductionSource(table="data/churn_inference", timestamp_column="event_time"),
        thresholds={"psi": 0.2},
        actions=Actions(webhook=Webhook(url_env="SLACK_WEBHOOK_URL")),
        mlflow=Tracking(tracking_uri=uri, **tracking),
    )


def _start(cfg: MonitorConfig, **kw):
    args = dict(job="detect", window_range=WINDOWS, baseline_id="b-001",
                source_versions={"baseline": 2, "production": 7})
    args.update(kw)
    return start_run(cfg, **args)


def _results(values: dict[str, list[float]]) -> list[DriftResult]:
    rows = []
    for feature, series in values.items():
        for i, v in enumerate(series):
            rows.append(DriftResult(
                monitor="churn_model", baseline_id="b-001", window_start=DAY0 + timedelta(days=i),
                window_end=DAY0 + timedelta(days=i + 1), feature=feature, statistic="psi", value=v,
                threshold=0.2, drifted=v > 0.2,
            ))
    return rows


def _ms(dt: datetime) -> int:
    return int(dt.replace(tzinfo=timezone.utc).timestamp()) * 1000


def test_run_in_named_experiment_with_params_and_tags(uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    client = MlflowClient(uri)
    assert client.get_experiment_by_name("sparkdrift/churn_model") is None

    with _start(_cfg(uri)) as run:
        set_tags(run, {"sparkdrift.severity": "severe", "sparkdrift.actions": "retrain"})

    exp = client.get_experiment_by_name("sparkdrift/churn_model")
    assert exp is not None and run.info.experiment_id == exp.experiment_id
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # MLflow 3: the model view, not GenAI
    # artifacts of a SQLite store sit next to the database, not in the CWD
    assert exp.artifact_location.startswith((tmp_path / "mlartifacts").as_uri())
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "churn_model detect 2026-01-08..2026-01-10"

    params = got.data.params
    assert params["monitor"] == "churn_model"
    assert params["production.granularity"] == "day"
    assert params["thresholds.psi"] == "0.2"
    assert params["binning.coarse_bins"] == "10"
    assert params["baseline_id"] == "b-001"
    assert params["baseline_id.pinned"] == "None"
    assert params["source.baseline.version"] == "2"
    assert params["source.production.version"] == "7"
    assert params["actions.webhook.url_env"] == "***"  # url/token/secret/password keys: redacted
    assert len(params) > 60  # the whole config, logged in batches of <= 100 params

    tags = got.data.tags
    assert tags["sparkdrift.monitor"] == "churn_model"
    assert tags["sparkdrift.job"] == "detect"
    assert tags["sparkdrift.baseline_id"] == "b-001"
    assert tags["sparkdrift.windows"] == "3 (2026-01-08..2026-01-10)"
    assert tags["sparkdrift.severity"] == "severe"
    assert tags["sparkdrift.actions"] == "retrain"
    assert run.info.url == f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}/{RUN_TAB}"
    assert not (tmp_path / "mlruns").exists()


def test_metrics_read_back_with_window_steps_and_timestamps(uri):
    with _start(_cfg(uri)) as run:
        n = log_results(run, _results({"age": [0.05, 0.31, 0.12], "tenure": [0.01, math.nan, 0.02]}))
    assert n == 5  # NaN skipped

    client = MlflowClient(uri)
    age = sorted(client.get_metric_history(run.info.run_id, "feature.age/psi"), key=lambda m: m.step)
    first_step = int(DAY0.replace(tzinfo=timezone.utc).timestamp()) // DAY
    assert [(m.value, m.step, m.timestamp) for m in age] == [
        (0.05, first_step, _ms(DAY0)),  # at the window's start: the date the report names it by
        (0.31, first_step + 1, _ms(DAY0 + timedelta(days=1))),
        (0.12, first_step + 2, _ms(DAY0 + timedelta(days=2))),
    ]
    tenure = sorted(client.get_metric_history(run.info.run_id, "feature.tenure/psi"), key=lambda m: m.step)
    assert [(m.value, m.step) for m in tenure] == [(0.01, first_step), (0.02, first_step + 2)]


def test_metric_names_follow_the_result_row():
    row = _results({"age": [0.1]})[0]
    assert row.metric_name == "feature.age/psi"
    from dataclasses import replace

    assert replace(row, signal="prediction", feature="score").metric_name == "prediction.score/psi"
    assert replace(row, signal="quality", statistic="completeness").metric_name == "quality.age/completeness"
    assert replace(row, reference="previous_window").metric_name == "feature.age/psi.vs_previous_window"
    # a naive datetime is UTC; an aware one is converted
    aware = datetime(2026, 1, 8, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert metric_step(aware, DAILY) == metric_step(DAY0, DAILY) == 20461


def ui_sections(keys) -> list[str]:
    """The sections MLflow 3's run page (Model metrics) charts ``keys`` in, top to bottom.

    As its JS bundle does it (mlflow/server/js/build): a section per key prefix
    before the first '/', in sorted key order, keys without '/' last under
    "Model metrics". tests/test_browser.py reads the same order off the rendered page.
    """
    keys = sorted(keys)
    named = [k.split("/", 1)[0] for k in keys if "/" in k]
    return list(dict.fromkeys(named)) + (["Model metrics"] if len(named) < len(keys) else [])


def test_the_run_page_opens_on_the_drift_and_ends_on_the_cost(uri):
    """Window verdicts first, then a section per column (a slice and a comparison sit with it), the run cost last."""
    from dataclasses import replace

    from sparkdrift.core.policy import WindowDecision
    from sparkdrift.detect import window_summaries

    rows = _results({"age": [0.05, 0.31], "tenure": [0.01, 0.02]})
    rows += [replace(r, signal="prediction", feature="score") for r in rows[:2]]
    rows += [replace(rows[0], signal="quality", statistic="completeness", value=0.99),
             replace(rows[0], signal="performance", feature="score", statistic="accuracy", value=0.8),
             replace(rows[1], reference="previous_window"), replace(rows[1], slice="country", slice_value="DE")]
    decisions = [WindowDecision("churn_model", DAY0 + timedelta(days=i), DAY0 + timedelta(days=i + 1),
                                score=s, severity=v, n_drifted=n, share_drifted=n / 2)
                 for i, (s, v, n) in enumerate([(0.05, "none", 0), (0.31, "severe", 1)])]
    with _start(_cfg(uri)) as run:
        log_results(run, rows)
        log_summaries(run, window_summaries(rows, decisions))
        log_cost(run, {"rows_read": 5500, "wall_time_s": 4.5, "stage.counting_s": 1.25})

    keys = MlflowClient(uri).get_run(run.info.run_id).data.metrics
    assert ui_sections(keys) == ["drift", "feature.age", "feature.tenure", "performance.score", "prediction.score",
                                 "quality.age", "run_cost"]
    assert {"drift/score", "drift/severity", "drift/n_drifted", "drift/share_drifted", "drift/prediction_psi_max",
            "feature.age/psi.vs_previous_window", "feature.age/psi.slice.country.DE",
            "run_cost/stage.counting_s"} <= set(keys)


def test_metrics_are_logged_in_batches_of_at_most_1000(uri):
    n_features, n_windows = 250, 10  # 2500 values
    values = {f"f{i:03d}": [0.001 * (i + w) for w in range(n_windows)] for i in range(n_features)}
    calls: list[int] = []
    with _start(_cfg(uri)) as run:
        real = run.client.log_batch

        def counting(run_id, metrics=(), params=(), tags=(), synchronous=None):
            if metrics:
                calls.append(len(metrics))
            return real(run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)

        run.client.log_batch = counting
        assert log_results(run, _results(values)) == 2500
    assert len(calls) <= math.ceil(2500 / 1000) and max(calls) <= 1000 and sum(calls) == 2500

    history = MlflowClient(uri).get_metric_history(run.info.run_id, "feature.f249/psi")
    assert len(history) == n_windows


def test_second_run_is_new_and_leaves_the_first_alone(uri):
    cfg = _cfg(uri)
    with _start(cfg) as first:
        log_results(first, _results({"age": [0.05, 0.31, 0.12]}))
    with _start(cfg) as second:
        log_results(second, _results({"age": [0.5, 0.6, 0.7]}))

    assert first.info.run_id != second.info.run_id
    assert first.info.experiment_id == second.info.experiment_id
    client = MlflowClient(uri)
    h1 = sorted(client.get_metric_history(first.info.run_id, "feature.age/psi"), key=lambda m: m.step)
    h2 = sorted(client.get_metric_history(second.info.run_id, "feature.age/psi"), key=lambda m: m.step)
    assert [m.value for m in h1] == [0.05, 0.31, 0.12]
    assert [m.value for m in h2] == [0.5, 0.6, 0.7]
    assert [m.step for m in h1] == [m.step for m in h2]  # the same window, the same step
    runs = client.search_runs([first.info.experiment_id])
    assert len(runs) == 2


def test_exception_inside_the_run_marks_it_failed(uri):
    with pytest.raises(RuntimeError, match="boom"):
        with _start(_cfg(uri)) as run:
            raise RuntimeError("boom")
    got = MlflowClient(uri).get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["sparkdrift.error"] == "RuntimeError: boom"


def test_disabled_tracking_creates_nothing(uri):
    with _start(_cfg(uri, enabled=False)) as run:
        assert isinstance(run, NoOpRun) and run.info.run_id is None
        assert log_results(run, _results({"age": [0.1]})) == 0
        log_summaries(run, [])
        log_cost(run, {"rows_read": 1})
        set_tags(run, {"a": "b"})
        log_artifacts(run, ".")
    client = MlflowClient(uri)
    assert client.get_experiment_by_name("sparkdrift/churn_model") is None
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_summaries_cost_and_artifacts(uri, tmp_path):
    summaries = [
        {"window_start": DAY0 + timedelta(days=i), "window_end": DAY0 + timedelta(days=i + 1),
         "drift/score": s, "drift/n_drifted": n, "drift/share_drifted": n / 4,
         "drift/prediction_psi_max": math.nan, "severity": "minor"}
        for i, (s, n) in enumerate([(0.1, 0), (0.35, 2)])
    ]
    report = tmp_path / "report"
    (report / "plots").mkdir(parents=True)
    (report / "drift_report.html").write_text("<html></html>")
    (report / "plots" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    with _start(_cfg(uri, experiment="team/drift")) as run:
        assert log_summaries(run, summaries) == 6  # NaN and the text value skipped
        log_cost(run, {"rows_read": 5500, "bytes_read": 3.5e6, "wall_time_s": 4.5, "stage.read_s": 1.25})
        log_artifacts(run, report, "report")

    client = MlflowClient(uri)
    assert client.get_experiment_by_name("team/drift").experiment_id == run.info.experiment_id
    score = sorted(client.get_metric_history(run.info.run_id, "drift/score"), key=lambda m: m.step)
    step0 = metric_step(DAY0, DAILY)
    assert [(m.value, m.step, m.timestamp) for m in score] == [
        (0.1, step0, _ms(DAY0)),
        (0.35, step0 + 1, _ms(DAY0 + timedelta(days=1))),
    ]
    metrics = client.get_run(run.info.run_id).data.metrics
    assert metrics["drift/n_drifted"] == 2 and "drift/prediction_psi_max" not in metrics
    assert metrics["run_cost/rows_read"] == 5500 and metrics["run_cost/stage.read_s"] == 1.25
    top = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert top == {"report/drift_report.html", "report/plots"}


def test_config_params_never_carry_secrets():
    cfg = _cfg("https://alice:s3cret@mlflow.example.com")
    params = config_params(cfg)
    assert params["mlflow.tracking_uri"] == "https://***@mlflow.example.com"
    assert params["actions.webhook.url_env"] == "***"
    assert not any("s3cret" in v for v in params.values())
    assert all(len(v) <= 6000 for v in params.values())


def test_run_urls_and_window_labels(monkeypatch):
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    assert run_url("http://mlflow.internal:5000/", "3", "abc") == "http://mlflow.internal:5000/#/experiments/3/runs/abc/" + RUN_TAB
    assert run_url("https://u:p@host/prefix", "3", "abc") == "https://host/prefix/#/experiments/3/runs/abc/" + RUN_TAB
    assert run_url("sqlite:///x/mlflow.db", "1", "r") == "http://127.0.0.1:5000/#/experiments/1/runs/r/" + RUN_TAB
    assert run_url(None, "1", "r") == "http://127.0.0.1:5000/#/experiments/1/runs/r/" + RUN_TAB
    assert run_url("databricks", "7", "r").endswith("#mlflow/experiments/7/runs/r")
    monkeypatch.setenv("DATABRICKS_HOST", "adb-1.azuredatabricks.net")
    assert run_url("databricks", "7", "r") == "https://adb-1.azuredatabricks.net/#mlflow/experiments/7/runs/r"

    assert describe_windows((DAY0, DAY0 + timedelta(days=7)), DAILY) == (7, "2026-01-08..2026-01-14")
    assert describe_windows((DAY0, DAY0 + timedelta(days=1)), DAILY) == (1, "2026-01-08")
    hours = (DAY0 + timedelta(hours=6), DAY0 + timedelta(hours=12))
    assert describe_windows(hours, Windows(seconds=3600)) == (6, "2026-01-08T06:00..2026-01-08T11:00")
    assert describe_windows(None, DAILY) == (0, "")


def _dead_pid() -> int:
    """The id of a process that has just exited (and been reaped) on this host."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_left_running_by_a_killed_job_is_closed_by_the_next(tracking_uri):
    import os
    import socket

    cfg = _cfg(tracking_uri)
    with _start(cfg):  # creates the experiment
        pass
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(cfg.experiment_name).experiment_id
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    here = {"sparkdrift.monitor": "churn_model", "sparkdrift.host": socket.gethostname()}
    elsewhere = {"sparkdrift.monitor": "churn_model", "sparkdrift.host": "another-driver", "sparkdrift.pid": "1"}

    def running(age_hours: float, tags: dict) -> str:
        return client.create_run(exp, start_time=now_ms - int(age_hours * 3600 * 1000), tags=tags).info.run_id

    old = running(25, elsewhere)  # never closed, over a day ago, on another driver
    recent = running(1, elsewhere)  # maybe still working on another driver
    orphan = running(0.01, {**here, "sparkdrift.pid": str(_dead_pid())})  # killed a moment ago on this host
    alive = running(0.01, {**here, "sparkdrift.pid": str(os.getpid())})  # a live process here: not ours to close
    other = running(48, {"sparkdrift.monitor": "x"})
    with _start(cfg) as run:
        current = run.info.run_id
    for killed, why in ((old, "RUNNING for over 1 day, 0:00:00"), (orphan, "its process is gone")):
        assert client.get_run(killed).info.status == "KILLED"
        assert client.get_run(killed).data.tags["sparkdrift.error"] == (
            f"left RUNNING by a killed job ({why}); closed by run {current}")
    assert [client.get_run(r).info.status for r in (recent, alive, other)] == ["RUNNING"] * 3
    assert client.get_run(current).info.status == "FINISHED"
    assert client.get_run(current).data.tags["sparkdrift.pid"] == str(os.getpid())


def test_a_sqlite_store_killed_while_being_created_never_blocks_later_runs(tmp_path):
    """SIGKILL at several moments of creating the store: afterwards it is absent or whole, and a run works."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    create = f"from sparkdrift.sinks.tracking import _create_sqlite_store; _create_sqlite_store({uri!r})"
    for delay in (1.0, 2.5, 4.0, 5.5, 7.0):  # creating takes ~2-7 s: import, then ~50 schema migrations
        child = subprocess.Popen([sys.executable, "-c", create])
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if db.exists():  # finished before the kill: a whole store, with MLflow's default experiment
            with sqlite3.connect(db) as con:  # (not MlflowClient: it caches its engine per URI, file unlinked next)
                assert con.execute("SELECT name FROM experiments").fetchall() == [("Default",)]
            db.unlink()
    cfg = _cfg(uri)
    with _start(cfg) as run:
        run_id = run.info.run_id
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]  # killed creators' files cleared
