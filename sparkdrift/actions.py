"""What happens after a verdict: log, alert, retrain — with cooldown, dedup, dry-run and lineage.

``apply_actions`` runs after the detect job has decided each window's severity
(``sparkdrift.core.policy.evaluate``). Every decision is logged (logger
``sparkdrift.actions``). Then, as configured in ``actions``:

- **alert** (``actions.webhook``): a Slack-compatible JSON POST, with retries,
  exponential backoff and a per-request timeout. The URL is read from the
  environment variable named by ``webhook.url_env`` and never written anywhere:
  logs and the actions table show ``https://host/***``.
- **retrain** (``actions.retrain``): an MLflow project run (``mlflow_project``),
  a Databricks job run (``databricks_job``, credentials only from the
  environment / Databricks config), or a command (``command``). Each receives
  reason, window_start, window_end, drifted_features (comma list),
  drift_run_id and the configured ``parameters``.

Every action is one row of the **actions table** (``cfg.output_table("actions")``,
MERGEd on ``dedup_key``) — see ``ACTIONS_SCHEMA``; the row links the drift run
(``drift_run_id``) to the retrain run (``retrain_run_id``), and the retrain run
carries the tags ``sparkdrift.drift_run_id`` and ``sparkdrift.dedup_key``.

Safety rules:

- **dedup**: ``dedup_key(monitor, window_start, action, severity)`` is
  deterministic, so the same breach (same window, same severity) is acted on
  once: a ``succeeded`` row is never redone, across reruns. A ``pending`` row
  is written *before* anything is sent or started and completed afterwards;
  a rerun after a crash in between resolves it:

  * ``mlflow_project``: MLflow is searched for a run tagged with the dedup key
    (or, if the crash came before the tag was set, an untagged run of the same
    window and drift run); found -> the row is completed with its run id and
    nothing starts again; not found -> the run never started and is retried.
  * ``databricks_job``: retried with the same ``idempotency_token`` (the dedup
    key), so Databricks returns the run it already started instead of a new one.
  * ``webhook``: resent (alerts are at-least-once; a lost alert is worse than
    a repeated one).
  * ``command``: **cannot be deduplicated** — nothing tells whether the command
    ran before the crash, so the row stays ``pending``, the command is never
    started again automatically, and a warning is logged on each run. Set the
    row's status to ``failed`` to allow a retry. Commands receive
    ``SPARKDRIFT_DEDUP_KEY`` so that they can make themselves idempotent.

- **cooldown** per action: no second retrain within ``retrain.cooldown`` and no
  second alert within ``webhook.cooldown`` of the last ``succeeded`` (or
  unresolved ``pending``) action of that kind for the monitor, measured on
  ``decided_at``; such actions are recorded as ``skipped_cooldown``. One
  exception: an alert of a *higher* severity than every alert within the
  cooldown goes out (an escalation must not wait). Within one run, each
  breached window alerts once, up to ``ALERT_CAP`` (newest first); older
  windows beyond the cap are ``superseded``.
- **only the latest window retrains**: in a run covering several windows
  (backfill, recomputed windows), only the latest window's decision can start
  a retrain; older breached windows are recorded as ``superseded``.
- **dry-run** (``actions.dry_run``): decisions are made and recorded with status
  ``dry_run`` (cooldown/superseded still apply); nothing is sent or started.

A failed action is recorded as ``failed`` and returned; with
``actions.fail_on_error`` an ``ActionError`` is raised after recording.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from sparkdrift.config import MonitorConfig, Retrain, Webhook, duration_seconds
from sparkdrift.errors import ActionError
from sparkdrift.core.policy import WindowDecision, at_least, severity_rank

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("sparkdrift.actions")

ALERT_CAP = 5  # alerts per run at most (one per breached window, newest first)
BACKOFF_SECONDS = 1.0  # webhook retry delay: BACKOFF_SECONDS * 2**attempt, capped
MAX_BACKOFF_SECONDS = 30.0
MAX_REASON_CHARS = 500
MAX_LISTED_FEATURES = 15
DATABRICKS_WAIT = timedelta(hours=12)  # synchronous databricks_job: longest wait for the run

DEDUP_TAG = "sparkdrift.dedup_key"
DRIFT_RUN_TAG = "sparkdrift.drift_run_id"

STATUSES = ("pending", "succeeded", "failed", "skipped_cooldown", "dry_run", "superseded")

ACTIONS_SCHEMA = (
    "monitor string, window_start timestamp, window_end timestamp, severity string, rules string, "
    "action string, kind string, target string, status string, dedup_key string, drift_run_id string, "
    "retrain_run_id string, error string, decided_at timestamp, finished_at timestamp"
)

_SECRET_ENV = ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_PASSWORD", "MLFLOW_TRACKING_TOKEN",
               "MLFLOW_TRACKING_PASSWORD")


@dataclass(frozen=True)
class ActionRecord:
    """One row of the actions table (same fields, same order)."""

    monitor: str
    window_start: datetime
    window_end: datetime
    severity: str
    rules: str
    action: str  # alert | retrain
    kind: str  # webhook | mlflow_project | databricks_job | command
    target: str  # redacted: never a secret
    status: str  # pending | succeeded | failed | skipped_cooldown | dry_run | superseded
    dedup_key: str
    drift_run_id: str | None = None
    retrain_run_id: str | None = None  # MLflow run id, Databricks run id, or pid:<n> for a command
    error: str | None = None
    decided_at: datetime | None = None
    finished_at: datetime | None = None

    def to_row(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))


# --------------------------------------------------------------------------- helpers


def _utc(dt: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken as UTC (the session time zone)."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _from_spark(dt: datetime | None) -> datetime | None:
    """PySpark returns timestamps as naive *local* time; make them aware UTC."""
    return None if dt is None else dt.astimezone(timezone.utc)  # naive: astimezone reads it as local


def _iso(dt: datetime) -> str:
    u = _utc(dt)
    return u.strftime("%Y-%m-%dT%H:%M:%S") + (f".{u.microsecond:06d}" if u.microsecond else "") + "Z"


def dedup_key(monitor: str, window_start: datetime, action: str, severity: str) -> str:
    """Deterministic key of one breach's action: same window + action + severity, same key.

    40 characters, so it also fits Databricks' 64-character idempotency token.
    """
    text = f"{monitor}|{_iso(window_start)}|{action}|{severity}"
    return f"{action}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/xyz`` -> ``https://hooks.slack.com/***``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "***"
    return f"{parts.scheme}://{host}/***" if parts.scheme else "***"


def _redact_uri(uri: str) -> str:
    """Project URIs: drop credentials and query strings from URLs, keep paths as they are."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "***"
    if not parts.netloc:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", parts.fragment))


def _secrets(webhook_url: str | None) -> list[str]:
    vals = [webhook_url] + [os.environ.get(k) for k in _SECRET_ENV]
    return [v for v in vals if v and len(v) >= 4]


def _scrub(text: str, secrets: list[str], limit: int = 1000) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(d: WindowDecision) -> str:
    text = f"{d.severity} drift: " + "; ".join(d.rules) if d.rules else f"{d.severity} drift"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def retrain_parameters(cfg: MonitorConfig, d: WindowDecision, drift_run_id: str | None) -> dict[str, str]:
    """What every retrain trigger receives (MLflow params, job parameters, SPARKDRIFT_* env vars)."""
    params = {
        "reason": _reason(d),
        "window_start": _iso(d.window_start),
        "window_end": _iso(d.window_end),
        "drifted_features": ",".join(d.drifted_features),
        "drift_run_id": drift_run_id or "",
    }
    if cfg.actions.retrain is not None:
        params.update({k: str(v) for k, v in cfg.actions.retrain.parameters.items()})
    return params


def retrain_experiment_name(cfg: MonitorConfig) -> str:
    """MLflow experiment of the retrain runs: the monitor's experiment name + ``-retrain``."""
    return f"{cfg.experiment_name}-retrain"


def _target(cfg: MonitorConfig, action: str) -> str:
    if action == "alert":
        return f"${cfg.actions.webhook.url_env}"  # replaced by the redacted URL when it is known
    r = cfg.actions.retrain
    if r.kind == "mlflow_project":
        return f"{_redact_uri(r.uri or '')}#{r.entry_point}"
    if r.kind == "databricks_job":
        return f"databricks job {r.job_id}"
    prog = os.path.basename(r.command[0]) if r.command else ""
    return f"{prog} (+{len(r.command) - 1} args)" if len(r.command) > 1 else prog


# --------------------------------------------------------------------------- the actions table


def read_actions(spark: "SparkSession", cfg: MonitorConfig) -> list[ActionRecord]:
    """The monitor's rows of the actions table (empty before the first write)."""
    from pyspark.sql import functions as F

    from sparkdrift.store.tables import read_output

    df = read_output(spark, cfg.output_table("actions"))
    if df is None:
        return []
    out = []
    for row in df.filter(F.col("monitor") == cfg.monitor).collect():
        d = row.asDict()
        for k in ("window_start", "window_end", "decided_at", "finished_at"):
            d[k] = _from_spark(d[k])
        out.append(ActionRecord(**{f.name: d.get(f.name) for f in fields(ActionRecord)}))
    return out


def _write_records(spark: "SparkSession", table: str, records: list[ActionRecord]) -> None:
    """MERGE rows into the actions table on dedup_key (one Delta commit)."""
    from sparkdrift.store.tables import merge_rows

    by_key = {r.dedup_key: r for r in records}
    df = spark.createDataFrame([r.to_row() for r in by_key.values()], ACTIONS_SCHEMA)
    merge_rows(spark, df, table, ["dedup_key"])


# --------------------------------------------------------------------------- webhook


class _Failed(Exception):
    """An action failed; ``run_id`` is set when a retrain run exists anyway."""

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id


def webhook_url(w: Webhook) -> str:
    """The webhook URL from the environment; ActionError naming the key and variable if absent."""
    value = os.environ.get(w.url_env, "").strip()
    if not value:
        raise ActionError(
            f"actions.webhook.url_env: environment variable {w.url_env} is not set "
            "(it must hold the webhook URL; the URL is never put in the config)"
        )
    if urlsplit(value).scheme not in ("http", "https"):
        raise ActionError(f"actions.webhook.url_env: environment variable {w.url_env} does not hold an http(s) URL")
    return value


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alert_payload(d: WindowDecision, run_url: str | None = None) -> dict[str, Any]:
    """Slack-compatible message: ``text`` (notification fallback) and Block Kit ``blocks``."""
    window = f"{_iso(d.window_start)} to {_iso(d.window_end)}"
    score = f"{d.score:.4g}" if d.score == d.score else "n/a"
    text = _mrkdwn(f"sparkdrift: {d.severity} drift on {d.monitor}, window {window} (score {score})")
    if run_url:
        text += f" <{run_url}|MLflow run>"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{d.monitor}: {d.severity} drift", 150)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Monitor*\n{_mrkdwn(d.monitor)}"},
                {"type": "mrkdwn", "text": f"*Severity*\n{d.severity}"},
                {"type": "mrkdwn", "text": f"*Window*\n{window}"},
                {"type": "mrkdwn", "text": f"*Score*\n{score}"},
            ],
        },
    ]
    if d.rules:
        body = "*Rules*\n" + "\n".join(f"• {_mrkdwn(r)}" for r in d.rules)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(body, 3000)}})
    if d.drifted:
        lines = []
        for feat in list(d.drifted)[:MAX_LISTED_FEATURES]:
            stats = ", ".join(f"{k}={v:.4g}" for k, v in sorted(d.drifted[feat].items()))
            lines.append(f"• `{_mrkdwn(feat)}`: {_mrkdwn(stats)}")
        if len(d.drifted) > MAX_LISTED_FEATURES:
            lines.append(f"… and {len(d.drifted) - MAX_LISTED_FEATURES} more")
        share = f" ({d.share_drifted:.0%} of features)" if d.share_drifted == d.share_drifted else ""
        body = f"*Drifted features: {d.n_drifted}*{share}\n" + "\n".join(lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(body, 3000)}})
    if run_url:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{run_url}|Open the MLflow run>"}})
    return {"text": text, "blocks": blocks}


def post_webhook(url: str, payload: dict, timeout: float, retries: int) -> int:
    """POST JSON; retry on network errors, timeouts, 5xx and 429 with exponential backoff.

    Returns the number of attempts. Raises ``_Failed`` with a message that
    never contains the URL.
    """
    body = json.dumps(payload).encode()
    last = ""
    for attempt in range(retries + 1):
        req = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "sparkdrift"},
        )
        delay = min(BACKOFF_SECONDS * 2**attempt, MAX_BACKOFF_SECONDS)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                resp.read()
            return attempt + 1
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} {exc.reason}"
            if exc.code != 429 and exc.code < 500:
                raise _Failed(f"webhook answered {last} (not retried)") from None
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            if retry_after and retry_after.isdigit():
                delay = min(float(retry_after), MAX_BACKOFF_SECONDS)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (TimeoutError, socket.timeout)) or "timed out" in str(reason):
                last = f"timed out after {timeout:g}s"
            else:
                last = f"{type(reason).__name__}: {reason}"
        if attempt < retries:
            log.debug("webhook attempt %d failed (%s), retrying in %.2fs", attempt + 1, last, delay)
            time.sleep(delay)
    raise _Failed(f"webhook failed after {retries + 1} attempt(s): {last}")


# --------------------------------------------------------------------------- retrain triggers


def _absolute_tracking_uri(uri: str) -> str:
    """sqlite:///rel.db and relative file stores are resolved now: project runs change directory."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if "://" not in uri and not uri.startswith(("databricks", "uc")) and ":" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


@contextlib.contextmanager
def _tracking(cfg: MonitorConfig) -> Iterator[None]:
    """Use the monitor's tracking URI for the duration, then restore the previous one."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    uri = cfg.mlflow.tracking_uri
    if not uri:
        yield
        return
    before = getattr(tracking_utils, "_tracking_uri", None)
    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(_absolute_tracking_uri(uri))
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        if env_before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


_SAFE_FILTER_VALUE = re.compile(r"^[\w.:+-]+$")


def find_retrain_run(cfg: MonitorConfig, record: ActionRecord):
    """The MLflow run a (possibly pending) mlflow_project record started, or None.

    First by the ``sparkdrift.dedup_key`` tag; then, for a crash between the
    launch and the tagging, an untagged run with the same window_start and
    drift_run_id params in the retrain experiment.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(retrain_experiment_name(cfg))
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], f"tags.`{DEDUP_TAG}` = '{record.dedup_key}'", max_results=5)
    if runs:
        return runs[0]
    clauses = [f"params.window_start = '{_iso(record.window_start)}'"]
    if record.drift_run_id and _SAFE_FILTER_VALUE.match(record.drift_run_id):
        clauses.append(f"params.drift_run_id = '{record.drift_run_id}'")
    candidates = client.search_runs([exp.experiment_id], " and ".join(clauses), max_results=50)
    untagged = [r for r in candidates if DEDUP_TAG not in r.data.tags]
    return untagged[0] if untagged else None


def _ensure_retrain_experiment(cfg: MonitorConfig) -> None:
    """Create the retrain experiment next to the monitor's own one (artifacts beside its artifacts).

    Without this, MLflow would put a new experiment's artifacts under ``./mlruns``
    of whatever directory the job runs in. Workspaces (Databricks) manage
    artifact locations themselves and are left alone.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name = retrain_experiment_name(cfg)
    if client.get_experiment_by_name(name) is not None:
        return
    location = None
    drift = client.get_experiment_by_name(cfg.experiment_name)
    if drift is not None and drift.artifact_location and not mlflow.get_tracking_uri().startswith("databricks"):
        location = drift.artifact_location.rstrip("/") + "-retrain"
    try:
        client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by a concurrent run
        if client.get_experiment_by_name(name) is None:
            raise


def _retrain_tags(record: ActionRecord, run_url: str | None) -> dict[str, str]:
    tags = {
        DEDUP_TAG: record.dedup_key,
        "sparkdrift.monitor": record.monitor,
        "sparkdrift.window_start": _iso(record.window_start),
        "sparkdrift.window_end": _iso(record.window_end),
        "sparkdrift.severity": record.severity,
    }
    if record.drift_run_id:
        tags[DRIFT_RUN_TAG] = record.drift_run_id
    if run_url:
        tags["sparkdrift.drift_run_url"] = run_url
    return tags


def _start_mlflow_project(cfg: MonitorConfig, record: ActionRecord, params: dict[str, str], run_url: str | None) -> str:
    import mlflow
    from mlflow.exceptions import ExecutionException
    from mlflow.tracking import MlflowClient

    r = cfg.actions.retrain
    failure: str | None = None
    run_id: str | None = None
    _ensure_retrain_experiment(cfg)
    try:
        submitted = mlflow.projects.run(
            r.uri,
            entry_point=r.entry_point,
            parameters=params,
            backend=r.backend,
            env_manager=r.env_manager,
            synchronous=r.synchronous,
            experiment_name=retrain_experiment_name(cfg),
            run_name=f"retrain {cfg.monitor} {_iso(record.window_start)}",
        )
        run_id = submitted.run_id
    except ExecutionException as exc:
        failure = f"retrain run failed: {exc}"
        found = find_retrain_run(cfg, record)
        run_id = found.info.run_id if found else None
    if run_id:
        client = MlflowClient()
        for k, v in _retrain_tags(record, run_url).items():
            client.set_tag(run_id, k, v)
    if failure:
        raise _Failed(failure, run_id)
    return run_id


def _run_databricks_job(r: Retrain, record: ActionRecord, params: dict[str, str]) -> str:
    from databricks.sdk import WorkspaceClient

    client = WorkspaceClient()  # host and credentials: environment or ~/.databrickscfg, never the YAML
    waiter = client.jobs.run_now(job_id=r.job_id, job_parameters=params, idempotency_token=record.dedup_key)
    run_id = str(waiter.response.run_id)
    if r.synchronous:
        run = waiter.result(timeout=DATABRICKS_WAIT)
        state = run.state.result_state.value if run.state and run.state.result_state else "UNKNOWN"
        if state != "SUCCESS":
            raise _Failed(f"databricks run {run_id} ended {state}", run_id)
    return run_id


def _run_command(r: Retrain, record: ActionRecord, params: dict[str, str]) -> str | None:
    env = dict(os.environ)
    for k, v in params.items():
        env["SPARKDRIFT_" + re.sub(r"\W", "_", k).upper()] = v
    env.update(
        SPARKDRIFT_DEDUP_KEY=record.dedup_key,
        SPARKDRIFT_MONITOR=record.monitor,
        SPARKDRIFT_SEVERITY=record.severity,
    )
    argv = list(r.command)
    try:
        if r.synchronous:
            rc = subprocess.run(argv, env=env, check=False).returncode
            if rc != 0:
                raise _Failed(f"command exited with code {rc}")
            return None
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        return f"pid:{proc.pid}"
    except FileNotFoundError:
        raise _Failed(f"command not found: {os.path.basename(argv[0])}") from None
    except PermissionError:
        raise _Failed(f"command not executable: {os.path.basename(argv[0])}") from None


# --------------------------------------------------------------------------- planning


def _log_decision(d: WindowDecision) -> None:
    level = {"none": logging.DEBUG, "minor": logging.INFO}.get(d.severity, logging.WARNING)
    score = f"{d.score:.4g}" if d.score == d.score else "n/a"
    log.log(
        level, "%s window %s: severity %s (score %s, %d drifted)%s",
        d.monitor, _iso(d.window_start), d.severity, score, d.n_drifted,
        (": " + "; ".join(d.rules)) if d.rules else "",
    )


def _log_record(rec: ActionRecord, dry: bool) -> None:
    level = logging.WARNING if rec.status == "failed" else logging.INFO
    log.log(
        level, "%s%s %s via %s -> %s for %s window %s (%s)%s%s",
        "[dry-run] " if dry else "", rec.action, rec.severity, rec.kind, rec.target, rec.monitor,
        _iso(rec.window_start), rec.status,
        f" run {rec.retrain_run_id}" if rec.retrain_run_id else "",
        f": {rec.error}" if rec.error else "",
    )


def _recent(existing: dict[str, ActionRecord], action: str, key: str, now: datetime, cooldown: timedelta):
    return [
        r for r in existing.values()
        if r.action == action and r.dedup_key != key and r.status in ("succeeded", "pending")
        and r.decided_at is not None and now - r.decided_at < cooldown
    ]


def _resolve_pending(cfg: MonitorConfig, existing: dict[str, ActionRecord], now: datetime,
                     run_url: str | None) -> list[ActionRecord]:
    """Complete mlflow_project rows left ``pending`` by a crash, from what MLflow knows."""
    out = []
    pending = [r for r in existing.values() if r.status == "pending" and r.kind == "mlflow_project"]
    if not pending:
        return out
    with _tracking(cfg):
        for rec in pending:
            try:
                run = find_retrain_run(cfg, rec)
            except Exception as exc:  # MLflow unreachable: leave pending (blocks a second trigger)
                log.warning("cannot resolve pending retrain %s: %s", rec.dedup_key, type(exc).__name__)
                continue
            if run is None:
                done = replace(rec, status="failed", finished_at=now,
                               error="interrupted before the MLflow run started; retried when due")
            else:
                from mlflow.tracking import MlflowClient

                run_id = run.info.run_id
                if DEDUP_TAG not in run.data.tags:
                    client = MlflowClient()
                    for k, v in _retrain_tags(rec, run_url if rec.drift_run_id else None).items():
                        client.set_tag(run_id, k, v)
                failed = run.info.status in ("FAILED", "KILLED")
                done = replace(
                    rec, status="failed" if failed else "succeeded", retrain_run_id=run_id, finished_at=now,
                    error=f"retrain run {run_id} ended {run.info.status}" if failed else None,
                )
            log.info("resolved pending retrain %s for window %s: %s%s", rec.dedup_key, _iso(rec.window_start),
                     done.status, f" (run {done.retrain_run_id})" if done.retrain_run_id else "")
            out.append(done)
    return out


def _plan(cfg: MonitorConfig, decisions: list[WindowDecision], existing: dict[str, ActionRecord],
          now: datetime, drift_run_id: str | None, target_url: str | None):
    """(records to write, (record, decision) pairs to execute, unchanged deduplicated records)."""
    acts = cfg.actions
    status_new = "dry_run" if acts.dry_run else "pending"
    write: list[ActionRecord] = []
    execute: list[tuple[ActionRecord, WindowDecision]] = []
    kept: list[ActionRecord] = []

    def base(d: WindowDecision, action: str, kind: str, target: str) -> ActionRecord:
        return ActionRecord(
            monitor=cfg.monitor, window_start=_utc(d.window_start), window_end=_utc(d.window_end),
            severity=d.severity, rules="; ".join(d.rules), action=action, kind=kind, target=target,
            status=status_new, dedup_key=dedup_key(cfg.monitor, d.window_start, action, d.severity),
            drift_run_id=drift_run_id, decided_at=now,
        )

    def blocked(key: str, kinds_blocking_when_pending: tuple[str, ...]) -> bool:
        old = existing.get(key)
        if old is None:
            return False
        if old.status == "succeeded" or (old.status == "pending" and old.kind in kinds_blocking_when_pending):
            if old.status == "pending":
                log.warning(
                    "%s %s for window %s is still pending from an interrupted run and is not started again "
                    "(set its status to failed in the actions table to allow a retry)",
                    old.action, old.kind, _iso(old.window_start),
                )
            kept.append(old)
            return True
        return False

    if acts.webhook is not None:
        w = acts.webhook
        cooldown = timedelta(seconds=duration_seconds(w.cooldown))
        target = redact_url(target_url) if target_url else _target(cfg, "alert")
        breached = [d for d in decisions if d.severity != "none" and at_least(d.severity, w.min_severity)]
        sent = 0
        for d in reversed(breached):  # newest first: the cap keeps the latest windows
            rec = base(d, "alert", "webhook", target)
            if blocked(rec.dedup_key, ()):
                continue
            recent = _recent(existing, "alert", rec.dedup_key, now, cooldown)
            escalation = all(severity_rank(d.severity) > severity_rank(r.severity) for r in recent)
            if recent and not escalation:
                last = max(r.decided_at for r in recent)
                rec = replace(rec, status="skipped_cooldown", finished_at=now,
                              error=f"alert cooldown {w.cooldown}: last alert at {_iso(last)}")
            elif sent >= ALERT_CAP:
                rec = replace(rec, status="superseded", finished_at=now,
                              error=f"more than {ALERT_CAP} breached windows in one run; the latest alerted")
            else:
                sent += 1
                if acts.dry_run:
                    rec = replace(rec, finished_at=now)
            write.append(rec)
            if rec.status == "pending":
                execute.append((rec, d))

    if acts.retrain is not None and decisions:
        r = acts.retrain
        cooldown = timedelta(seconds=duration_seconds(r.cooldown))
        latest = decisions[-1]
        target = _target(cfg, "retrain")
        for d in decisions:
            if d.severity == "none" or not at_least(d.severity, r.min_severity):
                continue
            rec = base(d, "retrain", r.kind, target)
            if blocked(rec.dedup_key, ("mlflow_project", "command")):
                continue
            recent = _recent(existing, "retrain", rec.dedup_key, now, cooldown)
            if d is not latest:
                rec = replace(rec, status="superseded", finished_at=now,
                              error=f"a later window ({_iso(latest.window_start)}) decides retraining in this run")
            elif recent:
                last = max(recent, key=lambda x: x.decided_at)
                rec = replace(rec, status="skipped_cooldown", finished_at=now,
                              error=f"retrain cooldown {r.cooldown}: last retrain at {_iso(last.decided_at)}"
                                    + (f" (run {last.retrain_run_id})" if last.retrain_run_id else ""))
            elif acts.dry_run:
                rec = replace(rec, finished_at=now)
            write.append(rec)
            if rec.status == "pending":
                execute.append((rec, d))
    return write, execute, kept


def _execute(cfg: MonitorConfig, rec: ActionRecord, d: WindowDecision, url: str | None,
             drift_run_id: str | None, run_url: str | None, secrets: list[str]) -> ActionRecord:
    try:
        run_id: str | None = None
        if rec.action == "alert":
            w = cfg.actions.webhook
            attempts = post_webhook(url, alert_payload(d, run_url), w.timeout_seconds, w.retries)
            if attempts > 1:
                log.info("webhook delivered after %d attempts", attempts)
        else:
            r = cfg.actions.retrain
            params = retrain_parameters(cfg, d, drift_run_id)
            if r.kind == "mlflow_project":
                with _tracking(cfg):
                    run_id = _start_mlflow_project(cfg, rec, params, run_url)
            elif r.kind == "databricks_job":
                run_id = _run_databricks_job(r, rec, params)
            else:
                run_id = _run_command(r, rec, params)
        return replace(rec, status="succeeded", retrain_run_id=run_id, error=None)
    except _Failed as exc:
        return replace(rec, status="failed", retrain_run_id=exc.run_id, error=_scrub(str(exc), secrets))
    except Exception as exc:  # any trigger error is recorded, never a crash of the detect job
        return replace(rec, status="failed", error=_scrub(f"{type(exc).__name__}: {exc}", secrets))


# --------------------------------------------------------------------------- entry point


def apply_actions(
    spark: "SparkSession",
    cfg: MonitorConfig,
    decisions: list[WindowDecision],
    drift_run_id: str | None,
    run_url: str | None,
    now: datetime | None = None,
) -> list[ActionRecord]:
    """Log every decision, then alert and retrain as configured, recording each action.

    Returns the action records of this run: new or updated rows, plus the
    already ``succeeded`` (or unresolvable ``pending``) rows that deduplication
    kept from earlier runs. Raises ``ActionError`` if the webhook's environment
    variable is missing (before anything is recorded) or, with
    ``actions.fail_on_error``, after recording when an action failed.
    """
    acts = cfg.actions
    clock = _utc(now) if now is not None else datetime.now(timezone.utc)
    started = time.monotonic()
    decisions = sorted((d for d in decisions if d.monitor == cfg.monitor), key=lambda d: _utc(d.window_start))
    for d in decisions:
        _log_decision(d)
    if acts.webhook is None and acts.retrain is None:
        return []

    url: str | None = None
    if acts.webhook is not None:
        if acts.dry_run:
            try:
                url = webhook_url(acts.webhook)
            except ActionError as exc:
                log.warning("[dry-run] %s", exc)
        else:
            url = webhook_url(acts.webhook)
    secrets = _secrets(url)

    table = cfg.output_table("actions")
    existing = {r.dedup_key: r for r in read_actions(spark, cfg)}

    resolved = _resolve_pending(cfg, existing, clock, run_url)
    if resolved:
        _write_records(spark, table, resolved)
        existing.update({r.dedup_key: r for r in resolved})

    write, execute, kept = _plan(cfg, decisions, existing, clock, drift_run_id, url)
    if write:
        _write_records(spark, table, write)  # pending rows first: a crash after this is recoverable
    finished: dict[str, ActionRecord] = {}
    for rec, d in execute:
        done = _execute(cfg, rec, d, url, drift_run_id, run_url, secrets)
        finished[rec.dedup_key] = replace(done, finished_at=clock + timedelta(seconds=time.monotonic() - started))
    if finished:
        _write_records(spark, table, list(finished.values()))

    out: dict[str, ActionRecord] = {r.dedup_key: r for r in resolved}
    out.update({r.dedup_key: r for r in kept})
    out.update({r.dedup_key: finished.get(r.dedup_key, r) for r in write})
    records = list(out.values())
    for rec in records:
        _log_record(rec, acts.dry_run)

    failed = [r for r in records if r.status == "failed" and (r.dedup_key in finished or r in resolved)]
    if failed and acts.fail_on_error:
        first = failed[0]
        raise ActionError(
            f"{len(failed)} action(s) failed (recorded in {table}); first: {first.action} via {first.kind} "
            f"for window {_iso(first.window_start)}: {first.error}"
        )
    return records
