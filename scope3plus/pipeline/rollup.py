"""rollup: gold.avoided_emissions → gold.daily_summary → gold.progress.

The daily summary is recomputed only for the (scenario, event_date) partitions a run
touched; the progress table is then derived from the summary alone (a few thousand
rows), never by rescanning events.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, functions as F

from ..config import Config
from ..contracts import SCENARIOS
from ..lake import CommitResult, Lake, read_small_table
from . import tables

TOTAL = "total"
DAILY_KEYS = ["scenario", "event_date", "city", "methodology_id", "methodology_version", "methodology_hash", "activity_unit"]
DAILY_SCHEMA = (
    "scenario string, event_date date, city string, methodology_id string, methodology_version string, "
    "methodology_hash string, activity_unit string, events long, activity_quantity decimal(38,6), "
    "baseline_kg decimal(38,9), project_kg decimal(38,9), avoided_kg decimal(38,9), avoided_t decimal(38,12), "
    "avoided_low_t decimal(38,12), avoided_high_t decimal(38,12), run_id string"
)
DAILY_COLUMNS = [c.split()[0] for c in DAILY_SCHEMA.split(", ")]


def daily_summary(gold: DataFrame, run_id: str) -> DataFrame:
    """Scenario × event date × city × methodology version: events, activity and kgCO2e."""
    return gold.groupBy(*DAILY_KEYS).agg(
        F.count(F.lit(1)).alias("events"),
        F.sum("activity_quantity").alias("activity_quantity"),
        F.sum("baseline_kg").alias("baseline_kg"),
        F.sum("project_kg").alias("project_kg"),
        F.sum("avoided_kg").alias("avoided_kg"),
        F.sum("avoided_low_kg").alias("avoided_low_kg"),
        F.sum("avoided_high_kg").alias("avoided_high_kg"),
    ).select(
        "*",
        *[(F.col(f"avoided{end}_kg") / F.lit(1000)).cast("decimal(38,12)").alias(f"avoided{end}_t") for end in ("", "_low", "_high")],
        F.lit(run_id).alias("run_id"),
    )


def refresh_daily_summary(lake: Lake, scenarios: list[str], event_dates: list[dt.date], run_id: str) -> CommitResult | None:
    """Recompute the summary of the given (scenario, event_date) partitions from gold."""
    if not event_dates or not lake.exists(tables.GOLD_AVOIDED):
        return None
    partitions = {"scenario": scenarios, "event_date": event_dates}
    gold = lake.read(tables.GOLD_AVOIDED, partitions)
    return lake.replace_partitions(
        tables.GOLD_DAILY, daily_summary(gold, run_id).select(*DAILY_COLUMNS),
        tables.EVENT_PARTITION, partitions, metadata={"run_id": run_id, "job": "rollup"},
    )


def progress(summary: DataFrame, as_of: dt.date, config: Config, run_id: str,
             restated_t: dict[str, float] | None = None) -> DataFrame:
    """Cumulative avoided tCO2e per scenario and in total, as of ``as_of``, against the goal."""
    window = summary.filter((F.col("event_date") >= F.lit(config.goal_start)) & (F.col("event_date") <= F.lit(as_of)))
    trailing_start = as_of - dt.timedelta(days=364)
    version = F.concat_ws("@", "methodology_id", "methodology_version")

    def per_scope(df):
        return df.agg(
            F.sum("events").alias("events"),
            # exact decimal sums first, then doubles: the same inputs always give the same numbers
            F.sum(F.when(F.col("event_date") == F.lit(as_of), F.col("avoided_t"))).cast("double").alias("day_t"),
            F.sum("avoided_t").cast("double").alias("cumulative_t"),
            F.sum("avoided_low_t").cast("double").alias("cumulative_low_t"),
            F.sum("avoided_high_t").cast("double").alias("cumulative_high_t"),
            F.sum(F.when(F.col("event_date") >= F.lit(trailing_start), F.col("avoided_t"))).cast("double").alias("trailing_365d_t"),
            F.concat_ws(", ", F.array_sort(F.collect_set(
                F.when(F.col("event_date") >= F.lit(trailing_start), version)))).alias("methodology_versions"),
        )
    scenarios = per_scope(window.groupBy(F.col("scenario").alias("scope")))
    total = per_scope(window).select(F.lit(TOTAL).alias("scope"), "*")
    all_scopes = spark_scopes(summary.sparkSession)
    rows = all_scopes.join(scenarios.unionByName(total), "scope", "left").na.fill(
        {"events": 0, "day_t": 0.0, "cumulative_t": 0.0, "cumulative_low_t": 0.0, "cumulative_high_t": 0.0,
         "trailing_365d_t": 0.0, "methodology_versions": ""})
    days_remaining = (config.goal_end - as_of).days
    years_remaining = max(days_remaining, 1) / 365.25
    goal = config.goal_tonnes
    is_total = F.col("scope") == TOTAL
    remaining = F.greatest(F.lit(goal) - F.col("cumulative_t"), F.lit(0.0))
    required = F.when(is_total, remaining / F.lit(years_remaining))
    changes = dict(restated_t or {})
    changes[TOTAL] = sum(changes.values())
    restatement = F.coalesce(F.create_map(*[F.lit(x) for kv in changes.items() for x in kv])[F.col("scope")],
                             F.lit(0.0)) if changes else F.lit(0.0)
    return rows.select(
        "scope", F.lit(as_of).alias("as_of"), F.col("events").cast("long"), "day_t",
        "cumulative_t", "cumulative_low_t", "cumulative_high_t",
        (F.col("cumulative_t") - restatement).alias("as_reported_cumulative_t"),
        restatement.alias("restatement_change_t"),
        "trailing_365d_t",
        F.lit(goal).alias("goal_t"),
        (F.col("cumulative_t") / F.lit(goal)).alias("share_of_goal"),
        F.when(is_total, remaining).alias("remaining_t"),
        F.lit(days_remaining).cast("long").alias("days_remaining"),
        required.alias("required_t_per_year"),
        F.when(is_total, F.col("trailing_365d_t") >= required).alias("on_track"),
        "methodology_versions", F.lit(run_id).alias("run_id"),
    ).orderBy(F.when(is_total, 1).otherwise(0), "scope")


def spark_scopes(spark) -> DataFrame:
    """Every scenario and the total, so a scenario with no events yet still shows a row."""
    return spark.createDataFrame([(s,) for s in (*SCENARIOS, TOTAL)], "scope string")


def previous_as_of(lake: Lake) -> dt.date | None:
    if not lake.exists(tables.GOLD_PROGRESS):
        return None
    dates = [d for d in read_small_table(lake.path(tables.GOLD_PROGRESS)).column("as_of").to_pylist() if d]
    return max(dates) if dates else None


def restatement_changes(lake: Lake) -> dict[str, float]:
    """tCO2e that restatements added (or removed) per scenario: restated minus as first reported."""
    if not lake.exists(tables.RESTATEMENTS):
        return {}
    changes: dict[str, float] = {}
    for r in read_small_table(lake.path(tables.RESTATEMENTS)).to_pylist():
        changes[r["scenario"]] = changes.get(r["scenario"], 0.0) + float(r["tco2e_after"] - r["tco2e_before"])
    return changes


def refresh_progress(lake: Lake, config: Config, run_date: dt.date, run_id: str) -> tuple[dt.date, CommitResult]:
    """Overwrite gold.progress as of the latest date run so far (a rerun of an older date keeps it)."""
    earlier = previous_as_of(lake)
    as_of = max(run_date, earlier) if earlier else run_date
    spark = lake.spark
    summary = lake.read(tables.GOLD_DAILY) if lake.exists(tables.GOLD_DAILY) else spark.createDataFrame([], DAILY_SCHEMA)
    commit = lake.overwrite(tables.GOLD_PROGRESS, progress(summary, as_of, config, run_id, restatement_changes(lake)),
                            metadata={"run_id": run_id, "job": "rollup"})
    return as_of, commit
