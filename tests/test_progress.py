"""gold.progress on a hand-built daily summary, with every golden number worked out by hand.

The summary spans 2020-2026 for two scenarios; as of 2026-06-15 (fiscal year FY2027 began on
2026-04-01). A reported aggregate covers FY2023 (2022-04-01..2023-03-31, 1,000 t) and overlaps
40 t of box_recycling events; a second one (FY2027, 5,000 t) has not ended by the as-of date.

| date       | green_trip | box_recycling | note                                        |
|------------|-----------:|--------------:|---------------------------------------------|
| 2020-12-31 |          7 |               | before the goal's start: not counted        |
| 2022-06-15 |            |            40 | inside reported FY2023: left out of combined|
| 2024-04-01 |        400 |               | FY2025                                      |
| 2024-12-01 |            |           600 | FY2025                                      |
| 2025-05-05 |            |           200 | FY2026                                      |
| 2025-10-10 |        780 |               | FY2026                                      |
| 2026-02-14 |         20 |               | FY2026, calendar 2026                       |
| 2026-04-01 |         50 |               | FY2027                                      |
| 2026-06-01 |         10 |               | June 2026                                   |
| 2026-06-15 |          5 |             2 | the as-of day                               |
| 2026-06-16 |        999 |               | after the as-of day: not counted            |
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from decimal import Decimal

import pytest

from scope3plus import aggregates
from scope3plus.aggregates import ReportedAggregate
from scope3plus.config import load_config
from scope3plus.contracts import SCENARIOS
from scope3plus.errors import S3PError
from scope3plus.lake import open_lake
from scope3plus.paths import conf_dir
from scope3plus.pipeline import tables
from scope3plus.pipeline.rollup import (DAILY_SCHEMA, PROGRESS_COLUMNS, TOO_LITTLE_HISTORY, TOTAL, combined_days, fiscal_year_label,
                                        fiscal_year_start, latest_possible_delivery, latest_run_status, monthly_combined,
                                        progress, progress_metrics, refresh_run_status, refresh_progress)
from scope3plus.tracking import JOB_RUNS_COLUMNS, JOB_RUNS_SCHEMA, record_job_runs

D = dt.date
AS_OF = D(2026, 6, 15)
GOAL = 1.5e9
FY2023 = ReportedAggregate("FY2023", D(2022, 4, 1), D(2023, 3, 31), 1000.0, "https://example.org/fy2023")
FY2027 = ReportedAggregate("FY2027", D(2026, 4, 1), D(2027, 3, 31), 5000.0, "https://example.org/fy2027")
EVENTS = {
    "green_trip": [(D(2020, 12, 31), 7), (D(2024, 4, 1), 400), (D(2025, 10, 10), 780), (D(2026, 2, 14), 20),
                   (D(2026, 4, 1), 50), (D(2026, 6, 1), 10), (D(2026, 6, 15), 5), (D(2026, 6, 16), 999)],
    "box_recycling": [(D(2022, 6, 15), 40), (D(2024, 12, 1), 600), (D(2025, 5, 5), 200), (D(2026, 6, 15), 2)],
}

# ---- the hand arithmetic, shared by the tests below ----
# days from 2026-06-15 to 2035-12-31: 199 left in 2026 (15 in June + 31+31+30+31+30+31),
# then 2027..2035 = 9 × 365 + 2 leap days (2028, 2032) = 3,287
DAYS_REMAINING = 199 + 3287                     # 3,486


def summary_df(spark):
    rows = []
    for scenario, days in EVENTS.items():
        for day, tonnes in days:
            t = Decimal(tonnes)  # low/high: ±10 % of the central value
            rows.append((scenario, day, "Hangzhou", scenario, "1.0.0", "hash", "unit", 1, t, t * 1000, Decimal(0),
                         t * 1000, t, t * Decimal("0.9"), t * Decimal("1.1"), "run-0"))
    return spark.createDataFrame(rows, DAILY_SCHEMA)


def job_run(scenario, landing, status, quarantined, landed, ended_hour, job="run", stage="scenario"):
    row = {"run_id": f"run-{landing}-{ended_hour}", "job": job, "stage": stage, "scenario": scenario,
           "landing_date": landing, "status": status, "ended_at": dt.datetime(2026, 6, 20, ended_hour),
           "landed_lines": landed, "quarantined_rows": quarantined}
    return tuple(row.get(c) for c in JOB_RUNS_COLUMNS)


JOB_RUNS = [
    job_run("green_trip", D(2026, 6, 14), "succeeded", 10, 1000, 1),
    job_run("green_trip", D(2026, 6, 15), "failed", 30, 1000, 2),       # latest delivery up to the as-of date
    job_run("green_trip", D(2026, 6, 16), "succeeded", 0, 1000, 3),     # after the as-of date: ignored
    job_run("box_recycling", D(2026, 6, 15), "succeeded", 50, 500, 4),
    job_run("box_recycling", D(2026, 6, 15), "succeeded", 5, 500, 5),   # a rerun of that delivery replaces it
    job_run("box_recycling", D(2026, 6, 15), "failed", 500, 500, 6, job="restate"),  # not a daily run
]


@pytest.fixture(scope="module")
def config():
    return dataclasses.replace(load_config(None), fiscal_year_start_month=4)


@pytest.fixture(scope="module")
def rows(spark, config):
    runs = latest_run_status(spark.createDataFrame(JOB_RUNS, JOB_RUNS_SCHEMA), AS_OF)
    df = progress(summary_df(spark), AS_OF, config, "run-1", {"green_trip": 12.5}, [FY2023, FY2027], runs)
    assert df.columns == PROGRESS_COLUMNS
    return {r["scope"]: r.asDict() for r in df.collect()}


def test_fiscal_years_are_named_after_the_year_they_end_in():
    assert fiscal_year_start(AS_OF, 4) == D(2026, 4, 1) and fiscal_year_label(AS_OF, 4) == "FY2027"
    assert fiscal_year_start(D(2026, 3, 31), 4) == D(2025, 4, 1) and fiscal_year_label(D(2026, 3, 31), 4) == "FY2026"
    assert fiscal_year_label(AS_OF, 1) == "FY2026"  # a calendar fiscal year


def test_every_scope_has_a_row(rows):
    assert set(rows) == {*SCENARIOS, TOTAL}
    idle = rows["secondhand_trade"]
    assert (idle["events"], idle["cumulative_t"], idle["projected_linear_t"], idle["projected_growth_t"]) == (0, 0.0, 0.0, None)


def test_period_totals(rows):
    g, b, t = rows["green_trip"], rows["box_recycling"], rows[TOTAL]
    assert all(r["as_of"] == AS_OF and r["fiscal_year"] == "FY2027" for r in rows.values())
    assert (g["day_t"], b["day_t"], t["day_t"]) == (5, 2, 7)
    assert (g["month_to_date_t"], t["month_to_date_t"]) == (10 + 5, 10 + 5 + 2)
    assert (g["calendar_year_to_date_t"], t["calendar_year_to_date_t"]) == (20 + 50 + 10 + 5, 85 + 2)
    assert (g["fiscal_year_to_date_t"], t["fiscal_year_to_date_t"]) == (50 + 10 + 5, 65 + 2)  # from 2026-04-01
    assert (g["events"], b["events"], t["events"]) == (6, 4, 10)  # 7 t before 2021 and 999 t after the as-of day left out


def test_cumulative_reported_and_combined_never_double_count(rows):
    g, b, t = rows["green_trip"], rows["box_recycling"], rows[TOTAL]
    assert g["cumulative_t"] == 400 + 780 + 20 + 50 + 10 + 5 == 1265
    assert b["cumulative_t"] == 40 + 600 + 200 + 2 == 842
    assert t["cumulative_t"] == 2107                         # event-derived: every event day, as before
    assert t["cumulative_low_t"] == pytest.approx(2107 * 0.9) and t["cumulative_high_t"] == pytest.approx(2107 * 1.1)
    # FY2023 has ended: it counts; its 40 t of box events are left out; FY2027 has not ended: it does not count,
    # and the 65 t of events inside it stay in
    assert (t["reported_cumulative_t"], t["overlap_excluded_t"]) == (1000, 40)
    assert (b["reported_cumulative_t"], b["overlap_excluded_t"], b["combined_cumulative_t"]) == (0, 40, 842 - 40)
    assert g["combined_cumulative_t"] == 1265
    assert t["combined_cumulative_t"] == 2107 - 40 + 1000 == 3067
    assert sum(rows[s]["combined_cumulative_t"] for s in SCENARIOS) + t["reported_cumulative_t"] == t["combined_cumulative_t"]
    assert t["share_of_goal"] == pytest.approx(2107 / GOAL)
    assert t["combined_share_of_goal"] == pytest.approx(3067 / GOAL)


def test_restated_and_as_reported(rows):
    g, t = rows["green_trip"], rows[TOTAL]
    assert (g["restatement_change_t"], g["as_reported_cumulative_t"]) == (12.5, 1265 - 12.5)
    assert (t["restatement_change_t"], t["as_reported_cumulative_t"]) == (12.5, 2107 - 12.5)


def test_remaining_and_required_rate_against_trailing_365_days(rows):
    g, b, t = rows["green_trip"], rows["box_recycling"], rows[TOTAL]
    assert t["days_remaining"] == DAYS_REMAINING == 3486
    assert t["remaining_t"] == GOAL - 3067
    assert t["required_t_per_year"] == pytest.approx((GOAL - 3067) / (3486 / 365.25))  # ≈ 157.16 Mt a year
    # trailing 365 days: 2025-06-16 .. 2026-06-15
    assert (g["trailing_365d_t"], g["trailing_365d_days_with_data"]) == (780 + 20 + 50 + 10 + 5, 5)
    assert (b["trailing_365d_t"], b["trailing_365d_days_with_data"]) == (2, 1)  # 2025-05-05 is before the window
    assert t["trailing_365d_t"] == 867
    assert g["remaining_t"] is None and g["required_t_per_year"] is None and g["on_track"] is None


def test_linear_projection_and_on_track(rows):
    g, b, t = rows["green_trip"], rows["box_recycling"], rows[TOTAL]
    assert t["projected_linear_t"] == pytest.approx(3067 + 867 * 3486 / 365.25)  # ≈ 11,341.8 t
    assert g["projected_linear_t"] == pytest.approx(1265 + 865 * 3486 / 365.25)
    assert b["projected_linear_t"] == pytest.approx(802 + 2 * 3486 / 365.25)
    assert t["on_track"] is False


def test_no_growth_trend_without_three_complete_fiscal_years_of_data_in_every_month(rows):
    """FY2023 is covered by its reported total; FY2025 and FY2026 have events in a few months only (no year's
    total): no trend, and nothing in the table claims one. Scenario rows never carry the trend."""
    t = rows[TOTAL]
    assert t["growth_method"] == TOO_LITTLE_HISTORY
    assert (t["projected_growth_t"], t["projected_growth_low_t"], t["projected_growth_high_t"],
            t["growth_slope_t_per_year"]) == (None, None, None, None)
    assert all(rows[s]["growth_method"] is None and rows[s]["projected_growth_t"] is None for s in SCENARIOS)
    assert "on_track_growth" not in t  # one status rule: on_track


def test_the_growth_trend_through_three_fiscal_years_with_its_band(spark):
    """Reported FY2023 20 Mt, FY2024 30 Mt, FY2025 46 Mt (April-March; each month covered), no events,
    as of 2026-11-07 (the report's golden case, tests/test_report.py, worked out there):
    x = 2022, 2023, 2024; slope 13 Mt a year, intercept 32 Mt at x̄ = 2023, s = √6 Mt.
    Ahead: 8 Nov 2026 - 31 Mar 2027 = 144/365 of x 2026; x 2027..2034 whole; 1 Apr - 31 Dec 2035 = 275/366 of x 2035.
    W = 144/365 + 8 + 275/366, lever = Σ f·(x − 2023) = 3·144/365 + (4 + … + 11) + 12·275/366;
    added = 32 Mt·W + 13 Mt·lever = 1,205,267,790 t; band ±2·√6 Mt·√(W²/3 + lever²/2) = ±244,551,799 t.
    Combined so far: the three reported totals, 96 Mt."""
    config = load_config(None)
    years = [ReportedAggregate(f"FY{2023 + i}", D(2022 + i, 4, 1), D(2023 + i, 3, 31), tonnes, "https://example.org")
             for i, tonnes in enumerate((20e6, 30e6, 46e6))]
    as_of = D(2026, 11, 7)
    total = {r["scope"]: r.asDict() for r in progress(spark.createDataFrame([], DAILY_SCHEMA), as_of, config, "run-1",
                                                      reported=years).collect()}[TOTAL]
    w = 144 / 365 + 8 + 275 / 366
    lever = 3 * 144 / 365 + (4 + 5 + 6 + 7 + 8 + 9 + 10 + 11) + 12 * 275 / 366
    added = w * 32e6 + 13e6 * lever
    spread = 2 * math.sqrt(6) * 1e6 * math.sqrt(w * w / 3 + lever * lever / 2)
    assert added == pytest.approx(1_205_267_790, abs=1) and spread == pytest.approx(244_551_799, abs=1)
    assert total["combined_cumulative_t"] == 96e6
    assert total["projected_growth_t"] == pytest.approx(96e6 + added)
    assert (total["projected_growth_low_t"], total["projected_growth_high_t"]) == pytest.approx(
        (96e6 + added - spread, 96e6 + added + spread))
    assert total["growth_slope_t_per_year"] == pytest.approx(13e6)
    assert total["growth_method"] == ("least-squares straight line through 3 complete fiscal-year totals "
                                      "(FY2023, FY2024, FY2025), band of ±2 standard errors")
    assert total["on_track"] is False  # the status rule: no events in the last 365 days, so no pace


def test_latest_run_status_is_the_latest_delivery_up_to_the_as_of_date(rows):
    g, b, t = rows["green_trip"], rows["box_recycling"], rows[TOTAL]
    assert (g["latest_run_landing_date"], g["latest_run_status"], g["latest_run_quarantined_share"]) == (AS_OF, "failed", 30 / 1000)
    assert (b["latest_run_status"], b["latest_run_quarantined_share"], b["latest_run_id"]) == ("succeeded", 5 / 500, "run-2026-06-15-5")
    assert (t["latest_run_status"], t["latest_run_quarantined_share"]) == ("failed", pytest.approx((30 + 5) / (1000 + 500)))
    assert rows["secondhand_trade"]["latest_run_status"] is None


def test_methodology_versions_in_force(rows):
    assert rows["green_trip"]["methodology_versions"] == "green_trip@1.0.0"
    assert rows[TOTAL]["methodology_versions"] == "box_recycling@1.0.0, green_trip@1.0.0"


def test_monthly_history_leaves_out_event_days_inside_reported_periods(spark, config, rows):
    summary = summary_df(spark).toArrow()  # computed with pyarrow, no Spark: the report's chart
    got = {(r["scenario"], r["month"]): r["tonnes"] for r in monthly_combined(summary, AS_OF, config, [FY2023, FY2027])}
    assert ("box_recycling", D(2022, 6, 1)) not in got  # reported FY2023 wins
    assert got[("green_trip", D(2026, 6, 1))] == 10 + 5 and got[("green_trip", D(2026, 4, 1))] == 50  # FY2027 not over
    assert sum(got.values()) == 3067 - 1000
    # the same days count as in progress's combined cumulative (Spark): one rule, combined_days
    total = rows[TOTAL]
    assert sum(got.values()) == total["combined_cumulative_t"] - total["reported_cumulative_t"]


def test_the_days_that_count_in_the_combined_cumulative():
    assert combined_days(D(2021, 1, 1), AS_OF, []) == [(D(2021, 1, 1), AS_OF)]
    assert combined_days(D(2021, 1, 1), AS_OF, [FY2027, FY2023]) == [(D(2021, 1, 1), D(2022, 3, 31)),
                                                                     (D(2023, 4, 1), D(2026, 3, 31))]
    early = ReportedAggregate("old", D(2020, 1, 1), D(2021, 1, 31), 1.0, "https://example.org/old")
    overlapping = ReportedAggregate("x", D(2022, 1, 1), D(2022, 12, 31), 1.0, "https://example.org/x")
    assert combined_days(D(2021, 1, 1), D(2023, 12, 31), [early, FY2023, overlapping]) == [
        (D(2021, 2, 1), D(2021, 12, 31)), (D(2023, 4, 1), D(2023, 12, 31))]


def test_progress_metrics_for_mlflow(rows):
    metrics = progress_metrics(list(rows.values()))
    assert metrics["progress.total.combined_cumulative_t"] == 3067
    assert metrics["progress.green_trip.projected_linear_t"] == rows["green_trip"]["projected_linear_t"]
    assert "progress.total.projected_growth_t" not in metrics  # no trend here (None): not logged
    assert metrics["progress.total.on_track"] == 0.0
    assert "progress.green_trip.remaining_t" not in metrics  # None: not logged


def test_the_shipped_aggregates_file(config):
    loaded = aggregates.read_file(config.reported_aggregates, config)
    assert [(a.aggregate_id, a.period_start, a.period_end, a.tco2e) for a in loaded] == [
        ("FY2023", D(2022, 4, 1), D(2023, 3, 31), 22_907_000.0),
        ("FY2025", D(2024, 4, 1), D(2025, 3, 31), 59_208_000.0),
    ]
    assert all(a.source.startswith("http") and a.note for a in loaded)


@pytest.mark.parametrize("entries, message", [
    ("- {id: A, period_start: 2022-04-01, period_end: 2023-03-31, tco2e: 1, source: s}\n"
     "- {id: B, period_start: 2023-03-01, period_end: 2023-12-31, tco2e: 1, source: s}", "aggregates A and B overlap"),
    ("- {id: A, period_start: 2020-04-01, period_end: 2021-03-31, tco2e: 1, source: s}", "outside the goal window"),
    ("- {id: A, period_start: 2022-04-01, period_end: 2023-03-31, tco2e: 1}", "aggregate #1: missing source"),
    ("- {id: A, period_start: 2022-04-01, period_end: 2023-03-31, tco2e: -5, source: s}",
     r"aggregate A: tco2e must be a finite number of tonnes above 0 and at most 1e\+12, got -5"),
    *[(f"- {{id: A, period_start: 2022-04-01, period_end: 2023-03-31, tco2e: {tonnes}, source: s}}",
       f"aggregate A: tco2e must be a finite number of tonnes above 0 and at most 1e\\+12, got {got}")
      for tonnes, got in [(".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan"), ("0", "0"), ("1e400", "'1e400'"),
                          ("2e12", "'2e12'"), ("true", "True"), ("many", "'many'")]],
    ("- {id: A, period_start: 2023-04-01, period_end: 2023-03-31, tco2e: 1, source: s}", "is before period_start"),
])
def test_a_bad_aggregates_file_is_one_clear_error(tmp_path, config, entries, message):
    path = tmp_path / "aggregates.yaml"
    path.write_text("aggregates:\n" + "\n".join("  " + line for line in entries.splitlines()) + "\n", encoding="utf-8")
    with pytest.raises(S3PError, match=message):
        aggregates.read_file(path, config)


def test_an_infinite_aggregate_is_refused_by_aggregates_load_before_anything_is_written(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "aggregates.yaml"
    path.write_text("aggregates:\n  - {id: FY2023, period_start: 2022-04-01, period_end: 2023-03-31, tco2e: .inf, "
                    "source: 'https://example.org/fy2023'}\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "scope3plus.cli", "aggregates", "load", "--file", str(path),
                           "--lake", str(tmp_path / "lake")], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (2, f"s3p: error: {path}: aggregate FY2023: tco2e must be a finite "
                                                 "number of tonnes above 0 and at most 1e+12, got inf\n")
    assert not (tmp_path / "lake" / "gold").exists()


@pytest.mark.parametrize("profile, message", [
    ("goal: {tonnes: 0}", "goal.tonnes must be a finite number of tonnes above 0 and at most 1e+12, got 0"),
    ("goal: {tonnes: -1.5e9}", "goal.tonnes must be a finite number of tonnes above 0 and at most 1e+12, got '-1.5e9'"),
    ("goal: {tonnes: .inf}", "goal.tonnes must be a finite number of tonnes above 0 and at most 1e+12, got inf"),
    ("goal: {tonnes: .nan}", "goal.tonnes must be a finite number of tonnes above 0 and at most 1e+12, got nan"),
    ("goal: {start: 2035-12-31, end: 2021-01-01}", "goal.end 2021-01-01 must be after goal.start 2035-12-31"),
    ("late_data_horizon_days: -1", "late_data_horizon_days must be a whole number, from 0 to 3660, got -1"),
    ("late_data_horizon_days: 99999999999999", "late_data_horizon_days must be a whole number, from 0 to 3660, got"),
    ("future_tolerance_days: .inf", "future_tolerance_days must be a whole number, from 0 to 3660, got inf"),
    ("future_tolerance_days: 1.5", "future_tolerance_days must be a whole number, from 0 to 3660, got 1.5"),
    ("time_travel_retention_hours: 0", "time_travel_retention_hours must be a whole number, from 1 to 87840, got 0"),
    ("time_travel_retention_hours: 1e99", "time_travel_retention_hours must be a whole number, from 1 to 87840"),
])
def test_a_profile_number_out_of_range_is_refused_naming_its_key(tmp_path, profile, message):
    path = tmp_path / "p.yaml"
    path.write_text(profile + "\n", encoding="utf-8")
    with pytest.raises(S3PError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: {message}")


def test_the_shipped_profiles_numbers_are_within_range():
    assert {load_config(None).goal_tonnes, load_config(conf_dir() / "cluster.yaml").goal_tonnes} == {1.5e9}


def test_refresh_on_a_lake_counts_loaded_aggregates_and_brings_in_the_latest_run(spark, config, tmp_path):
    """The lake path end to end: load aggregates, refresh progress, record a later rerun of the
    as-of delivery, and refresh_run_status (what run_day calls once its run is recorded)."""
    lake = open_lake(spark, tmp_path / "lake")
    lake.overwrite(tables.GOLD_DAILY, summary_df(spark), partition_by=tables.EVENT_PARTITION)
    path = tmp_path / "aggregates.yaml"
    path.write_text("aggregates:\n  - {id: FY2023, period_start: 2022-04-01, period_end: 2023-03-31, "
                    "tco2e: 1000, source: 'https://example.org/fy2023', note: test}\n", encoding="utf-8")
    aggregates.load(lake, path, config, "agg-1")
    assert aggregates.read_table(lake.root) == [dataclasses.replace(FY2023, note="test")]
    record_job_runs(lake, [dict(zip(JOB_RUNS_COLUMNS, r)) for r in JOB_RUNS[:2]])
    refresh_progress(lake, config, AS_OF, "run-1")
    before = {r["scope"]: r for r in refresh_run_status(lake)}
    assert before[TOTAL]["combined_cumulative_t"] == 3067 and before[TOTAL]["reported_cumulative_t"] == 1000
    assert before["green_trip"]["latest_run_status"] == "failed"
    record_job_runs(lake, [dict(zip(JOB_RUNS_COLUMNS, job_run("green_trip", AS_OF, "succeeded", 8, 800, 9)))])
    after = {r["scope"]: r for r in refresh_run_status(lake)}
    assert (after["green_trip"]["latest_run_status"], after["green_trip"]["latest_run_quarantined_share"]) == ("succeeded", 0.01)
    unchanged = [c for c in PROGRESS_COLUMNS if not c.startswith("latest_run_")]
    assert all(after[s][c] == before[s][c] for s in after for c in unchanged)


def test_progress_stays_as_of_the_latest_delivery_that_is_not_in_the_future(spark, config, tmp_path):
    """Issue 21, item 12: a delivery run with --allow-future-delivery (2035-12-30, after today plus
    the future tolerance) does not move as_of; on a lake that knows only that one, the next delivery
    that is not in the future takes as_of back."""
    future = dt.date(2035, 12, 30)
    assert future > latest_possible_delivery(config)
    lake = open_lake(spark, tmp_path / "lake")
    lake.overwrite(tables.GOLD_DAILY, summary_df(spark), partition_by=tables.EVENT_PARTITION)

    def as_of(day):  # refresh after a run of ``day``; the one as_of gold.progress then holds
        returned, _ = refresh_progress(lake, config, day, f"run-{day}")
        stored = [r.as_of for r in lake.read(tables.GOLD_PROGRESS).select("as_of").distinct().collect()]
        assert stored == [returned]
        return returned

    assert as_of(AS_OF) == AS_OF
    assert as_of(future) == AS_OF  # the future delivery is run, and progress stays as of 2026-06-15
    assert as_of(AS_OF + dt.timedelta(days=1)) == dt.date(2026, 6, 16)  # later normal runs move it as before
    fresh = open_lake(spark, tmp_path / "fresh")
    fresh.overwrite(tables.GOLD_DAILY, summary_df(spark), partition_by=tables.EVENT_PARTITION)
    lake = fresh
    assert as_of(future) == future  # no other delivery known: as of the one run
    assert as_of(AS_OF) == AS_OF  # a delivery that is not in the future takes it back from 2035-12-30
