"""Deployment: the spark-submit entry points and the Databricks asset bundle.

The bundle checks are static (no workspace): every file parses, every wheel
task calls an entry point the wheel declares with a CLI command and flags the
parser accepts, every `${var.x}` is declared, task references resolve, and the
monitor config the jobs read validates. The spark-submit test runs
jobs/build_baseline.py through pyspark's own spark-submit with Delta's
package, against a tiny Delta table, as the docs tell users to.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from sparkdrift.cli import build_parser
from sparkdrift.core.config import load_config
from sparkdrift.spark.session import delta_package

REPO = Path(__file__).resolve().parents[1]
VAR = re.compile(r"\$\{var\.([A-Za-z0-9_-]+)\}")
REF = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
TASK_VALUE = re.compile(r"\{\{\s*tasks\.([A-Za-z0-9_-]+)\.values\.([A-Za-z0-9_]+)\s*\}\}")
FAKE_WORKSPACE = {
    "workspace.file_path": str(REPO),  # bundle files are synced there: the repo as deployed
    "workspace.current_user.userName": "someone@example.com",
    "bundle.name": "sparkdrift",
    "bundle.target": "dev",
}


# --------------------------------------------------------------------------- bundle (static)


def _bundle() -> dict:
    return yaml.safe_load((REPO / "databricks.yml").read_text())


def _resource_files() -> list[Path]:
    files = []
    for pattern in _bundle().get("include", []):
        files += sorted(REPO.glob(pattern))
    return files


def _jobs() -> dict[str, tuple[Path, dict]]:
    jobs = {}
    for path in _resource_files():
        doc = yaml.safe_load(path.read_text())
        for name, job in doc["resources"]["jobs"].items():
            assert name not in jobs, f"job {name} defined twice"
            jobs[name] = (path, job)
    return jobs


def _variables() -> dict[str, str]:
    return {name: str(spec.get("default", "")) for name, spec in _bundle()["variables"].items()}


def _resolve(text: str, variables: dict[str, str], depth: int = 0) -> str:
    """${var.x} with the defaults, ${workspace.file_path} as the repo: what the jobs see when deployed."""
    assert depth < 5, f"variable cycle in {text!r}"

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name.startswith("var."):
            return _resolve(variables[name[4:]], variables, depth + 1)
        return FAKE_WORKSPACE[name]

    return REF.sub(one, text)


def _wheel_tasks() -> list[tuple[str, str, dict]]:
    return [
        (job_name, task["task_key"], task["python_wheel_task"])
        for job_name, (_, job) in _jobs().items()
        for task in job["tasks"]
        if "python_wheel_task" in task
    ]


def test_bundle_files_parse_and_include_both_jobs():
    bundle = _bundle()
    assert bundle["bundle"]["name"] == "sparkdrift"
    assert {p.name for p in _resource_files()} >= {"baseline_job.yml", "detect_job.yml"}
    assert set(_jobs()) == {"sparkdrift_baseline", "sparkdrift_detect"}
    assert bundle["targets"]["dev"]["mode"] == "development"
    assert bundle["targets"]["prod"]["mode"] == "production"
    assert {"catalog", "schema", "experiment_path", "monitor_config"} <= set(bundle["variables"])


def test_bundle_builds_the_wheel_that_the_tasks_install():
    artifact = _bundle()["artifacts"]["sparkdrift_wheel"]
    assert artifact["type"] == "whl"
    assert "wheel" in artifact["build"] and "dist" in artifact["build"]
    for job_name, (path, job) in _jobs().items():
        for task in job["tasks"]:
            if "python_wheel_task" in task or "notebook_task" in task:
                wheels = [lib["whl"] for lib in task.get("libraries", []) if "whl" in lib]
                assert wheels, f"{job_name}.{task['task_key']}: no wheel library"
                for whl in wheels:
                    assert (path.parent / whl).resolve().parent == (REPO / "dist").resolve()


def test_every_wheel_task_calls_a_declared_entry_point_and_cli_command():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    scripts = pyproject["project"]["scripts"]
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    variables = _variables()
    tasks = _wheel_tasks()
    assert {(j, t) for j, t, _ in tasks} == {("sparkdrift_baseline", "baseline"), ("sparkdrift_detect", "detect")}
    for job_name, task_key, wheel in tasks:
        where = f"{job_name}.{task_key}"
        assert wheel["package_name"] == pyproject["project"]["name"], where
        assert wheel["entry_point"] in scripts, f"{where}: entry point {wheel['entry_point']} not in [project.scripts]"
        argv = [_resolve(str(p), variables) for p in wheel["parameters"]]
        assert argv[0] in commands, f"{where}: no CLI command {argv[0]!r}"
        args = parser.parse_args(argv)  # SystemExit on an unknown flag
        assert args.command == task_key
        assert Path(args.config).exists(), f"{where}: config {args.config} does not exist"


def test_serverless_target_runs_the_wheel_from_a_job_environment():
    """Serverless jobs: the wheel is an environment dependency, tasks name the environment, no clusters."""
    target = _bundle()["targets"]["serverless"]
    jobs = target["resources"]["jobs"]
    parser = build_parser()
    variables = _variables()
    artifact_glob = "../dist/*.whl"  # what the classic tasks install as a cluster library
    classic = {name for name in _jobs()}
    assert {name for name in jobs if name in classic} == classic  # the cluster jobs: paused in this target
    for name in classic:
        assert jobs[name] == {"schedule": {"pause_status": "PAUSED"}}
    serverless = {name: job for name, job in jobs.items() if name not in classic}
    assert set(serverless) == {"sparkdrift_baseline_serverless", "sparkdrift_detect_serverless"}
    for name, job in serverless.items():
        envs = {e["environment_key"]: e["spec"] for e in job["environments"]}
        assert "job_clusters" not in job, name
        for task in job["tasks"]:
            assert not {"job_cluster_key", "new_cluster", "existing_cluster_id", "libraries"} & set(task), task
            if "python_wheel_task" in task:
                assert artifact_glob in envs[task["environment_key"]]["dependencies"], name
                argv = [_resolve(str(p), variables) for p in task["python_wheel_task"]["parameters"]]
                assert parser.parse_args(argv).command == task["task_key"]
    keys = [t["task_key"] for t in serverless["sparkdrift_detect_serverless"]["tasks"]]
    assert keys == [t["task_key"] for t in _jobs()["sparkdrift_detect"][1]["tasks"]]  # the same DAG as classic


def test_the_config_the_jobs_read_validates():
    variables = _variables()
    path = Path(_resolve(variables["monitor_config"], variables))
    cfg = load_config(path)
    assert cfg.production.granularity == "day"  # the detect schedule is daily


def test_every_variable_used_is_declared_and_has_a_value():
    declared = set(_bundle()["variables"])
    texts = {"databricks.yml": (REPO / "databricks.yml").read_text()}
    texts.update({p.name: p.read_text() for p in _resource_files()})
    for name, text in texts.items():
        used = set(VAR.findall(text))
        assert used <= declared, f"{name}: undeclared variables {sorted(used - declared)}"
    for target, spec in _bundle()["targets"].items():
        assert set(spec.get("variables", {})) <= declared, f"target {target} sets undeclared variables"
    for name, spec in _bundle()["variables"].items():
        assert "default" in spec or "lookup" in spec, f"variable {name} has no default"
        assert spec.get("description"), f"variable {name} has no description"
    variables = _variables()
    for name, text in texts.items():  # everything resolves (no unknown ${...})
        _resolve(text, variables)


def test_schedules_match_the_windows():
    jobs = _jobs()
    detect = jobs["sparkdrift_detect"][1]["schedule"]
    baseline = jobs["sparkdrift_baseline"][1]["schedule"]
    # quartz: sec min hour day-of-month month day-of-week
    d_fields = detect["quartz_cron_expression"].split()
    assert d_fields[3:] == ["*", "*", "?"], "detect runs every day (day windows)"
    assert int(d_fields[2]) >= 1, "after midnight + lateness 1h"
    assert baseline["quartz_cron_expression"].split()[5] in ("MON", "SUN", "1", "2")  # weekly
    for job in (detect, baseline):
        assert _resolve(job["timezone_id"], _variables()) == "UTC"
    assert all(job["max_concurrent_runs"] == 1 for _, job in jobs.values())


def test_detect_job_chains_retraining_on_a_published_severity():
    path, job = _jobs()["sparkdrift_detect"]
    tasks = {t["task_key"]: t for t in job["tasks"]}
    for task in tasks.values():
        for dep in task.get("depends_on", []):
            assert dep["task_key"] in tasks, f"{task['task_key']} depends on unknown {dep['task_key']}"
    condition = next(t for t in tasks.values() if "condition_task" in t)
    cond = condition["condition_task"]
    assert cond["op"] == "EQUAL_TO" and cond["right"] == "severe"
    (publisher, key), = TASK_VALUE.findall(cond["left"])
    assert key == "severity" and publisher in tasks
    assert publisher in {d["task_key"] for d in condition["depends_on"]}
    # the publisher is a notebook that sets that task value (wheel tasks cannot set task values)
    notebook = (path.parent / tasks[publisher]["notebook_task"]["notebook_path"]).resolve()
    assert notebook.exists()
    source = notebook.read_text()
    assert source.startswith("# Databricks notebook source") and "taskValues.set" in source and '"severity"' in source
    assert tasks[publisher]["notebook_task"]["base_parameters"]["publish"] == "true"
    assert "detect" in {d["task_key"] for d in tasks[publisher]["depends_on"]}
    retrain = next(t for t in tasks.values() if "run_job_task" in t)
    assert retrain["depends_on"] == [{"task_key": condition["task_key"], "outcome": "true"}]
    assert VAR.findall(str(retrain["run_job_task"]["job_id"])) == ["retrain_job_id"]


def test_job_entry_points_are_the_cli():
    for script, command in (("build_baseline.py", "baseline"), ("detect_drift.py", "detect")):
        proc = subprocess.run(
            [sys.executable, str(REPO / "jobs" / script), "--help"], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert f"usage: sparkdrift {command}" in proc.stdout
        assert "--config" in proc.stdout


@pytest.mark.slow
def test_wheel_build_declares_the_entry_point(tmp_path):
    """The bundle's artifact build command, run on a copy of the sources (no build/ in the checkout)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "sparkdrift", src / "sparkdrift", ignore=shutil.ignore_patterns("__pycache__"))
    argv = shlex.split(_bundle()["artifacts"]["sparkdrift_wheel"]["build"])
    assert argv[0] == "python"
    proc = subprocess.run([sys.executable, *argv[1:]], cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = (src / "dist").glob("sparkdrift-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        entry_points = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        assert "sparkdrift = sparkdrift.cli:main" in zf.read(entry_points).decode()
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert "Name: sparkdrift" in metadata
        pyspark_reqs = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: pyspark")]
        assert all("extra ==" in line for line in pyspark_reqs)  # the runtime brings Spark: the `local` extra
        assert {"sparkdrift/cli.py", "sparkdrift/demo.py"} <= set(zf.namelist())


# --------------------------------------------------------------------------- spark-submit


def _spark_submit() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


def spark_submit_command(script: str, *args: str) -> list[str]:
    """The documented local spark-submit command (docs/deployment.md)."""
    return [
        str(_spark_submit()),
        "--master", "local[2]",
        "--packages", delta_package(),  # io.delta:delta-spark_2.13:4.0.x on Spark 4, _2.12:3.3.x on Spark 3.5
        "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "--conf", "spark.sql.session.timeZone=UTC",
        "--conf", "spark.sql.shuffle.partitions=2",
        "--conf", "spark.ui.enabled=false",
        str(REPO / "jobs" / script), *args,
    ]


@pytest.mark.slow
@pytest.mark.spark
def test_spark_submit_builds_the_baseline(spark, tmp_path):
    table = tmp_path / "tables" / "train"
    start = datetime(2026, 1, 1)
    rows = [(i, float(i % 17) + 0.5, ("a", "b", "c")[i % 3], start + timedelta(hours=i)) for i in range(240)]
    spark.createDataFrame(rows, "id bigint, x double, c string, ts timestamp").write.format("delta").save(str(table))
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump({
        "monitor": "submit_test",
        "baseline": {"table": str(table)},
        "production": {"table": str(table), "timestamp_column": "ts"},
        "features": {"numeric": ["x"], "categorical": ["c"]},
        "id_column": "id",
        "binning": {"fine_bins": 20, "coarse_bins": 5},
        "output": {"location": str(tmp_path / "out")},
        "mlflow": {"enabled": False},
    }))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    proc = subprocess.run(
        spark_submit_command("build_baseline.py", "--config", str(config)),
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "baseline " in proc.stdout and "submit_test" in proc.stdout

    profiles = spark.read.format("delta").load(str(tmp_path / "out" / "drift_baselines")).collect()
    assert sorted(r["feature"] for r in profiles) == ["c", "x"]
    assert {r["monitor"] for r in profiles} == {"submit_test"}
    assert {r["row_count"] for r in profiles} == {240}
    assert {r["source_table"] for r in profiles} == {str(table)}
    assert len({r["baseline_id"] for r in profiles}) == 1
