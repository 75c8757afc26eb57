"""Which columns a monitor profiles, and how each is read as a number or a category.

The baseline job and the production pass must read every column the same
way, so both use the casts defined here:

* numeric: cast to ``double`` (decimals and integers widen; a boolean is
  refused as numeric, it is a category), with ``-0.0`` normalised to ``0.0``: Spark's sorts (and so
  ``percentile_approx``'s quantiles) order ``-0.0`` before ``0.0`` while
  numpy's comparisons treat them as equal; one zero keeps edges and bins
  the same everywhere.
* categorical: cast to ``string`` (booleans become ``"true"``/``"false"``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sparkdrift.core.profile import Kind, Role
from sparkdrift.errors import ConfigError, TableError

if TYPE_CHECKING:
    from pyspark.sql import Column
    from pyspark.sql.types import DataType, StructType

    from sparkdrift.core.config import MonitorConfig


#: Spark simple type names read as numbers (``decimal(p,s)`` too, see `_is_numeric_type`).
NUMERIC_TYPES = frozenset({"tinyint", "smallint", "int", "bigint", "float", "double"})
#: Types a column declared categorical may have (read as their string form).
CATEGORICAL_TYPES = frozenset({"string", "boolean", "date", "timestamp", "timestamp_ntz"}) | NUMERIC_TYPES


@dataclass(frozen=True)
class ColumnSpec:
    """One monitored column: its name, how it is binned, and what it is.

    ``dtype`` is the Spark type of the column in the table it was selected
    from (``DataType.simpleString()``); it is informational and does not take
    part in equality.
    """

    name: str
    kind: Kind
    role: Role
    dtype: str = field(default="", compare=False)


def qcol(name: str, alias: str | None = None) -> "Column":
    """A column reference that is safe for any name (dots, spaces, backticks)."""
    from pyspark.sql import functions as F

    quoted = "`" + name.replace("`", "``") + "`"
    return F.col(f"{alias}.{quoted}" if alias else quoted)


def _type_name(dtype: "DataType | str") -> str:
    return dtype if isinstance(dtype, str) else dtype.simpleString()


def _is_numeric_type(name: str) -> bool:
    return name in NUMERIC_TYPES or name.startswith("decimal")


def supports(kind: Kind, dtype: "DataType | str") -> bool:
    """Whether a baseline column of this Spark type can be profiled as ``kind``.

    numeric: integer, floating and decimal columns (a boolean is two
    categories, not a number: its 0/1 cast would hide that). categorical:
    strings, booleans, integers/decimals/floats and dates/timestamps (as text).
    Maps, arrays, structs and binary are never supported.
    """
    name = _type_name(dtype)
    if kind == "numeric":
        return _is_numeric_type(name)
    return name in CATEGORICAL_TYPES or name.startswith("decimal")


def numeric_expr(col_name: str, dtype: "DataType | str | None" = None) -> "Column":
    """The column as a ``double``: the one numeric cast used for baseline and production.

    Booleans become 1.0/0.0; ``-0.0`` becomes ``0.0`` (see the module doc).
    A string column is cast too (non-numbers become null, ANSI mode or not), so
    a caller can count invalid values as ``raw IS NOT NULL AND numeric_expr(...) IS NULL``.
    """
    from pyspark.sql import functions as F

    value = try_cast(col_name, "double")
    return F.when(value == F.lit(0.0), F.lit(0.0)).otherwise(value)


def try_cast(col_name: str, type_name: str) -> "Column":
    """``TRY_CAST(col AS type)``: null where the value does not convert, with ANSI mode on or off.

    A plain cast raises on an invalid string under ANSI mode (Spark 4's
    default, Databricks serverless) and gives null without it; this gives
    null on both, so invalid values are counted, never fatal.
    """
    from pyspark.sql import functions as F

    quoted = "`" + col_name.replace("`", "``") + "`"
    return F.expr(f"try_cast({quoted} AS {type_name})")


def categorical_expr(col_name: str, dtype: "DataType | str | None" = None) -> "Column":
    """The column as a ``string``: booleans are ``"true"``/``"false"``, numbers their Spark text."""
    return qcol(col_name).cast("string")


def value_expr(spec: ColumnSpec, dtype: "DataType | str | None" = None) -> "Column":
    """`numeric_expr` or `categorical_expr` according to ``spec.kind``."""
    if spec.kind == "numeric":
        return numeric_expr(spec.name, dtype or spec.dtype)
    return categorical_expr(spec.name, dtype or spec.dtype)


def _inferred_kind(type_name: str) -> Kind | None:
    if _is_numeric_type(type_name):
        return "numeric"
    if type_name in ("string", "boolean"):
        return "categorical"
    return None


def _prediction_kind(cfg: "MonitorConfig") -> Kind:
    return "categorical" if cfg.prediction.kind == "class" else "numeric"


def select_columns(schema: "StructType", cfg: "MonitorConfig", table: str) -> list[ColumnSpec]:
    """The columns to profile, in a stable order: declared numeric, declared categorical,
    inferred (schema order), then prediction columns.

    Declared features are always used; with ``features.infer`` the remaining
    numeric, string and boolean columns are added, never the production
    timestamp column, ``id_column``, the label column, prediction columns or
    ``features.exclude``. Prediction columns get role ``prediction`` (numeric
    for score/regression, categorical for class).

    Raises `TableError` (naming the column and ``table``) when a declared
    column is missing or has a type that cannot be read as its kind.
    """
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    by_lower: dict[str, list[str]] = {}
    for name in types:
        by_lower.setdefault(name.lower(), []).append(name)

    def check(name: str, kind: Kind, what: str) -> ColumnSpec:
        if name not in types:
            near = [c for c in by_lower.get(name.lower(), []) if c != name]
            hint = f" (did you mean {near[0]!r}?)" if near else f" (has: {', '.join(types)})"
            raise TableError(f"table {table}: missing {what} column {name!r}{hint}")
        dtype = types[name]
        if not supports(kind, dtype):
            hint = {"feature": "list it under features.categorical", "prediction": "set prediction.kind: class"}[what]
            fix = f"; {hint}" if supports("categorical", dtype) else ""
            raise TableError(
                f"table {table}: column {name!r} has type {dtype}, which cannot be profiled as {kind}{fix}"
            )
        role: Role = "prediction" if what == "prediction" else "feature"
        return ColumnSpec(name, kind, role, dtype)

    predictions = list(dict.fromkeys(cfg.prediction.columns))
    declared = [(n, "numeric") for n in dict.fromkeys(cfg.features.numeric)] + [
        (n, "categorical") for n in dict.fromkeys(cfg.features.categorical)
    ]
    clash = [n for n, _ in declared if n in predictions]
    if clash:
        raise ConfigError(f"column {clash[0]!r} is declared both as a feature and as a prediction column")

    specs = [check(name, kind, "feature") for name, kind in declared]
    if cfg.features.infer:
        never = {
            cfg.production.timestamp_column,
            cfg.id_column,
            cfg.label.column,
            *predictions,
            *cfg.features.exclude,
            *(n for n, _ in declared),
        }
        for name, dtype in types.items():
            if name in never:
                continue
            kind = _inferred_kind(dtype)
            if kind is not None:
                specs.append(ColumnSpec(name, kind, "feature", dtype))
    pkind = _prediction_kind(cfg)
    specs += [check(name, pkind, "prediction") for name in predictions]
    return specs
