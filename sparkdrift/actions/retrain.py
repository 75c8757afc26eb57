"""Retrain triggers: an MLflow project run, a Databricks job run, or a command.

Each receives reason, window_start, window_end, drifted_features (comma list),
drift_run_id and the configured ``parameters``. MLflow is reached through an
explicit ``MlflowClient(tracking_uri)``; the one exception is
``mlflow.projects.run``, which reads only the process-wide tracking URI, so it
is set for that call alone and put back afterwards (`_process_tracking_uri`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from sparkdrift.core.config import MonitorConfig, Retrain
from sparkdrift.core.planning import ActionRecord, iso
from sparkdrift.core.policy import WindowDecision
from sparkdrift.errors import ActionFailed
from sparkdrift.sinks.tracking import resolve_tracking_uri

log = logging.getLogger("sparkdrift.actions")

DEDUP_TAG = "sparkdrift.dedup_key"
DRIFT_RUN_TAG = "sparkdrift.drift_run_id"
DATABRICKS_WAIT = timedelta(hours=12)  # synchronous databricks_job: longest wait for the run
MAX_REASON_CHARS = 500
_SAFE_FILTER_VALUE = re.compile(r"^[\w.:+-]+$")


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


def retrain_target(r: Retrain) -> str:
    """What the actions table shows as the trigger's target (never a secret)."""
    if r.kind == "mlflow_project":
        return f"{_redact_uri(r.uri or '')}#{r.entry_point}"
    if r.kind == "databricks_job":
        return f"databricks job {r.job_id}"
    prog = os.path.basename(r.command[0]) if r.command else ""
    return f"{prog} (+{len(r.command) - 1} args)" if len(r.command) > 1 else prog


def _reason(d: WindowDecision) -> str:
    text = f"{d.severity} drift: " + "; ".join(d.rules) if d.rules else f"{d.severity} drift"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def retrain_parameters(cfg: MonitorConfig, d: WindowDecision, drift_run_id: str | None) -> dict[str, str]:
    """What every retrain trigger receives (MLflow params, job parameters, SPARKDRIFT_* env vars)."""
    params = {
        "reason": _reason(d),
        "window_start": iso(d.window_start),
        "window_end": iso(d.window_end),
        "drifted_features": ",".join(d.drifted_features),
        "drift_run_id": drift_run_id or "",
    }
    if cfg.actions.retrain is not None:
        params.update({k: str(v) for k, v in cfg.actions.retrain.parameters.items()})
    return params


def retrain_experiment_name(cfg: MonitorConfig) -> str:
    """MLflow experiment of the retrain runs: the monitor's experiment name + ``-retrain``."""
    return f"{cfg.experiment_name}-retrain"


def _absolute_tracking_uri(uri: str) -> str:
    """sqlite:///rel.db and relative file stores are resolved now: project runs change directory."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if "://" not in uri and not uri.startswith(("databricks", "uc")) and ":" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


def _client(cfg: MonitorConfig) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(_absolute_tracking_uri(resolve_tracking_uri(cfg)))


@contextlib.contextmanager
def _process_tracking_uri(uri: str) -> Iterator[None]:
    """Set MLflow's process-wide tracking URI for one ``mlflow.projects.run`` call, then restore it."""
    import mlflow

    before, env_before = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


def find_retrain_run(cfg: MonitorConfig, record: ActionRecord, client: Any = None):
    """The MLflow run a (possibly pending) mlflow_project record started, or None.

    First by the ``sparkdrift.dedup_key`` tag; then, for a crash between the
    launch and the tagging, an untagged run with the same window_start and
    drift_run_id params in the retrain experiment.
    """
    client = client or _client(cfg)
    exp = client.get_experiment_by_name(retrain_experiment_name(cfg))
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], f"tags.`{DEDUP_TAG}` = '{record.dedup_key}'", max_results=5)
    if runs:
        return runs[0]
    clauses = [f"params.window_start = '{iso(record.window_start)}'"]
    if record.drift_run_id and _SAFE_FILTER_VALUE.match(record.drift_run_id):
        clauses.append(f"params.drift_run_id = '{record.drift_run_id}'")
    candidates = client.search_runs([exp.experiment_id], " and ".join(clauses), max_results=50)
    untagged = [r for r in candidates if DEDUP_TAG not in r.data.tags]
    return untagged[0] if untagged else None


def _ensure_retrain_experiment(cfg: MonitorConfig, client: Any) -> None:
    """Create the retrain experiment next to the monitor's own one (artifacts beside its artifacts).

    Without this, MLflow would put a new experiment's artifacts under ``./mlruns``
    of whatever directory the job runs in. Workspaces (Databricks) manage
    artifact locations themselves and are left alone.
    """
    from mlflow.exceptions import MlflowException

    name = retrain_experiment_name(cfg)
    if client.get_experiment_by_name(name) is not None:
        return
    location = None
    drift = client.get_experiment_by_name(cfg.experiment_name)
    if drift is not None and drift.artifact_location and not client.tracking_uri.startswith("databricks"):
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
        "sparkdrift.window_start": iso(record.window_start),
        "sparkdrift.window_end": iso(record.window_end),
        "sparkdrift.severity": record.severity,
    }
    if record.drift_run_id:
        tags[DRIFT_RUN_TAG] = record.drift_run_id
    if run_url:
        tags["sparkdrift.drift_run_url"] = run_url
    return tags


def _start_mlflow_project(cfg: MonitorConfig, record: ActionRecord, params: dict[str, str],
                          run_url: str | None) -> str | None:
    import mlflow.projects
    from mlflow.exceptions import ExecutionException

    r = cfg.actions.retrain
    client = _client(cfg)
    failure: str | None = None
    run_id: str | None = None
    _ensure_retrain_experiment(cfg, client)
    try:
        with _process_tracking_uri(client.tracking_uri):
            submitted = mlflow.projects.run(
                r.uri,
                entry_point=r.entry_point,
                parameters=params,
                backend=r.backend,
                env_manager=r.env_manager,
                synchronous=r.synchronous,
                experiment_name=retrain_experiment_name(cfg),
                run_name=f"retrain {cfg.monitor} {iso(record.window_start)}",
            )
        run_id = submitted.run_id
    except ExecutionException as exc:
        failure = f"retrain run failed: {exc}"
        found = find_retrain_run(cfg, record, client)
        run_id = found.info.run_id if found else None
    if run_id:
        for k, v in _retrain_tags(record, run_url).items():
            client.set_tag(run_id, k, v)
    if failure:
        raise ActionFailed(failure, run_id)
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
            raise ActionFailed(f"databricks run {run_id} ended {state}", run_id)
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
                raise ActionFailed(f"command exited with code {rc}")
            return None
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        return f"pid:{proc.pid}"
    except FileNotFoundError:
        raise ActionFailed(f"command not found: {os.path.basename(argv[0])}") from None
    except PermissionError:
        raise ActionFailed(f"command not executable: {os.path.basename(argv[0])}") from None


def start_retrain(cfg: MonitorConfig, record: ActionRecord, d: WindowDecision, drift_run_id: str | None,
                  run_url: str | None) -> str | None:
    """Start the configured retrain for one decision; returns the run id (None: a finished command)."""
    r = cfg.actions.retrain
    params = retrain_parameters(cfg, d, drift_run_id)
    if r.kind == "mlflow_project":
        return _start_mlflow_project(cfg, record, params, run_url)
    if r.kind == "databricks_job":
        return _run_databricks_job(r, record, params)
    return _run_command(r, record, params)


def resolve_pending(cfg: MonitorConfig, existing: dict[str, ActionRecord], now: datetime,
                    run_url: str | None) -> list[ActionRecord]:
    """Complete mlflow_project rows left ``pending`` by a crash, from what MLflow knows."""
    pending = [r for r in existing.values() if r.status == "pending" and r.kind == "mlflow_project"]
    if not pending:
        return []
    out = []
    client = _client(cfg)
    for rec in pending:
        try:
            run = find_retrain_run(cfg, rec, client)
        except Exception as exc:  # MLflow unreachable: leave pending (blocks a second trigger)
            log.warning("cannot resolve pending retrain %s: %s", rec.dedup_key, type(exc).__name__)
            continue
        if run is None:
            done = replace(rec, status="failed", finished_at=now,
                           error="interrupted before the MLflow run started; retried when due")
        else:
            run_id = run.info.run_id
            if DEDUP_TAG not in run.data.tags:
                for k, v in _retrain_tags(rec, run_url if rec.drift_run_id else None).items():
                    client.set_tag(run_id, k, v)
            failed = run.info.status in ("FAILED", "KILLED")
            done = replace(
                rec, status="failed" if failed else "succeeded", retrain_run_id=run_id, finished_at=now,
                error=f"retrain run {run_id} ended {run.info.status}" if failed else None,
            )
        log.info("resolved pending retrain %s for window %s: %s%s", rec.dedup_key, iso(rec.window_start),
                 done.status, f" (run {done.retrain_run_id})" if done.retrain_run_id else "")
        out.append(done)
    return out
