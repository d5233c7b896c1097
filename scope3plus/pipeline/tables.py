"""Names and partitioning of every lake table, in one place."""

GOLD_AVOIDED = "gold/avoided_emissions"
GOLD_DAILY = "gold/daily_summary"
GOLD_PROGRESS = "gold/progress"
JOB_RUNS = "ops/job_runs"
RESTATEMENTS = "ops/restatements"
DQ_RESULTS = "ops/dq_results"

# Landing-batch tables are partitioned by the delivery date, so a rerun replaces exactly its batch.
BATCH_PARTITION = ["landing_date"]
# Published tables are partitioned by scenario and event date, so late data touches only its days.
EVENT_PARTITION = ["scenario", "event_date"]


def bronze(scenario: str) -> str:
    return f"bronze/{scenario}"


def silver(scenario: str) -> str:
    return f"silver/{scenario}"


def quarantine(scenario: str) -> str:
    return f"quarantine/{scenario}"
