"""Gold's amounts: exact 18-digit decimals, and a value too large for them fails instead of being cut."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from scope3plus.methodology import load_registry
from scope3plus.paths import methodologies_dir
from scope3plus.pipeline.compute import KG, QUANTITY, avoided_emissions

D1 = dt.date(2026, 11, 1)


def box_silver(spark, box_counts):
    """Silver rows of box_recycling: one reuse_ship event per box count."""
    return spark.createDataFrame(
        [(f"b{i}", D1, "reuse_ship", n) for i, n in enumerate(box_counts)],
        "event_id string, event_date date, action string, box_count long",
    ).select("*", F.lit(None).cast("timestamp").alias("event_time"), F.lit("Hangzhou").alias("city"),
             F.lit(D1).alias("landing_date"), F.lit("f").alias("source_file"))


def gold(spark, box_counts):
    return avoided_emissions(box_silver(spark, box_counts), "box_recycling",
                             load_registry(methodologies_dir()).approved("box_recycling"), "r")


def test_gold_amounts_are_exact_18_digit_decimals(spark):
    rows = gold(spark, [1, 1000]).orderBy("event_id")
    types = dict(rows.dtypes)
    assert (KG, QUANTITY) == ("decimal(18,9)", "decimal(18,6)")
    assert {types[c] for c in ("baseline_kg", "project_kg", "avoided_kg")} == {"decimal(18,9)"}
    assert types["activity_quantity"] == "decimal(18,6)"
    # 37 g per reused box (the published Cainiao figure): 1 box = 0.037 kg, 1000 boxes = 37 kg
    assert [(r.activity_quantity, r.avoided_kg) for r in rows.collect()] == [
        (Decimal("1.000000"), Decimal("0.037000000")), (Decimal("1000.000000"), Decimal("37.000000000"))]


def test_an_amount_beyond_18_digits_fails_the_computation(spark):
    """10^11 boxes × 0.037 kg = 3.7 × 10^9 kg: more than decimal(18,9) holds (< 10^9). Spark's ANSI
    overflow error stops the job (the daily run publishes nothing) rather than writing a null or a cut value."""
    with pytest.raises(Exception, match=r"NUMERIC_VALUE_OUT_OF_RANGE|cannot be represented as Decimal\(18, ?9\)"):
        gold(spark, [100_000_000_000]).collect()
