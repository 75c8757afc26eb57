# Databricks notebook source
# MAGIC %md
# MAGIC # Review a sparkdrift monitor
# MAGIC
# MAGIC The latest windows' severity and drifted features, drift over time for the
# MAGIC top features, the latest report and MLflow run, and the actions taken.
# MAGIC Everything is read from the monitor's Delta tables and MLflow through the
# MAGIC `sparkdrift` library (severity is the library's policy applied to the stored
# MAGIC results); nothing is recomputed from raw rows.
# MAGIC
# MAGIC Parameters (widgets on Databricks; environment variables when run as a
# MAGIC plain Python file, e.g. `SPARKDRIFT_CONFIG=... python notebooks/review_monitor.py`):
# MAGIC
# MAGIC | widget | env | meaning |
# MAGIC |---|---|---|
# MAGIC | `config` | `SPARKDRIFT_CONFIG` | monitor YAML (default: the demo's, `sparkdrift-demo/churn_demo.yaml`) |
# MAGIC | `windows` | `SPARKDRIFT_WINDOWS` | how many recent windows to review (default 30) |
# MAGIC | `top` | `SPARKDRIFT_TOP` | features plotted (default 4) |
# MAGIC | `since` | `SPARKDRIFT_SINCE` | windows computed at or after this ISO time are "this run" (default: the latest run's) |
# MAGIC | `publish` | `SPARKDRIFT_PUBLISH` | `true`: set the job task values `severity`, `drifted_features`, `mlflow_run_id` |
# MAGIC | `plot_path` | `SPARKDRIFT_PLOT` | also save the plot as a PNG here |
# MAGIC
# MAGIC In the bundle's detect job this notebook runs after the detect task with
# MAGIC `since={{job.start_time.iso_datetime}}` and `publish=true`; the job's
# MAGIC condition task reads `{{tasks.publish.values.severity}}`.

# COMMAND ----------

import os


def _param(name: str, env: str, default: str) -> str:
    """A widget value on Databricks, else the environment variable, else the default."""
    try:
        dbutils.widgets.text(name, os.environ.get(env, default))  # noqa: F821 - Databricks global
        return dbutils.widgets.get(name)  # noqa: F821
    except NameError:
        return os.environ.get(env, default)


CONFIG = _param("config", "SPARKDRIFT_CONFIG", "sparkdrift-demo/churn_demo.yaml")
WINDOWS = int(_param("windows", "SPARKDRIFT_WINDOWS", "30") or 30)
TOP = int(_param("top", "SPARKDRIFT_TOP", "4") or 4)
SINCE = _param("since", "SPARKDRIFT_SINCE", "").strip()
PUBLISH = _param("publish", "SPARKDRIFT_PUBLISH", "false").strip().lower() in ("1", "true", "yes")
PLOT_PATH = _param("plot_path", "SPARKDRIFT_PLOT", "").strip()

# COMMAND ----------

# MAGIC %md ## The monitor

# COMMAND ----------

from sparkdrift.core.config import load_config
from sparkdrift.store.tables import read_output

cfg = load_config(CONFIG)
try:
    spark  # noqa: B018 - the session a Databricks notebook has
except NameError:
    from sparkdrift.spark.session import get_session

    spark = get_session("sparkdrift-review")

WINDOW_CUT = cfg.production.granularity.windows  # fixed-length or calendar (month, quarter)
print(f"monitor {cfg.monitor} ({CONFIG}): {cfg.production.table}, {cfg.production.granularity} windows")
print(f"  metrics table: {cfg.output_table('metrics')}")
print(f"  MLflow: {cfg.mlflow.tracking_uri or '(environment default)'}, experiment {cfg.experiment_name}")

# COMMAND ----------

# MAGIC %md ## Latest windows: severity and drifted features

# COMMAND ----------

import dataclasses
import math
from datetime import datetime, timedelta, timezone

from pyspark.sql import functions as F

from sparkdrift.core.policy import evaluate, severity_rank
from sparkdrift.core.results import DriftResult
from sparkdrift.core.windows import naive_utc

_RESULT_FIELDS = [f.name for f in dataclasses.fields(DriftResult)]

metrics_df = read_output(spark, cfg.output_table("metrics"))
rows = []
if metrics_df is not None:
    mine = metrics_df.filter(F.col("monitor") == cfg.monitor)
    last = mine.agg(F.max("window_start")).first()[0]
    if last is not None:
        first = naive_utc(WINDOW_CUT.shift(last, 1 - WINDOWS))
        # small: windows x columns x statistics, never raw rows
        rows = mine.filter(F.col("window_start") >= F.lit(first)).collect()

# the stored rows as the library's result objects (a NULL value is an undefined statistic: NaN)
results = [
    DriftResult(**{k: (math.nan if k == "value" and r[k] is None else r[k]) for k in _RESULT_FIELDS}) for r in rows
]
decisions = sorted(evaluate(cfg.policy, results), key=lambda d: d.window_start)
computed_at = {}
run_of_window = {}
for r in rows:
    key = r["window_start"]
    if r["computed_at"] is not None and (key not in computed_at or r["computed_at"] > computed_at[key]):
        computed_at[key], run_of_window[key] = r["computed_at"], r["mlflow_run_id"]


def _naive_utc(text: str) -> datetime:
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


if SINCE:
    since = _naive_utc(SINCE)
elif computed_at:  # the latest detect run's windows
    newest = max(computed_at.values())
    since = min(t for t in computed_at.values() if t >= newest - timedelta(minutes=1))
else:
    since = None
this_run = [d for d in decisions if since is not None and computed_at.get(d.window_start, datetime.min) >= since]

if not decisions:
    print(f"no drift results for monitor {cfg.monitor} yet: run `sparkdrift detect --config {CONFIG}`")
else:
    print(f"{'window':<17} {'severity':<9} {'score':>6} {'drifted':>7}  features")
    for d in decisions[-WINDOWS:]:
        score = "nan" if not math.isfinite(d.score) else f"{d.score:.3f}"
        mark = "*" if d in this_run else " "
        print(f"{d.window_start:%Y-%m-%d %H:%M}{mark} {d.severity:<9} {score:>6} {d.n_drifted:>7}  "
              f"{', '.join(d.drifted_features) or '-'}")
    print("(* = computed by the latest run" + (f", since {since:%Y-%m-%d %H:%M:%S} UTC)" if since else ")"))

severity = max((d.severity for d in this_run), key=severity_rank, default="none")
drifted_features = sorted({f for d in this_run for f in d.drifted_features})
latest = decisions[-1] if decisions else None
print()
print(f"severity of the latest run: {severity}")
print(f"drifted features in the latest run: {', '.join(drifted_features) or 'none'}")
if latest is not None:
    print(f"latest window {latest.window_start:%Y-%m-%d %H:%M}: {latest.severity}"
          + (f" ({'; '.join(latest.rules)})" if latest.rules else ""))

# COMMAND ----------

# MAGIC %md ## Drift over time (top features by PSI against the baseline)

# COMMAND ----------

import matplotlib

if "DATABRICKS_RUNTIME_VERSION" not in os.environ and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")  # plain Python run: no display needed
import matplotlib.pyplot as plt

psi = [r for r in results if r.statistic == "psi" and r.reference == "baseline"
       and r.signal in ("feature", "prediction") and math.isfinite(r.value)]
peak: dict[str, float] = {}
for r in psi:
    peak[r.feature] = max(peak.get(r.feature, 0.0), r.value)
top_features = sorted(peak, key=lambda f: -peak[f])[:TOP]
if top_features:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for feature in top_features:
        series = sorted((r.window_start, r.value) for r in psi if r.feature == feature)
        ax.plot([t for t, _ in series], [v for _, v in series], marker="o", ms=3, label=feature)
    thresholds = sorted({r.threshold for r in psi if r.feature in top_features and r.threshold is not None})
    for t in thresholds:
        ax.axhline(t, color="grey", ls="--", lw=0.8)
    ax.set_title(f"{cfg.monitor}: PSI vs baseline per {cfg.production.granularity} window"
                 + (f" (thresholds {', '.join(f'{t:g}' for t in thresholds)})" if thresholds else ""))
    ax.set_ylabel("PSI")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    if PLOT_PATH:
        fig.savefig(PLOT_PATH, dpi=100)
        print(f"plot saved to {PLOT_PATH}")
    print(f"top features by PSI: {', '.join(f'{f} {peak[f]:.3f}' for f in top_features)}")
    plt.show()
else:
    print("no PSI results to plot yet")

# COMMAND ----------

# MAGIC %md ## Latest report and MLflow run

# COMMAND ----------

from pathlib import Path

from sparkdrift.sinks.tracking import run_url

latest_run_id = run_of_window.get(latest.window_start) if latest is not None else None
if latest_run_id and cfg.mlflow.enabled:
    from mlflow import MlflowClient

    client = MlflowClient(cfg.mlflow.tracking_uri)
    run = client.get_run(latest_run_id)
    print(f"MLflow run {run.info.run_name} ({run.info.status}): "
          f"{run_url(cfg.mlflow.tracking_uri, run.info.experiment_id, latest_run_id)}")
    print(f"  tags: severity={run.data.tags.get('sparkdrift.severity')}, "
          f"drifted={run.data.tags.get('sparkdrift.drifted_features')}, "
          f"actions={run.data.tags.get('sparkdrift.actions')}")
    artifacts = [a.path for a in client.list_artifacts(latest_run_id)]
    print(f"  artifacts ({run.info.artifact_uri}): {', '.join(artifacts) or '-'}")
    if cfg.mlflow.tracking_uri and cfg.mlflow.tracking_uri.startswith("sqlite:"):
        print(f"  open the UI: mlflow ui --backend-store-uri {cfg.mlflow.tracking_uri} --host 127.0.0.1 --port 5000")
else:
    print("no MLflow run recorded for the latest window")
if latest_run_id and cfg.output.report_dir:
    report = Path(cfg.output.report_dir) / cfg.monitor / latest_run_id / "drift_report.html"
    print(f"report: {report}" + ("" if report.exists() else " (not on this machine: see the run's artifacts)"))

# COMMAND ----------

# MAGIC %md ## Actions (alerts, retraining)

# COMMAND ----------

from sparkdrift.store import DeltaStore

records = sorted(DeltaStore.of(spark, cfg).read_actions(), key=lambda a: (a.decided_at or datetime.min, a.window_start))
for a in records[-10:]:
    run = f" -> {a.retrain_run_id}" if a.retrain_run_id else ""
    print(f"{a.window_start:%Y-%m-%d %H:%M} {a.severity:<9} {a.action:<8} {a.kind:<15} {a.status}{run}")
if not records:
    print("no actions recorded")

# COMMAND ----------

# MAGIC %md ## Publish (job runs)

# COMMAND ----------

if PUBLISH:
    values = {"severity": severity, "drifted_features": ",".join(drifted_features),
              "mlflow_run_id": latest_run_id or ""}
    try:
        for key, value in values.items():
            dbutils.jobs.taskValues.set(key=key, value=value)  # noqa: F821 - Databricks global
        print(f"task values set: {values}")
    except NameError:
        print(f"not on Databricks: task values not set ({values})")
