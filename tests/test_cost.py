"""What a run cost: measured on classic Spark, unknown (None, never 0) on Spark Connect."""
from __future__ import annotations

import pytest

from sparkdrift.spark.cost import SPARK_METRICS, CostMeter
from sparkdrift.spark.session import is_connect

pytestmark = [pytest.mark.spark, pytest.mark.e2e]


def test_meter_measures_on_classic_and_says_unknown_on_connect(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.range(5000).selectExpr("id", "id * 2 AS v").write.format("delta").save(path)
    meter = CostMeter(spark, "test")
    try:
        with meter.stage("read"):
            total = spark.read.format("delta").load(path).groupBy().sum("v").collect()[0][0]
    finally:
        meter.close()
    assert total == 2 * 4999 * 5000 // 2
    cost = meter.summary()
    assert cost["wall_time_s"] >= cost["stage.read_s"] > 0
    if is_connect(spark):
        assert all(cost[k] is None for k in SPARK_METRICS)
    else:
        assert 5000 <= cost["rows_read"] < 5100  # the table's 5000 rows, plus the few rows of its Delta log
        assert cost["bytes_read"] > 0 and cost["task_time_s"] > 0
