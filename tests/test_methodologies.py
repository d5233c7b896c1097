"""The shipped methodology specs: validation, provenance, content hash, registry, golden numbers."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from scope3plus.methodology import MethodologyError, load_methodology, load_registry, to_column
from scope3plus.methodology.formula import UNITS, Param, compile_formula
from scope3plus.contracts import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
COMMON = "event_id string, event_date date"
D2021, D2022, D2023 = dt.date(2021, 6, 1), dt.date(2022, 6, 1), dt.date(2023, 6, 1)


@pytest.fixture(scope="module")
def registry():
    return load_registry(ROOT)


def _copy_scenario(tmp_path: Path, scenario: str) -> Path:
    """A private copy of ``methodologies/<scenario>`` under tmp_path; returns the copied folder."""
    target = tmp_path / "methodologies" / scenario
    shutil.copytree(ROOT / "methodologies" / scenario, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _results(spark, methodology, rows, schema):
    """event_id -> (eligible, baseline_kg, project_kg, avoided_kg, activity_quantity, failed rule names)."""
    columns = methodology.columns()
    failed = [(name, ~column) for name, column in columns.rules]
    df = spark.createDataFrame(rows, f"{COMMON}, {schema}")
    out = df.select("event_id", *columns.named(), *[c.alias(f"failed_{name}") for name, c in failed]).collect()
    return {
        r.event_id: (r.eligible, r.baseline_kg, r.project_kg, r.avoided_kg, r.activity_quantity,
                     {name for name, _ in failed if r[f"failed_{name}"]})
        for r in out
    }


# ----------------------------------------------------------------------------- loading and validation


def test_the_shipped_specs_load_validate_and_are_approved(registry):
    assert set(registry.scenarios()) == set(SCENARIOS)
    for scenario in SCENARIOS:
        (m,) = registry.approved(scenario)
        assert (m.id, m.version, m.effective_from, m.effective_to) == (scenario, "1.0.0", dt.date(2021, 1, 1), None)
        assert registry.get(scenario, "1.0.0") is m
        assert registry.effective(scenario, dt.date(2030, 1, 1)) is m
        assert registry.effective(scenario, dt.date(2020, 12, 31)) is None
        assert len(m.content_hash) == 64 and m.approvals


def test_every_parameter_and_table_row_has_a_source_or_is_an_assumption_with_a_note(registry):
    values = [p for m in registry for p in m.parameters.values()]
    values += [row for m in registry for table in m.factor_tables.values() for row in table.rows]
    assert len(values) > 30
    for value in values:
        if value.kind == "assumption":
            assert value.note.strip(), value
        else:
            assert value.kind in ("published", "derived") and value.source.startswith("http"), value
        if value.kind == "derived":
            assert value.note.strip(), value


def test_published_numbers_are_the_reference_ones(registry):
    assert registry.get("no_cutlery_order", "1.0.0").parameters["cutlery_per_order"].value == 15.9
    assert registry.get("box_recycling", "1.0.0").parameters["reuse_credit_per_box"].value == 37
    assert registry.get("green_trip", "1.0.0").tables["reduction_factor"]["metro"] == 46.7
    grid = registry.get("green_product_sale", "1.0.0").tables["grid_factor"]
    assert (grid["2021"], grid["2022"], grid["2023"]) == (0.5568, 0.5366, 0.5306)
    assert registry.get("green_trip", "1.0.0").domains["mode"] == {"walk", "bike", "bus", "metro", "carpool"}


def test_content_hash_changes_when_a_factor_csv_changes(tmp_path):
    folder = _copy_scenario(tmp_path, "green_trip")
    before = load_methodology(folder / "1.0.0.yaml")
    assert before.content_hash == load_methodology(ROOT / "methodologies/green_trip/1.0.0.yaml").content_hash
    _edit(folder / "factors/mode_reduction.csv", "metro,46.7,", "metro,46.8,")
    after = load_methodology(folder / "1.0.0.yaml")
    assert after.content_hash != before.content_hash
    assert after.tables["reduction_factor"]["metro"] == 46.8


def test_baseline_in_g_per_km_times_km_times_km_is_rejected_at_load(tmp_path):
    folder = _copy_scenario(tmp_path, "green_trip")
    _edit(folder / "1.0.0.yaml", 'baseline: "reduction_factor[mode] * distance_km"',
          'baseline: "reduction_factor[mode] * distance_km * distance_km"')
    with pytest.raises(MethodologyError) as info:
        load_methodology(folder / "1.0.0.yaml")
    message = str(info.value)
    assert "1.0.0.yaml: baseline: line 1, col 1" in message
    assert "found g * km ([mass] * [length])" in message


def test_a_published_row_without_source_is_rejected_naming_file_and_row(tmp_path):
    folder = _copy_scenario(tmp_path, "green_trip")
    _edit(folder / "factors/mode_reduction.csv", "bus,26.9,g/km,https://www.citysz.net/guonei/2022/0923/2022107136.html,",
          "bus,26.9,g/km,,")
    with pytest.raises(MethodologyError, match=r"mode_reduction.csv: row 3 \(key 'bus'\): kind 'published' needs a source"):
        load_methodology(folder / "1.0.0.yaml")


def test_an_assumption_parameter_without_a_note_is_rejected(tmp_path):
    folder = _copy_scenario(tmp_path, "green_product_sale")
    spec = folder / "1.0.0.yaml"
    text = spec.read_text()
    start = text.index("    note: >-\n      Lifetime")
    end = text.index("tables:")
    spec.write_text(text[:start] + text[end:])
    with pytest.raises(MethodologyError, match="parameters.credited_years: kind 'assumption' needs a note"):
        load_methodology(spec)


def test_a_table_row_in_another_unit_is_converted(tmp_path):
    folder = _copy_scenario(tmp_path, "green_trip")
    _edit(folder / "factors/mode_reduction.csv", "metro,46.7,g/km,", "metro,0.0467,kg/km,")
    assert load_methodology(folder / "1.0.0.yaml").tables["reduction_factor"]["metro"] == pytest.approx(46.7, rel=1e-12)


def test_a_table_file_outside_the_methodology_folder_is_rejected(tmp_path):
    folder = _copy_scenario(tmp_path, "green_trip")
    (tmp_path / "methodologies" / "evil.csv").write_text((folder / "factors/mode_reduction.csv").read_text())
    _edit(folder / "1.0.0.yaml", "file: factors/mode_reduction.csv", "file: ../evil.csv")
    with pytest.raises(MethodologyError, match="tables.reduction_factor.file: '../evil.csv' is outside the methodology folder"):
        load_methodology(folder / "1.0.0.yaml")


def test_a_later_approved_version_supersedes_from_its_start_and_equal_starts_are_rejected(tmp_path):
    folder = _copy_scenario(tmp_path, "box_recycling")
    second = folder / "1.1.0.yaml"
    shutil.copy(folder / "1.0.0.yaml", second)
    _edit(second, "version: 1.0.0", "version: 1.1.0")  # the version and its changelog entry
    with pytest.raises(MethodologyError, match=r"approved versions 1.0.0 and 1.1.0 of box_recycling both take effect on 2021-01-01"):
        load_registry(tmp_path)
    _edit(second, "effective_from: 2021-01-01", "effective_from: 2024-01-01")
    registry = load_registry(tmp_path)  # 1.0.0 stays untouched (and keeps its hash)
    in_force = registry.approved("box_recycling")
    assert [(m.version, m.effective_from, m.effective_to) for m in in_force] == [
        ("1.0.0", dt.date(2021, 1, 1), dt.date(2023, 12, 31)), ("1.1.0", dt.date(2024, 1, 1), None)]
    assert in_force[0].content_hash == registry.get("box_recycling", "1.0.0").content_hash
    assert registry.effective("box_recycling", dt.date(2023, 12, 31)).version == "1.0.0"
    assert registry.effective("box_recycling", dt.date(2024, 1, 1)).version == "1.1.0"


# ----------------------------------------------------------------------------- golden numbers through Spark


def test_units_mix_and_convert_in_spark(spark):
    symbols = {"grams": Param("grams", 500.0, UNITS.g), "kilos": Param("kilos", 1.0, UNITS.kg)}
    formulas = {"mixed": "grams + kilos", "reverse": "kilos + grams", "lower": "min(kilos, grams)"}
    columns = [to_column(compile_formula(text, symbols, "test", UNITS.kg)).alias(key) for key, text in formulas.items()]
    row = spark.range(1).select(*columns).first()
    assert row.mixed == pytest.approx(1.5, abs=1e-12)  # 500 g + 1 kg = 1.5 kg
    assert row.reverse == pytest.approx(1.5, abs=1e-12)
    assert row.lower == pytest.approx(0.5, abs=1e-12)  # min(1 kg, 500 g) = 0.5 kg


def test_secondhand_iphone_14_pro_max_gives_the_published_51_903_kg(spark, registry):
    m = registry.get("secondhand_trade", "1.0.0")
    rows = [
        ("iphone", D2022, "c2c", "smartphone", "iphone_14_pro_max", 0.9, 1),
        ("unknown_model", D2022, "recycle", "smartphone", "some_phone", 0.5, 2),
        ("no_model", D2022, "c2c", "book", None, 1.0, 3),
        ("gift", D2022, "gift", "book", None, 1.0, 1),
        ("bad_condition", D2022, "c2c", "book", None, 1.5, 1),
    ]
    result = _results(spark, m, rows, "trade_type string, category string, item_model string, condition double, quantity int")
    eligible, baseline, project, avoided, quantity, _ = result["iphone"]
    assert eligible and project == 0.0 and quantity == 1.0
    assert abs(avoided - 73 * 0.79 * 0.9) < 1e-9 and abs(avoided - 51.903) < 1e-9
    assert result["unknown_model"][3] == pytest.approx(25 * 0.5 * 2, abs=1e-12)  # smartphone default 25 kg
    assert result["no_model"][3] == pytest.approx(1 * 1.0 * 3, abs=1e-12)  # book 1 kg x 3
    assert result["gift"][5] == {"credited_trade_type"}
    assert result["bad_condition"][5] == {"condition_in_range"}


def test_no_cutlery_1060_orders_give_16_854_kg_and_scale_to_the_published_16_900_t(spark, registry):
    from pyspark.sql import functions as F

    m = registry.get("no_cutlery_order", "1.0.0")
    columns = m.columns()
    orders = spark.range(1061).select(
        F.col("id").cast("string").alias("event_id"), F.lit(D2021).alias("event_date"),
        (F.col("id") < 1060).alias("no_cutlery"))  # 1060 no-cutlery orders, 1 with cutlery
    total = orders.agg(
        F.sum(F.when(columns.eligible, columns.avoided_kg)).alias("kg"),
        F.sum(F.when(columns.eligible, columns.activity_quantity)).alias("orders"),
        F.count(F.when(~columns.eligible, 1)).alias("not_eligible")).first()
    assert (total.orders, total.not_eligible) == (1060.0, 1)
    assert abs(total.kg - 1060 * 15.9 / 1000) < 1e-9  # 16.854 kg
    tonnes = total.kg * 1e6 / 1000  # 1.06 bn orders = 1e6 x 1060; 1 t = 1000 kg -> 16,854 t
    assert abs(tonnes - 16_854) < 1e-3
    assert float(f"{tonnes:.3g}") == 16_900  # the published ~16,900 t


def test_e_waybill_credits_the_sheets_saved_and_100_bn_parcels_give_the_published_1_bn_kg(spark, registry):
    m = registry.get("e_waybill", "1.0.0")
    rows = [("one", D2022, 1), ("two", D2022, 2), ("five", D2022, 5)]
    result = _results(spark, m, rows, "waybill_parts int")
    assert result["one"][1:4] == pytest.approx((5 * 2.5 / 1000, 1 * 2.5 / 1000, (5 - 1) * 2.5 / 1000), abs=1e-12)  # 10 g
    assert result["two"][3] == pytest.approx((5 - 2) * 2.5 / 1000, abs=1e-12)  # 7.5 g
    assert result["five"][0] is False and result["five"][5] == {"fewer_sheets_than_the_paper_form"}
    # The report: more than 100 bn parcels with a one-part e-waybill, at least 4 sheets saved on each;
    # Cainiao: 400 bn sheets saved ~ 1 bn kg CO2e. 100e9 parcels x 10 g = 1e12 g = 1e9 kg = 1 Mt.
    assert 100e9 * result["one"][3] == pytest.approx(1e9, rel=1e-12)


def test_box_recycling_credits_reuse_ship_only(spark, registry):
    m = registry.get("box_recycling", "1.0.0")
    rows = [("reuse", D2022, "reuse_ship", 10), ("drop", D2022, "drop_off", 10)]
    result = _results(spark, m, rows, "action string, box_count int")
    assert result["reuse"][0] is True
    assert abs(result["reuse"][3] - 10 * 37 / 1000) < 1e-12  # 0.37 kg
    assert result["drop"][0] is False and result["drop"][5] == {"reuse_ship_only"}


def test_green_trip_factors_verification_and_caps(spark, registry):
    m = registry.get("green_trip", "1.0.0")
    rows = [
        ("metro", D2022, "metro", 10.0, True),
        ("bus", D2022, "bus", 10.0, True),
        ("unverified", D2022, "metro", 10.0, False),
        ("long_walk", D2022, "walk", 30.0, True),  # walk cap 20 km
        ("walk_at_cap", D2022, "walk", 20.0, True),
        ("unknown_mode", D2022, "plane", 10.0, True),
    ]
    result = _results(spark, m, rows, "mode string, distance_km double, navigation_verified boolean")
    assert result["metro"][0] and abs(result["metro"][3] - 10 * 46.7 / 1000) < 1e-12  # 0.467 kg
    assert result["bus"][0] and abs(result["bus"][3] - 10 * 26.9 / 1000) < 1e-12  # 0.269 kg
    assert result["metro"][4] == 10.0 and m.activity_unit == "km"
    assert result["unverified"][0] is False and result["unverified"][5] == {"navigation_verified"}
    assert result["long_walk"][0] is False and result["long_walk"][5] == {"within_plausibility_cap"}
    assert result["walk_at_cap"][0] is True  # at the cap is credited, not capped
    assert result["unknown_mode"][0] is False and result["unknown_mode"][3] is None


def test_green_product_sale_grade_one_and_grid_factor_by_year(spark, registry):
    m = registry.get("green_product_sale", "1.0.0")
    rows = [
        ("ac_grade1", D2022, "air_conditioner", 1, 2),
        ("ac_grade2", D2022, "air_conditioner", 2, 1),
        ("fridge_2021", D2021, "refrigerator", 1, 1),
        ("fridge_2023", D2023, "refrigerator", 1, 1),
        ("fridge_2040", dt.date(2040, 1, 1), "refrigerator", 1, 1),
    ]
    result = _results(spark, m, rows, "category string, energy_grade int, units int")
    assert result["ac_grade1"][0] and abs(result["ac_grade1"][3] - 2 * 18.4) < 1e-12  # 36.8 kg
    assert result["ac_grade2"][0] is False and result["ac_grade2"][5] == {"grade_1_only"}
    fridge_2021, fridge_2023 = result["fridge_2021"][3], result["fridge_2023"][3]
    assert abs(fridge_2021 - 50 * 1 * 0.5568) < 1e-12  # 50 kWh/year x 1 year x 0.5568 kg/kWh = 27.84 kg
    assert fridge_2021 / fridge_2023 == pytest.approx(0.5568 / 0.5306, rel=1e-12)
    assert result["fridge_2040"][0] is False and result["fridge_2040"][5] == {"grid_factor_for_year"}
