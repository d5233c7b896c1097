"""Bloom filters built and probed with Spark's own expressions (scope3plus.bloom)."""

from __future__ import annotations

import math

from pyspark.sql import functions as F

from scope3plus import bloom


def ids(spark, start: int, count: int):
    return spark.range(start, start + count).select(F.concat(F.lit("id-"), F.col("id").cast("string")).alias("event_id"))


def test_bits_for_follows_the_optimal_size():
    # m = -n ln p / (ln 2)^2 = 1000 * 4.60517 / 0.480453 = 9585.06 -> 9586 bits at 1 %
    assert bloom.bits_for(1000) == 9586
    assert bloom.bits_for(0) == 64 and bloom.bits_for(1000, 0.001) == math.ceil(1000 * math.log(1000) / math.log(2) ** 2)


def test_no_false_negatives_and_few_false_positives(spark):
    members = ids(spark, 0, 20_000)
    flt = bloom.bloom_filter(members, F.xxhash64("event_id"), 20_000)
    probe = lambda df: df.filter(bloom.might_contain(spark, flt, F.xxhash64("event_id"))).count()  # noqa: E731
    assert probe(members) == 20_000  # every member passes: a filter never drops a true match
    strangers = probe(ids(spark, 1_000_000, 20_000))
    print(f"false positives: {strangers} of 20,000 non-members (sized for 1 %)")
    assert strangers < 20_000 * 0.03  # about 1 %; 3 % leaves room for chance


def test_a_filter_over_no_rows_lets_nothing_through(spark):
    flt = bloom.bloom_filter(ids(spark, 0, 0), F.xxhash64("event_id"), 0)
    assert ids(spark, 0, 100).filter(bloom.might_contain(spark, flt, F.xxhash64("event_id"))).count() == 0
