"""Typed, frozen monitor definition loaded from YAML and validated on load.

Every rejection names the file and the key path, e.g.
``conf/churn.yaml: thresholds.psi: expected a number > 0, got 'high'``.
Validation is driven by the dataclass type hints plus a few field constraints,
so adding a key means adding one typed field with a comment.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Union

import yaml

from sparkdrift.core.windows import CALENDAR_MONTHS, Windows
from sparkdrift.errors import ConfigError

Severity = Literal["minor", "moderate", "severe"]
SEVERITIES: tuple[str, ...] = ("none", "minor", "moderate", "severe")


def _gt0(v: float) -> str | None:
    return None if v > 0 and v < math.inf else "expected a number > 0"


def _ge0(v: float) -> str | None:
    return None if 0 <= v < math.inf else "expected a number >= 0"


def _frac(v: float) -> str | None:
    return None if 0 < v <= 1 else "expected a number in (0, 1]"


def _alpha(v: float) -> str | None:
    return None if 0 < v < 1 else "expected a number in (0, 1)"


def _min(n: int):
    def check(v: int) -> str | None:
        return None if v >= n else f"expected an integer >= {n}"

    return check


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAMED_GRANULARITY = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}


def duration_seconds(text: str) -> int:
    """'90m' -> 5400; also accepts the named granularities 'hour', 'day', 'week'."""
    if text in _NAMED_GRANULARITY:
        return _NAMED_GRANULARITY[text]
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(text)
    return int(m.group(1)) * _DURATION_SECONDS[m.group(2)]


class Duration(str):
    """A duration as written in the config ('1d', 'hour'), parsed once at load.

    It stays the text (YAML, MLflow params and the config hash see what the
    user wrote) and carries its length: ``.seconds`` and ``.delta``.
    """

    seconds: int
    delta: timedelta

    def __new__(cls, text: str) -> "Duration":
        self = super().__new__(cls, text)
        self.seconds = duration_seconds(text)
        self.delta = timedelta(seconds=self.seconds)
        return self


class Granularity(str):
    """A window size as written in the config ('day', '6h', 'month'), parsed once at load.

    It stays the text, like `Duration`, and carries ``.windows``: the `Windows`
    that every job cuts with. A calendar month or quarter has no fixed length,
    so there is no ``.seconds`` here.
    """

    windows: Windows

    def __new__(cls, text: str) -> "Granularity":
        self = super().__new__(cls, text)
        months = CALENDAR_MONTHS.get(text)
        self.windows = Windows(months=months) if months else Windows(seconds=duration_seconds(text))
        return self


_PARSED_TEXT = {"Duration": Duration, "Granularity": Granularity}


def _parse_durations(obj: Any) -> None:
    """``__post_init__`` of sections with durations: text given in code becomes a `Duration`/`Granularity` too."""
    for f in dataclasses.fields(obj):
        value, parsed = getattr(obj, f.name), _PARSED_TEXT.get(f.type)
        if parsed is not None and isinstance(value, str) and not isinstance(value, parsed):
            object.__setattr__(obj, f.name, parsed(value))


def _granularity(v: Granularity) -> str | None:
    return None if v.windows.months or v.windows.seconds >= 60 else "expected a window of at least one minute"


_NAME_PART = r"(?:[A-Za-z_][\w$-]*|`(?:[^`]|``)+`)"
_TABLE_NAME = re.compile(rf"^{_NAME_PART}(?:\.{_NAME_PART}){{0,2}}$")


def _table_ref(v: str) -> str | None:
    """A path/URI (has '/' or a scheme) or a 1-3 part name: catalog.schema.table, parts plain or `quoted`."""
    if not v.strip():
        return "expected a table name (catalog.schema.table) or a path"
    if "/" in v or v.startswith((".", "~")) or ":" in v:
        return None if not any(c in v for c in "\n;") else "expected a path without ';' or line breaks"
    if _TABLE_NAME.match(v):
        return None
    return "expected a path or a table name catalog.schema.table (letters, digits, _; quote other names in `backticks`)"


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 date or date-time ('2026-01-31', '2026-01-31T06:00', '... +00:00'); naive means UTC."""
    try:
        ts = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"expected an ISO timestamp like 2026-01-31 or 2026-01-31T06:00:00, got {text!r}") from None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)


def _timestamp(v: str) -> str | None:
    try:
        parse_timestamp(v)
    except ValueError as exc:
        return str(exc)
    return None


def _c(check, doc: str = "", default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING):
    """A dataclass field with a value check and a doc line for `validate`."""
    kw: dict[str, Any] = {"metadata": {"check": check, "doc": doc}}
    if default is not dataclasses.MISSING:
        kw["default"] = default
    if factory is not dataclasses.MISSING:
        kw["default_factory"] = factory
    return field(**kw)


@dataclass(frozen=True)
class TableSource:
    """A Delta table read by metastore name or by path, optionally time-travelled."""

    table: str = _c(_table_ref, "metastore name catalog.schema.table, or a path/URI")
    version: int | None = _c(_ge0, "Delta version to read (time travel)", None)
    timestamp: str | None = _c(_timestamp, "Delta timestamp to read, e.g. '2026-01-31 00:00:00'", None)
    filter: str | None = _c(None, "SQL predicate applied to the rows read", None)
    sample_fraction: float | None = _c(_frac, "read a random fraction of the rows", None)
    min_rows: int = _c(
        _min(1), "refuse a baseline with fewer rows than this (after filter and sampling): too few to place "
        "quantile bins on or compare windows with", 100)


@dataclass(frozen=True)
class ProductionSource:
    table: str = _c(_table_ref, "inference log table: name or path")
    timestamp_column: str = _c(None, "event time column that windows are cut on")
    granularity: Granularity = _c(
        _granularity, "window size: hour, day, week (from Monday), 15m/6h/..., or the calendar month or quarter (UTC)",
        Granularity("day"))
    lateness: Duration = _c(None, "how long after a window's end late rows may still arrive", Duration("1h"))
    recompute_windows: int = _c(_min(0), "also recompute this many finished windows before the last", 0)
    late_check: Duration = _c(
        None, "how far back a run repairs stored windows: one that gained or lost rows since it was computed "
        "(recounted when the table changed), or that MLflow did not get, is recomputed ('0s' = off)", Duration("7d"))
    start: str | None = _c(_timestamp, "ignore rows before this timestamp (backfill start)", None)
    filter: str | None = _c(None, "SQL predicate applied to the rows read", None)
    version: int | None = _c(_ge0, "pin the Delta version read (default: latest)", None)

    __post_init__ = _parse_durations


@dataclass(frozen=True)
class Features:
    numeric: tuple[str, ...] = _c(None, "numeric feature columns", ())
    categorical: tuple[str, ...] = _c(None, "categorical feature columns", ())
    infer: bool = _c(None, "infer features from the schema (numeric/string/boolean)", False)
    exclude: tuple[str, ...] = _c(None, "columns never inferred as features", ())


@dataclass(frozen=True)
class Prediction:
    columns: tuple[str, ...] = _c(None, "model output columns monitored for prediction drift", ())
    kind: Literal["score", "class", "regression"] = _c(None, "what the prediction is", "score")


@dataclass(frozen=True)
class Label:
    column: str | None = _c(None, "ground-truth column (in production, or in `table`)", None)
    table: str | None = _c(None, "separate labels table, joined on id_column", None)
    id_column: str | None = _c(None, "key joining predictions and labels", None)
    positive: str | None = _c(None, "positive class for precision/recall (score kind: 1)", None)
    threshold: float = _c(_alpha, "score cut-off for class metrics", 0.5)
    timestamp_column: str | None = _c(None, "labels table: when the label arrived (incremental label reads)", None)
    max_delay: Duration = _c(None, "labels table: how long after a prediction its label may still arrive", Duration("7d"))

    __post_init__ = _parse_durations


@dataclass(frozen=True)
class Binning:
    coarse_bins: int = _c(_min(2), "quantile bins for PSI (unions of fine bins)", 10)
    fine_bins: int = _c(_min(10), "fine quantile grid for KS/JS/Wasserstein", 1000)
    quantile_accuracy: int = _c(_min(100), "percentile_approx accuracy (rank error = 1/accuracy)", 10000)
    quantile_sample_rows: int | None = _c(
        _min(10_000),
        "quantiles from a random sample of about this many rows (bin counts stay exact; null = every row)",
        1_000_000,
    )
    top_k: int = _c(_min(1), "categories kept per categorical feature (rest: other)", 20)
    max_tracked_categories: int = _c(
        _min(0), "list up to this many non-top-K baseline categories to tell 'other' from 'unseen' "
        "(beyond: a Bloom filter of all of them, ~1% of unseen counted as other)", 10000
    )


@dataclass(frozen=True)
class References:
    baseline: bool = _c(None, "compare every window with the baseline profile", True)
    previous_window: bool = _c(None, "also compare with the previous window", False)
    rolling_windows: int = _c(_min(0), "also compare with the merge of the last N windows (0 = off)", 0)


@dataclass(frozen=True)
class Statistics:
    numeric: tuple[str, ...] | None = _c(None, "statistics for numeric columns (default: registry's)", None)
    categorical: tuple[str, ...] | None = _c(None, "statistics for categorical columns", None)
    epsilon: float = _c(lambda v: None if 0 < v < 0.5 else "expected a number in (0, 0.5)",
                        "smoothing for empty bins in PSI", 1e-4)
    divergence_bins: Literal["coarse", "fine"] = _c(
        None, "bins for JS/Hellinger on numeric columns (fine bins are noisy on small windows)", "coarse")
    ks_alpha: float = _c(_alpha, "significance for the robust KS critical value", 0.05)


@dataclass(frozen=True)
class Quality:
    completeness: float = _c(_frac, "minimum share of non-null, non-NaN values", 0.99)
    out_of_range_rate: float = _c(_frac, "maximum share outside the baseline min/max", 0.01)
    unseen_rate: float = _c(_frac, "maximum share of categories the baseline never had", 0.01)
    invalid_rate: float = _c(_frac, "maximum share of values failing the expected type", 0.01)
    volume_ratio: float = _c(_gt0, "flag a window whose rows differ from the recent median by this factor", 3.0)


@dataclass(frozen=True)
class Performance:
    accuracy: float = _c(_frac, "minimum accuracy", 0.85)
    auc: float = _c(_frac, "minimum ROC AUC", 0.90)
    relative: float = _c(_frac, "minimum share of the baseline's performance", 0.95)


@dataclass(frozen=True)
class Levels:
    minor: float = _c(_ge0, "drift score that notifies", 0.1)
    moderate: float = _c(_ge0, "drift score that asks to investigate", 0.2)
    severe: float = _c(_ge0, "drift score that retrains", 0.3)


@dataclass(frozen=True)
class Persistence:
    enabled: bool = _c(None, "catch drift that stays under the threshold for many windows", True)
    statistic: str | None = _c(None, "statistic to accumulate (default: the one policy.score uses, else psi)", None)
    allowance: float = _c(_frac, "per-window slack as a share of the threshold (CUSUM k)", 0.25)
    limit: float = _c(_gt0, "alarm when the accumulated excess reaches this many thresholds (CUSUM h)", 1.0)
    severity: Severity = _c(None, "severity of the persistence rule", "minor")


@dataclass(frozen=True)
class Policy:
    score: str = _c(
        None, "drift score: share_drifted, mean:<statistic>, max:<statistic>, or mean_shift", "max:psi"
    )
    levels: Levels = _c(None, "score levels", factory=Levels)
    drifted_features: int = _c(_min(1), "this many drifted features is at least moderate", 3)
    drifted_features_severity: Severity = _c(None, "severity of the drifted-features rule", "moderate")
    prediction_psi: float = _c(_gt0, "prediction PSI above this is at least moderate", 0.15)
    prediction_severity: Severity = _c(None, "severity of the prediction-drift rule", "moderate")
    quality_severity: Severity = _c(None, "severity of a data-quality breach", "minor")
    performance_severity: Severity = _c(None, "severity of a performance breach", "severe")
    consecutive_windows: int = _c(_min(1), "a level fires only after N consecutive windows at it", 1)
    hysteresis: float = _c(_ge0, "an active level clears only when the score falls this far below it", 0.0)
    noise_floor: bool = _c(
        None, "a statistic breaches only above the value chance gives at the window's size (off: fixed thresholds)", True
    )
    false_alarm_rate: float = _c(
        _alpha, "share of drift-free windows allowed to reach minor; split over the run's tests (Bonferroni)", 0.01
    )
    persistence: Persistence = _c(None, "CUSUM rule for slow drift under the per-window thresholds", factory=Persistence)
    slice_min_rows: int = _c(_min(1), "a slice breach counts only when the slice has this many rows in the window", 500)
    slice_severity: Severity = _c(None, "severity of a slice breach (the overall rules are unchanged)", "minor")


def _slice_name(v: str) -> str | None:
    """Slice names appear in table rows and MLflow keys; ``__`` is kept for the markers (``__all__``)."""
    if re.fullmatch(r"[\w.:<>=!+ -]+", v) and not v.startswith("__"):
        return None
    return "expected letters, digits, spaces or _ . : < > = ! + - (not starting with __)"


@dataclass(frozen=True)
class Slice:
    """A segment dimension: a column, or a SQL expression whose value labels each row."""

    #: a plain string in the YAML list is the ``expr``
    SHORTHAND: ClassVar[str] = "expr"
    expr: str = _c(lambda v: None if v.strip() else "expected a column or SQL expression",
                   "column or SQL expression labelling each row (e.g. country, amount > 1000)")
    name: str | None = _c(_slice_name, "name in tables, MLflow and reports (default: the expression)", None)
    max_values: int = _c(_min(1), "the baseline's most frequent values kept (rest: other; null: its own)", 10)

    @property
    def label(self) -> str:
        return self.name or self.expr


@dataclass(frozen=True)
class Webhook:
    url_env: str = _c(None, "environment variable holding the webhook URL (never the URL itself)")
    min_severity: Severity = _c(None, "lowest severity that alerts", "minor")
    timeout_seconds: float = _c(_gt0, "per-request timeout", 10.0)
    retries: int = _c(_min(0), "retries after a failed request", 3)
    cooldown: Duration = _c(None, "no second alert within this time", Duration("1h"))

    __post_init__ = _parse_durations


@dataclass(frozen=True)
class Retrain:
    kind: Literal["mlflow_project", "databricks_job", "command"] = _c(None, "how retraining starts")
    min_severity: Severity = _c(None, "lowest severity that retrains", "severe")
    cooldown: Duration = _c(None, "no second retrain within this time", Duration("24h"))
    uri: str | None = _c(None, "mlflow_project: project URI (folder or git)", None)
    entry_point: str = _c(None, "mlflow_project: entry point", "main")
    backend: str = _c(None, "mlflow_project: backend (local, databricks, ...)", "local")
    env_manager: str = _c(None, "mlflow_project: local, virtualenv or conda", "local")
    parameters: dict[str, str] = _c(None, "extra parameters passed to the run", factory=dict)
    job_id: int | None = _c(_ge0, "databricks_job: job id", None)
    command: tuple[str, ...] = _c(None, "command: argv to run", ())
    synchronous: bool = _c(None, "wait for the retrain run to finish", False)

    __post_init__ = _parse_durations


@dataclass(frozen=True)
class Actions:
    dry_run: bool = _c(None, "decide and record, but send and start nothing", False)
    fail_on_error: bool = _c(None, "exit non-zero when an action fails", False)
    webhook: Webhook | None = _c(None, "alert to a Slack-compatible webhook", None)
    retrain: Retrain | None = _c(None, "retraining trigger", None)


@dataclass(frozen=True)
class Output:
    location: str | None = _c(None, "folder for path-based output tables", None)
    schema: str | None = _c(None, "metastore schema (catalog.schema) for output tables", None)
    profiles_table: str = _c(None, "baseline profiles table name", "drift_baselines")
    histograms_table: str = _c(None, "window histograms table name", "drift_histograms")
    metrics_table: str = _c(None, "drift metrics table name", "drift_metrics")
    actions_table: str = _c(None, "actions table name", "drift_actions")
    report_dir: str | None = _c(None, "also write reports to this folder", None)


@dataclass(frozen=True)
class Tracking:
    tracking_uri: str | None = _c(None, "MLflow tracking URI (default: MLflow's own default/env)", None)
    experiment: str | None = _c(None, "experiment name (default: sparkdrift/<monitor>)", None)
    enabled: bool = _c(None, "log runs to MLflow", True)
    timeout_seconds: float = _c(_gt0, "per-request timeout of MLflow calls (the verdict never waits longer)", 15.0)
    retries: int = _c(_min(0), "retries of a failed MLflow request", 2)
    required: bool = _c(None, "exit 4 when MLflow logging failed (tables and actions are done either way)", False)
    max_slice_metrics: int = _c(_min(0), "log at most this many breached slice metrics per run", 50)


@dataclass(frozen=True)
class MonitorConfig:
    monitor: str = _c(lambda v: None if re.fullmatch(r"[A-Za-z0-9_.-]+", v) else
                      "expected letters, digits, '_', '.', '-'", "monitor name")
    baseline: TableSource = _c(None, "reference data (training set)")
    production: ProductionSource = _c(None, "inference log")
    features: Features = _c(None, "columns to monitor", factory=Features)
    prediction: Prediction = _c(None, "model outputs", factory=Prediction)
    label: Label = _c(None, "ground truth for performance drift", factory=Label)
    id_column: str | None = _c(None, "row id column (excluded from inference)", None)
    binning: Binning = _c(None, "bins", factory=Binning)
    statistics: Statistics = _c(None, "which statistics run", factory=Statistics)
    thresholds: dict[str, float] = _c(None, "per-statistic threshold overrides", factory=dict)
    prediction_thresholds: dict[str, float] = _c(None, "thresholds for prediction columns", factory=dict)
    feature_thresholds: dict[str, dict[str, float]] = _c(None, "per-feature threshold overrides", factory=dict)
    slices: tuple[Slice, ...] = _c(None, "segments counted in the same pass (see Slices)", ())
    slice_crosses: tuple[tuple[str, ...], ...] = _c(
        None, "pairs of listed slices (by name) also counted crossed, e.g. [[country, device]]: "
              "their most frequent combinations in the baseline, rest other", ())
    max_slice_values: int = _c(
        _min(1), "cap on slice values per monitor, other and null included: the listed slices take theirs "
                 "first (max_values + 2 each, checked on load), the crosses share the rest by baseline frequency", 200)
    references: References = _c(None, "what windows are compared with", factory=References)
    quality: Quality = _c(None, "data-quality thresholds", factory=Quality)
    performance: Performance = _c(None, "performance thresholds", factory=Performance)
    policy: Policy = _c(None, "severity rules", factory=Policy)
    actions: Actions = _c(None, "alerts and retraining", factory=Actions)
    output: Output = _c(None, "where results are written", factory=Output)
    mlflow: Tracking = _c(None, "MLflow tracking", factory=Tracking)
    baseline_id: str | None = _c(None, "pin a baseline profile (default: latest)", None)
    #: values that came from ${ENV} references: never printed, logged or written (not a config key)
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False, metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def redact(self, text: str) -> str:
        """``text`` with every secret value, and the value of every secret-looking --flag, replaced by ***."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return _SECRET_FLAG.sub(lambda m: m.group(1) + REDACTED, text)

    def display_items(self) -> list[tuple[str, str]]:
        """The flattened config with secrets redacted: what `validate` prints and MLflow gets as params."""
        out = []
        for key, value in flatten(self.to_dict()).items():
            if is_secret_key(key) and value not in ("None", ""):
                value = REDACTED
            out.append((key, self.redact(value)))
        return out

    def config_hash(self, *sections: str) -> str:
        """Stable short hash of the given sections (all when none given)."""
        plain = self.to_dict()
        if sections:
            plain = {k: plain[k] for k in sections}
        return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]

    def output_table(self, which: str) -> str:
        """Where an output table lives: ``<schema>.<name>``, or ``<location>/<name>``.

        ``which`` is one of profiles, histograms, metrics, actions.
        """
        name = getattr(self.output, f"{which}_table")
        if self.output.schema:
            return f"{self.output.schema}.{name}"
        return str(Path(self.output.location or "sparkdrift-data/tables") / name)

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or f"sparkdrift/{self.monitor}"


REDACTED = "***"
#: shorter environment values (a catalog name like "main") are not redacted inside other text
MIN_SECRET_LENGTH = 6
_SECRET_WORDS = ("url", "token", "secret", "password", "passwd", "credential", "api_key", "apikey",
                 "access_key", "private_key")
#: a command argument like --token=abc, --api-key abc, -p=abc is redacted after the flag
_SECRET_FLAG = re.compile(
    r"(--?(?:[\w-]*(?:token|secret|password|passwd|credential|api[_-]?key|access[_-]?key|private[_-]?key)[\w-]*)"
    r"(?:=|[\"'],\s*[\"']|\s+))(?!\*\*\*)[^\s\"',)\]]+",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    """Config keys whose values are secrets by their name (webhook URLs, tokens, passwords, API keys)."""
    low = key.lower()
    return any(word in low for word in _SECRET_WORDS)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.metadata.get("internal")}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (Duration, Granularity)):
        return str(obj)  # as written
    return obj


def flatten(plain: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}: MLflow params and the `validate` printout."""
    out: dict[str, str] = {}
    for k, v in plain.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return out


def _describe(v: Any) -> str:
    return repr(v) if not isinstance(v, str) else f'"{v}"'


class _Invalid(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(str(a) for a in args)
            raise _Invalid(path, f"expected one of {allowed}, got {_describe(value)}")
        return value
    if dataclasses.is_dataclass(tp):
        shorthand = getattr(tp, "SHORTHAND", None)
        if shorthand and isinstance(value, str):
            value = {shorthand: value}
        return _build(tp, value, path)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise _Invalid(path, f"expected a list, got {_describe(value)}")
        return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _Invalid(path, f"expected a mapping, got {_describe(value)}")
        return {str(k): _convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise _Invalid(path, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(path, f"expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(path, f"expected a number, got {_describe(value)}")
        return float(value)
    if tp is Duration:
        try:
            return Duration(_convert(str, value, path))
        except ValueError:
            raise _Invalid(path, f"expected a duration like '30m', '2h', '1d' (or hour/day/week), got {_describe(value)}") from None
    if tp is Granularity:
        try:
            return Granularity(_convert(str, value, path))
        except ValueError:
            raise _Invalid(path, f"expected a duration like '15m', '6h', '1d', or hour/day/week/month/quarter, "
                                 f"got {_describe(value)}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise _Invalid(path, f"expected a string, got {_describe(value)}")
        return str(value)
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise _Invalid(path, f"expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise _Invalid(where, f"unknown key (allowed: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _Invalid(sub, "required key is missing")
            continue
        value = _convert(hints[name], data[name], sub)
        check = f.metadata.get("check")
        if check is not None and value is not None:
            number_check = check in (_gt0, _ge0, _frac, _alpha)
            if number_check and isinstance(value, dict):
                for k, v in value.items():
                    msg = check(v)
                    if msg:
                        raise _Invalid(f"{sub}.{k}", f"{msg}, got {_describe(v)}")
            else:
                msg = check(value)
                if msg:
                    raise _Invalid(sub, f"{msg}, got {_describe(data[name])}")
        kwargs[name] = value
    return cls(**kwargs)


def _check_thresholds(cfg: MonitorConfig) -> None:
    from sparkdrift.core.stats import STATISTICS

    tables = {"thresholds": cfg.thresholds, "prediction_thresholds": cfg.prediction_thresholds}
    for feat, t in cfg.feature_thresholds.items():
        tables[f"feature_thresholds.{feat}"] = t
    for where, table in tables.items():
        for name, value in table.items():
            if name not in STATISTICS:
                raise _Invalid(f"{where}.{name}", f"unknown statistic (known: {', '.join(STATISTICS)})")
            if not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise _Invalid(f"{where}.{name}", f"expected a number >= 0, got {_describe(value)}")
    for kind in ("numeric", "categorical"):
        chosen = getattr(cfg.statistics, kind) or ()
        for i, name in enumerate(chosen):
            stat = STATISTICS.get(name)
            if stat is None:
                raise _Invalid(f"statistics.{kind}[{i}]", f"unknown statistic {_describe(name)}")
            if kind not in stat.kinds:
                raise _Invalid(f"statistics.{kind}[{i}]", f"{name} does not apply to {kind} columns")


def _check_consistency(cfg: MonitorConfig) -> None:
    lv = cfg.policy.levels
    if not lv.minor <= lv.moderate <= lv.severe:
        raise _Invalid("policy.levels", "expected minor <= moderate <= severe")
    both = set(cfg.features.numeric) & set(cfg.features.categorical)
    if both:
        raise _Invalid("features", f"column {sorted(both)[0]!r} is both numeric and categorical")
    if not (cfg.features.numeric or cfg.features.categorical or cfg.features.infer or cfg.prediction.columns):
        raise _Invalid("features", "no columns to monitor: list numeric/categorical features or set infer: true")
    score = cfg.policy.score
    if score not in ("share_drifted", "mean_shift") and not re.fullmatch(r"(mean|max):\w+", score):
        raise _Invalid("policy.score", f"expected share_drifted, mean_shift, mean:<statistic> or max:<statistic>, got {_describe(score)}")
    stat = cfg.policy.persistence.statistic
    if stat is not None:
        from sparkdrift.core.stats import STATISTICS

        if stat not in STATISTICS:
            raise _Invalid("policy.persistence.statistic", f"unknown statistic {_describe(stat)}")
    if cfg.label.table and not cfg.label.id_column:
        raise _Invalid("label.id_column", "required when label.table is set")
    r = cfg.actions.retrain
    if r is not None:
        need = {"mlflow_project": ("uri", r.uri), "databricks_job": ("job_id", r.job_id), "command": ("command", r.command)}
        key, value = need[r.kind]
        if not value:
            raise _Invalid(f"actions.retrain.{key}", f"required when kind is {r.kind}")
    if cfg.output.location and cfg.output.schema:
        raise _Invalid("output.schema", "set either output.location or output.schema, not both")
    _check_slices(cfg)
    if cfg.baseline.version is not None and cfg.baseline.timestamp is not None:
        raise _Invalid("baseline.timestamp", "set either version or timestamp, not both")


def _check_slices(cfg: MonitorConfig) -> None:
    """Unique slice labels; crosses are pairs of distinct listed slices; the listed slices fit under the cap."""
    seen: set[str] = set()
    for i, sl in enumerate(cfg.slices):
        if sl.label in seen:
            raise _Invalid(f"slices[{i}]", f"slice {sl.label!r} is listed twice (give one a name)")
        seen.add(sl.label)
    pairs: set[frozenset[str]] = set()
    for i, cross in enumerate(cfg.slice_crosses):
        where = f"slice_crosses[{i}]"
        if len(cross) != 2 or cross[0] == cross[1]:
            raise _Invalid(where, f"expected two different slice names, got {_describe(list(cross))}")
        for j, label in enumerate(cross):
            if label not in seen:
                known = ", ".join(sorted(seen)) or "none listed under slices"
                raise _Invalid(f"{where}[{j}]", f"unknown slice {label!r} (slices: {known})")
        if frozenset(cross) in pairs:
            raise _Invalid(where, f"the pair {cross[0]!r}, {cross[1]!r} is listed twice")
        pairs.add(frozenset(cross))
    listed = sum(sl.max_values + 2 for sl in cfg.slices)  # each: its top values, other, null
    if listed > cfg.max_slice_values:
        raise _Invalid("max_slice_values", f"the slices take up to {listed} values (max_values + other + null "
                                           f"each), more than the cap of {cfg.max_slice_values}")


def parse_config(data: Any, source: str = "<config>") -> MonitorConfig:
    """Validate a plain mapping into a MonitorConfig, or raise ConfigError naming source and key."""
    try:
        cfg = _build(MonitorConfig, data, "")
        _check_thresholds(cfg)
        _check_consistency(cfg)
    except _Invalid as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute(data: Any, values: Mapping[str, str], source: str, found: set[str] | None = None) -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in string values (never keys) with ``values[NAME]``.

    A name neither in ``values`` nor given a default is a `ConfigError` naming
    ``source``. Values used are added to ``found`` (see `expand_env`).
    """
    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        value = values.get(name)
        if value is None:
            value = default
            if value is None:
                raise ConfigError(f"{source}: environment variable {name} is not set (referenced as ${{{name}}})")
        elif found is not None and len(value) >= MIN_SECRET_LENGTH:
            found.add(value)
        return value

    if isinstance(data, str):
        return _ENV_REF.sub(sub, data)
    if isinstance(data, list):
        return [substitute(v, values, source, found) for v in data]
    if isinstance(data, dict):
        return {k: substitute(v, values, source, found) for k, v in data.items()}
    return data


def expand_env(data: Any, source: str, found: set[str] | None = None) -> Any:
    """`substitute` from the environment: one YAML file then serves dev and prod.

    (E.g. a Databricks bundle passes the catalog and schema as environment
    variables.) Values taken from the environment are added to ``found``: they
    may be secrets, so they are never printed or logged.
    """
    import os

    return substitute(data, os.environ, source, found)


def load_config(path: str | Path) -> MonitorConfig:
    """Read and validate a YAML monitor definition."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}") from None
    found: set[str] = set()
    cfg = parse_config(expand_env(data if data is not None else {}, str(path), found), str(path))
    return dataclasses.replace(cfg, secrets=frozenset(found))


def describe_fields(cls: type = MonitorConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key path, default, doc) for every key: the config reference."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in (f for f in dataclasses.fields(cls) if not f.metadata.get("internal")):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        sub = tp if dataclasses.is_dataclass(tp) else (inner[0] if len(inner) == 1 and dataclasses.is_dataclass(inner[0]) else None)
        items = inner[0] if typing.get_origin(tp) is tuple and inner and dataclasses.is_dataclass(inner[0]) else None
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING and sub is None:
            default = repr(f.default_factory())
        elif sub is not None:
            default = ""
        else:
            default = "(required)"
        rows.append((key, default, f.metadata.get("doc", "")))
        if sub is not None:
            rows.extend(describe_fields(sub, key + "."))
        if items is not None:  # a list of mappings: its items' keys
            rows.extend(describe_fields(items, key + "[]."))
    return rows


def reference_markdown() -> str:
    """The README's config reference table, generated from the dataclasses (a test keeps them in sync)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in describe_fields():
        shown = default.replace("|", "\\|")
        lines.append(f"| `{key}` | {f'`{shown}`' if shown else ''} | {doc} |")
    return "\n".join(lines)
