"""compute: silver → gold.avoided_emissions, one row per credited event.

For each event the approved methodology version in force on its ``event_date`` is
applied; the gold row carries that version's id, version and content hash, the
baseline / project / avoided kgCO2e, the activity quantity, and the lineage (landing
date, source file, run id) back to its bronze line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import reduce
from typing import Callable

from pyspark.sql import DataFrame, Observation, functions as F

from ..catalog import table
from ..faults import fault_point
from ..lake import CommitResult, Lake
from ..methodology.spark_compile import KEY_MATCHES
from . import tables

# Quantities are fixed-point decimals (kg to the microgram): sums are then exact and do not
# depend on the order Spark adds rows in, so a rerun reproduces every total to the last digit.
# Up to 18 digits Spark keeps a decimal in a 64-bit integer throughout; above, as a BigDecimal, and
# gold's write and sums took ~25 % more CPU (BENCHMARKS.md, session 9). 18 digits hold up to 10^9 kg
# (1 Mt) for one event, and 10^12 units of activity: a value beyond fails the run (Spark's ANSI
# overflow error) before anything is written. Sums are wider (gold.delivery_summary: 38 digits).
# Gold tables created by earlier versions keep their decimal(28,9) / (28,6) (``Lake.in_table_types``).
# The columns and their types are declared in the table catalogue (schemas/tables/gold.yaml).
GOLD = table(tables.GOLD_AVOIDED)
KG = GOLD.type_of("baseline_kg")  # decimal(18,9)
QUANTITY = GOLD.type_of("activity_quantity")  # decimal(18,6)
GOLD_SCHEMA = GOLD.ddl
GOLD_COLUMNS = GOLD.column_names


def in_force(event_date, methodology):
    cond = event_date >= F.lit(methodology.effective_from)
    if methodology.effective_to is not None:
        cond = cond & (event_date <= F.lit(methodology.effective_to))
    return cond


class KeyMatchCounts:
    """How the credited events of one computation found their factor-table keys, per scenario and free-text
    key field (``spark_compile.key_matches``): counted on the way, in the pass that writes gold (``observe``),
    never by reading rows back. ``totals()`` once that pass has run."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._observed: list[tuple[str, Observation]] = []

    def observe(self, credited_rows: DataFrame, scenario: str, methodology, matches: dict) -> DataFrame:
        if not matches:
            return credited_rows
        observation = Observation(f"key-matches-{self.run_id}-{scenario}-{methodology.version}")
        self._observed.append((scenario, observation))
        return credited_rows.observe(observation, *[F.count_if(column == F.lit(kind)).alias(f"{field}.{kind}")
                                                    for field, column in matches.items() for kind in KEY_MATCHES])

    def totals(self) -> dict[str, dict[str, int]]:
        """scenario -> {"<field>.<exact|normalised|fallback>": credited events}, summed over versions."""
        out: dict[str, dict[str, int]] = {}
        for scenario, observation in self._observed:
            counts = out.setdefault(scenario, {})
            for name, n in observation.get.items():
                counts[name] = counts.get(name, 0) + int(n)
        return out


def credited(silver: DataFrame, scenario: str, methodology, run_id: str,
             key_counts: KeyMatchCounts | None = None) -> DataFrame:
    """Gold rows for the events of ``silver`` that ``methodology`` credits, whatever their date
    (``key_counts`` counts how they found their factor-table keys)."""
    cols = methodology.columns()
    rows = silver.withColumn("event_year", F.year("event_date")).filter(F.coalesce(cols.eligible, F.lit(False)))
    if key_counts is not None:
        rows = key_counts.observe(rows, scenario, methodology, cols.key_matches)
    return rows.select(
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


def avoided_emissions(silver: DataFrame, scenario: str, methodologies, run_id: str,
                      key_counts: KeyMatchCounts | None = None) -> DataFrame:
    """Credited events of ``silver`` under the methodology version in force on each event's date."""
    parts = [credited(silver.filter(in_force(F.col("event_date"), m)), scenario, m, run_id, key_counts)
             for m in methodologies]
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


@dataclass(frozen=True)
class GoldSlice:
    """The gold rows one computation replaces, with the silver rows they come from.

    * ``deliveries(dates)``: every event the deliveries of ``dates`` brought, whatever its event date
      (the daily run, a quarantine release). Cost follows the new data: a late event adds a row to
      its event day without recomputing that day's earlier deliveries.
    * ``event_days(dates)``: every event dated on ``dates``, whichever delivery brought it (restate).

    gold.avoided_emissions is partitioned by (scenario, event_date, landing_date), so both are
    partition replacements.
    """

    column: str  # "landing_date" or "event_date"
    dates: tuple

    @classmethod
    def deliveries(cls, dates) -> "GoldSlice":
        return cls("landing_date", tuple(sorted(set(dates))))

    @classmethod
    def event_days(cls, dates) -> "GoldSlice":
        return cls("event_date", tuple(sorted(set(dates))))

    def silver(self, lake: Lake, scenario: str) -> DataFrame | None:
        if self.column == "event_date":
            return silver_days(lake, scenario, list(self.dates))
        if not lake.exists(tables.silver(scenario)):
            return None
        return lake.read(tables.silver(scenario), {"landing_date": list(self.dates)})

    def partitions(self, scenarios: list[str]) -> dict[str, list]:
        return {"scenario": list(scenarios), self.column: list(self.dates)}


def gold_frame(lake: Lake, methodologies: dict[str, list], where: GoldSlice, run_id: str,
               extra_silver: dict[str, DataFrame] | None = None, key_counts: KeyMatchCounts | None = None) -> DataFrame:
    """Gold rows (GOLD_COLUMNS) of every scenario of ``methodologies`` in ``where``, from its silver rows
    (plus ``extra_silver[scenario]``: rows about to be added to silver). Nothing is written."""
    parts = []
    for scenario, versions in methodologies.items():
        silver = where.silver(lake, scenario)
        extra = (extra_silver or {}).get(scenario)
        if extra is not None:
            extra = extra.filter(F.col(where.column).isin(list(where.dates)))
            silver = extra if silver is None else silver.unionByName(extra.select(*silver.columns))
        if silver is not None:
            parts.append(avoided_emissions(silver, scenario, versions, run_id, key_counts).select(*GOLD_COLUMNS))
    return reduce(DataFrame.unionByName, parts) if parts else lake.spark.createDataFrame([], GOLD_SCHEMA)


def _gold_metadata(scenarios: list[str], run_id: str, job: str) -> dict:
    return {"run_id": run_id, "job": job, **({"scenario": scenarios[0]} if len(scenarios) == 1 else {})}


def write_gold(lake: Lake, gold: DataFrame, scenarios: list[str], where: GoldSlice, run_id: str,
               job: str = "compute") -> CommitResult:
    """Replace the gold partitions of ``scenarios`` in ``where`` with ``gold``, in one commit."""
    return lake.replace_partitions(tables.GOLD_AVOIDED, gold, tables.GOLD_PARTITION, where.partitions(scenarios),
                                   metadata=_gold_metadata(scenarios, run_id, job))


def compute(lake: Lake, methodologies: dict[str, list], where: GoldSlice, run_id: str,
            check: Callable[[DataFrame], None] | None = None,
            extra_silver: dict[str, DataFrame] | None = None, job: str = "compute",
            key_counts: KeyMatchCounts | None = None) -> CommitResult | None:
    """Recompute gold for every scenario in ``where`` (deliveries or event days) from its silver
    rows, and replace those gold partitions in one commit (``key_counts`` counts, in the same pass, how
    the credited events found their factor-table keys).

    ``check`` (the gold data-quality suites) sees the computed rows BEFORE anything is written;
    it raises (GateFailed) to stop the run with gold untouched.
    """
    if not where.dates:
        return None
    gold = gold_frame(lake, methodologies, where, run_id, extra_silver, key_counts)
    scenarios = list(methodologies)
    if check is None:
        return write_gold(lake, gold, scenarios, where, run_id, job)
    # Computed once, into the lake's staging area: the checks read the staged rows, and only then
    # are those very files committed to gold (no second computation, no copy on delta-rs).
    staged = lake.stage(tables.GOLD_AVOIDED, gold, tables.GOLD_PARTITION)
    try:
        check(staged.frame(lake.spark))
    except BaseException:
        lake.discard(staged)
        raise
    fault_point("compute.staged")
    return lake.commit_staged(staged, where.partitions(scenarios), _gold_metadata(scenarios, run_id, job))
