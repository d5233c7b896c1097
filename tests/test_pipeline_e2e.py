"""The whole pipeline on a small generated week: every scenario's stream → bronze/silver/gold → progress.

One module-scoped run (7 delivery days, dirty input) feeds every test below; each test
checks one promise: conservation, golden numbers, traceability, idempotent reruns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scope3plus.config import load_config
from scope3plus.contracts import SCENARIOS
from scope3plus.generate import generate
from scope3plus.lake import open_lake
from scope3plus.pipeline import tables
from scope3plus.pipeline.daily import run_day

from .support import register_approved

pytestmark = pytest.mark.e2e
START, DAYS = dt.date(2026, 11, 1), 7
DATES = [START + dt.timedelta(days=i) for i in range(DAYS)]
LAST = DATES[-1]


@pytest.fixture(scope="module")
def week(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("week")
    config = load_config(None, landing=str(root / "landing"), lake=str(root / "lake"), mlflow_dir=str(root / "mlflow"))
    generate(spark, START, DAYS, 1500, Path(config.landing), seed=7, dirty=0.03)
    register_approved(config)
    summaries = [run_day(spark, config, day) for day in DATES]
    return config, open_lake(spark, config.lake), summaries


def landed_lines(landing: str, scenario: str, day: dt.date) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in (Path(landing) / scenario).glob(f"{day}*.jsonl"))


LINEAGE = ("run_id", "latest_run_id", "quarantined_at", "ingested_at",  # which run wrote a row, and when: new on every run
           "line_position")  # and how the read split the file (it orders a file's lines, its values may differ)


def without_run_id(df):
    kept = [c for c in df.columns if c not in LINEAGE]
    return df.select(*kept).orderBy(*kept)


def test_every_line_is_accounted_for_every_day(week):
    config, lake, summaries = week
    runs = lake.read(tables.JOB_RUNS).filter(F.col("stage") == "scenario").collect()
    assert len(runs) == DAYS * len(SCENARIOS)
    for r in runs:
        assert r.landed_lines == landed_lines(config.landing, r.scenario, r.landing_date)
        assert r.landed_lines == r.bronze_rows == r.silver_rows + r.quarantined_rows + r.duplicates_removed
        assert r.conservation_ok and r.status == "succeeded"
    dirty = sum(r.quarantined_rows + r.duplicates_removed for r in runs)
    assert dirty > 0  # the dirty lines were caught, not silently passed


def test_quarantine_keeps_each_bad_line_with_its_reasons(week):
    _, lake, _ = week
    q = lake.read(tables.quarantine("green_trip"))
    assert q.count() > 0
    assert q.filter(F.size("reasons") == 0).count() == 0
    assert q.filter(F.col("value").isNull() | F.col("run_id").isNull()).count() == 0


def test_silver_has_no_raw_user_id_and_unique_event_ids(week):
    _, lake, _ = week
    for scenario in SCENARIOS:
        silver = lake.read(tables.silver(scenario))
        assert "user_id" not in silver.columns and "user_id_key" in silver.columns
        assert silver.count() == silver.select("event_id").distinct().count()


def test_silver_files_hold_no_clear_user_id_in_any_column(week, spark):
    """The gate hashes user ids after its dedupe shuffle, and its silver files also hold columns the
    table does not declare: read every physical column of the files, not the table's."""
    _, lake, _ = week
    from deltalake import DeltaTable

    for scenario in SCENARIOS:
        files = DeltaTable(lake.path(tables.silver(scenario))).file_uris()
        physical = spark.read.parquet(*files)
        assert not [c for c in physical.columns if c == "user_id" or c.startswith("_pii_")], physical.columns
        clear = lake.read(tables.bronze(scenario)).select(F.get_json_object("value", "$.user_id").alias("v")).dropna()
        assert clear.count() > 0  # the comparison below has clear ids to look for
        strings = [c for c, kind in physical.dtypes if kind == "string"]
        held = physical.select(F.explode(F.array(*strings)).alias("v")).join(clear, "v", "left_semi")
        assert held.count() == 0


def test_box_and_cutlery_gold_equal_the_hand_formula_on_silver(week):
    _, lake, _ = week
    gold = lake.read(tables.GOLD_AVOIDED)
    box = lake.read(tables.silver("box_recycling")).filter(F.col("action") == "reuse_ship")
    boxes = box.agg(F.sum("box_count")).first()[0]
    box_kg = gold.filter(F.col("scenario") == "box_recycling").agg(F.sum("avoided_kg")).first()[0]
    assert float(box_kg) == pytest.approx(boxes * 0.037)  # 37 g per reused box, drop_off not credited
    orders = lake.read(tables.silver("no_cutlery_order")).filter(F.col("no_cutlery")).count()
    cutlery_kg = gold.filter(F.col("scenario") == "no_cutlery_order").agg(F.sum("avoided_kg")).first()[0]
    assert float(cutlery_kg) == pytest.approx(orders * 0.0159)  # 15.9 g per no-cutlery order


def test_green_trip_gold_equals_the_hand_formula_on_silver(week):
    _, lake, _ = week
    reduction_g_per_km = {"metro": 46.7, "bus": 26.9, "walk": 26.9, "bike": 26.9, "carpool": 26.9}
    cap_km = {"walk": 20, "bike": 50, "bus": 100, "metro": 100, "carpool": 200}
    trips = lake.read(tables.silver("green_trip")).filter(F.col("navigation_verified")).select("mode", "distance_km")
    expected_kg = sum(t.distance_km * reduction_g_per_km[t.mode] / 1000  # g/pkm × km → kg
                      for t in trips.collect() if t.distance_km <= cap_km[t.mode])  # above the cap: not credited
    got = lake.read(tables.GOLD_AVOIDED).filter(F.col("scenario") == "green_trip").agg(F.sum("avoided_kg")).first()[0]
    assert float(got) == pytest.approx(expected_kg)


def test_gold_rows_are_traceable(week):
    _, lake, summaries = week
    gold = lake.read(tables.GOLD_AVOIDED)
    assert gold.filter(F.col("methodology_id").isNull() | F.col("methodology_version").isNull()
                       | (F.length("methodology_hash") != 64) | F.col("source_file").isNull()).count() == 0
    runs = {r.run_id for r in lake.read(tables.JOB_RUNS).select("run_id").distinct().collect()}
    assert {r.run_id for r in gold.select("run_id").distinct().collect()} <= runs
    assert gold.filter(F.col("baseline_kg") - F.col("project_kg") != F.col("avoided_kg")).count() == 0


def test_late_events_land_on_their_own_day(week):
    _, lake, _ = week
    silver = lake.read(tables.silver("green_trip"))
    assert silver.filter(F.col("event_date") < F.col("landing_date")).count() > 0
    summary_dates = {r.event_date for r in lake.read(tables.GOLD_DAILY).select("event_date").distinct().collect()}
    assert min(summary_dates) < START


def test_a_late_event_does_not_recompute_the_earlier_deliveries_of_its_day(week):
    """Gold rows keep the run id of the delivery that brought them: later deliveries with late events
    of the same days add their own rows and rewrite nothing (cost follows the new data)."""
    _, lake, summaries = week
    run_of = {s.landing_date: s.run_id for s in summaries}
    gold = lake.read(tables.GOLD_AVOIDED)
    by_delivery = {(r.landing_date, r.run_id): r["count"] for r in gold.groupBy("landing_date", "run_id").count().collect()}
    assert {d for d, _ in by_delivery} == set(DATES)
    assert all(run == run_of[d] for d, run in by_delivery)  # e.g. day 1's rows still carry day 1's run id
    late = gold.filter(F.col("event_date") < F.col("landing_date"))
    assert late.filter(F.col("event_date") >= F.lit(START)).count() > 0  # late events of days already computed


def test_daily_summary_is_the_exact_sum_of_gold_over_deliveries(week):
    _, lake, _ = week
    gold = (lake.read(tables.GOLD_AVOIDED).groupBy("scenario", "event_date")
            .agg(F.count(F.lit(1)).alias("events"), F.sum("avoided_kg").alias("kg")))
    summary = (lake.read(tables.GOLD_DAILY).groupBy("scenario", "event_date")
               .agg(F.sum("events").alias("events"), F.sum("avoided_kg").alias("kg")))
    delivered = (lake.read(tables.GOLD_DELIVERY).groupBy("scenario", "event_date")
                 .agg(F.sum("events").alias("events"), F.sum("avoided_kg").alias("kg")))
    expected = sorted(gold.collect())
    assert len(expected) > DAYS  # late days too
    assert sorted(summary.collect()) == expected  # decimals: equal to the last digit, not approximately
    assert sorted(delivered.collect()) == expected
    per_delivery = lake.read(tables.GOLD_DELIVERY).groupBy("landing_date").agg(F.countDistinct("event_date").alias("n"))
    assert max(r.n for r in per_delivery.collect()) > 1  # a delivery contributes to several event days


def test_progress_is_the_sum_of_gold(week):
    config, lake, summaries = week
    assert summaries[-1].as_of == LAST
    gold = lake.read(tables.GOLD_AVOIDED).filter(F.col("event_date") <= F.lit(LAST))
    per_scenario = {r.scenario: float(r.kg) / 1000 for r in gold.groupBy("scenario").agg(F.sum("avoided_kg").alias("kg")).collect()}
    out = subprocess.run([sys.executable, "-m", "scope3plus.cli", "progress", "--lake", config.lake, "--format", "json"],
                         capture_output=True, text=True, check=True)
    progress = json.loads(out.stdout)
    assert progress["as_of"] == LAST.isoformat() and progress["goal_t"] == 1.5e9
    assert progress["cumulative_t"] == pytest.approx(sum(per_scenario.values()))
    for scenario in SCENARIOS:
        assert progress["scenarios"][scenario]["cumulative_t"] == pytest.approx(per_scenario[scenario])
        assert progress["scenarios"][scenario]["methodology_versions"] == f"{scenario}@1.0.0"
    assert progress["remaining_t"] == pytest.approx(1.5e9 - progress["cumulative_t"])
    assert progress["cumulative_low_t"] < progress["cumulative_t"] < progress["cumulative_high_t"]
    cutlery = progress["scenarios"]["no_cutlery_order"]  # 11.8 g and 20 g per order bound the central 15.9 g
    assert cutlery["cumulative_low_t"] == pytest.approx(cutlery["cumulative_t"] * 11.8 / 15.9)
    assert cutlery["cumulative_high_t"] == pytest.approx(cutlery["cumulative_t"] * 20 / 15.9)
    assert progress["days_remaining"] == (dt.date(2035, 12, 31) - LAST).days


def test_rerunning_a_day_changes_nothing(spark, week):
    config, lake, _ = week
    names = [tables.GOLD_AVOIDED, tables.GOLD_DELIVERY, tables.GOLD_DAILY, tables.GOLD_PROGRESS,
             tables.silver("green_trip"), tables.quarantine("secondhand_trade")]
    rerun = rerun_and_compare(spark, config, lake, DATES[2], names)
    assert rerun.as_of == LAST  # rerunning an older day keeps the as-of date


def rerun_and_compare(spark, config, lake, day, names):
    """Rerun ``day`` with ``config``, assert the tables ``names`` are unchanged (run ids aside), return the run."""
    before = {n: without_run_id(lake.read(n)).collect() for n in names}
    rerun = run_day(spark, config, day)
    for n in names:
        assert without_run_id(lake.read(n)).collect() == before[n], n
    return rerun


def test_scenarios_one_after_another_give_the_same_tables(spark, week):
    # the week ran with the profile's default, scenarios gated two at a time; rerun a day one at a time
    config, lake, _ = week
    assert config.scenarios_in_parallel == 2
    names = [tables.GOLD_AVOIDED, tables.GOLD_DELIVERY, tables.GOLD_DAILY, *[tables.silver(s) for s in SCENARIOS],
             *[tables.quarantine(s) for s in SCENARIOS]]
    rerun = rerun_and_compare(spark, dataclasses.replace(config, scenarios_in_parallel=1), lake, DATES[4], names)
    assert rerun.stages["scenarios"] <= rerun.seconds
