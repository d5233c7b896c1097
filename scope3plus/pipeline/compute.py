"""compute: silver → gold.avoided_emissions, one row per credited event.

For each event the approved methodology version in force on its ``event_date`` is
applied; the gold row carries that version's id, version and content hash, the
baseline / project / avoided kgCO2e, the activity quantity, and the lineage (landing
date, source file, run id) back to its bronze line.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce
from typing import Callable

from pyspark.sql import DataFrame, functions as F

from ..faults import fault_point
from ..lake import CommitResult, Lake
from . import tables

# Quantities are fixed-point decimals (kg to the microgram): sums are then exact and do not
# depend on the order Spark adds rows in, so a rerun reproduces every total to the last digit.
KG = "decimal(28,9)"
QUANTITY = "decimal(28,6)"
GOLD_SCHEMA = (
    "scenario string, event_date date, event_id string, event_time timestamp, city string, "
    f"activity_quantity {QUANTITY}, activity_unit string, "
    f"baseline_kg {KG}, project_kg {KG}, avoided_kg {KG}, avoided_low_kg {KG}, avoided_high_kg {KG}, "
    "methodology_id string, methodology_version string, methodology_hash string, "
    "landing_date date, source_file string, run_id string"
)
GOLD_COLUMNS = [c.split()[0] for c in GOLD_SCHEMA.split(", ")]


def in_force(event_date, methodology):
    cond = event_date >= F.lit(methodology.effective_from)
    if methodology.effective_to is not None:
        cond = cond & (event_date <= F.lit(methodology.effective_to))
    return cond


def credited(silver: DataFrame, scenario: str, methodology, run_id: str) -> DataFrame:
    """Gold rows for the events of ``silver`` that ``methodology`` credits, whatever their date."""
    cols = methodology.columns()
    rows = silver.withColumn("event_year", F.year("event_date"))
    return rows.filter(F.coalesce(cols.eligible, F.lit(False))).select(
        F.lit(scenario).alias("scenario"), "event_date", "event_id", "event_time", "city",
        cols.activity_quantity.cast(QUANTITY).alias("activity_quantity"),
        F.lit(cols.activity_unit).alias("activity_unit"),
        cols.baseline_kg.cast(KG).alias("baseline_kg"),
        cols.project_kg.cast(KG).alias("project_kg"),
        (cols.baseline_kg.cast(KG) - cols.project_kg.cast(KG)).cast(KG).alias("avoided_kg"),
        cols.avoided_low_kg.cast(KG).alias("avoided_low_kg"),
        cols.avoided_high_kg.cast(KG).alias("avoided_high_kg"),
        F.lit(methodology.id).alias("methodology_id"),
        F.lit(methodology.version).alias("methodology_version"),
        F.lit(methodology.content_hash).alias("methodology_hash"),
        "landing_date", "source_file", F.lit(run_id).alias("run_id"),
    )


def avoided_emissions(silver: DataFrame, scenario: str, methodologies, run_id: str) -> DataFrame:
    """Credited events of ``silver`` under the methodology version in force on each event's date."""
    parts = [credited(silver.filter(in_force(F.col("event_date"), m)), scenario, m, run_id) for m in methodologies]
    return reduce(DataFrame.unionByName, parts) if parts else silver.sparkSession.createDataFrame([], GOLD_SCHEMA)


def silver_days(lake: Lake, scenario: str, event_dates: list[dt.date]) -> DataFrame | None:
    """Silver rows of ``scenario`` dated on ``event_dates`` (None when the scenario has no silver yet)."""
    if not lake.exists(tables.silver(scenario)):
        return None
    # only the files whose event_date statistics overlap the days asked for: silver is partitioned by
    # delivery date, and events of a given day arrive within the late-data horizon, so this reads
    # the deliveries of those days, not the table's whole history
    span = {"event_date": (min(event_dates), max(event_dates))}
    return lake.read(tables.silver(scenario), ranges=span).filter(F.col("event_date").isin(event_dates))


def gold_frame(lake: Lake, methodologies: dict[str, list], event_dates: list[dt.date], run_id: str,
               extra_silver: dict[str, DataFrame] | None = None) -> DataFrame:
    """Gold rows (GOLD_COLUMNS) of every scenario of ``methodologies`` on ``event_dates``, from all silver
    rows of those days (plus ``extra_silver[scenario]``: rows about to be added to silver). Nothing is written."""
    parts = []
    for scenario, versions in methodologies.items():
        silver = silver_days(lake, scenario, event_dates)
        extra = (extra_silver or {}).get(scenario)
        if extra is not None:
            extra = extra.filter(F.col("event_date").isin(event_dates))
            silver = extra if silver is None else silver.unionByName(extra.select(*silver.columns))
        if silver is not None:
            parts.append(avoided_emissions(silver, scenario, versions, run_id).select(*GOLD_COLUMNS))
    return reduce(DataFrame.unionByName, parts) if parts else lake.spark.createDataFrame([], GOLD_SCHEMA)


def gold_partitions(scenarios: list[str], event_dates: list[dt.date]) -> dict[str, list]:
    return {"scenario": list(scenarios), "event_date": list(event_dates)}


def _gold_metadata(scenarios: list[str], run_id: str, job: str) -> dict:
    return {"run_id": run_id, "job": job, **({"scenario": scenarios[0]} if len(scenarios) == 1 else {})}


def write_gold(lake: Lake, gold: DataFrame, scenarios: list[str], event_dates: list[dt.date], run_id: str,
               job: str = "compute") -> CommitResult:
    """Replace the (scenario, event_date) partitions of gold.avoided_emissions with ``gold``, in one commit."""
    return lake.replace_partitions(tables.GOLD_AVOIDED, gold, tables.EVENT_PARTITION,
                                   gold_partitions(scenarios, event_dates), metadata=_gold_metadata(scenarios, run_id, job))


def compute(lake: Lake, methodologies: dict[str, list], event_dates: list[dt.date], run_id: str,
            check: Callable[[DataFrame], None] | None = None,
            extra_silver: dict[str, DataFrame] | None = None, job: str = "compute") -> CommitResult | None:
    """Recompute gold for every scenario on ``event_dates`` from all silver rows of those days,
    and replace those (scenario, event_date) partitions in one commit.

    ``check`` (the gold data-quality suites) sees the computed rows BEFORE anything is written;
    it raises (GateFailed) to stop the run with gold untouched.
    """
    if not event_dates:
        return None
    gold = gold_frame(lake, methodologies, event_dates, run_id, extra_silver)
    if check is None:
        return write_gold(lake, gold, list(methodologies), event_dates, run_id, job)
    # Computed once, into the lake's staging area: the checks read the staged rows, and only then
    # are those very files committed to gold (no second computation, no copy on delta-rs).
    staged = lake.stage(tables.GOLD_AVOIDED, gold, tables.EVENT_PARTITION)
    try:
        check(staged.frame(lake.spark))
    except BaseException:
        lake.discard(staged)
        raise
    fault_point("compute.staged")
    return lake.commit_staged(staged, gold_partitions(list(methodologies), event_dates),
                              _gold_metadata(list(methodologies), run_id, job))
