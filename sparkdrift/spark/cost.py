"""What a run cost: rows and bytes read, Spark task time, and wall time per stage.

On classic Spark, jobs started inside ``CostMeter`` run under one job group,
so their stage metrics (input records/bytes, executor run time) can be summed
from the status store afterwards: monitoring spend becomes a metric like any
other. A Spark Connect session (Databricks serverless, standard access mode)
has no status store: those metrics are then recorded as unknown (None, no
MLflow metric, "—" in the report), never as a made-up 0. Wall times are
measured everywhere.
"""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from sparkdrift.spark.session import is_connect

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("sparkdrift.spark.cost")

#: The Spark metrics a meter reports; None where the runtime cannot tell.
SPARK_METRICS = ("rows_read", "bytes_read", "task_time_s", "cpu_time_s")


class CostMeter:
    """Collects wall time per named stage and the Spark metrics of every job run meanwhile."""

    def __init__(self, spark: "SparkSession", label: str):
        self.spark = spark
        self.group = f"sparkdrift-{label}-{uuid.uuid4().hex[:8]}"
        self.stages: dict[str, float] = {}
        self._start = time.perf_counter()
        self._classic = not is_connect(spark)
        if self._classic:
            spark.sparkContext.setJobGroup(self.group, f"sparkdrift {label}", interruptOnCancel=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one step of the job; also says on the console what is happening."""
        log.info("%s ...", name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - t0

    def spark_metrics(self) -> dict[str, float | None]:
        """Input rows/bytes and task time summed over this meter's Spark jobs (None: unknown here)."""
        unknown: dict[str, float | None] = dict.fromkeys(SPARK_METRICS)
        if not self._classic:
            return unknown
        rows = bytes_ = run_ms = cpu_ns = 0
        try:
            sc = self.spark.sparkContext
            tracker = sc.statusTracker()
            store = sc._jsc.sc().statusStore()
            for job_id in tracker.getJobIdsForGroup(self.group):
                info = tracker.getJobInfo(job_id)
                for stage_id in info.stageIds if info else ():
                    try:
                        data = store.stageAttempt(stage_id, 0, False, None, False, None)._1()
                    except Exception:  # skipped stages have no attempt data
                        continue
                    rows += data.inputRecords()
                    bytes_ += data.inputBytes()
                    run_ms += data.executorRunTime()
                    cpu_ns += data.executorCpuTime()
        except Exception as exc:  # status store internals differ on some runtimes
            log.debug("spark metrics unavailable: %s", exc)
            return unknown
        return {
            "rows_read": float(rows),
            "bytes_read": float(bytes_),
            "task_time_s": run_ms / 1000.0,
            "cpu_time_s": cpu_ns / 1e9,
        }

    def summary(self) -> dict[str, float | None]:
        out = self.spark_metrics()
        out["wall_time_s"] = time.perf_counter() - self._start
        for name, seconds in self.stages.items():
            out[f"stage.{name}_s"] = seconds
        return out

    def close(self) -> None:
        if self._classic:
            self.spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)


@dataclass(frozen=True)
class ScanMetrics:
    """What the production scan really read (from the executed plan): proof of pruning, and cost.

    None where the runtime does not say (the plan's metrics were not available).
    """

    rows: int | None = None
    files: int | None = None
    bytes: int | None = None
    scans: int | None = None  # file-scan nodes in the executed plan: 1 = one pass over the table

    def as_cost(self) -> dict[str, float | None]:
        """The ``scan_*`` cost entries (None: unknown)."""
        def f(v):
            return None if v is None else float(v)
        return {"scan_rows": f(self.rows), "scan_files": f(self.files), "scan_bytes": f(self.bytes)}


def scan_metrics(df: "DataFrame") -> ScanMetrics:
    """Sum the file-scan node metrics of an executed DataFrame.

    Classic Spark: the executed plan (descending through AQE stages). Spark
    Connect: the plan metrics the server returned with the last result
    (``executionInfo``, Spark 4). Unknown (all None) when neither is there.
    """

    if is_connect(df.sparkSession):
        return _connect_scan_metrics(df)
    rows = files = size = scans = 0
    stack = [df._jdf.queryExecution().executedPlan()]
    while stack:
        node = stack.pop()
        name = node.getClass().getSimpleName()
        if name == "AdaptiveSparkPlanExec":
            stack.append(node.executedPlan())
            continue
        if name.endswith("QueryStageExec"):
            stack.append(node.plan())
            continue
        if name == "FileSourceScanExec":
            metrics = node.metrics()
            def value(key: str) -> int:
                m = metrics.get(key)
                return int(m.get().value()) if m.isDefined() else 0
            scans += 1
            rows += value("numOutputRows")
            files += value("numFiles")
            size += value("filesSize")
        children = node.children()
        stack.extend(children.apply(i) for i in range(children.size()))
    return ScanMetrics(rows, files, size, scans)


def _connect_scan_metrics(df: "DataFrame") -> ScanMetrics:
    info = getattr(df, "executionInfo", None)
    collected = info.metrics if info is not None else None
    nodes = getattr(collected, "_metrics", None)
    if not nodes:
        return ScanMetrics()
    rows = files = size = scans = 0
    for node in nodes:
        if not node.name.startswith("Scan "):  # FileSourceScanExec: "Scan parquet", ...
            continue
        values = {m.name: m.value for m in node.metrics}
        scans += 1
        rows += int(values.get("numOutputRows", 0))
        files += int(values.get("numFiles", 0))
        size += int(values.get("filesSize", 0))
    return ScanMetrics(rows, files, size, scans)
