"""Issue 21 item 6: a second-hand trade with the platform's display name for its model ("Galaxy S23
Ultra") is not quarantined; a model that is not a factor-table key is credited at its category's footprint."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from scope3plus.methodology import load_registry
from scope3plus.paths import methodologies_dir
from tests.test_gate import check

SALE = {"event_id": "s1", "event_time": "2026-11-01T11:00:00+08:00", "user_id": "u3", "city": "Shanghai",
        "trade_type": "c2c", "category": "smartphone", "sale_price_cny": 4000, "condition": 0.9}


def sale(model: str) -> str:
    return json.dumps({**SALE, "item_model": model}, ensure_ascii=False)


@pytest.mark.parametrize("model", ["Galaxy S23 Ultra", "MacBook Air M2", "iPhone 14 Pro Max (128 GB)", "华为 Mate 60 Pro+",
                                   "iphone_14_pro_max", "x" * 64])
def test_display_names_pass_the_contract(spark, model):
    [(reasons, _)] = check(spark, "secondhand_trade", [sale(model)])
    assert reasons == []


@pytest.mark.parametrize("model, reason", [
    ("Galaxy\tS23", "pattern:item_model"),         # a tab is a control character
    ("Galaxy S23\n", "pattern:item_model"),        # a trailing line terminator
    ("Galaxy\u2028S23", "pattern:item_model"),     # a line separator
    (" Galaxy", "pattern:item_model"),             # starts with a space
    ("x" * 65, "length:item_model"),               # longer than max_length 64
])
def test_control_characters_and_overlong_names_are_still_refused(spark, model, reason):
    [(reasons, _)] = check(spark, "secondhand_trade", [sale(model)])
    assert reasons == [reason]


def test_an_unknown_model_is_credited_at_its_category_footprint(spark):
    [(reasons, _)] = check(spark, "secondhand_trade", [sale("Galaxy S23 Ultra")])
    assert reasons == []  # on main: pattern:item_model, the trade quarantined and its credit lost
    m = load_registry(methodologies_dir()).get("secondhand_trade", "1.0.0")
    cols = m.columns()
    trades = spark.createDataFrame([("c2c", "smartphone", "Galaxy S23 Ultra", 0.9, 1)],
                                   "trade_type string, category string, item_model string, condition double, quantity long")
    [row] = trades.withColumn("event_date", F.lit("2026-11-01").cast("date")).select(cols.avoided_kg).collect()
    assert row[0] == pytest.approx(22.5)  # no model footprint: smartphone default 25 kg x condition 0.9 = 22.5 kg


def test_key_normalises_a_display_name_to_the_factor_tables_key(spark):
    m = load_registry(methodologies_dir()).get("secondhand_trade", "1.1.0")
    cols = m.columns()
    trades = spark.createDataFrame([("c2c", "smartphone", "iPhone 14 Pro Max", 0.9, 1), ("c2c", "smartphone", " IPHONE-14 pro  MAX!", 0.9, 1),
                                    ("c2c", "smartphone", "Galaxy S23 Ultra", 0.9, 1)],
                                   "trade_type string, category string, item_model string, condition double, quantity long")
    rows = trades.withColumn("event_date", F.lit("2026-11-01").cast("date")).select(cols.avoided_kg).collect()
    # iphone_14_pro_max: 73 kg x 0.79 x 0.9 = 51.903 kg (both spellings); unknown model: 25 kg x 0.9 = 22.5 kg
    assert [r[0] for r in rows] == pytest.approx([51.903, 51.903, 22.5])


@pytest.mark.parametrize("formula, reason", [
    ("key(item_model)", "key.field. is used only as a table key"),
    ("model_lifecycle[key(condition)]", "key.. normalises a text field"),
    ("model_lifecycle[key(item_model, category)]", "key takes exactly 1 argument"),
])
def test_key_is_only_a_table_key_of_a_text_field(formula, reason):
    from scope3plus.methodology.formula import (DIMENSIONLESS, STRING, UNITS, Field, MethodologyError, Table,
                                                compile_formula, number)

    symbols = {"item_model": Field("item_model", STRING), "category": Field("category", STRING),
               "condition": Field("condition", number(DIMENSIONLESS)),
               "model_lifecycle": Table("model_lifecycle", (("iphone_14_pro_max", 73.0),), UNITS.kg)}
    with pytest.raises(MethodologyError, match=reason):
        compile_formula(formula, symbols, "test")
