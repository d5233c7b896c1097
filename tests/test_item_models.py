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


def test_a_version_declares_which_key_fields_are_free_text():
    """Data-driven: a text field a version looks a factor table up by, and not a domain, is counted; the
    counts are declared by the formulas (no scenario named in code)."""
    from scope3plus.methodology.spark_compile import free_text_lookups

    registry = load_registry(methodologies_dir())
    model_keys = frozenset({"iphone_14_pro_max"})  # model_lifecycle's and model_production_share's keys
    assert free_text_lookups(registry.get("secondhand_trade", "1.0.0")) == {"item_model": (model_keys, False)}
    assert free_text_lookups(registry.get("secondhand_trade", "1.1.0")) == {"item_model": (model_keys, True)}
    # category is a domain (checked against its tables), mode too: nothing free-text to count
    assert free_text_lookups(registry.get("green_product_sale", "1.0.0")) == {}
    assert free_text_lookups(registry.get("green_trip", "1.0.0")) == {}


def test_a_run_counts_credited_trades_by_exact_key_alias_and_category_fallback(spark, tmp_path, root):
    """Issue 21, item 6: with 1.1.0 (key(item_model)) approved, a delivery of one trade per kind of
    match records 1 / 1 / 1 in the run's metrics (MLflow, the run summary), counted in gold's pass."""
    import dataclasses
    import datetime as dt

    from mlflow import MlflowClient

    from scope3plus.config import load_config
    from scope3plus.lake import open_lake
    from scope3plus.pipeline import tables
    from scope3plus.pipeline.daily import run_day

    from .support import edit_file, register_approved

    edit_file(root / "secondhand_trade" / "1.1.0.yaml", ("status: in_review", "status: approved"),
              ("approvals: []", "approvals:\n  - {reviewer: scope3plus-methodology-maintainers, date: 2026-12-05, "
                                "note: approved for this test}"))
    day = dt.date(2026, 11, 1)
    config = dataclasses.replace(load_config(None, landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                                             mlflow_dir=str(tmp_path / "mlflow")), methodologies_dir=str(root))
    folder = tmp_path / "landing" / "secondhand_trade"
    folder.mkdir(parents=True)
    trades = [{**json.loads(sale(model)), "event_id": event_id} for event_id, model in
              [("s-exact", "iphone_14_pro_max"), ("s-alias", "iPhone 14 Pro Max"), ("s-fallback", "Galaxy S23 Ultra")]]
    (folder / f"{day}-part-0.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trades), encoding="utf-8")
    register_approved(config)
    summary = run_day(spark, config, day)

    expected = {"item_model.exact": 1, "item_model.normalised": 1, "item_model.fallback": 1}
    assert summary.scenarios["secondhand_trade"].key_matches == expected
    assert all(c.key_matches == {} for s, c in summary.scenarios.items() if s != "secondhand_trade")
    metrics = MlflowClient(tracking_uri=config.tracking_uri()).get_run(summary.mlflow_run_id).data.metrics
    assert {k: v for k, v in metrics.items() if ".key_match." in k} == {
        f"secondhand_trade.key_match.{name}": n for name, n in expected.items()}
    # credited under 1.1.0: 73 kg x 0.79 x 0.9 = 51.903 kg for both spellings of the iPhone; the Galaxy
    # has no model row: smartphone default 25 kg x 0.9 = 22.5 kg; 51.903 + 51.903 + 22.5 = 126.306 kg
    gold = open_lake(spark, config.lake).read(tables.GOLD_AVOIDED)
    rows = {r.event_id: (float(r.avoided_kg), r.methodology_version) for r in gold.collect()}
    assert rows == {"s-exact": (51.903, "1.1.0"), "s-alias": (51.903, "1.1.0"), "s-fallback": (22.5, "1.1.0")}
