"""Parameters with low/high bounds give a low and high avoided value next to the central one."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from scope3plus.methodology import load_registry
from scope3plus.paths import methodologies_dir


def test_no_cutlery_range_comes_from_the_published_per_order_figures(spark):
    m = load_registry(methodologies_dir()).get("no_cutlery_order", "1.0.0")
    assert set(m.bounds) == {"low", "high"}
    cols = m.columns()
    orders = spark.createDataFrame([(True,), (True,)], "no_cutlery boolean").withColumn("event_date", F.current_date())
    row = orders.agg(F.sum(cols.avoided_kg), F.sum(cols.avoided_low_kg), F.sum(cols.avoided_high_kg)).first()
    assert row[0] == pytest.approx(2 * 15.9 / 1000)  # central: 15.9 g per order (16,900 t / 1.06 bn)
    assert row[1] == pytest.approx(2 * 11.8 / 1000)  # low: Shenyang 2019, 17 t / 1.44 M orders
    assert row[2] == pytest.approx(2 * 20.0 / 1000)  # high: one pair of wooden chopsticks, ~20 g


def test_without_ranged_parameters_low_and_high_equal_the_central_value(spark):
    m = load_registry(methodologies_dir()).get("box_recycling", "1.0.0")
    assert m.bounds == {}
    cols = m.columns()
    boxes = spark.createDataFrame([("reuse_ship", 3)], "action string, box_count long").withColumn("event_date", F.current_date())
    row = boxes.select(cols.avoided_kg, cols.avoided_low_kg, cols.avoided_high_kg).first()
    assert tuple(row) == pytest.approx((3 * 0.037,) * 3)  # 37 g per reused box, no range published
