"""The one place that creates a SparkSession (only the CLI/job layer calls it).

On a cluster or Databricks the active session is returned as it is. Locally we
build a small session with Delta's extensions and catalog, its jars resolved
from Maven Central via ``spark.jars.packages`` (delta-spark's
``configure_spark_with_delta_pip``), UTC time and few shuffle partitions.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def get_session(
    app_name: str = "sparkdrift",
    *,
    master: str | None = None,
    warehouse_dir: str | None = None,
    shuffle_partitions: int = 4,
    ui: bool = False,
) -> "SparkSession":
    """Return the active session, or build a local Delta-enabled one."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    from delta import configure_spark_with_delta_pip

    # PySpark converts TIMESTAMPs with the Python process's zone: keep it UTC like the session.
    os.environ["TZ"] = "UTC"
    time.tzset()

    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit the launcher's --master is already in the JVM's conf: keep it.
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    chosen = master or os.environ.get("SPARKDRIFT_MASTER") or (None if under_submit else "local[*]")
    if chosen:
        builder = builder.master(chosen)
    builder = (
        builder
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, shuffle_partitions)))
        .config("spark.ui.enabled", str(ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism", "2")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    )
    if warehouse_dir:
        builder = builder.config("spark.sql.warehouse.dir", warehouse_dir).config(
            "spark.driver.extraJavaOptions",
            f"-Duser.timezone=UTC -Dderby.system.home={warehouse_dir}",
        )
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
