"""The one place that creates a SparkSession (only the CLI/job layer calls it).

On a cluster or Databricks the active session is returned as it is, classic
or Spark Connect (``SPARK_REMOTE`` set: a Connect session to that server).
Locally we build a small session with Delta's extensions and catalog, UTC
time and few shuffle partitions. Delta's jars are resolved from Maven Central
once (``spark.jars.packages``, as delta-spark's ``configure_spark_with_delta_pip``
does); the resolved jar paths are kept in ``~/.cache/sparkdrift`` and later
starts pass them as ``spark.jars``: no resolver run, no resolver output.
The executors run the driver's own interpreter unless the user chose one.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("sparkdrift.spark.session")

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def is_connect(spark: "SparkSession") -> bool:
    """Whether ``spark`` is a Spark Connect session (Databricks serverless, standard access mode, remote())."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _cache_dir() -> Path:
    base = os.environ.get("SPARKDRIFT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sparkdrift"
    )
    return Path(base)


def delta_package() -> str:
    """The Maven coordinate of the Delta jar matching the installed pyspark and delta-spark."""
    from importlib.metadata import version

    import pyspark

    delta = version("delta-spark")
    major_minor = ".".join(pyspark.__version__.split(".")[:2])
    if int(delta.split(".")[0]) < 4:
        return f"io.delta:delta-spark_2.12:{delta}"
    if tuple(int(x) for x in delta.split(".")[:2]) < (4, 1):
        return f"io.delta:delta-spark_2.13:{delta}"
    return f"io.delta:delta-spark_{major_minor}_2.13:{delta}"  # 4.1+: one artifact per Spark minor


def _jar_cache(package: str) -> Path:
    import pyspark

    key = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{package}-spark{pyspark.__version__}")
    return _cache_dir() / "jars" / f"{key}.json"


def cached_delta_jars() -> list[str] | None:
    """The Delta jars resolved by an earlier start (None if never, or if a file has gone)."""
    try:
        jars = json.loads(_jar_cache(delta_package()).read_text())
    except (OSError, ValueError):
        return None
    if not jars or not all(os.path.isfile(j) for j in jars):
        return None
    return jars


def _remember_delta_jars(jars_conf: str) -> None:
    """Keep the jar paths the resolver produced (``spark.jars`` of a session started with packages)."""
    from urllib.parse import unquote, urlparse

    jars = [unquote(urlparse(j).path) if j.startswith("file:") else j for j in jars_conf.split(",") if j]
    if not jars or not all(os.path.isfile(j) for j in jars):
        return
    target = _jar_cache(delta_package())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(jars))
        tmp.replace(target)
    except OSError as exc:  # a read-only home: resolve again next time, that is all
        log.debug("cannot cache the Delta jar paths: %s", exc)


def local_conf(*, shuffle_partitions: int = 4, ui: bool = False, warehouse_dir: str | None = None) -> dict[str, str]:
    """The confs of a local Delta-enabled session (classic, or the server of a local Spark Connect session)."""
    java_opts = "-Duser.timezone=UTC" + (f" -Dderby.system.home={warehouse_dir}" if warehouse_dir else "")
    conf = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.default.parallelism": str(max(2, shuffle_partitions)),
        "spark.ui.enabled": str(ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
        "spark.driver.extraJavaOptions": java_opts,
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    }
    if warehouse_dir:
        conf["spark.sql.warehouse.dir"] = warehouse_dir
    jars = cached_delta_jars()
    if jars:
        conf["spark.jars"] = ",".join(jars)
    else:
        conf["spark.jars.packages"] = delta_package()
    # Executors run the driver's interpreter (a venv's console script works without activating it),
    # unless the user chose one (PYSPARK_PYTHON).
    if not os.environ.get("PYSPARK_PYTHON"):
        conf["spark.pyspark.python"] = sys.executable
    return conf


def _executors_run_this_python(conf: dict[str, str]) -> None:
    """PySpark picks the workers' interpreter from ``PYSPARK_PYTHON`` when it starts the JVM
    (default: ``python3`` from PATH); the conf alone reaches only spark-submit's launcher."""
    python = conf.get("spark.pyspark.python")
    if python and not os.environ.get("PYSPARK_PYTHON"):
        os.environ["PYSPARK_PYTHON"] = python


def _utc_process() -> None:
    # PySpark converts TIMESTAMPs with the Python process's zone: keep it UTC like the session.
    os.environ["TZ"] = "UTC"
    time.tzset()


def _connect_session(remote: str, **local) -> "SparkSession":
    import warnings

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.remote(remote)
    if remote.startswith("local"):
        _require_free_connect_port()
        conf = local_conf(**local)
        _executors_run_this_python(conf)
        for key, value in conf.items():
            builder = builder.config(key, value)
    with warnings.catch_warnings():  # the server's static confs are refused again as session confs: harmless
        warnings.simplefilter("ignore", UserWarning)
        spark = builder.getOrCreate()
    if remote.startswith("local"):
        _remember_local_connect_jars()
    return spark


def _require_free_connect_port(port: int = 15002) -> None:
    """A local Connect server listens on localhost:15002 and its client connects there: say so if it is taken."""
    import socket

    from sparkdrift.errors import SparkDriftError

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closing server's TIME_WAIT is no conflict
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            raise SparkDriftError(
                f"SPARK_REMOTE=local...: port {port} is taken (another local Spark Connect server?); stop it, "
                f"or use it with SPARK_REMOTE=sc://localhost:{port}"
            ) from None


def _remember_local_connect_jars() -> None:
    """A local Connect server runs in this process's JVM: keep the jars it resolved, as for classic."""
    try:
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        if sc is not None and cached_delta_jars() is None:
            _remember_delta_jars(sc.getConf().get("spark.jars", ""))
    except Exception as exc:  # noqa: BLE001 - only a speed-up
        log.debug("cannot cache the Delta jar paths: %s", exc)


def get_session(
    app_name: str = "sparkdrift",
    *,
    master: str | None = None,
    warehouse_dir: str | None = None,
    shuffle_partitions: int = 4,
    ui: bool = False,
    remote: str | None = None,
) -> "SparkSession":
    """Return the active session, or build a local Delta-enabled one.

    ``remote`` (default: ``SPARK_REMOTE``) makes it a Spark Connect session:
    ``sc://host:port`` for a server that is already up (it brings Delta), or
    ``local[N]`` for a local Connect server started here with Delta's jars and
    extension, which is how the suite runs the jobs under Connect.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    _utc_process()
    remote = remote or (None if master else os.environ.get("SPARK_REMOTE"))
    if remote:
        return _connect_session(remote, shuffle_partitions=shuffle_partitions, ui=ui, warehouse_dir=warehouse_dir)
    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit the launcher's --master is already in the JVM's conf: keep it.
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    chosen = master or os.environ.get("SPARKDRIFT_MASTER") or (None if under_submit else "local[*]")
    if chosen:
        builder = builder.master(chosen)
    conf = local_conf(shuffle_partitions=shuffle_partitions, ui=ui, warehouse_dir=warehouse_dir)
    if under_submit:  # spark-submit's own --packages/--jars and python choice stand
        for key in ("spark.jars", "spark.jars.packages", "spark.pyspark.python"):
            conf.pop(key, None)
        conf["spark.jars.packages"] = delta_package()
    _executors_run_this_python(conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if "spark.jars.packages" in conf and not under_submit:
        _remember_delta_jars(spark.sparkContext.getConf().get("spark.jars", ""))
    return spark


_NO_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '?([A-Za-z0-9_.]+)'?")


def executor_import_error(exc: BaseException) -> str | None:
    """One line for an import error inside a Spark Python worker (None for any other error).

    Spark reports it as a long remote traceback; what the user needs is which
    interpreter lacks which module and how to fix it.
    """
    seen = 0
    while exc is not None and seen < 5:
        if any(c.__name__ in ("PythonException", "Py4JJavaError", "SparkConnectGrpcException")
               for c in type(exc).__mro__):
            found = _NO_MODULE.search(str(exc))
            if found:
                module = found.group(1).split(".")[0]
                python = os.environ.get("PYSPARK_PYTHON") or "python3 on the executors' PATH"
                return (
                    f"the Spark executors' Python ({python}) cannot import {module!r}: install it there "
                    f"(pip install {module}; sparkdrift's executors need numpy and pyarrow), or point "
                    "PYSPARK_PYTHON / spark.pyspark.python at an interpreter that has it (on a cluster: "
                    "add it to the cluster libraries or the job environment)"
                )
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None

