# Databricks notebook source
# MAGIC %md
# MAGIC # Set up a sparkdrift monitor
# MAGIC
# MAGIC Point at a training table and an inference log; the notebook infers the
# MAGIC features, validates the monitor definition, writes it as YAML (the file
# MAGIC the jobs take with `--config`) and builds the baseline profile, printing
# MAGIC what it understood at each step. Every step is a `sparkdrift` library call.
# MAGIC
# MAGIC Parameters (widgets on Databricks, else environment variables `SPARKDRIFT_SETUP_<NAME>`):
# MAGIC
# MAGIC | widget | meaning |
# MAGIC |---|---|
# MAGIC | `monitor` | monitor name (tables, MLflow, alerts) |
# MAGIC | `baseline_table` | training table: catalog.schema.table or a path |
# MAGIC | `production_table` | inference log: catalog.schema.table or a path |
# MAGIC | `timestamp_column` | event time column of the inference log |
# MAGIC | `granularity` | window: hour, day, week, 6h, ..., or month / quarter (UTC calendar) |
# MAGIC | `id_column`, `label_column` | never features |
# MAGIC | `prediction_columns` | comma-separated model outputs (prediction drift) |
# MAGIC | `exclude` | comma-separated columns never used as features |
# MAGIC | `catalog`, `schema` | where output tables go on Databricks (`output.schema`) |
# MAGIC | `output_location` | or a folder for path-based output tables (local runs) |
# MAGIC | `experiment` | MLflow experiment (workspace path on Databricks) |
# MAGIC | `tracking_uri` | MLflow tracking URI (`databricks` on Databricks; empty: MLflow's default) |
# MAGIC | `config_out` | where to write the monitor YAML |
# MAGIC | `build` | `true`: build and store the baseline now |

# COMMAND ----------

import os

ON_DATABRICKS = "DATABRICKS_RUNTIME_VERSION" in os.environ


def _param(name: str, default: str) -> str:
    env = os.environ.get(f"SPARKDRIFT_SETUP_{name.upper()}", default)
    try:
        dbutils.widgets.text(name, env)  # noqa: F821 - Databricks global
        return dbutils.widgets.get(name).strip()  # noqa: F821
    except NameError:
        return env.strip()


def _names(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


MONITOR = _param("monitor", "churn_model")
BASELINE_TABLE = _param("baseline_table", "sparkdrift-demo/tables/churn_train")
PRODUCTION_TABLE = _param("production_table", "sparkdrift-demo/tables/churn_inference")
TIMESTAMP_COLUMN = _param("timestamp_column", "event_time")
GRANULARITY = _param("granularity", "day")
ID_COLUMN = _param("id_column", "customer_id")
LABEL_COLUMN = _param("label_column", "churned")
PREDICTIONS = _names(_param("prediction_columns", "churn_score"))
EXCLUDE = _names(_param("exclude", ""))
# the bundle's job clusters export its catalog/schema/experiment_path variables as SPARKDRIFT_*
CATALOG = _param("catalog", os.environ.get("SPARKDRIFT_CATALOG", "main" if ON_DATABRICKS else ""))
SCHEMA = _param("schema", os.environ.get("SPARKDRIFT_SCHEMA", "monitoring" if ON_DATABRICKS else ""))
OUTPUT_LOCATION = _param("output_location", "" if ON_DATABRICKS else "sparkdrift-data/tables")
EXPERIMENT = _param("experiment", os.environ.get("SPARKDRIFT_EXPERIMENT", ""))
TRACKING_URI = _param("tracking_uri", "databricks" if ON_DATABRICKS else "sqlite:///sparkdrift-data/mlflow.db")
CONFIG_OUT = _param("config_out", f"conf/{MONITOR}.yaml")
BUILD = _param("build", "true").lower() in ("1", "true", "yes")

# COMMAND ----------

# MAGIC %md ## 1. The tables

# COMMAND ----------

from sparkdrift.store.tables import read_table

try:
    spark  # noqa: B018 - the session a Databricks notebook has
except NameError:
    from sparkdrift.spark.session import get_session

    spark = get_session("sparkdrift-setup")

baseline_read = read_table(spark, BASELINE_TABLE)
production_read = read_table(spark, PRODUCTION_TABLE)
for what, read in (("baseline", baseline_read), ("production", production_read)):
    print(f"{what}: {read.table} @ version {read.version}")
    for field in read.df.schema.fields:
        print(f"  {field.name:<24} {field.dataType.simpleString()}")

# COMMAND ----------

# MAGIC %md ## 2. Infer the features

# COMMAND ----------

from sparkdrift.core.config import parse_config
from sparkdrift.spark.selection import select_columns

definition = {
    "monitor": MONITOR,
    "baseline": {"table": BASELINE_TABLE},
    "production": {"table": PRODUCTION_TABLE, "timestamp_column": TIMESTAMP_COLUMN, "granularity": GRANULARITY},
    "features": {"infer": True, "exclude": EXCLUDE},
    "id_column": ID_COLUMN or None,
    "prediction": {"columns": PREDICTIONS},
    "label": {"column": LABEL_COLUMN or None},
    "output": {"schema": f"{CATALOG}.{SCHEMA}"} if CATALOG and SCHEMA else {"location": OUTPUT_LOCATION or None},
    "mlflow": {"tracking_uri": TRACKING_URI or None, "experiment": EXPERIMENT or None},
}
inferred = select_columns(baseline_read.df.schema, parse_config(definition, "<setup notebook>"), BASELINE_TABLE)
missing_in_production = [s.name for s in inferred if s.name not in production_read.df.columns]
print(f"{len(inferred)} columns to monitor:")
for spec in inferred:
    note = "  (not in the production table!)" if spec.name in missing_in_production else ""
    print(f"  {spec.name:<24} {spec.kind:<12} {spec.role:<10} {spec.dtype}{note}")

# COMMAND ----------

# MAGIC %md ## 3. Validate and write the monitor definition
# MAGIC The inferred features are written out explicitly, so a column added to the
# MAGIC table later does not silently become a feature.

# COMMAND ----------

from pathlib import Path

import yaml

from sparkdrift.core.config import flatten

features = [s for s in inferred if s.role == "feature" and s.name not in missing_in_production]
definition["features"] = {
    "numeric": [s.name for s in features if s.kind == "numeric"],
    "categorical": [s.name for s in features if s.kind == "categorical"],
}
cfg = parse_config(definition, "<setup notebook>")
print(f"valid monitor '{cfg.monitor}':")
for key, value in flatten(cfg.to_dict()).items():
    print(f"  {key} = {value}")

out = Path(CONFIG_OUT)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("# written by notebooks/setup_monitor.py\n" + yaml.safe_dump(definition, sort_keys=False))
print(f"\nwrote {out}: run the jobs with --config {out}")

# COMMAND ----------

# MAGIC %md ## 4. Build the baseline

# COMMAND ----------

from sparkdrift.sinks.console import describe_baseline
from sparkdrift.spark.profiling import build_baseline
from sparkdrift.store import DeltaStore

if BUILD:
    profile = build_baseline(spark, cfg)
    written = DeltaStore.of(spark, cfg).save_profile(profile)
    print(describe_baseline(profile))
    print(f"\n{'stored in' if written else 'already stored in'} {cfg.output_table('profiles')}")
else:
    print(f"not built (build=false): sparkdrift baseline --config {out}")
