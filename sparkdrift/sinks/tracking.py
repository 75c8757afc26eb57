"""MLflow logging: one run per job execution, metrics per window, params, tags and artifacts.

No Spark here: everything takes plain values (``DriftResult`` rows, dicts).

Naming and the step rule (the same for every job, so runs line up in the UI):

- metric key ``<section>/<name>``: MLflow's run page charts each key prefix
  before the first '/' as one section, in key order, so the keys are chosen
  for that order. ``drift/...`` (the window verdicts: score, severity,
  n_drifted, ...) sorts first; then one section per column,
  ``DriftResult.metric_name`` (``feature.age/psi``, ``prediction.score/psi``,
  ``quality.age/completeness``, ``feature.age/psi.vs_previous_window``); the
  run cost last, ``run_cost/<name>``.
- ``step = Windows.index(window_start)``: the window's number (epoch seconds //
  window seconds; for months, months since 1970-01) that is stable across runs, so a metric's history over many runs reads as
  one time series and a recomputed window lands on the same step. (The UI
  writes it as e.g. 20.454k; its "Time (wall)" x axis shows the windows as dates.)
- ``timestamp = window_start`` in epoch milliseconds: the time axis marks a window on the date the report and
  the console name it by (drift in the Jan 8 window shows at Jan 8, not at its end, Jan 9).
- Naive datetimes are taken as UTC (sparkdrift's Spark sessions run in UTC).

Only ``MlflowClient(tracking_uri)`` is used; no global MLflow state is changed
(no ``mlflow.set_tracking_uri``, no active-run stack). The one process-wide
setting is MLflow's HTTP timeout and retries (``MLFLOW_HTTP_REQUEST_*``, from
``mlflow.timeout_seconds`` / ``mlflow.retries`` unless already set).

MLflow is a sink, never on the critical path: a store that cannot be reached
or fails mid-run does not fail the job. The run object records the first
error (``run.error``), skips its later calls, and the job goes on to write its
tables and act on its verdict.
"""
from __future__ import annotations

import logging
import math
import numbers
import os
import functools
import re
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import unquote, urlsplit

from sparkdrift.core.config import REDACTED, MonitorConfig
from sparkdrift.core.results import DriftResult
from sparkdrift.core.windows import Windows, as_utc

__all__ = [
    "DriftRun",
    "describe_windows",
    "config_params",
    "experiment_name",
    "NoOpRun",
    "RunRef",
    "log_artifacts",
    "log_cost",
    "log_results",
    "log_summaries",
    "metric_step",
    "metric_timestamp_ms",
    "run_name",
    "run_url",
    "set_tags",
    "start_run",
]

_log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation); repeated here so the module does
# not depend on private names.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: MLflow 3 opens an experiment in its GenAI view unless it is tagged as model development
#: A run of this monitor still RUNNING after this long was left by a killed job (no detect run takes a day).
STALE_RUN = timedelta(hours=24)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
_BAD_KEY_CHARS = re.compile(r"[^\w.\- /]")
_URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
DEFAULT_UI = "http://127.0.0.1:5000"
#: The run page's tab a link opens: the metric charts, in MLflow 3's model-training view (its default view is GenAI's).
RUN_TAB = "model-metrics?workflowType=machine_learning"
#: The run cost's metric section: after ``drift``, ``feature.*``, ``performance.*``, ``prediction.*``, ``quality.*``.
COST_SECTION = "run_cost"


# --------------------------------------------------------------------------- time


def metric_step(window_start: datetime, windows: Windows) -> int:
    """A window's MLflow ``step``: its stable number, `Windows.index`."""
    return windows.index(window_start)


def metric_timestamp_ms(moment: datetime) -> int:
    """``moment`` in epoch milliseconds (exact integer arithmetic, no float rounding)."""
    return int((as_utc(moment) - _EPOCH) // timedelta(milliseconds=1))


def _now_ms() -> int:
    return metric_timestamp_ms(datetime.now(timezone.utc))


def describe_windows(
    window_range: tuple[datetime, datetime] | None, windows: Windows
) -> tuple[int, str]:
    """(window count, label) of a half-open range ``[first window start, last window end)``.

    The label names windows by their start: ``2026-01-08..2026-01-14`` for the
    seven daily windows from 2026-01-08 to 2026-01-15 (exclusive), ``2026-01..2026-03``
    for three months; a single window is just its start. A range shorter than
    one window counts as one.
    """
    if window_range is None:
        return 0, ""
    start, end = window_range
    last_start = windows.start(as_utc(end) - timedelta(microseconds=1))
    count = max(1, windows.index(last_start) - windows.index(start) + 1)
    first = windows.label(start)
    return count, first if count == 1 else f"{first}..{windows.label(last_start)}"


# --------------------------------------------------------------------------- keys and values


def _key(name: str) -> str:
    """An MLflow-valid metric/param/tag key: odd characters become '_', at most 250 chars ('/' stays: it sections charts)."""
    key = _BAD_KEY_CHARS.sub("_", str(name))[:MAX_KEY_LENGTH]
    return key if key not in ("", ".", "..") else "_"


def _truncate(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[: limit - 3] + "..."


def scrub_uri(value: str) -> str:
    """Drop user:password from any ``scheme://user:pass@host`` inside a value."""
    return _URI_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)


def config_params(cfg: MonitorConfig) -> dict[str, str]:
    """The monitor config as MLflow params: flattened, secrets redacted, values truncated."""
    return {_key(key): _truncate(scrub_uri(value), MAX_PARAM_VAL_LENGTH) for key, value in cfg.display_items()}


def _number(value: Any) -> float | None:
    """A finite-or-infinite float for a metric, or None for NaN/None/non-numbers."""
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, numbers.Real):
        return None
    f = float(value)
    return None if math.isnan(f) else f


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------- URLs


def _databricks_host() -> str | None:
    host = os.environ.get("DATABRICKS_HOST")
    if host:
        return host
    try:  # inside a Databricks notebook or job
        from mlflow.utils.databricks_utils import get_workspace_url

        return get_workspace_url()
    except Exception:  # noqa: BLE001 - any failure means "unknown"
        return None


def run_url(tracking_uri: str | None, experiment_id: str, run_id: str) -> str:
    """Where a person opens the run.

    - ``http(s)://host[/prefix]`` -> ``<uri>/#/experiments/<exp>/runs/<run>/<RUN_TAB>``
    - ``databricks[://profile]`` -> ``https://<workspace>/#mlflow/experiments/<exp>/runs/<run>``
      (workspace from ``DATABRICKS_HOST`` or the notebook context; otherwise the
      workspace-relative ``#mlflow/experiments/...`` fragment)
    - sqlite, file, a plain path or None -> the ``mlflow ui`` default
      ``http://127.0.0.1:5000/#/experiments/<exp>/runs/<run>/<RUN_TAB>``

    An open-source MLflow link opens on the metric charts, whose first section is the drift.
    """
    uri = tracking_uri or ""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        parts = urlsplit(uri)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        base = f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}/{RUN_TAB}"
    if uri == "databricks" or scheme in ("databricks", "databricks-uc"):
        fragment = f"#mlflow/experiments/{experiment_id}/runs/{run_id}"
        host = _databricks_host()
        if not host:
            return fragment
        if "://" not in host:
            host = f"https://{host}"
        return f"{host.rstrip('/')}/{fragment}"
    return f"{DEFAULT_UI}/#/experiments/{experiment_id}/runs/{run_id}/{RUN_TAB}"


def resolve_tracking_uri(cfg: MonitorConfig) -> str:
    """The monitor's tracking URI, else MLflow's default (MLFLOW_TRACKING_URI), read without changing it."""
    if cfg.mlflow.tracking_uri:
        return cfg.mlflow.tracking_uri
    from mlflow.tracking import get_tracking_uri  # reads MLFLOW_TRACKING_URI, changes nothing

    return get_tracking_uri()


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """For a local SQLite store, keep artifacts next to the database, not in the CWD.

    (MLflow's default for a SQLite store is ``./mlruns`` under whatever folder
    the job happened to start in.) Other stores choose their own location.
    """
    db = _sqlite_file(tracking_uri)
    if db is None:
        return None
    folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment).strip("._") or "experiment"
    return (db.parent / "mlartifacts" / folder).as_uri()


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for other stores and in-memory SQLite)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = unquote(tracking_uri[len("sqlite:///") :].split("?", 1)[0])
    return Path(db).resolve() if db and db != ":memory:" else None


def experiment_name(cfg: MonitorConfig, tracking_uri: str | None) -> str:
    """``cfg.experiment_name``; on Databricks a relative name goes under ``/Shared/``.

    (Databricks experiments are workspace paths, so ``sparkdrift/churn_model``
    becomes ``/Shared/sparkdrift/churn_model``; an absolute name is kept.)
    """
    name = cfg.experiment_name
    uri = (tracking_uri or "").lower()
    if (uri == "databricks" or uri.startswith("databricks:")) and not name.startswith("/"):
        return f"/Shared/{name}"
    return name


def _experiment_id(client, name: str, tracking_uri: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(tracking_uri, name),
                                            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException as exc:  # created concurrently by another job
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    if EXPERIMENT_KIND_TAG not in (exp.tags or {}):
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def _context_tags(tags: dict[str, str]) -> dict[str, str]:
    """Add what the fluent API would (user, source, git commit, Databricks job/notebook)."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        return {k: str(v) for k, v in resolve_tags(tags).items()}
    except Exception:  # noqa: BLE001 - context is a nicety, never a reason to fail
        return dict(tags)


# --------------------------------------------------------------------------- run handles


@dataclass(frozen=True)
class RunRef:
    """What identifies a run: ids, name, where to open it. ``run_id`` is None when disabled."""

    run_id: str | None
    experiment_id: str | None
    run_name: str
    tracking_uri: str | None
    url: str | None


def _error_text(exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _sink(default: Any = None):
    """A logging method that never raises: the first failure is kept in ``self.error``, later calls are skipped."""

    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            if self.error is not None:
                return default
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a sink's failure must not sink the verdict
                self.error = _error_text(exc)
                _log.warning("MLflow %s failed (%s): the run is no longer logged to; tables and actions proceed",
                             method.__name__, self.error)
                return default

        return call

    return wrap


class DriftRun:
    """An open MLflow run of one sparkdrift job; every write goes through ``log_batch``."""

    enabled = True

    def __init__(self, client, info: RunRef, windows: Windows):
        self.client = client
        self.info = info
        self.windows = windows
        self.error: str | None = None

    # -- metrics

    def _log_metrics(self, metrics: list) -> int:
        for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.info.run_id, metrics=list(chunk), synchronous=True)
        return len(metrics)

    @_sink(0)
    def log_results(self, results: Iterable[DriftResult]) -> int:
        """Log each result as ``metric_name`` at its window's step; NaN values are skipped.

        Returns the number of metric values logged. A (metric, window) pair
        appearing twice keeps the last value.
        """
        from mlflow.entities import Metric

        latest: dict[tuple[str, int], Metric] = {}
        for r in results:
            value = _number(r.value)
            if value is None:
                continue
            key = _key(r.metric_name)
            step = metric_step(r.window_start, self.windows)
            latest[(key, step)] = Metric(key, value, metric_timestamp_ms(r.window_start), step)
        return self._log_metrics(list(latest.values()))

    @_sink(0)
    def log_summaries(self, summaries: Iterable[dict]) -> int:
        """Log per-window summary numbers (``drift/score``, ``drift/n_drifted``, ...).

        Every numeric key other than window_start/window_end becomes a metric
        at the window's step; NaN, None and non-numeric values are skipped.
        """
        from mlflow.entities import Metric

        latest: dict[tuple[str, int], Metric] = {}
        for s in summaries:
            step = metric_step(s["window_start"], self.windows)
            ts = metric_timestamp_ms(s["window_start"])
            for name, raw in s.items():
                if name in ("window_start", "window_end"):
                    continue
                value = _number(raw)
                if value is None:
                    continue
                key = _key(name)
                latest[(key, step)] = Metric(key, value, ts, step)
        return self._log_metrics(list(latest.values()))

    @_sink(0)
    def log_cost(self, cost: dict[str, float]) -> int:
        """Log what the run cost as ``run_cost/<name>`` (rows_read, bytes_read, task_time_s, ...).

        Its section sorts after every drift section, so the run page opens on the drift.
        """
        from mlflow.entities import Metric

        ts = _now_ms()
        metrics = []
        for name, raw in cost.items():
            value = _number(raw)
            if value is not None:
                metrics.append(Metric(_key(f"{COST_SECTION}/{name}"), value, ts, 0))
        return self._log_metrics(metrics)

    # -- params, tags, artifacts

    @_sink(None)
    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(_key(k), _truncate(str(v), MAX_PARAM_VAL_LENGTH)) for k, v in params.items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.info.run_id, params=list(chunk), synchronous=True)

    @_sink(None)
    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set (or overwrite) tags, e.g. ``sparkdrift.severity`` once the policy has decided."""
        from mlflow.entities import RunTag

        items = [RunTag(_key(k), _truncate(str(v), MAX_TAG_VAL_LENGTH)) for k, v in tags.items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.info.run_id, tags=list(chunk), synchronous=True)

    @_sink(None)
    def set_description(self, markdown: str) -> None:
        """The run's description in the MLflow UI (Markdown)."""
        self.set_tags({"mlflow.note.content": markdown})

    @_sink(None)
    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        """Upload a folder's files (e.g. the report) as run artifacts."""
        self.client.log_artifacts(self.info.run_id, str(folder), artifact_path)

    def __repr__(self) -> str:
        return f"DriftRun(run_id={self.info.run_id!r}, name={self.info.run_name!r})"


class NoOpRun:
    """Same methods as DriftRun; logs nothing (``mlflow.enabled: false``)."""

    enabled = False
    client = None

    def __init__(self, info: RunRef, windows: Windows, error: str | None = None):
        self.info = info
        self.windows = windows
        self.error = error  # why there is no run, when MLflow was meant to be used but failed

    def log_results(self, results: Iterable[DriftResult]) -> int:
        return 0

    def log_summaries(self, summaries: Iterable[dict]) -> int:
        return 0

    def log_cost(self, cost: dict[str, float]) -> int:
        return 0

    def log_params(self, params: dict[str, Any]) -> None:
        return None

    def set_tags(self, tags: dict[str, Any]) -> None:
        return None

    def set_description(self, markdown: str) -> None:
        return None

    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        return None

    def __repr__(self) -> str:
        return f"NoOpRun(name={self.info.run_name!r})"


# --------------------------------------------------------------------------- entry point


def run_name(cfg: MonitorConfig, job: str, window_range: tuple[datetime, datetime] | None) -> str:
    """``<monitor> <job> <first window>..<last window>``, e.g. ``churn_model detect 2026-01-08..2026-01-14``."""
    _, label = describe_windows(window_range, cfg.production.granularity.windows)
    return f"{cfg.monitor} {job} {label}".rstrip()


@contextmanager
def start_run(
    cfg: MonitorConfig,
    *,
    job: str,
    window_range: tuple[datetime, datetime] | None,
    baseline_id: str | None,
    source_versions: dict[str, int | None],
) -> Iterator[DriftRun | NoOpRun]:
    """Open one MLflow run for one job execution; it ends FINISHED, or FAILED on an exception.

    ``window_range`` is the half-open period the job covers, ``[start of the
    first window, end of the last window)``, or None for jobs without windows
    (e.g. building a baseline). ``source_versions`` maps a source name
    (``baseline``, ``production``) to the Delta version read.

    The run lives in ``cfg.experiment_name`` (created if missing) at
    ``cfg.mlflow.tracking_uri``. Params: the flattened config (secrets
    redacted), ``baseline_id``, ``source.<name>.version``. Tags:
    ``sparkdrift.monitor``, ``sparkdrift.job``, ``sparkdrift.baseline_id``,
    ``sparkdrift.windows`` ("<count> (<range>)") and the window bounds.
    With ``mlflow.enabled: false`` it yields a NoOpRun with the same methods.
    """
    cut = cfg.production.granularity.windows
    name = run_name(cfg, job, window_range)
    if not cfg.mlflow.enabled:
        yield NoOpRun(RunRef(None, None, name, cfg.mlflow.tracking_uri, None), cut)
        return

    from mlflow import MlflowClient

    _bound_http(cfg)
    try:
        uri = resolve_tracking_uri(cfg)
        _create_sqlite_store(uri)
        client = MlflowClient(uri)
        experiment_id = _experiment_id(client, experiment_name(cfg, uri), uri)
        run = client.create_run(experiment_id, tags=_run_tags(cfg, job, window_range, baseline_id), run_name=name)
    except Exception as exc:  # noqa: BLE001 - an unreachable store must not block the verdict
        error = _error_text(exc)
        _log.warning("MLflow unavailable (%s): this run is not tracked; tables and actions proceed", error)
        yield NoOpRun(RunRef(None, None, name, cfg.mlflow.tracking_uri, None), cut, error=error)
        return
    run_id = run.info.run_id
    _close_stale_runs(client, experiment_id, cfg.monitor, run_id)

    handle = DriftRun(
        client, RunRef(run_id, experiment_id, name, uri, run_url(uri, experiment_id, run_id)), cut
    )
    try:
        params = config_params(cfg)
        if "baseline_id" in params:  # the config's pin; the param is the baseline actually used
            params["baseline_id.pinned"] = params.pop("baseline_id")
        params["baseline_id"] = str(baseline_id)
        for source, version in source_versions.items():
            params[_key(f"source.{source}.version")] = str(version)
        handle.log_params(params)
        yield handle
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            client.set_terminated(run_id, status="FINISHED")  # a clean sys.exit() inside the run
            raise
        status = "KILLED" if isinstance(exc, (KeyboardInterrupt, GeneratorExit)) else "FAILED"
        try:
            handle.set_tags({"sparkdrift.error": f"{type(exc).__name__}: {exc}"})
            client.set_terminated(run_id, status=status)
        except Exception:  # noqa: BLE001 - never hide the job's own error
            _log.warning("could not mark MLflow run %s as %s", run_id, status, exc_info=True)
        raise
    else:
        try:
            client.set_terminated(run_id, status="FAILED" if handle.error else "FINISHED")
        except Exception:  # noqa: BLE001 - the next run's log shows the store is unreachable
            _log.warning("could not close MLflow run %s", run_id, exc_info=True)


def _close_stale_runs(client: Any, experiment_id: str, monitor: str, current: str) -> None:
    """Mark this monitor's runs left RUNNING by a killed job as KILLED.

    A job killed outright (SIGKILL, a lost driver) cannot close its run; the
    next run does, so the UI never shows a run as in progress for ever. A run
    started on this host by a process that no longer exists is closed at once;
    one from elsewhere (another cluster's driver) once it is older than
    `STALE_RUN`, since no detect run takes a day.
    """
    cutoff = int((datetime.now(timezone.utc) - STALE_RUN).timestamp() * 1000)
    host = socket.gethostname()
    try:
        running = client.search_runs(
            [experiment_id],
            f"attributes.status = 'RUNNING' and tags.`sparkdrift.monitor` = '{monitor}'",  # [A-Za-z0-9_.-]
            max_results=200,
        )
        for run in running:
            tags = run.data.tags
            orphan = tags.get("sparkdrift.host") == host and not _process_alive(tags.get("sparkdrift.pid"))
            if run.info.run_id == current or not (orphan or run.info.start_time < cutoff):
                continue
            why = "its process is gone" if orphan else f"RUNNING for over {STALE_RUN}"
            client.set_tag(run.info.run_id, "sparkdrift.error", f"left RUNNING by a killed job ({why}); "
                                                                  f"closed by run {current}")
            client.set_terminated(run.info.run_id, status="KILLED")
            _log.warning("MLflow run %s was left RUNNING by a killed job (%s): marked KILLED", run.info.run_id, why)
    except Exception as exc:  # noqa: BLE001 - housekeeping never blocks the verdict
        _log.debug("could not look for stale MLflow runs: %s", exc)


def _process_alive(pid: str | None) -> bool:
    """Whether a process of this id runs on this host (unknown counts as alive: never close a live run)."""
    try:
        os.kill(int(pid or ""), 0)
    except ProcessLookupError:
        return False
    except (ValueError, OSError):  # no pid tag; or it exists, owned by another user
        return True
    return True


def _create_sqlite_store(tracking_uri: str) -> None:
    """Create a local SQLite store whole or not at all.

    MLflow builds a new store with a few dozen schema migrations; a job killed
    half-way used to leave a file every later run failed on ("table ... already
    exists"). The schema is built in a private file next to it and linked into
    place only when complete (``os.link`` fails if another job won the race,
    whose store is then used).
    """
    db = _sqlite_file(tracking_uri)
    if db is None or db.exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db.parent.mkdir(parents=True, exist_ok=True)
    for left in db.parent.glob(f".{db.name}.*.partial*"):  # (and journals) of creators killed before they finished
        if not _process_alive(left.name.split(".")[-3]):
            left.unlink(missing_ok=True)
    partial = db.with_name(f".{db.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        store = SqlAlchemyStore(f"sqlite:///{partial}", (db.parent / "mlartifacts").as_uri())
        store.engine.dispose()
        try:
            os.link(partial, db)
        except FileExistsError:
            pass  # created meanwhile by another run, whole by the same rule
    finally:
        partial.unlink(missing_ok=True)


def _run_tags(cfg: MonitorConfig, job: str, window_range, baseline_id: str | None) -> dict[str, str]:
    """What a run is tagged with when it is created (so the UI can filter by monitor, job and windows)."""
    count, label = describe_windows(window_range, cfg.production.granularity.windows)
    tags = {
        "sparkdrift.monitor": cfg.monitor,
        "sparkdrift.job": job,
        "sparkdrift.baseline_id": baseline_id or "none",
        "sparkdrift.windows": f"{count} ({label})" if count else "0",
        "sparkdrift.granularity": cfg.production.granularity,
        "sparkdrift.config_hash": cfg.config_hash(),
        # who runs it: the next run closes this one if it is left RUNNING by a process that is gone
        "sparkdrift.host": socket.gethostname(),
        "sparkdrift.pid": str(os.getpid()),
    }
    if window_range is not None:
        tags["sparkdrift.window_start"] = as_utc(window_range[0]).isoformat()
        tags["sparkdrift.window_end"] = as_utc(window_range[1]).isoformat()
    return _context_tags(tags)


#: MLflow HTTP settings the user set in the environment before sparkdrift ran: those win over the config.
_USER_HTTP_ENV = frozenset(
    k for k in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")
    if k in os.environ
)


def _bound_http(cfg: MonitorConfig) -> None:
    """MLflow's HTTP timeout and retries from the config, unless the user's environment sets them."""
    wanted = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(math.ceil(cfg.mlflow.timeout_seconds))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(cfg.mlflow.retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    for key, value in wanted.items():
        if key not in _USER_HTTP_ENV:
            os.environ[key] = value


# --------------------------------------------------------------------------- function API


def log_results(run: DriftRun | NoOpRun, results: Iterable[DriftResult]) -> int:
    """See DriftRun.log_results."""
    return run.log_results(results)


def log_summaries(run: DriftRun | NoOpRun, summaries: Iterable[dict]) -> int:
    """See DriftRun.log_summaries."""
    return run.log_summaries(summaries)


def log_cost(run: DriftRun | NoOpRun, cost: dict[str, float]) -> int:
    """See DriftRun.log_cost."""
    return run.log_cost(cost)


def set_tags(run: DriftRun | NoOpRun, tags: dict[str, Any]) -> None:
    """See DriftRun.set_tags."""
    run.set_tags(tags)


def log_artifacts(run: DriftRun | NoOpRun, folder: str | Path, artifact_path: str | None = None) -> None:
    """See DriftRun.log_artifacts."""
    run.log_artifacts(folder, artifact_path)
