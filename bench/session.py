"""The benchmark's SparkSession: `sparkdrift.spark.session.get_session`'s local Delta config plus memory settings.

Built here rather than through ``get_session`` because the driver memory must
be set before the JVM starts, and the benchmark wants a fresh JVM per process
(its peak RSS is one of the measurements). Also: process-memory readers.
"""
from __future__ import annotations

import os
import resource
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def bench_session(
    app_name: str = "sparkdrift-bench",
    *,
    master: str = "local[*]",
    driver_memory: str = "8g",
    shuffle_partitions: int = 4,
    warehouse_dir: str | None = None,
    java_options: str = "",
    conf: dict[str, str] | None = None,
) -> "SparkSession":
    """A new local Spark with Delta (same settings as get_session) and ``spark.driver.memory``."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    if SparkSession.getActiveSession() is not None:
        raise RuntimeError("bench_session must start the JVM itself (driver memory is fixed at JVM start)")
    os.environ["TZ"] = "UTC"
    time.tzset()
    java_opts = f"-Duser.timezone=UTC {java_options}".strip()
    if warehouse_dir:
        java_opts += f" -Dderby.system.home={warehouse_dir}"
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, shuffle_partitions)))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism", "2")
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        # the benchmark's additions: memory for the local driver (= the executors in local mode)
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.maxResultSize", "4g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if warehouse_dir:
        builder = builder.config("spark.sql.warehouse.dir", warehouse_dir)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --------------------------------------------------------------------------- memory


def jvm_pid(spark: "SparkSession") -> int:
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def _status_kib(pid: int | str, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mib(pid: int | str = "self") -> float | None:
    """VmHWM (peak resident set) of a process, in MiB."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib / 1024.0


def rss_mib(pid: int | str = "self") -> float | None:
    kib = _status_kib(pid, "VmRSS")
    return None if kib is None else kib / 1024.0


def reset_peak(pid: int | str = "self") -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: ``echo 5 > /proc/<pid>/clear_refs``).

    Returns False where that is not allowed; peaks are then cumulative.
    """
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def python_maxrss_mib() -> float:
    """ru_maxrss of this Python process (never reset), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
