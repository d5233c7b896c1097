"""Names and partitioning of every lake table, in one place."""

GOLD_AVOIDED = "gold/avoided_emissions"
GOLD_DELIVERY = "gold/delivery_summary"
GOLD_DAILY = "gold/daily_summary"
GOLD_PROGRESS = "gold/progress"
JOB_RUNS = "ops/job_runs"
RESTATEMENTS = "ops/restatements"
DQ_RESULTS = "ops/dq_results"

# Landing-batch tables are partitioned by the delivery date, so a rerun replaces exactly its batch.
BATCH_PARTITION = ["landing_date"]
# Gold rows are partitioned by event date AND delivery: a daily run replaces what its delivery brought
# (late events included) without recomputing the earlier deliveries of those days, and a
# restatement replaces whole event days.
GOLD_PARTITION = ["scenario", "event_date", "landing_date"]
# What each delivery contributed to the daily summary (small): a daily run replaces its delivery's rows.
DELIVERY_PARTITION = ["scenario", "landing_date"]
# The daily summary is partitioned by scenario and event date: a run refreshes only the days it touched.
EVENT_PARTITION = ["scenario", "event_date"]


def bronze(scenario: str) -> str:
    return f"bronze/{scenario}"


def silver(scenario: str) -> str:
    return f"silver/{scenario}"


def quarantine(scenario: str) -> str:
    return f"quarantine/{scenario}"
