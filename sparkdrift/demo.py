"""`sparkdrift demo`: a churn model's whole monitoring loop on the embedded default.

Generates, deterministically from a seed, a churn model's training table, 14
days of its hourly inference log with drift from day 8 on, and a delayed
labels table (Delta tables in a local folder); builds the baseline; runs the
detect job over the 14 days (local Spark, MLflow in a SQLite file, HTML
report, retraining trigger); and prints where to look at the results.

Rerunning is safe: existing demo data is kept as it is (same Delta versions,
so the same baseline id), the baseline is already stored, and detect finds no
new complete window, so nothing is written twice and no second retrain starts.

The data is built with numpy and handed to Spark as plain Python rows (no
pandas: pyspark 3.5's pandas conversion is unreliable with pandas 3).
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from sparkdrift.core.config import MonitorConfig, parse_config, substitute
from sparkdrift.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from sparkdrift.detect import DetectOutcome

log = logging.getLogger("sparkdrift.demo")

#: First hour of the inference log (UTC).
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: Days of inference traffic.
DAYS = 14
#: Day (1-based) on which the drift starts: 2026-01-08.
DRIFT_DAY = 8
#: The demo's "now": two hours after the last day ends, so all 14 daily windows are complete.
AS_OF = START + timedelta(days=DAYS, hours=2)

TRAIN_ROWS = 20_000
ROWS_PER_HOUR = 150  # mean; traffic follows the time of day (about 50k rows in 14 days)
NULL_RATE = 0.005

CONTRACTS = ("Month-to-month", "One year", "Two year")
PAYMENTS = ("Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)")
NUMERIC = ("tenure_months", "monthly_charges", "total_charges", "support_calls")
CATEGORICAL = ("contract", "payment_method")
#: The columns that move from DRIFT_DAY on (churn_score follows from them); the rest stay put.
DRIFTED = ("monthly_charges", "contract", "support_calls", "churn_score")

TRAIN_SCHEMA = (
    "customer_id bigint, tenure_months int, monthly_charges double, total_charges double, "
    "support_calls int, contract string, payment_method string, churn_score double, churned int"
)
INFERENCE_SCHEMA = (
    "customer_id bigint, event_time timestamp, tenure_months int, monthly_charges double, "
    "total_charges double, support_calls int, contract string, payment_method string, churn_score double"
)
LABELS_SCHEMA = "customer_id bigint, churned int, label_time timestamp"

_MARKER = "demo_data.json"
_CONFIG_FILE = "churn_demo.yaml"
_PACKAGE = Path(__file__).resolve().parent
_REPO = _PACKAGE.parent


# --------------------------------------------------------------------------- data


def _customers(rng: np.random.Generator, drifted: np.ndarray) -> dict[str, np.ndarray]:
    """One row per customer; ``drifted`` marks the rows drawn after the drift started.

    Drift: monthly charges up by 20 (a price rise), the contract mix moved
    towards month-to-month, more support calls. Tenure, total charges (history,
    not this month's bill) and payment method keep their distributions.
    """
    n = len(drifted)
    d = drifted.astype(float)
    tenure = np.clip(rng.gamma(1.6, 17.0, n), 0, 72).astype(np.int64)
    monthly = np.clip(rng.normal(65.0 + 20.0 * d, 28.0), 18.25, 140.0).round(2)
    history = np.clip(rng.normal(62.0, 24.0, n), 18.25, 118.75)
    total = (np.maximum(tenure, 1) * history * rng.uniform(0.95, 1.05, n)).round(2)
    calls = rng.poisson(1.5 + 1.2 * d)
    # contract mix: 50/25/25 before, 78/12/10 after
    u = rng.random(n)
    m2m_cut = np.where(drifted, 0.78, 0.50)
    one_cut = np.where(drifted, 0.90, 0.75)
    contract = np.where(u < m2m_cut, 0, np.where(u < one_cut, 1, 2))
    payment = rng.choice(len(PAYMENTS), size=n, p=[0.34, 0.23, 0.22, 0.21])
    logit = (
        -1.5
        + 1.1 * (contract == 0)
        - 0.035 * tenure
        + 0.02 * (monthly - 65.0)
        + 0.3 * (calls - 1.5)
        + 0.35 * (payment == 0)
    )
    score = (1.0 / (1.0 + np.exp(-logit))).round(4)
    return {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "support_calls": calls,
        "contract": contract,
        "payment_method": payment,
        "churn_score": score,
    }


def _with_nulls(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> dict[str, list]:
    """Plain Python lists (Spark rows), with ~NULL_RATE missing values in each feature column."""
    out: dict[str, list] = {}
    n = len(cols["churn_score"])
    for name in (*NUMERIC, *CATEGORICAL):
        missing = rng.random(n) < NULL_RATE
        values = cols[name]
        if name == "contract":
            plain = [CONTRACTS[i] for i in values]
        elif name == "payment_method":
            plain = [PAYMENTS[i] for i in values]
        else:
            plain = values.tolist()
        out[name] = [None if m else v for v, m in zip(plain, missing.tolist())]
    out["churn_score"] = cols["churn_score"].tolist()
    return out


def _hourly_counts(rng: np.random.Generator, rows_per_hour: int) -> np.ndarray:
    """Rows per hour for DAYS days: Poisson around a day/night curve (busiest mid-afternoon)."""
    hours = np.arange(DAYS * 24)
    shape = 1.0 + 0.6 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi)
    return rng.poisson(rows_per_hour * shape)


def _demo_rows(seed: int, train_rows: int, rows_per_hour: int) -> dict[str, tuple[list[tuple], str]]:
    rng = np.random.default_rng(seed)

    # training set: all pre-drift, labels drawn from the score
    train = _customers(rng, np.zeros(train_rows, dtype=bool))
    churned = (rng.random(train_rows) < train["churn_score"]).astype(int).tolist()
    tc = _with_nulls(rng, train)
    train_rows_out = [
        (i + 1, tc["tenure_months"][i], tc["monthly_charges"][i], tc["total_charges"][i], tc["support_calls"][i],
         tc["contract"][i], tc["payment_method"][i], tc["churn_score"][i], churned[i])
        for i in range(train_rows)
    ]

    # inference log: hourly traffic, drift from DRIFT_DAY on
    counts = _hourly_counts(rng, rows_per_hour)
    hour_of_row = np.repeat(np.arange(len(counts)), counts)
    n = len(hour_of_row)
    seconds = hour_of_row * 3600 + rng.integers(0, 3600, n)
    drifted = hour_of_row >= (DRIFT_DAY - 1) * 24
    inf = _customers(rng, drifted)
    ic = _with_nulls(rng, inf)
    times = [START + timedelta(seconds=int(s)) for s in seconds]
    ids = (1_000_001 + np.arange(n)).tolist()
    inference = [
        (ids[i], times[i], ic["tenure_months"][i], ic["monthly_charges"][i], ic["total_charges"][i],
         ic["support_calls"][i], ic["contract"][i], ic["payment_method"][i], ic["churn_score"][i])
        for i in range(n)
    ]

    # delayed labels: the outcome is known 3 to 10 days after the prediction
    label = (rng.random(n) < inf["churn_score"]).astype(int).tolist()
    delay = rng.integers(3 * 86400, 10 * 86400, n)
    labels = [(ids[i], label[i], times[i] + timedelta(seconds=int(delay[i]))) for i in range(n)]

    return {
        "churn_train": (train_rows_out, TRAIN_SCHEMA),
        "churn_inference": (inference, INFERENCE_SCHEMA),
        "churn_labels": (labels, LABELS_SCHEMA),
    }


def demo_tables(folder: Path) -> dict[str, str]:
    """Paths of the demo's input tables under ``folder/tables``."""
    base = Path(folder).resolve() / "tables"
    return {name: str(base / name) for name in ("churn_train", "churn_inference", "churn_labels")}


def make_demo_data(
    spark: "SparkSession",
    folder: Path,
    *,
    seed: int = 42,
    train_rows: int = TRAIN_ROWS,
    rows_per_hour: int = ROWS_PER_HOUR,
) -> dict[str, str]:
    """Write the demo's Delta tables under ``folder/tables``; returns {table name: path}.

    - ``churn_train``: the model's training set (``train_rows`` rows, with the label ``churned``);
    - ``churn_inference``: 14 days of hourly traffic from 2026-01-01 UTC (about
      ``rows_per_hour`` x 336 rows) with ``event_time``; from 2026-01-08 on,
      monthly_charges, contract, support_calls and so churn_score drift;
    - ``churn_labels``: ``customer_id``, ``churned``, ``label_time`` 3-10 days later.

    Deterministic in its arguments. When the tables were already written with
    the same arguments they are left untouched (no new Delta versions, so a
    rerun keeps the same baseline id); otherwise they are overwritten.
    """
    from sparkdrift.store.tables import table_exists

    folder = Path(folder).resolve()
    paths = demo_tables(folder)
    marker = folder / _MARKER
    wanted = {"seed": seed, "train_rows": train_rows, "rows_per_hour": rows_per_hour, "tables": paths}
    if marker.exists() and all(table_exists(spark, p) for p in paths.values()):
        try:
            if json.loads(marker.read_text()) == wanted:
                log.info("demo data already in %s (seed %d): kept as it is", folder / "tables", seed)
                return paths
        except ValueError:
            pass
    folder.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    t0 = time.perf_counter()
    for name, (rows, schema) in _demo_rows(seed, train_rows, rows_per_hour).items():
        df = spark.createDataFrame(rows, schema).coalesce(1)
        df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(paths[name])
        log.info("wrote %s: %d rows", paths[name], len(rows))
    marker.write_text(json.dumps(wanted, indent=2))
    log.info("demo data written in %.1fs", time.perf_counter() - t0)
    return paths


# --------------------------------------------------------------------------- config


def _first_existing(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


def demo_config_template() -> Path:
    """conf/demo.yaml: in the package (when shipped there) or the source checkout."""
    found = _first_existing(_PACKAGE / "conf" / "demo.yaml", _REPO / "conf" / "demo.yaml")
    if found is None:
        raise ConfigError(
            f"demo config template not found (looked in {_PACKAGE / 'conf'} and {_REPO / 'conf'}): "
            "run the demo from a source checkout of sparkdrift"
        )
    return found


def retrain_project() -> Path | None:
    """The demo's retrain MLflow project (examples/retrain), in the package or the source checkout."""
    return _first_existing(_PACKAGE / "examples" / "retrain", _REPO / "examples" / "retrain")


def demo_config_data(folder: Path) -> dict[str, Any]:
    """conf/demo.yaml as a mapping, with ``${folder}`` and ``${retrain_uri}`` filled in.

    Substitution happens on the parsed values, so any folder name is safe
    (no YAML quoting issues). Without the retrain project, actions run dry.
    """
    folder = Path(folder).resolve()
    data = yaml.safe_load(demo_config_template().read_text())
    project = retrain_project()
    data = substitute(data, {"folder": folder.as_posix(), "retrain_uri": str(project or "examples/retrain")},
                      str(demo_config_template()))
    if project is None:
        log.warning("retrain project examples/retrain not found: the demo's actions run dry (decided, recorded, not started)")
        data.setdefault("actions", {})["dry_run"] = True
    return data


def demo_config(folder: Path) -> MonitorConfig:
    """The demo monitor for ``folder``; also written to ``folder/churn_demo.yaml`` for the CLI and notebooks."""
    folder = Path(folder).resolve()
    data = demo_config_data(folder)
    source = demo_config_template()
    cfg = parse_config(data, str(source))
    folder.mkdir(parents=True, exist_ok=True)
    header = f"# written by `sparkdrift demo` from {source}\n"
    (folder / _CONFIG_FILE).write_text(header + yaml.safe_dump(data, sort_keys=False))
    return cfg


def demo_config_path(folder: Path) -> Path:
    """Where `demo_config` writes the resolved monitor YAML."""
    return Path(folder).resolve() / _CONFIG_FILE


# --------------------------------------------------------------------------- run


def _fallback_summary(cfg: MonitorConfig, outcome: "DetectOutcome") -> str:
    lines = [f"sparkdrift detect: monitor {cfg.monitor}", f"  {outcome.message}"]
    for d in outcome.decisions:
        lines.append(f"  {d.window_start:%Y-%m-%d} {d.severity:<9} {', '.join(sorted(d.drifted)) or '-'}")
    if outcome.decisions:
        lines.append(f"  overall severity: {outcome.severity.upper()}")
    return "\n".join(lines)


def _summary(cfg: MonitorConfig, outcome: "DetectOutcome") -> str:
    try:
        from sparkdrift.sinks.console import format_summary
    except ImportError:
        return _fallback_summary(cfg, outcome)
    return format_summary(cfg, outcome)


def latest_detect_run(cfg: MonitorConfig):
    """The monitor's newest detect run in MLflow (an mlflow Run), or None."""
    if not cfg.mlflow.enabled:
        return None
    from mlflow import MlflowClient

    client = MlflowClient(cfg.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(cfg.experiment_name)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`sparkdrift.job` = 'detect' and tags.`sparkdrift.monitor` = '{cfg.monitor}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _latest_report(cfg: MonitorConfig, outcome: "DetectOutcome", run) -> Path | None:
    if outcome.report_dir is not None:
        return Path(outcome.report_dir) / "drift_report.html"
    if run is not None and cfg.output.report_dir:
        candidate = Path(cfg.output.report_dir) / cfg.monitor / run.info.run_id / "drift_report.html"
        if candidate.exists():
            return candidate
    return None


def where_to_look(cfg: MonitorConfig, outcome: "DetectOutcome", folder: Path, tables: dict[str, str]) -> str:
    """How to open the results: MLflow UI command, latest run, report, tables, the rerun commands."""
    from sparkdrift.sinks.tracking import run_url

    run = None
    try:
        run = latest_detect_run(cfg)
    except Exception:  # noqa: BLE001 - pointers are a nicety; the run itself succeeded
        log.debug("could not look up the latest detect run", exc_info=True)
    report = _latest_report(cfg, outcome, run)
    uri = cfg.mlflow.tracking_uri
    config_file = demo_config_path(folder)
    lines = ["", "Where to look:"]
    lines.append(f"  MLflow UI:   mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
    if run is not None:
        lines.append(f"  latest run:  {run.info.run_id}  {run_url(uri, run.info.experiment_id, run.info.run_id)}")
    if report is not None:
        lines.append(f"  report:      {report}")
    lines.append("  tables (Delta):")
    for name, path in tables.items():
        lines.append(f"    {name:<17} {path}")
    for which in ("profiles", "histograms", "metrics", "actions"):
        lines.append(f"    {which:<17} {cfg.output_table(which)}")
    lines.append(f"  config:      {config_file}")
    lines.append(f"  rerun:       sparkdrift detect --config {config_file} --as-of {AS_OF:%Y-%m-%dT%H:%M:%S}")
    return "\n".join(lines)


def run_demo(spark: "SparkSession", folder: Path) -> int:
    """Generate the churn case in ``folder`` and run the whole loop; prints the summary and where to look."""
    from sparkdrift.baseline import run_baseline
    from sparkdrift.detect import run_detect

    started = time.perf_counter()
    folder = Path(folder).resolve()
    print(f"sparkdrift demo: churn model, {DAYS} days of hourly traffic, drift from day {DRIFT_DAY}, in {folder}")
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    tables = make_demo_data(spark, folder)
    cfg = demo_config(folder)
    timings["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    profile, written = run_baseline(spark, cfg)  # the job's rerun-safe path: an unchanged source is not rescanned
    timings["baseline"] = time.perf_counter() - t0
    state = "built and stored" if written else "already stored (same table version and config): not rescanned"
    print(
        f"baseline {profile.baseline_id}: {profile.row_count:,} rows of {profile.source_table} "
        f"(version {profile.source_version}), {len(profile.features)} columns: {state}"
    )

    t0 = time.perf_counter()
    outcome = run_detect(spark, cfg, as_of=AS_OF)
    timings["detect"] = time.perf_counter() - t0
    print()
    print(_summary(cfg, outcome))
    print(where_to_look(cfg, outcome, folder, tables))
    parts = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    done = "" if outcome.windows else "; nothing new to do, rerun-safe"
    print(f"\ndemo finished in {time.perf_counter() - started:.0f}s ({parts}{done})")
    return 0
