"""Bloom filters over DataFrame columns, with Spark's own expressions.

Spark builds and probes Bloom filters for its runtime join filters with two Catalyst expressions,
``BloomFilterAggregate`` and ``BloomFilterMightContain``. It registers no SQL or Python name for
them, so this module builds them through the JVM (the only place Spark internals are touched; a
test fails loudly if a Spark upgrade moves them). Both are code-generated and run on executors:
the driver only ever holds the serialised filter, whose size is capped by Spark's
``spark.sql.optimizer.runtime.bloomFilter.maxNumBits`` (8 MB by default), whatever the row count.
Spark also caps the item count a filter is sized for (``...bloomFilter.maxNumItems``, 4 M by
default), which ``scope3plus.spark.build_session`` raises: with the default, a 10 M-item filter
would get twelve hash functions for its 8 MB and ~11 % false positives instead of ~4 %.

A Bloom filter answers "maybe" or "certainly not": it has false positives (about 1 % at the
sizes used here, more above the cap) and never a false negative, so it can only narrow a join,
never decide one.

A Spark Connect session has no JVM gateway, and Spark Connect offers neither expression (no
function, SQL or Python, names them): ``available`` says so, and callers then leave the filter out
(the join it would have narrowed gives the same rows).
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, functions as F

FALSE_POSITIVE_RATE = 0.01


def available(spark) -> bool:
    """Whether ``spark`` can build and probe these filters: not a Spark Connect session (no JVM gateway)."""
    from .spark import is_connect

    return not is_connect(spark)


def _jvm_expressions(spark):
    jvm = spark._jvm
    return jvm.org.apache.spark.sql.classic.ExpressionUtils, jvm.org.apache.spark.sql.catalyst.expressions


def bits_for(expected_items: int, false_positive_rate: float = FALSE_POSITIVE_RATE) -> int:
    """The optimal filter size, in bits, for ``expected_items`` at ``false_positive_rate``
    (m = -n ln p / (ln 2)^2; Spark caps it at its maxNumBits)."""
    n = max(1, expected_items)
    return max(64, math.ceil(-n * math.log(false_positive_rate) / math.log(2) ** 2))


def bloom_filter(df: DataFrame, value: Column, expected_items: int) -> bytes:
    """The serialised Bloom filter of the 64-bit ``value`` (e.g. ``F.xxhash64(...)``) over the
    rows of ``df``, aggregated on the executors (one small row reaches the driver)."""
    utils, expr = _jvm_expressions(df.sparkSession)
    aggregate = expr.aggregate.BloomFilterAggregate(
        utils.expression(value._jc), utils.expression(F.lit(max(1, expected_items)).cast("long")._jc),
        utils.expression(F.lit(bits_for(expected_items)).cast("long")._jc))
    filter_bytes = df.select(Column(utils.column(aggregate.toAggregateExpression())).alias("bloom")).first()["bloom"]
    return bytes(filter_bytes) if filter_bytes is not None else b""


def might_contain(spark, filter_bytes: bytes, value: Column) -> Column:
    """True when the 64-bit ``value`` may be in the filter, false when it is certainly not
    (and false for every row when the filter was built over no rows)."""
    if not filter_bytes:
        return F.lit(False)
    utils, expr = _jvm_expressions(spark)
    probe = expr.BloomFilterMightContain(utils.expression(F.lit(bytearray(filter_bytes))._jc),
                                         utils.expression(value._jc))
    return Column(utils.column(probe))
