"""What happens after a verdict: log, alert, retrain — with cooldown, dedup, dry-run and lineage.

The rules are pure (`core.planning`); this package carries them out:
`webhook` sends alerts, `retrain` starts retrain runs, and `apply_actions`
reads and writes the records through the store.

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

Every action is one record of the store's **actions table** (upserted on
``dedup_key``; see ``store.delta.ACTIONS_SCHEMA``); the record links the drift run
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

import logging
import os
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from sparkdrift.actions.retrain import resolve_pending, retrain_target, start_retrain
from sparkdrift.actions.webhook import alert_payload, post_webhook, redact_url, webhook_url
from sparkdrift.core.config import MonitorConfig
from sparkdrift.core.planning import ActionRecord, iso, plan
from sparkdrift.core.policy import WindowDecision
from sparkdrift.core.windows import as_utc
from sparkdrift.errors import ActionError, ActionFailed
from sparkdrift.store import MonitorStore

log = logging.getLogger("sparkdrift.actions")

_SECRET_ENV = ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_PASSWORD", "MLFLOW_TRACKING_TOKEN",
               "MLFLOW_TRACKING_PASSWORD")


def _secrets(webhook_url: str | None) -> list[str]:
    vals = [webhook_url] + [os.environ.get(k) for k in _SECRET_ENV]
    return [v for v in vals if v and len(v) >= 4]


def _scrub(text: str, secrets: list[str], limit: int = 1000) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _log_decision(d: WindowDecision) -> None:
    level = {"none": logging.DEBUG, "minor": logging.INFO}.get(d.severity, logging.WARNING)
    score = f"{d.score:.4g}" if d.score == d.score else "n/a"
    log.log(
        level, "%s window %s: severity %s (score %s, %d drifted)%s",
        d.monitor, iso(d.window_start), d.severity, score, d.n_drifted,
        (": " + "; ".join(d.rules)) if d.rules else "",
    )


def _log_record(rec: ActionRecord, dry: bool) -> None:
    level = logging.WARNING if rec.status == "failed" else logging.INFO
    log.log(
        level, "%s%s %s via %s -> %s for %s window %s (%s)%s%s",
        "[dry-run] " if dry else "", rec.action, rec.severity, rec.kind, rec.target, rec.monitor,
        iso(rec.window_start), rec.status,
        f" run {rec.retrain_run_id}" if rec.retrain_run_id else "",
        f": {rec.error}" if rec.error else "",
    )


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
            run_id = start_retrain(cfg, rec, d, drift_run_id, run_url)
        return replace(rec, status="succeeded", retrain_run_id=run_id, error=None)
    except ActionFailed as exc:
        return replace(rec, status="failed", retrain_run_id=exc.run_id, error=_scrub(str(exc), secrets))
    except Exception as exc:  # any trigger error is recorded, never a crash of the detect job
        return replace(rec, status="failed", error=_scrub(f"{type(exc).__name__}: {exc}", secrets))


def apply_actions(
    store: MonitorStore,
    cfg: MonitorConfig,
    decisions: list[WindowDecision],
    drift_run_id: str | None,
    run_url: str | None,
    now: datetime | None = None,
    raise_failed: bool = True,
) -> list[ActionRecord]:
    """Log every decision, then alert and retrain as configured, recording each action.

    Returns the action records of this run: new or updated rows, plus the
    already ``succeeded`` (or unresolvable ``pending``) rows that deduplication
    kept from earlier runs. Raises ``ActionError`` if the webhook's environment
    variable is missing (before anything is recorded) or, with
    ``actions.fail_on_error`` and ``raise_failed``, after recording when an
    action failed (the detect job passes False: it finishes writing its
    results, then exits 1).
    """
    acts = cfg.actions
    clock = as_utc(now) if now is not None else datetime.now(timezone.utc)
    started = time.monotonic()
    decisions = sorted((d for d in decisions if d.monitor == cfg.monitor), key=lambda d: as_utc(d.window_start))
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

    existing = {r.dedup_key: r for r in store.read_actions()}

    resolved = resolve_pending(cfg, existing, clock, run_url)
    if resolved:
        store.write_actions(resolved)
        existing.update({r.dedup_key: r for r in resolved})

    targets = {"alert": redact_url(url) if url else f"${acts.webhook.url_env}" if acts.webhook else "",
               "retrain": retrain_target(acts.retrain) if acts.retrain else ""}
    todo = plan(acts, cfg.monitor, decisions, existing, clock, drift_run_id, targets)
    # pending rows first, a crash after this is recoverable; and only where no concurrent run got there first
    write = store.claim_actions(todo.write, existing)
    kept = todo.kept
    lost = {r.dedup_key for r in todo.write} - {r.dedup_key for r in write}
    for key in sorted(lost):
        log.warning("another run of %s decided action %s at the same time: left to it", cfg.monitor, key)
    finished: dict[str, ActionRecord] = {}
    for rec, d in todo.execute:
        if rec.dedup_key in lost:
            continue
        done = _execute(cfg, rec, d, url, drift_run_id, run_url, secrets)
        finished[rec.dedup_key] = replace(done, finished_at=clock + timedelta(seconds=time.monotonic() - started))
    if finished:
        store.write_actions(list(finished.values()))

    out: dict[str, ActionRecord] = {r.dedup_key: r for r in resolved}
    out.update({r.dedup_key: r for r in kept})
    out.update({r.dedup_key: finished.get(r.dedup_key, r) for r in write})
    records = list(out.values())
    for rec in records:
        _log_record(rec, acts.dry_run)

    failed = [r for r in records if r.status == "failed" and (r.dedup_key in finished or r in resolved)]
    if failed and acts.fail_on_error and raise_failed:
        first = failed[0]
        raise ActionError(
            f"{len(failed)} action(s) failed (recorded in {store.where('actions')}); first: {first.action} via {first.kind} "
            f"for window {iso(first.window_start)}: {first.error}"
        )
    return records
