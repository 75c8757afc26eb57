"""The Databricks source-format notebooks, run locally as plain Python (runpy) against a small demo monitor."""
from __future__ import annotations

import io
import os
import runpy
from contextlib import redirect_stdout
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


class FakeDbutils:
    """The part of Databricks' dbutils the notebooks use: widgets and job task values."""

    def __init__(self, widgets: dict[str, str]):
        self.values: dict[str, object] = {}
        self.widgets = self._Widgets(widgets)
        self.jobs = type("Jobs", (), {"taskValues": self._TaskValues(self.values)})()

    class _Widgets:
        def __init__(self, given: dict[str, str]):
            self.given, self.defaults = given, {}

        def text(self, name: str, default: str, label: str | None = None) -> None:
            self.defaults[name] = default

        def get(self, name: str) -> str:
            return self.given.get(name, self.defaults[name])

    class _TaskValues:
        def __init__(self, values: dict):
            self.values = values

        def set(self, key: str, value) -> None:
            self.values[key] = value


@pytest.fixture(scope="module")
def monitor(spark, tmp_path_factory):
    """The demo monitor after its one detect run over the 14 days (shared with test_demo)."""
    from sparkdrift.demo import demo_config_path, latest_detect_run
    from tests.test_demo import shared_demo

    demo = shared_demo(spark, tmp_path_factory)
    assert demo["rc"] == 0
    run = latest_detect_run(demo["cfg"])
    return {"folder": demo["folder"], "config": demo_config_path(demo["folder"]), "cfg": demo["cfg"],
            "run_id": run.info.run_id}


def _run_notebook(name: str, env: dict[str, str], init_globals: dict | None = None) -> str:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            runpy.run_path(str(NOTEBOOKS / name), init_globals=init_globals, run_name="__main__")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out.getvalue()


@pytest.mark.parametrize("name", ["review_monitor.py", "setup_monitor.py"])
def test_notebooks_are_in_databricks_source_format(name):
    text = (NOTEBOOKS / name).read_text()
    assert text.startswith("# Databricks notebook source\n")
    assert text.count("\n# COMMAND ----------\n") >= 4
    compile(text, name, "exec")


def test_review_notebook_prints_the_drifted_features(monitor, tmp_path):
    plot = tmp_path / "drift.png"
    text = _run_notebook("review_monitor.py", {
        "SPARKDRIFT_CONFIG": str(monitor["config"]), "SPARKDRIFT_PLOT": str(plot), "MPLBACKEND": "Agg",
    })
    print(text)
    assert "severity of the latest run: severe" in text
    assert "drifted features in the latest run: contract, monthly_charges, support_calls" in text
    for day in range(1, 8):  # stable week: no drift
        assert f"2026-01-0{day} 00:00* none" in text
    assert "2026-01-14 00:00* severe" in text
    assert plot.exists() and plot.stat().st_size > 1000
    assert "top features by PSI: churn_score" in text  # the prediction moved most
    run_id = monitor["run_id"]
    assert f"runs/{run_id}" in text and "drift_report.html" in text
    assert "not on Databricks: task values not set" not in text  # publish is off by default


def test_review_notebook_publishes_task_values_in_a_job(spark, monitor):
    """As the detect job's publish task: widgets from base_parameters, task values for the condition task."""
    dbutils = FakeDbutils({"config": str(monitor["config"]), "publish": "true", "since": "2026-01-01T00:00:00Z"})
    _run_notebook("review_monitor.py", {"MPLBACKEND": "Agg"}, {"dbutils": dbutils, "spark": spark})
    assert dbutils.values["severity"] == "severe"
    assert dbutils.values["drifted_features"] == "contract,monthly_charges,support_calls"
    assert dbutils.values["mlflow_run_id"] == monitor["run_id"]

    # a job run that checked no new window publishes "none": no retrain from yesterday's result
    later = FakeDbutils({"config": str(monitor["config"]), "publish": "true", "since": "2999-01-01T00:00:00Z"})
    _run_notebook("review_monitor.py", {"MPLBACKEND": "Agg"}, {"dbutils": later, "spark": spark})
    assert later.values["severity"] == "none"
    assert later.values["drifted_features"] == ""


def test_setup_notebook_infers_validates_and_builds(spark, monitor, tmp_path):
    from sparkdrift.core.config import load_config
    from sparkdrift.demo import demo_tables

    tables = demo_tables(monitor["folder"])
    config_out = tmp_path / "conf" / "churn_setup.yaml"
    text = _run_notebook("setup_monitor.py", {
        "SPARKDRIFT_SETUP_MONITOR": "churn_setup",
        "SPARKDRIFT_SETUP_BASELINE_TABLE": tables["churn_train"],
        "SPARKDRIFT_SETUP_PRODUCTION_TABLE": tables["churn_inference"],
        "SPARKDRIFT_SETUP_OUTPUT_LOCATION": str(tmp_path / "tables"),
        "SPARKDRIFT_SETUP_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "SPARKDRIFT_SETUP_CONFIG_OUT": str(config_out),
    })
    print(text)
    assert "7 columns to monitor:" in text
    cfg = load_config(config_out)
    assert cfg.monitor == "churn_setup"
    assert set(cfg.features.numeric) == {"tenure_months", "monthly_charges", "total_charges", "support_calls"}
    assert set(cfg.features.categorical) == {"contract", "payment_method"}
    assert cfg.prediction.columns == ("churn_score",)
    assert "customer_id" not in text.split("columns to monitor:")[1].split("valid monitor")[0]
    assert "rows:    20,000" in text  # describe_baseline of the profile it built
    profiles = spark.read.format("delta").load(cfg.output_table("profiles"))
    stored = {r["feature"] for r in profiles.filter("monitor = 'churn_setup'").select("feature").collect()}
    assert stored >= {*cfg.features.numeric, *cfg.features.categorical, "churn_score"}
