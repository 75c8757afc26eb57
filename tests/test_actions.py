"""Actions: real webhook server, real MLflow project runs, a local stand-in for the Databricks
workspace — cooldown, dedup, crash recovery, dry-run, no secrets.

The records go to the in-memory store (the rules are the store's, not Delta's),
except in the two tests marked ``spark`` that check the real Delta actions table."""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sparkdrift.actions import apply_actions, webhook
from sparkdrift.actions.retrain import retrain_parameters
from sparkdrift.core.config import (
    Actions, MonitorConfig, Output, ProductionSource, Retrain, TableSource, Tracking, Webhook,
)
from sparkdrift.core.planning import ALERT_CAP, ActionRecord, dedup_key
from sparkdrift.core.policy import WindowDecision
from sparkdrift.errors import ActionError, ActionFailed
from sparkdrift.store import DeltaStore, MemoryStore
from sparkdrift.store.delta import ACTIONS_SCHEMA
from sparkdrift.store.tables import read_output

REPO = Path(__file__).resolve().parents[1]
UTC = timezone.utc
T0 = datetime(2026, 1, 5)  # naive, as windows come from Spark (UTC session)
DAY = timedelta(days=1)
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
HOOK_ENV = "SPARKDRIFT_TEST_HOOK"
HOOK_PATH = "/services/T000/B000/XoXoSECRETtoken"
RUN_URL = "http://mlflow.local/#/experiments/1/runs/driftrun1"


# --------------------------------------------------------------------------- fixtures


class _Server(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.responses: list[tuple[int, object, float]] = []  # consumed first, then `default`
        self.default: tuple[int, object, float] = (200, "ok", 0.0)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def _handle(self):
        srv: _Server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with srv.lock:
            srv.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": body})
            status, payload, delay = srv.responses.pop(0) if srv.responses else srv.default
        if delay:
            time.sleep(delay)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(payload, str) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_POST = do_GET = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    monkeypatch.setattr(webhook, "BACKOFF_SECONDS", 0.01)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def hook(server, monkeypatch):
    url = server.url + HOOK_PATH
    monkeypatch.setenv(HOOK_ENV, url)
    return url


def make_cfg(tmp_path, *, webhook=None, retrain=None, dry_run=False, fail_on_error=False, tracking_uri=None):
    return MonitorConfig(
        monitor="churn",
        baseline=TableSource(table="unused/baseline"),
        production=ProductionSource(table="unused/production", timestamp_column="ts"),
        actions=Actions(dry_run=dry_run, fail_on_error=fail_on_error, webhook=webhook, retrain=retrain),
        output=Output(location=str(tmp_path / "tables")),
        mlflow=Tracking(tracking_uri=tracking_uri),
    )


def decision(day=0, severity="severe", score=0.34, monitor="churn"):
    rules = {
        "severe": ("score max:psi=0.34 >= severe 0.3", "4 drifted features >= 3"),
        "moderate": ("score max:psi=0.22 >= moderate 0.2",),
        "minor": ("score max:psi=0.12 >= minor 0.1",),
        "none": (),
    }[severity]
    drifted = {"age": {"psi": 0.34, "js": 0.12}, "income": {"psi": 0.25}} if severity != "none" else {}
    return WindowDecision(
        monitor=monitor, window_start=T0 + day * DAY, window_end=T0 + (day + 1) * DAY, score=score,
        severity=severity, rules=rules, drifted=drifted, n_drifted=len(drifted), share_drifted=len(drifted) / 4,
    )


@pytest.fixture
def store():
    return MemoryStore("churn")


def table_rows(store) -> dict[str, ActionRecord]:
    return {r.dedup_key: r for r in store.read_actions()}


def counter_command(path: Path) -> tuple[str, ...]:
    """A retrain command that appends its SPARKDRIFT_* environment to a JSON-lines file."""
    script = (
        "import json, os, sys; "
        "open(sys.argv[1], 'a').write(json.dumps({k: v for k, v in os.environ.items() "
        "if k.startswith('SPARKDRIFT_') and k != 'SPARKDRIFT_TEST_HOOK'}) + '\\n')"
    )
    return (sys.executable, "-c", script, str(path))


def calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --------------------------------------------------------------------------- webhook


@pytest.mark.spark
@pytest.mark.e2e
def test_webhook_alert_exact_payload_and_record(spark, tmp_path, server, hook, caplog):
    caplog.set_level(logging.DEBUG, logger="sparkdrift")
    caplog.set_level(logging.DEBUG, logger="urllib")
    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV))
    store = DeltaStore.of(spark, cfg)
    records = apply_actions(store, cfg, [decision(0, "severe")], "driftrun1", RUN_URL, now=NOW)

    assert len(server.requests) == 1
    req = server.requests[0]
    assert (req["method"], req["path"]) == ("POST", HOOK_PATH)
    assert req["headers"]["Content-Type"] == "application/json"
    assert json.loads(req["body"]) == {
        "text": "sparkdrift: severe drift on churn, window 2026-01-05T00:00:00Z to 2026-01-06T00:00:00Z "
                "(score 0.34) <" + RUN_URL + "|MLflow run>",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "churn: severe drift"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Monitor*\nchurn"},
                {"type": "mrkdwn", "text": "*Severity*\nsevere"},
                {"type": "mrkdwn", "text": "*Window*\n2026-01-05T00:00:00Z to 2026-01-06T00:00:00Z"},
                {"type": "mrkdwn", "text": "*Score*\n0.34"},
            ]},
            {"type": "section", "text": {"type": "mrkdwn", "text":
                "*Rules*\n• score max:psi=0.34 &gt;= severe 0.3\n• 4 drifted features &gt;= 3"}},
            {"type": "section", "text": {"type": "mrkdwn", "text":
                "*Drifted features: 2* (50% of features)\n• `age`: js=0.12, psi=0.34\n• `income`: psi=0.25"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{RUN_URL}|Open the MLflow run>"}},
        ],
    }

    key = dedup_key("churn", T0, "alert", "severe")
    assert records == [ActionRecord(
        monitor="churn", window_start=T0.replace(tzinfo=UTC), window_end=(T0 + DAY).replace(tzinfo=UTC),
        severity="severe", rules="score max:psi=0.34 >= severe 0.3; 4 drifted features >= 3",
        action="alert", kind="webhook", target=f"{server.url}/***", status="succeeded", dedup_key=key,
        drift_run_id="driftrun1", retrain_run_id=None, error=None, decided_at=NOW,
        finished_at=records[0].finished_at,
    )]
    assert records[0].finished_at >= NOW
    assert list(table_rows(store).values()) == records
    # the table has exactly the documented schema
    assert read_output(spark, cfg.output_table("actions")).schema.simpleString() == (
        "struct<" + ",".join(f.replace(" ", ":", 1) for f in ACTIONS_SCHEMA.split(", ")) + ">"
    )
    # logged, but never the URL
    assert "churn window 2026-01-05T00:00:00Z: severity severe" in caplog.text
    assert "alert severe via webhook -> http://127.0.0.1" in caplog.text
    assert "SECRET" not in caplog.text and hook not in caplog.text


def test_webhook_retries_then_succeeds(store, tmp_path, server, hook):
    server.responses = [(500, "boom", 0), (503, "busy", 0)]
    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV, retries=3))
    (rec,) = apply_actions(store, cfg, [decision(0)], "r1", None, now=NOW)
    assert len(server.requests) == 3
    assert all(json.loads(r["body"]) == json.loads(server.requests[0]["body"]) for r in server.requests)
    assert rec.status == "succeeded" and rec.error is None


def test_webhook_client_error_is_not_retried(store, tmp_path, server, hook):
    server.responses = [(404, "no such hook", 0)]
    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV, retries=3))
    (rec,) = apply_actions(store, cfg, [decision(0)], "r1", None, now=NOW)
    assert len(server.requests) == 1
    assert (rec.status, rec.error) == ("failed", "webhook answered HTTP 404 Not Found (not retried)")


def test_webhook_timeout_is_honoured_and_fail_on_error_raises_after_recording(store, tmp_path, server, hook):
    server.default = (200, "late", 2.0)
    t = time.monotonic()
    with pytest.raises(ActionFailed, match=r"^webhook failed after 2 attempt\(s\): timed out after 0.3s$"):
        webhook.post_webhook(server.url + HOOK_PATH, {"text": "x"}, timeout=0.3, retries=1)
    assert time.monotonic() - t < 1.5  # two attempts of 0.3 s, not the server's 2 s
    assert len(server.requests) == 2

    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV, timeout_seconds=0.3, retries=1), fail_on_error=True)
    with pytest.raises(ActionError, match=r"1 action\(s\) failed .*alert via webhook for window "
                                          r"2026-01-05T00:00:00Z: webhook failed after 2 attempt\(s\): "
                                          r"timed out after 0.3s"):
        apply_actions(store, cfg, [decision(0)], "r1", None, now=NOW)
    assert len(server.requests) == 4
    (row,) = table_rows(store).values()
    assert (row.status, row.error) == ("failed", "webhook failed after 2 attempt(s): timed out after 0.3s")


def test_missing_webhook_env_var_names_key_and_variable(store, tmp_path, monkeypatch):
    monkeypatch.delenv(HOOK_ENV, raising=False)
    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV))
    with pytest.raises(ActionError, match=f"actions.webhook.url_env: environment variable {HOOK_ENV} is not set"):
        apply_actions(store, cfg, [decision(0)], "r1", None, now=NOW)
    assert store.read_actions() == []  # nothing recorded, nothing sent
    monkeypatch.setenv(HOOK_ENV, "file:///etc/passwd")
    with pytest.raises(ActionError, match=f"{HOOK_ENV} does not hold an http\\(s\\) URL"):
        apply_actions(store, cfg, [decision(0)], "r1", None, now=NOW)


def test_escalation_alerts_within_cooldown(store, tmp_path, server, hook):
    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV, cooldown="1h"))
    (a,) = apply_actions(store, cfg, [decision(0, "minor", 0.12)], "r1", None, now=NOW)
    (b,) = apply_actions(store, cfg, [decision(1, "severe")], "r2", None, now=NOW + timedelta(minutes=5))
    (c,) = apply_actions(store, cfg, [decision(2, "moderate", 0.22)], "r3", None, now=NOW + timedelta(minutes=10))
    assert [a.status, b.status, c.status] == ["succeeded", "succeeded", "skipped_cooldown"]
    assert c.error == "alert cooldown 1h: last alert at 2026-01-10T12:05:00Z"
    assert len(server.requests) == 2


# --------------------------------------------------------------------------- retrain triggers


def test_databricks_job_request(store, tmp_path, server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="sparkdrift")
    caplog.set_level(logging.DEBUG, logger="databricks")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    for var in ("DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_CONFIG_PROFILE",
                "DATABRICKS_USERNAME", "DATABRICKS_PASSWORD", "DATABRICKS_AUTH_TYPE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    monkeypatch.setenv("DATABRICKS_HOST", server.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-test")
    server.default = (200, {"run_id": 123, "number_in_job": 1}, 0)
    cfg = make_cfg(tmp_path, retrain=Retrain(kind="databricks_job", job_id=42, parameters={"model": "churn"}))
    d = decision(0, "severe")
    (rec,) = apply_actions(store, cfg, [d], "driftrun1", RUN_URL, now=NOW)

    key = dedup_key("churn", T0, "retrain", "severe")
    # one POST; the SDK may also read the host's public metadata (GET /.well-known/databricks-config)
    (req,) = [r for r in server.requests if r["method"] != "GET"]
    assert {r["path"] for r in server.requests if r["method"] == "GET"} <= {"/.well-known/databricks-config"}
    assert req["method"] == "POST"
    assert req["path"] in ("/api/2.1/jobs/run-now", "/api/2.2/jobs/run-now")
    assert req["headers"]["Authorization"] == "Bearer dapi-test"
    assert json.loads(req["body"]) == {
        "job_id": 42,
        "idempotency_token": key,
        "job_parameters": {
            "reason": "severe drift: score max:psi=0.34 >= severe 0.3; 4 drifted features >= 3",
            "window_start": "2026-01-05T00:00:00Z",
            "window_end": "2026-01-06T00:00:00Z",
            "drifted_features": "age,income",
            "drift_run_id": "driftrun1",
            "model": "churn",
        },
    }
    assert (rec.status, rec.kind, rec.action, rec.retrain_run_id, rec.target) == (
        "succeeded", "databricks_job", "retrain", "123", "databricks job 42")
    assert table_rows(store)[key].retrain_run_id == "123"

    # rerun: deduplicated, no request at all
    n = len([r for r in server.requests if r["method"] == "POST"])
    (again,) = apply_actions(store, cfg, [d], "driftrun2", RUN_URL, now=NOW + timedelta(days=3))
    assert len([r for r in server.requests if r["method"] == "POST"]) == n and again == table_rows(store)[key]

    # a crash left a pending row: the retry reuses the idempotency token (Databricks dedups it)
    d2 = decision(5, "severe")
    key2 = dedup_key("churn", d2.window_start, "retrain", "severe")
    pending = ActionRecord("churn", d2.window_start.replace(tzinfo=UTC), d2.window_end.replace(tzinfo=UTC),
                           "severe", "", "retrain", "databricks_job", "databricks job 42", "pending", key2,
                           drift_run_id="crashed", decided_at=NOW + timedelta(days=5))
    store.write_actions([pending])
    (rec2,) = apply_actions(store, cfg, [d2], "driftrun3", None, now=NOW + timedelta(days=5, minutes=1))
    assert json.loads([r for r in server.requests if r["method"] == "POST"][-1]["body"])["idempotency_token"] == key2
    assert rec2.status == "succeeded"
    assert "dapi-test" not in caplog.text


def test_command_trigger_gets_values_as_env(store, tmp_path, server):
    out = tmp_path / "calls.jsonl"
    cfg = make_cfg(tmp_path, retrain=Retrain(kind="command", command=counter_command(out), synchronous=True,
                                             parameters={"train-table": "main.ml.churn"}))
    (rec,) = apply_actions(store, cfg, [decision(0, "severe")], "driftrun1", None, now=NOW)
    assert rec.status == "succeeded" and rec.target == "python3 (+3 args)".replace("python3", Path(sys.executable).name)
    assert calls(out) == [{
        "SPARKDRIFT_REASON": "severe drift: score max:psi=0.34 >= severe 0.3; 4 drifted features >= 3",
        "SPARKDRIFT_WINDOW_START": "2026-01-05T00:00:00Z",
        "SPARKDRIFT_WINDOW_END": "2026-01-06T00:00:00Z",
        "SPARKDRIFT_DRIFTED_FEATURES": "age,income",
        "SPARKDRIFT_DRIFT_RUN_ID": "driftrun1",
        "SPARKDRIFT_TRAIN_TABLE": "main.ml.churn",
        "SPARKDRIFT_DEDUP_KEY": dedup_key("churn", T0, "retrain", "severe"),
        "SPARKDRIFT_MONITOR": "churn",
        "SPARKDRIFT_SEVERITY": "severe",
    }]


def test_failing_command_is_recorded_then_raised(store, tmp_path):
    cfg = make_cfg(tmp_path, retrain=Retrain(kind="command", command=(sys.executable, "-c", "raise SystemExit(3)"),
                                             synchronous=True), fail_on_error=True)
    with pytest.raises(ActionError, match="retrain via command for window 2026-01-05T00:00:00Z: command exited with code 3"):
        apply_actions(store, cfg, [decision(0)], "r1", None, now=NOW)
    (row,) = table_rows(store).values()
    assert (row.status, row.error) == ("failed", "command exited with code 3")
    # without fail_on_error: recorded and returned; a failed action is retried on the next run
    cfg2 = make_cfg(tmp_path, retrain=Retrain(kind="command", command=("/nonexistent/retrain",)))
    (rec,) = apply_actions(store, cfg2, [decision(0)], "r2", None, now=NOW + timedelta(minutes=1))
    assert (rec.status, rec.error) == ("failed", "command not found: retrain")


def test_cooldown_and_dedup_across_reruns(store, tmp_path, server, hook):
    out = tmp_path / "calls.jsonl"
    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV, cooldown="1h"),
                   retrain=Retrain(kind="command", command=counter_command(out), synchronous=True, cooldown="24h"))

    def run(days, at):
        recs = apply_actions(store, cfg, [decision(x) for x in days], "r", None, now=at)
        return {(r.action, r.window_start.day): r.status for r in recs}

    assert run([0], NOW) == {("alert", 5): "succeeded", ("retrain", 5): "succeeded"}
    # rerun of the same window (twice): nothing sent or started again
    assert run([0], NOW + timedelta(minutes=5)) == {("alert", 5): "succeeded", ("retrain", 5): "succeeded"}
    assert run([0], NOW + timedelta(days=2)) == {("alert", 5): "succeeded", ("retrain", 5): "succeeded"}
    assert (len(server.requests), len(calls(out))) == (1, 1)
    # a new breach inside both cooldowns
    assert run([1], NOW + timedelta(minutes=10)) == {("alert", 6): "skipped_cooldown", ("retrain", 6): "skipped_cooldown"}
    # alert cooldown over, retrain cooldown not
    assert run([1], NOW + timedelta(hours=2)) == {("alert", 6): "succeeded", ("retrain", 6): "skipped_cooldown"}
    rows = table_rows(store)
    assert rows[dedup_key("churn", T0 + DAY, "retrain", "severe")].error == (
        "retrain cooldown 24h: last retrain at 2026-01-10T12:00:00Z")
    # both over
    assert run([2], NOW + timedelta(hours=25)) == {("alert", 7): "succeeded", ("retrain", 7): "succeeded"}
    assert (len(server.requests), len(calls(out))) == (3, 2)
    assert len(table_rows(store)) == 6


def test_backfill_retrains_latest_window_only_and_caps_alerts(store, tmp_path, server, hook):
    out = tmp_path / "calls.jsonl"
    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV),
                   retrain=Retrain(kind="command", command=counter_command(out), synchronous=True))
    ds = [decision(x) for x in range(7)] + [decision(7, "none", 0.01)]
    recs = apply_actions(store, cfg, ds, "r", None, now=NOW)
    alerts = {r.window_start.day: r.status for r in recs if r.action == "alert"}
    retrains = {r.window_start.day: r.status for r in recs if r.action == "retrain"}
    assert alerts == {5: "superseded", 6: "superseded", 7: "succeeded", 8: "succeeded", 9: "succeeded",
                      10: "succeeded", 11: "succeeded"}
    assert len(server.requests) == ALERT_CAP == 5
    # the latest window (day 12) is not breached: no retrain, the older breaches are superseded
    assert set(retrains.values()) == {"superseded"} and len(retrains) == 7 and calls(out) == []

    recs = apply_actions(store, cfg, ds[:7], "r2", None, now=NOW + timedelta(minutes=1))
    retrains = {r.window_start.day: r.status for r in recs if r.action == "retrain"}
    assert retrains == {**{d: "superseded" for d in range(5, 11)}, 11: "succeeded"}
    assert [c["SPARKDRIFT_WINDOW_START"] for c in calls(out)] == ["2026-01-11T00:00:00Z"]
    assert len(server.requests) == 5  # the alerts already sent are not repeated


def test_dry_run_sends_and_starts_nothing(store, tmp_path, server, hook, tracking_uri):
    import mlflow

    out = tmp_path / "calls.jsonl"
    retrain = Retrain(kind="mlflow_project", uri=str(REPO / "examples" / "retrain"), synchronous=True)
    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV), retrain=retrain, dry_run=True,
                   tracking_uri=tracking_uri)
    recs = apply_actions(store, cfg, [decision(0)], "r1", RUN_URL, now=NOW)
    assert {(r.action, r.kind, r.status) for r in recs} == {("alert", "webhook", "dry_run"),
                                                          ("retrain", "mlflow_project", "dry_run")}
    assert server.requests == []
    client = mlflow.MlflowClient(tracking_uri)
    assert client.get_experiment_by_name("sparkdrift/churn-retrain") is None
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
    assert {r.status for r in table_rows(store).values()} == {"dry_run"}

    # a dry run does not need the secret, and does not block the real run that follows
    cfg_real = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV),
                        retrain=Retrain(kind="command", command=counter_command(out), synchronous=True))
    recs = apply_actions(store, cfg_real, [decision(0)], "r2", None, now=NOW + timedelta(minutes=1))
    assert {r.status for r in recs} == {"succeeded"} and len(server.requests) == 1 and len(calls(out)) == 1


# --------------------------------------------------------------------------- MLflow projects


@pytest.mark.slow
def test_mlflow_project_retrain_example(store, tmp_path, server, hook, tracking_uri, monkeypatch, caplog):
    import mlflow

    caplog.set_level(logging.DEBUG, logger="sparkdrift")
    caplog.set_level(logging.DEBUG, logger="mlflow")
    monkeypatch.chdir(tmp_path)  # artifacts of the new experiment go to ./mlruns: keep them in tmp_path
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-secret-token")
    retrain = Retrain(kind="mlflow_project", uri=str(REPO / "examples" / "retrain"), synchronous=True,
                      env_manager="local", parameters={"registered_model": "churn-retrained"})
    cfg = make_cfg(tmp_path, webhook=Webhook(url_env=HOOK_ENV), retrain=retrain, tracking_uri=tracking_uri)
    mlflow.set_tracking_uri("sqlite:///elsewhere.db")
    try:
        recs = apply_actions(store, cfg, [decision(0)], "driftrun1", RUN_URL, now=NOW)
        assert mlflow.get_tracking_uri() == "sqlite:///elsewhere.db"  # the global URI is restored afterwards
    finally:
        mlflow.set_tracking_uri(None)
    by_action = {r.action: r for r in recs}
    rec = by_action["retrain"]
    assert rec.status == "succeeded", rec.error
    assert by_action["alert"].status == "succeeded"

    client = mlflow.MlflowClient(tracking_uri)
    run = client.get_run(rec.retrain_run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "sparkdrift/churn-retrain"
    tags, params = run.data.tags, run.data.params
    assert tags["sparkdrift.drift_run_id"] == "driftrun1"
    assert tags["sparkdrift.dedup_key"] == rec.dedup_key == dedup_key("churn", T0, "retrain", "severe")
    assert tags["sparkdrift.drift_run_url"] == RUN_URL
    assert params["window_start"] == "2026-01-05T00:00:00Z" and params["drifted_features"] == "age,income"
    assert params["data"] == "synthetic" and "accuracy" in run.data.metrics
    (version,) = client.search_model_versions("name='churn-retrained'")
    assert version.run_id == run.info.run_id
    assert table_rows(store)[rec.dedup_key].retrain_run_id == run.info.run_id

    # no secret in MLflow params or tags, nor in our logs
    for secret in (hook, "XoXoSECRETtoken", "dapi-secret-token"):
        assert not any(secret in v for v in list(params.values()) + list(tags.values()))
        assert secret not in "".join(r.getMessage() for r in caplog.records if r.name.startswith("sparkdrift"))

    # rerun: no second retrain
    apply_actions(store, cfg, [decision(0)], "driftrun2", RUN_URL, now=NOW + timedelta(days=2))
    assert len(client.search_runs([run.info.experiment_id])) == 1


TINY_PROJECT = """\
name: tiny
entry_points:
  main:
    parameters:
      reason: {type: string, default: ""}
      window_start: {type: string, default: ""}
      window_end: {type: string, default: ""}
      drifted_features: {type: string, default: ""}
      drift_run_id: {type: string, default: ""}
    command: "python -c 'print(1)'"
"""


@pytest.mark.spark
@pytest.mark.e2e
def test_crash_between_trigger_and_record_never_retrains_twice(spark, tmp_path, tracking_uri, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    project = tmp_path / "tiny"
    project.mkdir()
    (project / "MLproject").write_text(TINY_PROJECT)
    cfg = make_cfg(tmp_path, retrain=Retrain(kind="mlflow_project", uri=str(project), synchronous=True),
                   tracking_uri=tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    store = DeltaStore.of(spark, cfg)

    # 1. the trigger succeeds, then the job dies while recording the outcome
    real_write = DeltaStore.write_actions
    writes = []

    def crashing_write(self, records):
        writes.append([r.status for r in records])
        if len(writes) == 1:  # the pending row went in through claim_actions
            raise RuntimeError("driver lost")
        real_write(self, records)

    monkeypatch.setattr(DeltaStore, "write_actions", crashing_write)
    with pytest.raises(RuntimeError, match="driver lost"):
        apply_actions(store, cfg, [decision(0)], "driftrun1", None, now=NOW)
    monkeypatch.setattr(DeltaStore, "write_actions", real_write)
    assert writes == [["succeeded"]]
    key = dedup_key("churn", T0, "retrain", "severe")
    assert table_rows(store)[key].status == "pending"
    exp = client.get_experiment_by_name("sparkdrift/churn-retrain")
    (started,) = client.search_runs([exp.experiment_id])
    assert started.data.tags["sparkdrift.dedup_key"] == key

    # rerun: the pending row is completed from MLflow, nothing starts again
    (rec,) = apply_actions(store, cfg, [decision(0)], "driftrun2", None, now=NOW + timedelta(minutes=5))
    assert (rec.status, rec.retrain_run_id, rec.drift_run_id) == ("succeeded", started.info.run_id, "driftrun1")
    assert table_rows(store)[key] == rec
    assert len(client.search_runs([exp.experiment_id])) == 1

    # 2. a crash before the run was even tagged: found by its window and drift run params
    d1 = decision(1)
    key1 = dedup_key("churn", d1.window_start, "retrain", "severe")
    pending = ActionRecord("churn", d1.window_start.replace(tzinfo=UTC), d1.window_end.replace(tzinfo=UTC),
                           "severe", "", "retrain", "mlflow_project", str(project), "pending", key1,
                           drift_run_id="driftrun3", decided_at=NOW + timedelta(days=3))
    store.write_actions([pending])
    mlflow.set_tracking_uri(tracking_uri)
    try:
        untagged = mlflow.projects.run(str(project), parameters=retrain_parameters(cfg, d1, "driftrun3"),
                                       experiment_name="sparkdrift/churn-retrain", env_manager="local")
    finally:
        mlflow.set_tracking_uri(None)
    (rec1,) = apply_actions(store, cfg, [d1], "driftrun4", None, now=NOW + timedelta(days=3, minutes=1))
    assert (rec1.status, rec1.retrain_run_id) == ("succeeded", untagged.run_id)
    assert client.get_run(untagged.run_id).data.tags["sparkdrift.dedup_key"] == key1
    assert len(client.search_runs([exp.experiment_id])) == 2

    # 3. a crash before the launch: no run exists, so the retrain is started now
    d2 = decision(2)
    key2 = dedup_key("churn", d2.window_start, "retrain", "severe")
    store.write_actions([ActionRecord(
        "churn", d2.window_start.replace(tzinfo=UTC), d2.window_end.replace(tzinfo=UTC), "severe", "", "retrain",
        "mlflow_project", str(project), "pending", key2, drift_run_id="driftrun5", decided_at=NOW + timedelta(days=6))])
    (rec2,) = apply_actions(store, cfg, [d2], "driftrun6", None, now=NOW + timedelta(days=6, minutes=1))
    assert rec2.status == "succeeded" and rec2.retrain_run_id not in (started.info.run_id, untagged.run_id)
    assert len(client.search_runs([exp.experiment_id])) == 3


def test_pending_command_is_never_restarted(store, tmp_path, caplog):
    out = tmp_path / "calls.jsonl"
    cfg = make_cfg(tmp_path, retrain=Retrain(kind="command", command=counter_command(out), synchronous=True))
    d = decision(0)
    key = dedup_key("churn", T0, "retrain", "severe")
    store.write_actions([ActionRecord(
        "churn", T0.replace(tzinfo=UTC), (T0 + DAY).replace(tzinfo=UTC), "severe", "", "retrain", "command",
        "python", "pending", key, decided_at=NOW - timedelta(days=3))])
    (rec,) = apply_actions(store, cfg, [d], "r", None, now=NOW)
    assert rec.status == "pending" and calls(out) == []
    assert "still pending from an interrupted run" in caplog.text


def test_two_runs_at_once_start_one_retrain(spark, tmp_path, caplog):
    """Two detect runs of one monitor reach the same verdict at the same moment, on a real Delta actions table
    that neither has created yet: one claims the retrain and starts it, the other leaves it."""
    import threading

    calls = tmp_path / "calls.jsonl"
    cfg = make_cfg(tmp_path, retrain=Retrain(kind="command", command=counter_command(calls), synchronous=True))
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def run(name: str) -> None:
        start.wait()
        try:
            outcomes[name] = apply_actions(DeltaStore.of(spark, cfg), cfg, [decision(0)], name, None, now=NOW)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcomes[name] = exc

    with caplog.at_level("INFO"):
        threads = [threading.Thread(target=run, args=(n,)) for n in ("run-a", "run-b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert not [o for o in outcomes.values() if isinstance(o, BaseException)], outcomes
    assert len(calls.read_text().splitlines()) == 1  # the command ran once
    (row,) = table_rows(DeltaStore.of(spark, cfg)).values()
    assert row.status == "succeeded" and row.drift_run_id in ("run-a", "run-b")
