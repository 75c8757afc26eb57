"""`sparkdrift init`: the proposal from hand-made table facts, and a monitor it writes that runs unchanged."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import yaml

from sparkdrift.cli import main
from sparkdrift.core.config import load_config, parse_config
from sparkdrift.errors import TableError
from sparkdrift.scaffold import TableFacts, TimeFacts, granularity, monitor_name, propose, render, timestamp_column

T0 = datetime(2026, 3, 1)

BASELINE = TableFacts(
    "main.ml.churn_train",
    {"customer_id": "string", "age": "int", "income": "double", "plan": "string", "email": "string",
     "tags": "array<string>", "churned": "int", "churn_score": "double", "trained_on": "date"},
    sample_rows=10_000,
    distinct={"customer_id": 10_000, "age": 60, "income": 9_000, "plan": 4, "email": 9_990, "churned": 2,
              "churn_score": 9_500},
    ranges={"age": (18, 90), "income": (0, 2e5), "churned": (0, 1), "churn_score": (0.01, 0.99)},
)
PRODUCTION = TableFacts(
    "main.ml.churn_inference",
    {"event_time": "timestamp", "loaded_at": "timestamp", "customer_id": "string", "age": "int",
     "income": "double", "plan": "string", "email": "string", "tags": "array<string>", "churn_score": "double"},
    sample_rows=10_000,
    distinct={"customer_id": 9_800, "age": 60, "income": 9_100, "plan": 4, "email": 9_950, "churn_score": 9_600},
    ranges={"age": (18, 91), "income": (0, 2.1e5), "churn_score": (0.0, 1.0)},
)


def test_proposal_from_the_facts():
    time = TimeFacts("event_time", T0, T0 + timedelta(days=30), 30 * 24 * 500)  # 500 rows an hour
    p = propose("churn", BASELINE, PRODUCTION, time)
    assert p.data == {
        "monitor": "churn",
        "baseline": {"table": "main.ml.churn_train"},
        "production": {"table": "main.ml.churn_inference", "timestamp_column": "event_time", "granularity": "day"},
        "features": {"numeric": ["age", "income"], "categorical": ["plan"]},
        "id_column": "customer_id",
        "prediction": {"columns": ["churn_score"], "kind": "score"},
        "label": {"column": "churned"},
    }
    assert p.notes["features"] == "left out (identifier-like or unsupported type): email, tags"
    assert p.notes["production.granularity"] == "360,000 rows from 2026-03-01 to 2026-03-31: about 12,000 rows per day"
    assert p.notes["label"] == "two values, and not in the production table; in the baseline table only (baseline performance)"


def test_written_yaml_is_a_valid_monitor_with_its_reasons():
    time = TimeFacts("event_time", T0, T0 + timedelta(days=30), 360_000)
    text = render(propose("churn", BASELINE, PRODUCTION, time), BASELINE, PRODUCTION)
    cfg = parse_config(yaml.safe_load(text), "init.yaml")
    assert (cfg.features.numeric, cfg.features.categorical) == (("age", "income"), ("plan",))
    assert (cfg.production.granularity, cfg.prediction.kind, cfg.label.column) == ("day", "score", "churned")
    lines = text.splitlines()
    note = lines.index("  # type timestamp")
    assert lines[note + 1] == "  timestamp_column: event_time"
    assert "# left out (identifier-like or unsupported type): email, tags" in text


@pytest.mark.parametrize("rows, hours, expected", [
    (2_000 * 48, 48, "hour"),  # 2 000 an hour
    (1_999 * 48, 48, "day"),
    (2_000 * 14, 14 * 24, "day"),  # 2 000 a day
    (2_000 * 5, 5 * 168, "week"),
    (6_100, 92 * 24, "month"),  # 2 015 in a mean month of 730.5 h
    (1_000, 30 * 24, "quarter"),  # too sparse for anything shorter
])
def test_granularity_keeps_enough_rows_per_window(rows, hours, expected):
    assert granularity(TimeFacts("t", T0, T0 + timedelta(hours=hours), rows))[0] == expected


def test_class_and_regression_predictions_and_names():
    prod = TableFacts("p", {"ts": "timestamp", "pred_class": "int", "x": "double"}, 100,
                      {"pred_class": 3, "x": 90}, {"pred_class": (0, 2), "x": (-1, 1)})
    base = TableFacts("b", {"pred_class": "int", "x": "double"}, 100, {"pred_class": 3, "x": 90})
    time = TimeFacts("ts", T0, T0 + timedelta(days=7), 100)
    assert propose("m", base, prod, time).data["prediction"] == {"columns": ["pred_class"], "kind": "class"}
    prod2 = TableFacts("p", {"ts": "timestamp", "prediction": "double"}, 100, {"prediction": 90}, {"prediction": (3.5, 70.0)})
    base2 = TableFacts("b", {"prediction": "double"})
    assert propose("m", base2, prod2, time).data["prediction"]["kind"] == "regression"
    assert monitor_name("main.ml.churn_inference") == "churn_inference"
    assert monitor_name("/data/tables/churn inference/") == "churn_inference"


def test_no_time_column_is_one_clear_error():
    with pytest.raises(TableError, match=r"^table p: no timestamp or date column to cut windows on \(has: a, b\)$"):
        timestamp_column(TableFacts("p", {"a": "int", "b": "string"}))
    assert timestamp_column(TableFacts("p", {"loaded_at": "timestamp", "event_time": "timestamp"})) == "event_time"
    assert timestamp_column(TableFacts("p", {"created": "timestamp", "updated_at": "timestamp"})) == "updated_at"
    assert timestamp_column(TableFacts("p", {"created": "timestamp", "event_time": "timestamp"})) == "event_time"


@pytest.mark.spark
@pytest.mark.slow
def test_init_writes_a_monitor_whose_jobs_run_unchanged(spark, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    rng = np.random.default_rng(5)
    n = 3_000

    def rows(start: datetime, shift: float):
        return [(f"c{i}", float(rng.normal(50 + shift, 10)), str(rng.choice(["a", "b", "c"])),
                 float(rng.uniform()), int(rng.integers(0, 2)), start + timedelta(seconds=int(s)))
                for i, s in enumerate(rng.uniform(0, 3 * 86400, n))]

    schema = "customer_id string, amount double, plan string, churn_score double, churned int, event_time timestamp"
    base, prod = str(tmp_path / "train"), str(tmp_path / "inference")
    start = datetime(2026, 3, 1, tzinfo=timezone.utc).replace(tzinfo=None)
    spark.createDataFrame(rows(start, 0), schema).write.format("delta").save(base)
    # the inference log has no label yet (it arrives later): the baseline's binary column is the label
    spark.createDataFrame(rows(start + timedelta(days=10), 8), schema).drop("churned").write.format("delta").save(prod)

    assert main(["init", "--baseline", base, "--production", prod, "--monitor", "churn"]) == 0
    out = capsys.readouterr().out
    assert "wrote conf/churn.yaml: monitor churn, 1 numeric and 1 categorical features, windows of one week" in out
    assert "  sparkdrift baseline --config conf/churn.yaml\n  sparkdrift detect --config conf/churn.yaml" in out
    cfg = load_config("conf/churn.yaml")
    assert cfg.production.timestamp_column == "event_time" and cfg.id_column == "customer_id"
    assert (cfg.prediction.columns, cfg.prediction.kind, cfg.label.column) == (("churn_score",), "score", "churned")
    assert main(["init", "--baseline", base, "--production", prod, "--monitor", "churn"]) == 2  # never overwrites

    assert main(["baseline", "--config", "conf/churn.yaml"]) == 0
    as_of = (start + timedelta(days=30)).isoformat()
    assert main(["detect", "--config", "conf/churn.yaml", "--as-of", as_of]) == 0
    summary = capsys.readouterr().out
    assert "sparkdrift detect: monitor churn" in summary and "windows: " in summary
