"""One session-scoped local Spark with Delta (UI off, 2 shuffle partitions, UTC)."""
from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from sparkdrift.session import get_session

    warehouse = tmp_path_factory.mktemp("warehouse")
    session = get_session(
        "sparkdrift-tests", master="local[2]", warehouse_dir=str(warehouse), shuffle_partitions=2
    )
    yield session
    session.stop()


@pytest.fixture
def tracking_uri(tmp_path):
    """A real MLflow store: SQLite in the test's own folder."""
    return f"sqlite:///{tmp_path}/mlflow.db"
