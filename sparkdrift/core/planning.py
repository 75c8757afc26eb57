"""Which actions a run's decisions call for: dedup, cooldown, superseding (pure; see `sparkdrift.actions`).

Given the decisions of a run and the action records already stored, `plan`
says which records to write and which of them to carry out. Nothing is sent
or started here, so every rule is tested without Spark, MLflow or a network.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta

from sparkdrift.core.config import Actions
from sparkdrift.core.policy import WindowDecision, at_least, severity_rank
from sparkdrift.core.windows import as_utc

log = logging.getLogger("sparkdrift.actions")

ALERT_CAP = 5  # alerts per run at most (one per breached window, newest first)

STATUSES = ("pending", "succeeded", "failed", "skipped_cooldown", "dry_run", "superseded")


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


def iso(dt: datetime) -> str:
    """``2026-01-14T00:00:00Z``: the UTC form used in keys, parameters, tags and messages."""
    u = as_utc(dt)
    return u.strftime("%Y-%m-%dT%H:%M:%S") + (f".{u.microsecond:06d}" if u.microsecond else "") + "Z"


def shown_status(record: ActionRecord, synchronous: bool) -> str:
    """The status as people read it: a retrain only started (asynchronous) is ``launched``, not ``succeeded``."""
    if record.action == "retrain" and record.status == "succeeded" and not synchronous:
        return "launched"
    return record.status


def dedup_key(monitor: str, window_start: datetime, action: str, severity: str) -> str:
    """Deterministic key of one breach's action: same window + action + severity, same key.

    40 characters, so it also fits Databricks' 64-character idempotency token.
    """
    text = f"{monitor}|{iso(window_start)}|{action}|{severity}"
    return f"{action}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


@dataclass
class Plan:
    """What a run does: records to write first, the (record, decision) pairs to carry out, records kept as they were."""

    write: list[ActionRecord] = field(default_factory=list)
    execute: list[tuple[ActionRecord, WindowDecision]] = field(default_factory=list)
    kept: list[ActionRecord] = field(default_factory=list)


def _recent(existing: dict[str, ActionRecord], action: str, key: str, now: datetime,
            cooldown: timedelta) -> list[ActionRecord]:
    return [
        r for r in existing.values()
        if r.action == action and r.dedup_key != key and r.status in ("succeeded", "pending")
        and r.decided_at is not None and now - r.decided_at < cooldown
    ]


def plan(acts: Actions, monitor: str, decisions: list[WindowDecision], existing: dict[str, ActionRecord],
         now: datetime, drift_run_id: str | None, targets: dict[str, str]) -> Plan:
    """Apply dedup, cooldown, the alert cap and "only the latest window retrains" to a run's decisions.

    ``decisions`` are this monitor's, oldest first; ``existing`` the stored
    records by dedup key; ``targets`` the redacted target text per action.
    """
    status_new = "dry_run" if acts.dry_run else "pending"
    out = Plan()

    def base(d: WindowDecision, action: str, kind: str) -> ActionRecord:
        return ActionRecord(
            monitor=monitor, window_start=as_utc(d.window_start), window_end=as_utc(d.window_end),
            severity=d.severity, rules="; ".join(d.rules), action=action, kind=kind, target=targets[action],
            status=status_new, dedup_key=dedup_key(monitor, d.window_start, action, d.severity),
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
                    old.action, old.kind, iso(old.window_start),
                )
            out.kept.append(old)
            return True
        return False

    def add(rec: ActionRecord, d: WindowDecision) -> None:
        out.write.append(rec)
        if rec.status == "pending":
            out.execute.append((rec, d))

    if acts.webhook is not None:
        w = acts.webhook
        breached = [d for d in decisions if d.severity != "none" and at_least(d.severity, w.min_severity)]
        sent = 0
        for d in reversed(breached):  # newest first: the cap keeps the latest windows
            rec = base(d, "alert", "webhook")
            if blocked(rec.dedup_key, ()):
                continue
            recent = _recent(existing, "alert", rec.dedup_key, now, w.cooldown.delta)
            escalation = all(severity_rank(d.severity) > severity_rank(r.severity) for r in recent)
            if recent and not escalation:
                last = max(r.decided_at for r in recent)
                rec = replace(rec, status="skipped_cooldown", finished_at=now,
                              error=f"alert cooldown {w.cooldown}: last alert at {iso(last)}")
            elif sent >= ALERT_CAP:
                rec = replace(rec, status="superseded", finished_at=now,
                              error=f"more than {ALERT_CAP} breached windows in one run; the latest alerted")
            else:
                sent += 1
                if acts.dry_run:
                    rec = replace(rec, finished_at=now)
            add(rec, d)

    if acts.retrain is not None and decisions:
        r = acts.retrain
        latest = decisions[-1]
        for d in decisions:
            if d.severity == "none" or not at_least(d.severity, r.min_severity):
                continue
            rec = base(d, "retrain", r.kind)
            if blocked(rec.dedup_key, ("mlflow_project", "command")):
                continue
            recent = _recent(existing, "retrain", rec.dedup_key, now, r.cooldown.delta)
            if d is not latest:
                rec = replace(rec, status="superseded", finished_at=now,
                              error=f"a later window ({iso(latest.window_start)}) decides retraining in this run")
            elif recent:
                last = max(recent, key=lambda x: x.decided_at)
                rec = replace(rec, status="skipped_cooldown", finished_at=now,
                              error=f"retrain cooldown {r.cooldown}: last retrain at {iso(last.decided_at)}"
                                    + (f" (run {last.retrain_run_id})" if last.retrain_run_id else ""))
            elif acts.dry_run:
                rec = replace(rec, finished_at=now)
            add(rec, d)
    return out
