"""Model performance in Spark: the label x prediction key every pass counts, and the delayed-labels pass.

The same expressions serve the baseline scan, the production pass and the
labels pass, so the baseline's performance is comparable with every window's.
The metrics themselves are computed from the counts in `core.performance`.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sparkdrift.core.config import MonitorConfig
from sparkdrift.core.performance import SCORE_BINS, SLOT, slot_size
from sparkdrift.core.windows import WindowHistograms
from sparkdrift.spark.histograms import SlotColumns, count_windows, time_range_filter
from sparkdrift.spark.selection import qcol
from sparkdrift.store.tables import read_table, require_columns

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


def _double(c: "Column") -> "Column":
    """The column as a double, null where it does not convert (ANSI mode or not; Spark 3.5's Column has no try_cast)."""
    # hasattr on the class: a Spark 3.5 Column answers any attribute (as a struct field)
    return c.try_cast("double") if hasattr(type(c), "try_cast") else c.cast("double")


def key_and_value(kind: str, prediction: "Column", label: "Column", positive: str | None) -> tuple["Column", "Column"]:
    """Spark expressions for the performance slot's key (-1 when label or prediction is null) and value."""
    from pyspark.sql import functions as F

    missing = prediction.isNull() | label.isNull()
    if kind == "score":
        score = _double(prediction)
        bin_ = F.least(F.greatest(F.floor(score * SCORE_BINS), F.lit(0)), F.lit(SCORE_BINS - 1))
        is_pos = (label.cast("string") == F.lit(positive or "1")) | (label.cast("string") == F.lit("1.0"))
        key = F.when(missing | F.isnan(score), F.lit(-1)).otherwise(
            F.when(is_pos, F.lit(SCORE_BINS)).otherwise(F.lit(0)) + bin_.cast("int")
        )
        return key.cast("int"), F.lit(None).cast("double")
    if kind == "class":
        pos = F.lit(positive or "1")
        key = F.when(missing, F.lit(-1)).otherwise(
            F.when(label.cast("string") == pos, F.lit(2)).otherwise(F.lit(0))
            + F.when(prediction.cast("string") == pos, F.lit(1)).otherwise(F.lit(0))
        )
        return key.cast("int"), F.lit(None).cast("double")
    err = F.abs(_double(prediction) - _double(label))
    return F.when(missing, F.lit(-1)).otherwise(F.lit(0)).cast("int"), err


def performance_key(cfg: MonitorConfig, columns: list[str]) -> tuple["Column", "Column"] | None:
    """Key and value of the performance slot when ``columns`` hold both the label and the prediction."""
    label = cfg.label.column
    if not label or not cfg.prediction.columns:
        return None
    pred = cfg.prediction.columns[0]
    if label not in columns or pred not in columns:
        return None
    return key_and_value(cfg.prediction.kind, qcol(pred), qcol(label), cfg.label.positive)


def performance_slots(cfg: MonitorConfig, columns: list[str]) -> list[SlotColumns]:
    """The performance slot when labels sit in the production table itself (same pass, no extra scan)."""
    key = None if cfg.label.table else performance_key(cfg, columns)
    return [] if key is None else [SlotColumns(SLOT, *key, slot_size(cfg.prediction.kind))]


def label_horizon(cfg: MonitorConfig, end: datetime) -> datetime:
    """Start of the oldest window whose labels may still arrive (``label.max_delay`` before ``end``)."""
    return cfg.production.granularity.windows.start(end - cfg.label.max_delay.delta)


def labels_pass(spark: "SparkSession", cfg: MonitorConfig, production: "DataFrame", since: datetime | None,
                end: datetime) -> list[WindowHistograms]:
    """Performance of the windows in [since, end) from a separate, delayed labels table (None: from the start).

    Labels arrive days after predictions, so every window since `label_horizon`
    is recomputed whole from (production x labels) and replaces its stored
    performance histogram: a window's performance improves in coverage as its
    labels arrive. This is the one extra read of production rows, limited to
    that range and to id, time and prediction.
    """
    from pyspark.sql import functions as F

    lab = read_table(spark, cfg.label.table)
    require_columns(lab, [cfg.label.id_column, cfg.label.column])
    ts, pred, key_col = cfg.production.timestamp_column, cfg.prediction.columns[0], cfg.label.id_column
    preds = production.filter(time_range_filter(ts, since, end)).select(
        qcol(key_col).alias("_id"), qcol(ts).alias("_ts"), qcol(pred).alias("_pred")
    )
    labels = lab.df.select(qcol(key_col).alias("_id"), qcol(cfg.label.column).alias("_label")).dropDuplicates(["_id"])
    joined = preds.join(labels, "_id", "inner")
    key, value = key_and_value(cfg.prediction.kind, F.col("_pred"), F.col("_label"), cfg.label.positive)
    slot = SlotColumns(SLOT, key, value, slot_size(cfg.prediction.kind))
    return count_windows(joined, [], "_ts", cfg.production.granularity.windows, [slot]).windows


