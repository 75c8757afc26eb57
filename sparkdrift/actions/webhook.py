"""Alerts: a Slack-compatible JSON POST with retries, backoff and a per-request timeout.

The URL comes from the environment variable named by ``actions.webhook.url_env``
and is never written anywhere: logs and the actions table show ``https://host/***``.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from sparkdrift.core.config import Webhook
from sparkdrift.core.planning import iso
from sparkdrift.core.policy import WindowDecision
from sparkdrift.errors import ActionError, ActionFailed

log = logging.getLogger("sparkdrift.actions")

BACKOFF_SECONDS = 1.0  # retry delay: BACKOFF_SECONDS * 2**attempt, capped
MAX_BACKOFF_SECONDS = 30.0
MAX_LISTED_FEATURES = 15


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
    window = f"{iso(d.window_start)} to {iso(d.window_end)}"
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
                raise ActionFailed(f"webhook answered {last} (not retried)") from None
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
    raise ActionFailed(f"webhook failed after {retries + 1} attempt(s): {last}")
