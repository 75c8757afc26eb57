"""The jobs on every runtime users have: Spark Connect, Spark 3.5 + Delta 3.3, and a venv's console script.

Nothing is mocked: the Connect runs use a real local Spark Connect server
(``remote("local[2]")``, Delta's jars and SQL extension), the Spark 3.5 run a
real venv with pyspark 3.5 and delta-spark 3.3 (created once, cached under
``~/.cache/sparkdrift-ci``), and the console-script runs a real bare
interpreter first on PATH.

The suite itself runs on the default runtime (Spark 4, classic); the
end-to-end modules (marker ``e2e``) run again here, in subprocesses, under
Connect and under Spark 3.5. These tests skip themselves inside those runs.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import NESTED as IN_NESTED_RUN
from conftest import RUNTIME

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NESTED = "SPARKDRIFT_NESTED_RUN"
CI_CACHE = Path(os.environ.get("SPARKDRIFT_CI_CACHE", Path.home() / ".cache" / "sparkdrift-ci"))
SPARK35 = ["pyspark>=3.5.3,<3.6", "delta-spark>=3.3,<3.4"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(RUNTIME != "classic" or IN_NESTED_RUN,
                       reason="runs from the default (classic) suite only"),
]


def _env(**extra: str) -> dict[str, str]:
    """This environment without the choices of the test process (interpreter, runtime, remote)."""
    drop = {"PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_REMOTE", "SPARKDRIFT_TEST_RUNTIME",
            "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_CONNECT_MODE_ENABLED", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])


def _pytest_e2e(python: str | Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    started = time.perf_counter()
    run = subprocess.run(
        [str(python), "-m", "pytest", "-m", "e2e", "-p", "no:cacheprovider", "--basetemp",
         str(tmp_path / "e2e"), str(ROOT / "tests")],
        cwd=ROOT, env=_env(**{NESTED: "1"}, **env), capture_output=True, text=True, timeout=3000,
    )
    print(_tail(run.stdout, 15))
    print(f"e2e run took {time.perf_counter() - started:.0f}s")
    return run


def _passed(run: subprocess.CompletedProcess) -> None:
    summary = _tail(run.stdout, 3)
    assert run.returncode == 0, f"{_tail(run.stdout)}\n{_tail(run.stderr, 20)}"
    assert " passed" in summary and " failed" not in summary, summary


# ----------------------------------------------------------------------------- Spark Connect


def test_e2e_suite_under_spark_connect(tmp_path):
    """baseline, detect with MERGE reruns, delayed labels, actions, the demo: on a Spark Connect session."""
    run = _pytest_e2e(sys.executable, tmp_path, SPARKDRIFT_TEST_RUNTIME="connect")
    _passed(run)
    assert "sparkdrift test runtime: connect" in run.stdout


_IGNORED = {"baseline_id", "mlflow_run_id", "computed_at"}  # differ by run, not by runtime


def _metric_rows(spark, table: str) -> dict[tuple, dict]:
    rows = spark.read.format("delta").load(table).collect()
    key = ("monitor", "window_start", "feature", "signal", "kind", "statistic", "reference")
    out = {}
    for r in rows:
        d = r.asDict()
        out[tuple(d[k] for k in key)] = {k: v for k, v in d.items() if k not in _IGNORED}
    assert len(out) == len(rows), "duplicate metric keys"
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-12
    return a == b


def _assert_same_metrics(spark, expected_table: str, actual_table: str) -> int:
    expected, actual = _metric_rows(spark, expected_table), _metric_rows(spark, actual_table)
    assert expected.keys() == actual.keys()
    for key, row in expected.items():
        bad = {c: (v, actual[key][c]) for c, v in row.items() if not _same(v, actual[key][c])}
        assert not bad, f"{key}: {bad}"
    return len(expected)


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    run = subprocess.run([str(BIN / "sparkdrift"), *args], cwd=cwd, env=_env(**env), capture_output=True,
                         text=True, timeout=1500)
    assert run.returncode == 0, f"sparkdrift {' '.join(args)}: rc {run.returncode}\n{_tail(run.stderr)}"
    return run


def test_connect_demo_baseline_and_detect_match_classic(spark, tmp_path_factory):
    """`sparkdrift demo`, `baseline` and `detect` on Spark Connect write the classic run's drift_metrics rows."""
    from test_demo import shared_demo

    from sparkdrift.demo import AS_OF, demo_config_path

    classic = shared_demo(spark, tmp_path_factory)  # in-process, on this suite's classic session
    assert classic["rc"] == 0
    classic_metrics = classic["cfg"].output_table("metrics")

    folder = tmp_path_factory.mktemp("connect-demo")
    run = _cli("demo", "--folder", str(folder), cwd=folder, SPARK_REMOTE="local[2]")
    assert "demo finished" in run.stdout
    from sparkdrift.demo import demo_config

    demo_metrics = demo_config(folder).output_table("metrics")
    n = _assert_same_metrics(spark, classic_metrics, demo_metrics)
    assert n > 100

    # The two jobs by hand, as a scheduler runs them, on the data the Connect demo wrote.
    data = yaml.safe_load(demo_config_path(folder).read_text())
    data["output"] = {"location": str(folder / "cli-tables")}
    data["mlflow"]["tracking_uri"] = f"sqlite:///{folder}/cli-mlflow.db"
    data["actions"]["dry_run"] = True
    cfg_file = folder / "cli.yaml"
    cfg_file.write_text(yaml.safe_dump(data, sort_keys=False))
    _cli("baseline", "--config", str(cfg_file), cwd=folder, SPARK_REMOTE="local[2]")
    run = _cli("detect", "--config", str(cfg_file), "--as-of", AS_OF.replace(tzinfo=None).isoformat(), cwd=folder,
               SPARK_REMOTE="local[2]")
    assert "scan size unknown" not in run.stdout  # Connect returns the scan's plan metrics
    assert "task time unknown" in run.stdout  # no status store under Connect: unknown, not 0
    assert _assert_same_metrics(spark, classic_metrics, str(folder / "cli-tables" / "drift_metrics")) == n


# ----------------------------------------------------------------------------- Spark 3.5 + Delta 3.3


def _spark35_venv() -> Path:
    """A venv with pyspark 3.5 + delta-spark 3.3 and this project's other dependencies (made once, cached)."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    key = hashlib.sha256(pyproject + json.dumps(SPARK35).encode() + sys.version.encode()).hexdigest()[:12]
    venv = CI_CACHE / f"spark35-{key}"
    python = venv / "bin" / "python"
    if not (venv / "ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *SPARK35, "-e", f"{ROOT}[test]"],
                       check=True, timeout=1800)
        (venv / "ready").write_text("ok\n")
    else:  # this checkout, not the one the venv was made from
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True,
                       timeout=600)
    return python


def test_e2e_suite_on_spark_35_with_delta_33(tmp_path):
    python = _spark35_venv()
    version = subprocess.run([str(python), "-c", "import pyspark, delta; print(pyspark.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("3.5."), version
    run = _pytest_e2e(python, tmp_path)
    _passed(run)
    assert f"pyspark {version}" in run.stdout


# ----------------------------------------------------------------------------- a venv's console script


def _bare_python(tmp_path: Path) -> Path:
    """A real interpreter without numpy or pyarrow: what `python3` on a scheduler's PATH often is."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    check = subprocess.run([str(bare / "bin" / "python"), "-c", "import numpy"], capture_output=True)
    assert check.returncode != 0
    return bare / "bin"


def _small_monitor(spark, folder: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(5)
    rows = [(float(x), str(c)) for x, c in zip(rng.normal(0, 1, 400), rng.choice(list("abc"), 400))]
    spark.createDataFrame(rows, "x double, c string").write.format("delta").save(str(folder / "train"))
    cfg = {
        "monitor": "script",
        "baseline": {"table": str(folder / "train")},
        "production": {"table": str(folder / "log"), "timestamp_column": "ts", "granularity": "day"},
        "features": {"numeric": ["x"], "categorical": ["c"]},
        "output": {"location": str(folder / "tables")},
        "mlflow": {"tracking_uri": f"sqlite:///{folder}/mlflow.db", "experiment": "script"},
    }
    path = folder / "monitor.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_console_script_runs_without_activating_its_venv(spark, tmp_path):
    """`/path/to/venv/bin/sparkdrift baseline ...` from cron: the executors run the venv's Python, not PATH's."""
    config = _small_monitor(spark, tmp_path)
    bare = _bare_python(tmp_path)
    path = f"{bare}:/usr/local/bin:/usr/bin:/bin"
    run = subprocess.run([str(BIN / "sparkdrift"), "baseline", "--config", str(config)], cwd=tmp_path,
                         env=_env(PATH=path), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, _tail(run.stderr)
    assert "400 rows" in run.stdout or "400" in run.stdout

    # The executors told to use an interpreter without numpy: one line saying what to install where.
    again = subprocess.run([str(BIN / "sparkdrift"), "baseline", "--force", "--config", str(config)],
                           cwd=tmp_path, env=_env(PATH=path, PYSPARK_PYTHON=str(bare / "python")),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 2
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith("sparkdrift: error: the Spark executors' Python"), _tail(again.stderr)
    assert f"({bare / 'python'}) cannot import '" in last and "install it there" in last
    # (Spark's own executor log still prints the worker's traceback above, at ERROR level, from the JVM)
