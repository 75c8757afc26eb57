"""Slice labels as Spark columns: each configured slice's expression, read as a string, checked up front.

A slice is a column (``country``) or any SQL expression (``amount > 1000``,
``CASE WHEN ... END``); its string value labels the row (booleans become
``true``/``false``, as categorical columns do). An expression that does not
resolve against the table is a `ConfigError` naming the key and the column,
before any scan starts. A crossed slice's label joins its two slices' labels
(``DE & ios``), null when either is null.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sparkdrift.core.slices import AND, cross_name
from sparkdrift.errors import ConfigError
from sparkdrift.spark.histograms import SliceColumn

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from sparkdrift.core.config import Slice

_UNRESOLVED = re.compile(r"name `?([^`\s]+?)`? cannot be resolved|cannot resolve '?`?([^`'\s]+)")


def slice_label(df: "DataFrame", index: int, sl: "Slice") -> "Column":
    """The label column of ``slices[index]`` over ``df``; `ConfigError` naming the key when it does not resolve."""
    from pyspark.errors import AnalysisException, ParseException
    from pyspark.sql import functions as F

    where = f"slices[{index}].expr"
    try:
        label = F.expr(sl.expr).cast("string")
        df.select(label).schema  # analysed now on every runtime (Spark Connect defers it)
    except ParseException:
        raise ConfigError(f"{where}: {sl.expr!r} is not a SQL expression") from None
    except AnalysisException as exc:
        text = getattr(exc, "desc", None) or str(exc)
        m = _UNRESOLVED.search(text)
        if m:
            column = m.group(1) or m.group(2)
            raise ConfigError(f"{where}: {sl.expr!r} references column {column!r}, which is not in the table "
                              f"(has: {', '.join(df.columns)})") from None
        raise ConfigError(f"{where}: {sl.expr!r} is invalid: {text.strip().splitlines()[0]}") from None
    return label


def slice_labels(
    df: "DataFrame", slices: Sequence["Slice"], crosses: Sequence[Sequence[str]] = ()
) -> list[tuple[str, "Column"]]:
    """(name, label column) of every listed slice, then of every crossed pair, over ``df``."""
    from pyspark.sql import functions as F

    singles = [(sl.label, slice_label(df, i, sl)) for i, sl in enumerate(slices)]
    by_name = dict(singles)
    return singles + [(cross_name(a, b), F.concat(by_name[a], F.lit(AND), by_name[b])) for a, b in crosses]


def slice_columns(
    df: "DataFrame", slices: Sequence["Slice"], top: Mapping[str, tuple[str, ...]], crosses: Sequence[Sequence[str]] = ()
) -> list[SliceColumn]:
    """The configured slices and crosses that have baseline values in ``top``, as pass columns over ``df``."""
    return [SliceColumn(name, label, top[name]) for name, label in slice_labels(df, slices, crosses) if name in top]
