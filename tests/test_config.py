"""The monitor config: the example validates, and broken configs fail naming the file and key path."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sparkdrift.cli import main
from sparkdrift.core.config import describe_fields, duration_seconds, load_config, parse_config
from sparkdrift.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {
    "monitor": "m",
    "baseline": {"table": "/data/train"},
    "production": {"table": "/data/log", "timestamp_column": "ts"},
    "features": {"numeric": ["age"]},
}


def test_example_config_validates_and_is_frozen():
    cfg = load_config(ROOT / "conf" / "example.yaml")
    assert cfg.monitor == "churn_model"
    assert cfg.binning.fine_bins == 1000 and cfg.binning.coarse_bins == 10
    assert cfg.thresholds["psi"] == 0.2 and cfg.prediction_thresholds["psi"] == 0.15
    assert cfg.actions.retrain.kind == "mlflow_project"
    with pytest.raises(AttributeError):
        cfg.monitor = "x"  # type: ignore[misc]


def test_every_key_of_the_example_is_documented():
    text = (ROOT / "conf" / "example.yaml").read_text()
    for key, _, doc in describe_fields():
        assert key.split(".")[-1] + ":" in text, key
        assert doc, key


def test_defaults_fill_a_minimal_config():
    cfg = parse_config(MINIMAL, "m.yaml")
    assert cfg.production.granularity == "day"
    assert cfg.policy.levels.severe == 0.3
    assert cfg.output_table("metrics").endswith("sparkdrift-data/tables/drift_metrics")
    assert cfg.experiment_name == "sparkdrift/m"
    assert len(cfg.config_hash()) == 16


def _with(path: str, value):
    data = copy.deepcopy(MINIMAL)
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


_DELETE = object()

BROKEN = [
    ("thresholds.psi", "high", r"c.yaml: thresholds.psi: expected a number, got \"high\""),
    ("thresholds.psi", -1, r"c.yaml: thresholds.psi: expected a number >= 0, got -1"),
    ("thresholds.nope", 0.1, r"c.yaml: thresholds.nope: unknown statistic"),
    ("baseline.tabel", "x", r"c.yaml: baseline.tabel: unknown key \(allowed: table, version"),
    ("production.timestamp_column", _DELETE, r"c.yaml: production.timestamp_column: required key is missing"),
    ("monitor", _DELETE, r"c.yaml: monitor: required key is missing"),
    ("binning.fine_bins", "many", r"c.yaml: binning.fine_bins: expected an integer, got \"many\""),
    ("binning.coarse_bins", 1, r"c.yaml: binning.coarse_bins: expected an integer >= 2, got 1"),
    ("production.granularity", "fortnight", r"c.yaml: production.granularity: expected a duration"),
    ("production.lateness", "soon", r"c.yaml: production.lateness: expected a duration"),
    ("features.infer", "yes please", r"c.yaml: features.infer: expected true or false"),
    ("baseline.sample_fraction", 1.5, r"c.yaml: baseline.sample_fraction: expected a number in \(0, 1\]"),
    ("prediction.kind", "probability", r"c.yaml: prediction.kind: expected one of score, class, regression"),
    ("policy.levels.minor", 0.5, r"c.yaml: policy.levels: expected minor <= moderate <= severe"),
    ("statistics.categorical", ["ks"], r"c.yaml: statistics.categorical\[0\]: ks does not apply to categorical"),
    ("actions.retrain", {"kind": "databricks_job"}, r"c.yaml: actions.retrain.job_id: required when kind is databricks_job"),
    ("actions.retrain", {"kind": "email"}, r"c.yaml: actions.retrain.kind: expected one of mlflow_project"),
    ("features", {"numeric": ["a"], "categorical": ["a"]}, r"c.yaml: features: column 'a' is both numeric and categorical"),
    ("features", {}, r"c.yaml: features: no columns to monitor"),
    ("monitor", "churn model!", r"c.yaml: monitor: expected letters, digits"),
    ("baseline", "train", r"c.yaml: baseline: expected a mapping, got \"train\""),
    ("feature_thresholds.age.psi", "x", r"c.yaml: feature_thresholds.age.psi: expected a number"),
    ("label.table", "labels", r"c.yaml: label.id_column: required when label.table is set"),
    ("policy.score", "median:psi", r"c.yaml: policy.score: expected share_drifted"),
    ("thresholds.psi", float("nan"), r"c.yaml: thresholds.psi: expected a number >= 0, got nan"),
    ("thresholds.js", float("inf"), r"c.yaml: thresholds.js: expected a number >= 0, got inf"),
    ("policy.prediction_psi", float("nan"), r"c.yaml: policy.prediction_psi: expected a number > 0"),
    ("policy.false_alarm_rate", 0, r"c.yaml: policy.false_alarm_rate: expected a number in \(0, 1\)"),
    ("policy.persistence.statistic", "kss", r"c.yaml: policy.persistence.statistic: unknown statistic"),
    ("production.start", "yesterday", r"c.yaml: production.start: expected an ISO timestamp like 2026-01-31"),
    ("baseline.timestamp", "last week", r"c.yaml: baseline.timestamp: expected an ISO timestamp"),
    ("production.table", "prod; DROP TABLE x", r"c.yaml: production.table: expected a path or a table name"),
    ("baseline.table", "a.b.c.d", r"c.yaml: baseline.table: expected a path or a table name"),
]


@pytest.mark.parametrize("ref", ["main.ml.train", "train", "`my-cat`.ml.`odd name`", "/data/x", "s3://b/p", "dbfs:/x"])
def test_table_references_that_are_accepted(ref):
    assert parse_config(_with("baseline.table", ref), "c.yaml").baseline.table == ref


@pytest.mark.parametrize("path,value,message", BROKEN, ids=[f"{p}={v!r}" for p, v, _ in BROKEN])
def test_broken_config_names_file_and_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_with(path, value), "c.yaml")


def test_yaml_errors_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("monitor: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_durations():
    assert duration_seconds("90m") == 5400
    assert duration_seconds("day") == 86400
    assert duration_seconds("2h") == 7200


def test_cli_validate_prints_what_it_understood(capsys):
    assert main(["validate", str(ROOT / "conf" / "example.yaml")]) == 0
    out = capsys.readouterr().out
    assert "valid monitor 'churn_model'" in out
    assert "binning.fine_bins = 1000" in out


def test_cli_error_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump(_with("thresholds.psi", "high")))
    proc = subprocess.run([sys.executable, "-m", "sparkdrift", "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f'sparkdrift: error: {bad}: thresholds.psi: expected a number, got "high"'
    ]


def test_values_from_the_environment_and_secret_flags_are_never_shown(tmp_path, monkeypatch, capsys):
    from sparkdrift.sinks.tracking import config_params

    data = _with("actions.retrain", {
        "kind": "command",
        "command": ["python", "train.py", "--token=${SD_TOKEN}", "--api-key", "literal-key-42"],
        "parameters": {"api_key": "${SD_API_KEY}", "note": "uses ${SD_API_KEY}"},
    })
    cfg_file = tmp_path / "s.yaml"
    cfg_file.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("SD_API_KEY", "sk-live-0123456789")
    monkeypatch.setenv("SD_TOKEN", "tok-abcdef")
    cfg = load_config(cfg_file)
    assert cfg.actions.retrain.parameters["api_key"] == "sk-live-0123456789"  # the action still gets it
    assert main(["validate", str(cfg_file)]) == 0
    shown = capsys.readouterr().out + " ".join(config_params(cfg).values())
    for secret in ("sk-live-0123456789", "tok-abcdef", "literal-key-42"):
        assert secret not in shown
    assert "actions.retrain.parameters.note = uses ***" in shown
    assert "secrets" not in dict(cfg.display_items())


def test_environment_references_are_expanded(tmp_path, monkeypatch):
    cfg_file = tmp_path / "env.yaml"
    text = yaml.safe_dump(MINIMAL).replace("/data/train", "${CATALOG}.ml.train").replace(
        "/data/log", "${LOG_TABLE:-/data/default_log}"
    )
    cfg_file.write_text(text)
    monkeypatch.setenv("CATALOG", "main")
    cfg = load_config(cfg_file)
    assert cfg.baseline.table == "main.ml.train"
    assert cfg.production.table == "/data/default_log"
    monkeypatch.delenv("CATALOG")
    with pytest.raises(ConfigError, match=r"env.yaml: environment variable CATALOG is not set"):
        load_config(cfg_file)


def test_cli_logging_drops_py4j_resend_notes_but_keeps_everything_else(caplog):
    import logging

    from sparkdrift.cli import _not_py4j_retry

    def record(name, level, path):
        return logging.LogRecord(name, level, path, 1, "Exception while sending command.", None, None)

    assert not _not_py4j_retry(record("root", logging.INFO, "/x/site-packages/py4j/java_gateway.py"))
    assert _not_py4j_retry(record("root", logging.WARNING, "/x/site-packages/py4j/java_gateway.py"))
    assert _not_py4j_retry(record("root", logging.INFO, "/x/sparkdrift/cli.py"))
    assert _not_py4j_retry(record("sparkdrift.actions", logging.INFO, "/x/sparkdrift/actions/__init__.py"))
