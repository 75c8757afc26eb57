"""Column selection (declared / inferred / predictions) and the shared casts."""
from __future__ import annotations

import math

import pytest
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from sparkdrift.core.config import parse_config
from sparkdrift.errors import ConfigError, TableError
from sparkdrift.spark.selection import ColumnSpec, categorical_expr, numeric_expr, select_columns, supports

SCHEMA = StructType(
    [
        StructField("customer_id", LongType()),
        StructField("event_time", TimestampType()),
        StructField("age", IntegerType()),
        StructField("income", DecimalType(12, 2)),
        StructField("ratio", FloatType()),
        StructField("plan", StringType()),
        StructField("active", BooleanType()),
        StructField("tags", ArrayType(StringType())),
        StructField("attrs", MapType(StringType(), StringType())),
        StructField("noise", DoubleType()),
        StructField("churned", IntegerType()),
        StructField("score", DoubleType()),
        StructField("label_class", StringType()),
    ]
)


def _cfg(**over):
    data = {
        "monitor": "m",
        "baseline": {"table": "db.train"},
        "production": {"table": "db.infer", "timestamp_column": "event_time"},
        "features": {"numeric": ["age"], "categorical": ["plan"]},
    }
    data.update(over)
    return parse_config(data, "test.yaml")


def test_declared_features_keep_config_order_kinds_and_types():
    cfg = _cfg(features={"numeric": ["income", "age"], "categorical": ["plan", "active", "churned"]})
    specs = select_columns(SCHEMA, cfg, "db.train")
    assert specs == [
        ColumnSpec("income", "numeric", "feature"),
        ColumnSpec("age", "numeric", "feature"),
        ColumnSpec("plan", "categorical", "feature"),
        ColumnSpec("active", "categorical", "feature"),
        ColumnSpec("churned", "categorical", "feature"),  # an integer declared categorical is fine
    ]
    assert [s.dtype for s in specs] == ["decimal(12,2)", "int", "string", "boolean", "int"]


def test_a_boolean_declared_numeric_is_refused_with_the_fix():
    """Cast to 0/1 it would pass for a number; it is two categories."""
    cfg = _cfg(features={"numeric": ["age", "active"]})
    with pytest.raises(TableError, match=r"^table db.train: column 'active' has type boolean, which cannot be "
                                         r"profiled as numeric; list it under features.categorical$"):
        select_columns(SCHEMA, cfg, "db.train")


def test_inferred_features_skip_time_id_label_prediction_excluded_and_complex_columns():
    cfg = _cfg(
        features={"infer": True, "exclude": ["noise"]},
        id_column="customer_id",
        label={"column": "churned"},
        prediction={"columns": ["score"], "kind": "score"},
    )
    specs = select_columns(SCHEMA, cfg, "db.train")
    assert specs == [
        ColumnSpec("age", "numeric", "feature"),
        ColumnSpec("income", "numeric", "feature"),
        ColumnSpec("ratio", "numeric", "feature"),
        ColumnSpec("plan", "categorical", "feature"),
        ColumnSpec("active", "categorical", "feature"),
        ColumnSpec("label_class", "categorical", "feature"),
        ColumnSpec("score", "numeric", "prediction"),
    ]


def test_declared_and_inferred_combine_without_duplicates():
    cfg = _cfg(features={"infer": True, "categorical": ["age"], "exclude": ["noise", "churned", "label_class"]},
               id_column="customer_id")
    names = [(s.name, s.kind) for s in select_columns(SCHEMA, cfg, "db.train")]
    assert names == [("age", "categorical"), ("income", "numeric"), ("ratio", "numeric"),
                     ("plan", "categorical"), ("active", "categorical"), ("score", "numeric")]


@pytest.mark.parametrize(
    "kind, expected",
    [("score", "numeric"), ("regression", "numeric"), ("class", "categorical")],
)
def test_prediction_columns_take_their_kind_from_the_prediction_kind(kind, expected):
    column = "label_class" if kind == "class" else "score"
    cfg = _cfg(prediction={"columns": [column], "kind": kind})
    specs = select_columns(SCHEMA, cfg, "db.train")
    assert specs[-1] == ColumnSpec(column, expected, "prediction")
    assert [s.role for s in specs] == ["feature", "feature", "prediction"]


def test_missing_declared_column_names_column_and_table():
    cfg = _cfg(features={"numeric": ["age", "tenure"]})
    with pytest.raises(TableError, match=r"table db.train: missing feature column 'tenure' \(has: customer_id, "):
        select_columns(SCHEMA, cfg, "db.train")
    cfg = _cfg(features={"numeric": ["Age"]})
    with pytest.raises(TableError, match=r"missing feature column 'Age' \(did you mean 'age'\?\)"):
        select_columns(SCHEMA, cfg, "db.train")
    cfg = _cfg(prediction={"columns": ["proba"]})
    with pytest.raises(TableError, match="table db.train: missing prediction column 'proba'"):
        select_columns(SCHEMA, cfg, "db.train")


@pytest.mark.parametrize(
    "features, column, dtype",
    [
        ({"numeric": ["plan"]}, "plan", "string"),
        ({"numeric": ["tags"]}, "tags", "array<string>"),
        ({"categorical": ["attrs"]}, "attrs", "map<string,string>"),
        ({"numeric": ["event_time"]}, "event_time", "timestamp"),
    ],
)
def test_unsupported_type_names_column_type_and_table(features, column, dtype):
    cfg = _cfg(features=features)
    with pytest.raises(TableError) as err:
        select_columns(SCHEMA, cfg, "/data/train")
    msg = str(err.value)
    assert msg.startswith("table /data/train: ")
    assert f"column '{column}' has type {dtype}" in msg


def test_string_prediction_for_a_score_model_is_rejected():
    cfg = _cfg(prediction={"columns": ["label_class"], "kind": "score"})
    with pytest.raises(TableError, match="column 'label_class' has type string, which cannot be profiled as numeric"):
        select_columns(SCHEMA, cfg, "db.train")


def test_a_column_cannot_be_both_feature_and_prediction():
    cfg = _cfg(features={"numeric": ["score"]}, prediction={"columns": ["score"]})
    with pytest.raises(ConfigError, match="'score' is declared both as a feature and as a prediction column"):
        select_columns(SCHEMA, cfg, "db.train")


def test_supported_types():
    assert supports("numeric", "decimal(10,0)") and supports("numeric", "bigint") and not supports("numeric", "boolean")
    assert not supports("numeric", "string") and not supports("numeric", "date")
    assert supports("categorical", "string") and supports("categorical", "int") and supports("categorical", "date")
    assert not supports("categorical", "binary") and not supports("categorical", "struct<a:int>")


@pytest.mark.spark
def test_casts_numbers_booleans_and_negative_zero(spark):
    rows = [(True, -0.0, "3.5", 7, None), (False, float("nan"), "x", None, True), (None, 2.5, None, -1, False)]
    df = spark.createDataFrame(rows, "b boolean, d double, s string, i int, c boolean")
    out = df.select(
        numeric_expr("b", "boolean").alias("b"),
        numeric_expr("d", "double").alias("d"),
        numeric_expr("s", "string").alias("s"),
        numeric_expr("i", "int").alias("i"),
        categorical_expr("c", "boolean").alias("c"),
        categorical_expr("i", "int").alias("ci"),
    ).collect()
    assert [r["b"] for r in out] == [1.0, 0.0, None]
    d = [r["d"] for r in out]
    assert d[0] == 0.0 and math.copysign(1.0, d[0]) == 1.0  # -0.0 is normalised to 0.0
    assert math.isnan(d[1]) and d[2] == 2.5
    assert [r["s"] for r in out] == [3.5, None, None]  # a non-number string becomes null (invalid)
    assert [r["i"] for r in out] == [7.0, None, -1.0]
    assert [r["c"] for r in out] == [None, "true", "false"]
    assert [r["ci"] for r in out] == ["7", None, "-1"]
