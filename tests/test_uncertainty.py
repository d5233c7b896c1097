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


def _avoided(m, df):
    """(central, low, high) avoided kg per row of ``df``, in row order."""
    cols = m.columns()
    return [tuple(r) for r in df.withColumn("event_date", F.lit("2026-11-01").cast("date"))
            .select(cols.avoided_kg, cols.avoided_low_kg, cols.avoided_high_kg).collect()]


def test_box_recycling_1_1_range_spans_the_two_published_per_box_figures(spark):
    m = load_registry(methodologies_dir()).get("box_recycling", "1.1.0")
    boxes = spark.createDataFrame([("reuse_ship", 3)], "action string, box_count long")
    [row] = _avoided(m, boxes)
    # central 3 x 37 g = 111 g; low 3 x 36.96 g (85,000 kg / 2.3 M packages) = 110.88 g; high 3 x 37 g = 111 g
    assert row == pytest.approx((0.111, 0.11088, 0.111))


def test_green_trip_1_1_ranges_walk_and_bike_up_to_metros_reduction_only(spark):
    m = load_registry(methodologies_dir()).get("green_trip", "1.1.0")
    trips = spark.createDataFrame([("walk", 10.0, True), ("bike", 10.0, True), ("metro", 10.0, True), ("bus", 10.0, True),
                                   ("carpool", 10.0, True)],
                                  "mode string, distance_km double, navigation_verified boolean")
    walk, bike, metro, bus, carpool = _avoided(m, trips)
    # walk/bike: central and low 26.9 g/km x 10 km = 269 g; high 46.7 g/km (metro's reduction, the least a
    # zero-emission mode's can be) x 10 km = 467 g
    assert walk == pytest.approx((0.269, 0.269, 0.467))
    assert bike == pytest.approx((0.269, 0.269, 0.467))
    # published point values and the carpool assumption carry no range: 46.7 x 10 = 467 g, 26.9 x 10 = 269 g
    assert metro == pytest.approx((0.467,) * 3)
    assert bus == pytest.approx((0.269,) * 3)
    assert carpool == pytest.approx((0.269,) * 3)


def test_secondhand_1_1_ranges_the_smartphone_default_up_to_the_published_iphone(spark):
    m = load_registry(methodologies_dir()).get("secondhand_trade", "1.1.0")
    trades = spark.createDataFrame([("c2c", "smartphone", None, 0.9, 1), ("c2c", "smartphone", "iphone_14_pro_max", 0.9, 1),
                                    ("c2c", "laptop", None, 0.5, 2)],
                                   "trade_type string, category string, item_model string, condition double, quantity long")
    phone, iphone, laptop = _avoided(m, trades)
    # smartphone default: central and low 25 kg x 0.9 = 22.5 kg; high 57.67 kg (73 x 0.79) x 0.9 = 51.903 kg
    assert phone == pytest.approx((22.5, 22.5, 51.903))
    # a published model footprint has no range: 73 kg x 0.79 x 0.9 = 51.903 kg (the CACE worked example)
    assert iphone == pytest.approx((51.903,) * 3)
    # other category defaults carry no range: 100 kg x 0.5 x 2 = 100 kg
    assert laptop == pytest.approx((100.0,) * 3)


def test_green_product_sale_1_1_says_why_it_has_no_range(spark):
    m = load_registry(methodologies_dir()).get("green_product_sale", "1.1.0")
    assert m.bounds == {}
    assert "No range" in m.parameters["credited_years"].note
    assert "1.1.0" in [str(c["version"]) for c in m.changelog] and "No range added" in m.changelog[-1]["change"]
    sales = spark.createDataFrame([("air_conditioner", 1, 2)], "category string, energy_grade long, units long")
    [row] = _avoided(m, sales)
    assert row == pytest.approx((2 * 18.4,) * 3)  # 2 units x the published 18.4 kg, no range published


def test_the_1_1_versions_await_a_second_pair_of_eyes_and_start_after_1_0(spark):
    registry = load_registry(methodologies_dir())
    for scenario in ("secondhand_trade", "green_trip", "box_recycling", "green_product_sale"):
        m = registry.get(scenario, "1.1.0")
        assert m.status == "in_review" and m.author and m.author not in m.reviewers
        assert str(m.effective_from) == "2021-01-02"  # the day after 1.0.0's effective_from 2021-01-01
