"""One session-scoped local Spark with Delta (UI off, 2 shuffle partitions, UTC).

``SPARKDRIFT_TEST_RUNTIME`` chooses the kind of session: ``classic`` (default)
or ``connect``, a Spark Connect session to a local Connect server started in
this process (``remote("local[2]")``) with Delta's jars and SQL extension, as
Databricks serverless and standard access mode give a job. Tests that need
classic-only internals (the status tracker, the JVM plan) are marked
``classic_only`` and skipped under Connect.
"""
from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

# Read once and removed, so commands the tests start (retrain triggers) see only their own variables.
RUNTIME = os.environ.pop("SPARKDRIFT_TEST_RUNTIME", None) or "classic"
NESTED = bool(os.environ.pop("SPARKDRIFT_NESTED_RUN", None))  # a run started by tests/test_runtimes.py
if RUNTIME not in ("classic", "connect"):
    raise pytest.UsageError(f"SPARKDRIFT_TEST_RUNTIME={RUNTIME!r}: expected classic or connect")


def pytest_report_header(config):
    import pyspark

    return f"sparkdrift test runtime: {RUNTIME} (pyspark {pyspark.__version__})"


def pytest_collection_modifyitems(config, items):
    if RUNTIME != "connect":
        return
    skip = pytest.mark.skip(reason="classic Spark internals; not on a Spark Connect session")
    for item in items:
        if "classic_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from sparkdrift.spark.session import get_session

    warehouse = tmp_path_factory.mktemp("warehouse")
    session = get_session(
        "sparkdrift-tests", master="local[2]", warehouse_dir=str(warehouse), shuffle_partitions=2,
        remote="local[2]" if RUNTIME == "connect" else None,
    )
    yield session
    session.stop()


@pytest.fixture
def tracking_uri(tmp_path):
    """A real MLflow store: SQLite in the test's own folder."""
    return f"sqlite:///{tmp_path}/mlflow.db"
