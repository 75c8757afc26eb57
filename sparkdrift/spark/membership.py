"""The Bloom filter of `core.membership` in Spark: hash positions, and the filter's words built by aggregation.

Both passes hash with Spark's own ``xxhash64`` (DataFrame API only: the same
on classic Spark and Spark Connect), so a value gets the same bits in the
baseline and in production. The baseline builds each filter from the
column's distinct values, which scan 2 already holds in Spark: every value
sets its k bits, one ``bit_or`` per 64-bit word, so what reaches the driver
is at most m / 64 rows per column, whatever the rows or distinct values.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sparkdrift.core.membership import BITS_PER_VALUE, HASHES, MAX_BITS

#: Key of scan 2's Bloom filter word rows (`counting`'s own keys are >= -4, or -100).
MEMBERS = -5
#: An exploded entry that stands for the ranked row itself, not one of its bits.
AS_IS = -1

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def positions(value: "Column", bits: "Column", hashes: int = HASHES) -> "Column":
    """The bit positions of ``value`` in a filter of ``bits`` bits: array of pmod(xxhash64(i, value), m), i < k."""
    from pyspark.sql import functions as F

    return F.array(*[F.pmod(F.xxhash64(F.lit(i), value), bits) for i in range(hashes)])


def with_sketch(ranked: "DataFrame", keep: "Column", wide: "Column") -> "DataFrame":
    """Scan 2's ``ranked`` rows where ``keep``, plus the Bloom filter words of the columns whose value rows are ``wide``.

    A word row has key `MEMBERS`, ``rank`` = word index, ``n`` = the word and
    ``total`` = the filter's bits m; ``distinct`` is the column's distinct
    count n, which sizes m = ceil(n * BITS_PER_VALUE / 64) * 64 (at most
    `MAX_BITS`). One branch over ``ranked``: each wide row explodes into its
    k bits, each kept row into itself, and one aggregation ORs the bits into
    words and leaves a kept row (alone in its group) as it was. A union of
    two branches would make Spark count the table twice (it does not reuse
    the ``mapInArrow`` branch's shuffle), and grouping on ranked's own
    partitioning keys adds no shuffle (the same number of Spark jobs).
    """
    from pyspark.sql import functions as F

    bits = F.least(F.lit(MAX_BITS).cast("long"), F.ceil(F.col("distinct") * F.lit(BITS_PER_VALUE / 64)) * 64)
    none = F.array().cast("array<bigint>")
    entries = F.concat(F.when(keep, F.array(F.lit(AS_IS))).otherwise(none),  # positions are >= 0
                       F.when(wide, positions(F.col("value"), bits)).otherwise(none))
    exploded = ranked.filter(keep | wide).select("*", bits.alias("bits"), F.explode(entries).alias("p"))
    row = F.col("p") == F.lit(AS_IS)
    moments = ("s", "ss", "lo", "hi")
    entry = exploded.select(
        "slice", "fi", "key", (~row).alias("word"), F.when(row, F.col("value")).alias("value"),
        F.when(row, F.col("rank")).otherwise(F.shiftright("p", 6).cast("int")).alias("rank"),
        F.when(row, F.col("n")).otherwise(F.expr("shiftleft(1L, CAST(p % 64 AS INT))")).alias("n"),
        *[F.when(row, F.col(c)).alias(c) for c in moments],
        "distinct", F.when(row, F.col("total")).otherwise(F.col("bits")).alias("total"),
    )
    # grouped by slice, fi, key as they come: ranked is already partitioned by them, so no new shuffle
    grouped = entry.groupBy("slice", "fi", "key", "word", "value", "rank").agg(
        F.bit_or("n").alias("n"), *[F.max(c).alias(c) for c in moments],
        F.max("distinct").alias("distinct"), F.max("total").alias("total"),
    )
    return grouped.select("slice", "fi", F.when(F.col("word"), F.lit(MEMBERS)).otherwise(F.col("key")).alias("key"),
                          "value", "n", *moments, "rank", "distinct", "total")
