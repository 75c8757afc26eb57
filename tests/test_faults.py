"""Faults never block the verdict: an unreachable MLflow still leaves metrics written and the alert sent;
a job killed at any stage leaves a state from which the next run reaches the same verdict."""
from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
import yaml

from sparkdrift.spark.profiling import build_baseline
from sparkdrift.store import DeltaStore, MemoryStore
from sparkdrift.cli import main
from sparkdrift.core.config import load_config, parse_config
from sparkdrift import detect
from sparkdrift.detect import run_detect
from sparkdrift.store.tables import read_output

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAY0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
PER_DAY = 500


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    """A real HTTP server on 127.0.0.1 standing in for Slack."""
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SD_TEST_HOOK", f"http://127.0.0.1:{server.server_address[1]}/hook")
    yield _Hook.received
    server.shutdown()


def _tables(spark, tmp):
    rng = np.random.default_rng(5)
    base = [(float(x),) for x in rng.normal(0, 1, 3000)]
    spark.createDataFrame(base, "x double").write.format("delta").save(str(tmp / "train"))
    rows = [((DAY0 + timedelta(days=d, seconds=int(s))).replace(tzinfo=None), float(x))
            for d in range(3) for s, x in zip(rng.integers(0, 86400, PER_DAY), rng.normal(1.5 * (d == 2), 1, PER_DAY))]
    spark.createDataFrame(rows, "ts timestamp, x double").write.format("delta").save(str(tmp / "log"))


def _config(tmp, **mlflow) -> dict:
    return {
        "monitor": "faults",
        "baseline": {"table": str(tmp / "train")},
        "production": {"table": str(tmp / "log"), "timestamp_column": "ts", "lateness": "1h"},
        "features": {"numeric": ["x"]},
        "binning": {"fine_bins": 100},
        "output": {"location": str(tmp / "tables")},
        "actions": {"webhook": {"url_env": "SD_TEST_HOOK", "min_severity": "minor", "retries": 0}},
        "mlflow": {"tracking_uri": "http://127.0.0.1:9", "timeout_seconds": 2, "retries": 0, **mlflow},
    }


def test_unreachable_mlflow_never_blocks_the_verdict(spark, tmp_path, webhook):
    _tables(spark, tmp_path)
    cfg = parse_config(_config(tmp_path), "faults.yaml")
    DeltaStore.of(spark, cfg).save_profile(build_baseline(spark, cfg))
    out = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=3, hours=2))
    # MLflow's own default (retries with backoff) waited ~305 s here; bounded, it gives up at once
    assert out.cost["stage.mlflow_s"] < 30
    assert out.run_id is None and out.mlflow_error and "127.0.0.1" not in out.mlflow_error.split(":")[0]
    assert out.severity != "none" and [d.window_start.day for d in out.decisions if d.severity != "none"] == [3]
    metrics = read_output(spark, cfg.output_table("metrics")).collect()
    assert {r["window_start"].day for r in metrics} == {1, 2, 3}  # the progress marker moved
    assert len(webhook) == 1 and "faults" in json.dumps(webhook[0])  # the alert went out
    assert {r["mlflow_run_id"] for r in metrics} == {None}  # recorded as not logged

    # MLflow is back: the next run logs the windows it missed, and alerts nobody twice
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = parse_config(_config(tmp_path, tracking_uri=uri), "faults.yaml")
    again = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=3, hours=3))
    assert again.run_id and again.mlflow_error is None
    assert "windows from 2026-04-01 00:00 that MLflow missed logged again" in again.message
    metrics = read_output(spark, cfg.output_table("metrics")).collect()
    assert {r["mlflow_run_id"] for r in metrics} == {again.run_id}
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    stored = {r["window_start"].day: r["value"] for r in metrics
              if r["statistic"] == "psi" and r["reference"] == "baseline"}
    logged = {datetime.fromtimestamp(m.timestamp / 1000, timezone.utc).day: m.value
              for m in client.get_metric_history(again.run_id, "feature.x/psi")}
    assert logged.keys() == {1, 2, 3} and all(abs(logged[d] - stored[d]) < 1e-12 for d in logged)
    assert len(client.get_metric_history(again.run_id, "drift/severity")) == 3
    assert len(webhook) == 1  # the day-3 alert was sent by the first run: not again
    last = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=3, hours=4))
    assert last.message.endswith("nothing to do") and last.run_id is None


def test_cli_exit_code_when_mlflow_is_required(spark, tmp_path, webhook, capsys):
    _tables(spark, tmp_path)
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, required=True)))
    cfg = load_config(path)
    DeltaStore.of(spark, cfg).save_profile(build_baseline(spark, cfg))
    code = main(["detect", "--config", str(path), "--as-of", (DAY0 + timedelta(days=3, hours=2)).isoformat()])
    out = capsys.readouterr().out
    assert code == 4
    assert "MLflow: NOT logged (" in out and "results, histograms and actions are in the tables" in out
    assert read_output(spark, cfg.output_table("metrics")).count() > 0


def test_null_timestamps_are_counted_and_an_outage_is_a_flagged_window(spark, tmp_path):
    """10 % of rows without a timestamp are reported, not dropped; a day with no rows is an empty, flagged window."""
    rng = np.random.default_rng(9)
    spark.createDataFrame([(float(x),) for x in rng.normal(0, 1, 3000)], "x double").write.format("delta").save(
        str(tmp_path / "train"))
    days = [0, 1, 2, 3, 5]  # day 4: an outage
    rows = [((DAY0 + timedelta(days=d, seconds=int(s))).replace(tzinfo=None), float(x))
            for d in days for s, x in zip(rng.integers(0, 86400, PER_DAY), rng.normal(0, 1, PER_DAY))]
    rows += [(None, float(x)) for x in rng.normal(0, 1, 250)]
    spark.createDataFrame(rows, "ts timestamp, x double").write.format("delta").save(str(tmp_path / "log"))
    cfg = parse_config({**_config(tmp_path), "mlflow": {"enabled": False}, "actions": {}}, "faults.yaml")
    DeltaStore.of(spark, cfg).save_profile(build_baseline(spark, cfg))
    out = run_detect(spark, cfg, as_of=DAY0 + timedelta(days=6, hours=2))
    assert out.null_timestamps == 250
    assert [(w.window_start.day, w.rows) for w in out.windows] == [(1, PER_DAY), (2, PER_DAY), (3, PER_DAY),
                                                                    (4, PER_DAY), (5, 0), (6, PER_DAY)]
    volume = {r.window_start.day: r for r in out.results if r.statistic == "volume_ratio"}
    assert volume[5].value == 0.0 and volume[5].drifted and not volume[6].drifted
    outage = [d for d in out.decisions if d.window_start.day == 5][0]
    assert outage.severity != "none" and not outage.errors  # flagged by the volume rule; empty is not an error
    stored = read_output(spark, cfg.output_table("histograms")).filter("window_start = '2026-04-05'").collect()
    assert stored and all(r["rows"] == 0 for r in stored)


def test_rows_that_arrive_after_a_window_was_computed_are_found_and_the_window_recomputed(spark, tmp_path,
                                                                                        monkeypatch):
    """500 shifted rows land in day 1 two days late: the next run says so, recounts it and changes its verdict."""
    rng = np.random.default_rng(11)
    spark.createDataFrame([(float(x),) for x in rng.normal(0, 1, 3000)], "x double").write.format("delta").save(
        str(tmp_path / "train"))

    def day_rows(d: int, n: int, mean: float) -> list[tuple]:
        return [((DAY0 + timedelta(days=d, seconds=int(s))).replace(tzinfo=None), float(x))
                for s, x in zip(rng.integers(0, 86400, n), rng.normal(mean, 1, n))]

    log = str(tmp_path / "log")
    days = [day_rows(d, 2000, 0.0) for d in range(3)]
    spark.createDataFrame([r for rows in days for r in rows], "ts timestamp, x double").write.format("delta").save(log)
    cfg = parse_config({**_config(tmp_path), "mlflow": {"enabled": False}, "actions": {}}, "faults.yaml")
    DeltaStore.of(spark, cfg).save_profile(build_baseline(spark, cfg))
    as_of = DAY0 + timedelta(days=3, hours=2)
    first = run_detect(spark, cfg, as_of=as_of)
    assert [w.rows for w in first.windows] == [2000, 2000, 2000]
    assert all(d.severity == "none" for d in first.decisions)

    late = day_rows(1, 500, 3.0)  # past the 1 h lateness of day 1, which was already computed
    spark.createDataFrame(late, "ts timestamp, x double").write.format("delta").mode("append").save(log)
    second = run_detect(spark, cfg, as_of=as_of)
    assert "1 earlier windows changed after they were computed (2026-04-02 00:00 2000->2500 rows): recomputed" \
        in second.message
    assert [(w.window_start.day, w.rows) for w in second.windows] == [(2, 2500), (3, 2000)]
    by_day = {d.window_start.day: d for d in second.decisions}
    assert by_day[2].severity != "none" and "x" in by_day[2].drifted and "x" not in by_day[3].drifted
    # the stored window is the recount: its bins hold exactly the rows of that day, late ones included
    stored = DeltaStore.of(spark, cfg).load_histograms(first.baseline_id)
    day1 = [w for w in stored if w.window_start.day == 2][0]
    x = day1.histograms["x"]
    assert day1.rows == 2500 and int(x.counts.sum()) + x.underflow + x.overflow == 2500
    assert x.value_sum == pytest.approx(sum(v for _, v in days[1] + late), rel=1e-9)

    # nothing changed since (the version read is the one the windows were counted at, although the
    # append was committed seconds ago, within the clock-skew margin): no row read, nothing written
    recounts = []
    monkeypatch.setattr(detect, "window_row_counts", lambda *a, **k: recounts.append(a) or {})
    third = run_detect(spark, cfg, as_of=as_of)
    assert third.message.startswith("no new complete windows") and third.windows == []
    assert recounts == []
    # the next day appended: the Delta log says it added only rows after the stored windows, so none is recounted
    spark.createDataFrame(day_rows(3, 2000, 0.0), "ts timestamp, x double").write.format("delta").mode(
        "append").save(log)
    fourth = run_detect(spark, cfg, as_of=as_of + timedelta(days=1))
    assert recounts == [] and [(w.window_start.day, w.rows) for w in fourth.windows] == [(4, 2000)]


def test_the_delta_log_says_what_commits_added_or_that_it_cannot(spark, tmp_path):
    from sparkdrift.store.tables import earliest_added, read_table

    path = str(tmp_path / "log")
    first = datetime(2026, 4, 1, 6, 30, 15)
    rows = [(first + timedelta(minutes=i), float(i)) for i in range(50)]
    spark.createDataFrame(rows[:10], "ts timestamp, x double").write.format("delta").save(path)
    spark.createDataFrame(rows[30:], "ts timestamp, x double").write.format("delta").mode("append").save(path)
    spark.createDataFrame(rows[10:30], "ts timestamp, x double").write.format("delta").mode("append").save(path)
    at2 = read_table(spark, path)
    assert at2.version == 2
    assert earliest_added(spark, at2, 0, "ts") == min(r[0] for r in rows[10:]).replace(tzinfo=timezone.utc)
    assert earliest_added(spark, at2, 1, "ts") == rows[10][0].replace(tzinfo=timezone.utc)
    assert earliest_added(spark, at2, 2, "ts") is None  # nothing since: no commit to read
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('owner.note' = 'x')")  # a commit adding no rows
    assert earliest_added(spark, read_table(spark, path), 2, "ts") == datetime.max.replace(tzinfo=timezone.utc)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE x = 3")  # rows removed: only a recount can say what changed
    assert earliest_added(spark, read_table(spark, path), 3, "ts") is None
    assert earliest_added(spark, at2, 1, "nope") is None  # no statistics of this column: cannot say


def test_a_failed_retrain_with_fail_on_error_still_writes_the_results_and_exits_1(spark, tmp_path, webhook, capsys):
    import sys

    _tables(spark, tmp_path)
    data = _config(tmp_path)
    data["mlflow"] = {"enabled": False}
    data["actions"].update(fail_on_error=True, retrain={
        "kind": "command", "min_severity": "minor", "synchronous": True,
        "command": [sys.executable, "-c", "raise SystemExit(1)"]})
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(path)
    DeltaStore.of(spark, cfg).save_profile(build_baseline(spark, cfg))
    code = main(["detect", "--config", str(path), "--as-of", (DAY0 + timedelta(days=3, hours=2)).isoformat()])
    assert code == 1  # as documented: an action failed and fail_on_error is set (not 2, a config error)
    assert {r["window_start"].day for r in read_output(spark, cfg.output_table("metrics")).collect()} == {1, 2, 3}
    (retrain,) = [r for r in read_output(spark, cfg.output_table("actions")).collect() if r["action"] == "retrain"]
    assert (retrain["status"], retrain["error"]) == ("failed", "command exited with code 1")
    assert len(webhook) == 1  # the alert still went out


SECRETS = {"SD_API_KEY": "sk-live-0123456789", "SD_TOKEN": "tok-abcdef-98765", "SD_HOOK_PATH": "T0K3N-in-url-4242"}


def test_planted_secrets_reach_their_action_and_no_output(spark, tmp_path, webhook, monkeypatch, capsys, caplog):
    """Secrets in the environment, a --flag and a webhook URL: the retrain command gets them; stdout, logs,
    every table (rows and Delta log), the MLflow store, its artifacts, the report and the alert never do."""
    import sqlite3
    import sys

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SD_TEST_HOOK", os.environ["SD_TEST_HOOK"] + "/" + SECRETS["SD_HOOK_PATH"])
    literal = "literal-key-42"  # a literal value after a secret-looking flag
    received = tmp_path / "received.json"  # what the retrain command got: outside every place searched below
    script = tmp_path / "train.py"
    script.write_text("import json, os, sys\n"
                      f"json.dump({{'argv': sys.argv, 'env': dict(os.environ)}}, open({str(received)!r}, 'w'))\n")
    work = tmp_path / "work"
    work.mkdir()
    _tables(spark, work)
    data = _config(work)
    data["mlflow"] = {"tracking_uri": f"sqlite:///{work}/mlflow.db"}
    data["output"]["report_dir"] = str(work / "reports")
    data["actions"]["retrain"] = {
        "kind": "command", "min_severity": "minor", "synchronous": True,
        "command": [sys.executable, str(script), "--token=${SD_TOKEN}", "--api-key", literal],
        "parameters": {"api_key": "${SD_API_KEY}", "note": "uses ${SD_API_KEY}"},
    }
    cfg_file = work / "secret.yaml"
    cfg_file.write_text(yaml.safe_dump(data))
    with caplog.at_level("DEBUG"):
        assert main(["validate", str(cfg_file)]) == 0
        assert main(["baseline", "--config", str(cfg_file)]) == 0
        assert main(["detect", "--config", str(cfg_file), "--as-of",
                     (DAY0 + timedelta(days=3, hours=2)).isoformat()]) == 0

    got = json.loads(received.read_text())  # the action itself is not crippled by redaction
    assert f"--token={SECRETS['SD_TOKEN']}" in got["argv"] and literal in got["argv"]
    assert SECRETS["SD_API_KEY"] in got["env"].values()
    assert len(webhook) == 1

    cfg = load_config(cfg_file)
    outputs = {"stdout+stderr": "".join(capsys.readouterr()),
               "logs": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
               "alert": json.dumps(webhook)}
    for name in ("profiles", "histograms", "metrics", "actions"):
        table = read_output(spark, cfg.output_table(name))
        if table is not None:
            outputs[f"table {name}"] = "\n".join(str(r) for r in table.collect())
    with sqlite3.connect(work / "mlflow.db") as con:
        outputs["MLflow store"] = "\n".join(con.iterdump())
    files = [f for f in work.rglob("*") if f.is_file() and f.suffix in (".json", ".html", ".txt", ".md", ".csv", "")]
    outputs.update({str(f.relative_to(work)): f.read_text(errors="replace") for f in files})
    assert any(k.startswith("tables/") and "_delta_log" in k for k in outputs)  # the Delta logs were searched
    assert any(k.endswith("drift_report.html") for k in outputs) and "retrain" in outputs["table actions"]
    leaks = [(where, s) for where, text in outputs.items() for s in (*SECRETS.values(), literal) if s in text]
    assert leaks == []


class _Crash(Exception):
    pass


class _CrashOnce(MemoryStore):
    """The in-memory store, dying once at the ``nth`` call of one write: what survives is what a crash leaves."""

    def __init__(self, monitor: str, stage: str, nth: int = 1):
        super().__init__(monitor)
        self.stage, self.nth, self.calls = stage, nth, 0

    def _step(self, name: str) -> None:
        if name == self.stage:
            self.calls += 1
            if self.calls == self.nth:
                raise _Crash(f"killed at {name} #{self.nth}")

    def write_histograms(self, *args, **kw):
        self._step("write_histograms")
        return super().write_histograms(*args, **kw)

    def write_actions(self, records):
        self._step("write_actions")
        return super().write_actions(records)

    def write_metrics(self, results, run_id):
        self._step("write_metrics")
        return super().write_metrics(results, run_id)


def _verdict(store: MemoryStore) -> dict:
    return {k: (None if r.value != r.value else r.value, r.drifted, r.noise_floor) for k, (r, _) in store.metrics.items()}


@pytest.mark.parametrize("stage, nth, alerts", [
    ("write_histograms", 1, 1),
    ("write_actions", 1, 1),  # pending rows recorded, nothing sent yet
    ("write_actions", 2, 2),  # sent, not yet recorded: resent on the rerun (alerts are at-least-once)
    ("write_metrics", 1, 1),  # everything done but the progress marker
])
def test_a_crash_at_any_stage_then_a_rerun_gives_the_uninterrupted_verdict(spark, tmp_path, webhook, stage, nth, alerts):
    _tables(spark, tmp_path)
    cfg = parse_config({**_config(tmp_path), "mlflow": {"enabled": False}}, "faults.yaml")
    profile = build_baseline(spark, cfg)
    as_of = DAY0 + timedelta(days=3, hours=2)
    clean = MemoryStore("faults")
    clean.save_profile(profile)
    run_detect(spark, cfg, as_of=as_of, store=clean)
    webhook.clear()

    store = _CrashOnce("faults", stage, nth)
    store.save_profile(profile)
    with pytest.raises(_Crash):
        run_detect(spark, cfg, as_of=as_of, store=store)
    run_detect(spark, cfg, as_of=as_of, store=store)
    assert _verdict(store) == _verdict(clean) and len(store.metrics) > 0
    assert [w.window_start for w in store.load_histograms(profile.baseline_id)] == [
        DAY0, DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)]
    (record,) = store.read_actions()  # one breached window, one alert record
    assert (record.status, record.window_start) == ("succeeded", DAY0 + timedelta(days=2))
    assert len(webhook) == alerts
