"""Names of the lake tables, and their partitioning as the table catalogue declares it
(``schemas/tables/*.yaml``, ``scope3plus.catalog``)."""

from ..catalog import table
from ..contracts import SCENARIOS

GOLD_AVOIDED = "gold/avoided_emissions"
GOLD_DELIVERY = "gold/delivery_summary"
GOLD_DAILY = "gold/daily_summary"
GOLD_PROGRESS = "gold/progress"
REPORTED_AGGREGATES = "gold/reported_aggregates"
JOB_RUNS = "ops/job_runs"
RESTATEMENTS = "ops/restatements"
DQ_RESULTS = "ops/dq_results"

# Landing-batch tables are partitioned by the delivery date, so a rerun replaces exactly its batch.
BATCH_PARTITION = list(table(f"bronze/{SCENARIOS[0]}").partition_by)  # bronze, silver, quarantine alike
# Gold rows are partitioned by event date AND delivery: a daily run replaces what its delivery brought
# (late events included) without recomputing the earlier deliveries of those days, and a
# restatement replaces whole event days.
GOLD_PARTITION = list(table(GOLD_AVOIDED).partition_by)
# What each delivery contributed to the daily summary (small): a daily run replaces its delivery's rows.
DELIVERY_PARTITION = list(table(GOLD_DELIVERY).partition_by)
# The daily summary is partitioned by scenario and event date: a run refreshes only the days it touched.
EVENT_PARTITION = list(table(GOLD_DAILY).partition_by)


def bronze(scenario: str) -> str:
    return f"bronze/{scenario}"


def bronze_files(scenario: str) -> str:
    """The landing files behind ``bronze(scenario)``: size, lines, SHA-256 (the manifest)."""
    return f"bronze/{scenario}_files"


def silver(scenario: str) -> str:
    return f"silver/{scenario}"


def quarantine(scenario: str) -> str:
    return f"quarantine/{scenario}"
