"""What-if impact of a methodology change, and restatement of published gold.

* ``impact``: tCO2e per event day over silver history under the versions in force with methodology
  version A, and with version B approved instead (drafts allowed): B's side is what ``restate``
  would publish after B's approval. It writes nothing.
* ``restate``: recomputes gold for one scenario and a date range under the versions
  approved *now*, replaces only the affected (scenario, event_date) partitions (every
  delivery's rows on those days), refreshes what those deliveries contributed, the daily
  summary and progress, and records who/when/versions/tCO2e before and after in
  ``ops/restatements``. Restating twice changes nothing but adds a record with before = after.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from pyspark.sql import DataFrame, functions as F

from ..catalog import table
from ..argtypes import date_range
from ..config import Config
from ..errors import S3PError
from ..lake import Lake
from ..methodology.approval import verify
from ..tracking import job_run
from . import tables
from .compute import GoldSlice, avoided_emissions, compute, silver_days
from .quality import DataQuality
from .rollup import refresh_daily_summary, refresh_delivery_summary, refresh_progress

RESTATEMENTS_SCHEMA = table(tables.RESTATEMENTS).ddl  # declared in schemas/tables/ops.yaml


@dataclass(frozen=True)
class ImpactDay:
    event_date: dt.date
    tco2e_a: float
    tco2e_b: float

    @property
    def change_t(self) -> float:
        return self.tco2e_b - self.tco2e_a


@dataclass(frozen=True)
class Restatement:
    restatement_id: str
    scenario: str
    from_date: dt.date
    to_date: dt.date
    versions_before: str
    versions_after: str
    tco2e_before: Decimal
    tco2e_after: Decimal
    event_days: int


def _tonnes_by_day(gold: DataFrame) -> dict[dt.date, float]:
    rows = gold.groupBy("event_date").agg((F.sum("avoided_kg") / F.lit(1000)).cast("decimal(38,12)").alias("t")).collect()
    return {r.event_date: float(r.t) for r in rows}


def impact(lake: Lake, scenario: str, side_a: list, side_b: list, start: dt.date, end: dt.date) -> list[ImpactDay]:
    """tCO2e per event day on [start, end] under two sets of versions, each applied as ``compute`` applies the
    approved ones (the version in force on each event's date). With ``Registry.approved_if`` for the sides,
    side B is exactly what ``restate`` publishes once that version is approved."""
    days = date_range(start, end)
    silver = silver_days(lake, scenario, days)
    if silver is None:
        raise S3PError(f"no silver data for {scenario}: run the pipeline first")
    under_a = _tonnes_by_day(avoided_emissions(silver, scenario, side_a, "what-if"))
    under_b = _tonnes_by_day(avoided_emissions(silver, scenario, side_b, "what-if"))
    return [ImpactDay(d, under_a.get(d, 0.0), under_b.get(d, 0.0)) for d in sorted(set(under_a) | set(under_b))]


def _versions(gold: DataFrame) -> str:
    rows = gold.select(F.concat_ws("@", "methodology_id", "methodology_version").alias("v")).distinct().collect()
    return ", ".join(sorted(r.v for r in rows))


def _total_t(gold: DataFrame) -> Decimal:
    value = gold.agg((F.sum("avoided_kg") / F.lit(1000)).cast("decimal(38,12)")).first()[0]
    return value if value is not None else Decimal(0)


def _deliveries(gold: DataFrame) -> set[dt.date]:
    """The delivery dates of ``gold``'s rows (a few hundred at most: one per delivery)."""
    return {r.landing_date for r in gold.select("landing_date").distinct().collect()}


def restate(lake: Lake, config: Config, scenario: str, approved: list, start: dt.date, end: dt.date,
            requested_by: str, run_id: str) -> Restatement:
    """Recompute and republish gold for ``scenario`` on [start, end] under the approved versions; traced
    by an MLflow run and an ops/job_runs row (job ``restate``) besides its ops/restatements record."""
    with job_run(lake, config, "restate", run_id, f"restate {scenario} {start}..{end}", scenario=scenario,
                 touched_dates=",".join(d.isoformat() for d in date_range(start, end))) as trace:
        trace.tracker.params({"scenario": scenario, "from": start, "to": end, "requested_by": requested_by,
                              "versions": ", ".join(f"{m.id}@{m.version}" for m in approved)})
        result = _restate(lake, config, scenario, approved, start, end, requested_by, run_id)
        trace.tracker.metrics({"tco2e_before": result.tco2e_before, "tco2e_after": result.tco2e_after})
        trace.message = (f"{result.versions_before or '-'} → {result.versions_after or '-'}; "
                         f"{result.tco2e_before:,.6f} t → {result.tco2e_after:,.6f} t")
        return result


def _restate(lake: Lake, config: Config, scenario: str, approved: list, start: dt.date, end: dt.date,
             requested_by: str, run_id: str) -> Restatement:
    verify(approved, config)  # tamper check: every version must match its registered hash
    days = date_range(start, end)
    silver = silver_days(lake, scenario, days)
    if silver is None:
        raise S3PError(f"no silver data for {scenario}: nothing to restate")
    where = GoldSlice.event_days(days)
    partitions = where.partitions([scenario])
    before = lake.read(tables.GOLD_AVOIDED, partitions) if lake.exists(tables.GOLD_AVOIDED) else None
    versions_before = _versions(before) if before is not None else ""
    tco2e_before = _total_t(before) if before is not None else Decimal(0)
    deliveries = _deliveries(before) if before is not None else set()
    # the gold suite checks the restated rows before they replace the published ones (a fail raises
    # GateFailed with gold untouched); its results go to ops/dq_results either way
    dq = DataQuality(lake, start, run_id, job="restate")
    try:
        compute(lake, {scenario: approved}, where, run_id, check=lambda staged: dq.check_gold(staged, [scenario]),
                job="restate")
    finally:
        dq.record()
    after = lake.read(tables.GOLD_AVOIDED, partitions)
    result = Restatement(
        restatement_id=run_id, scenario=scenario, from_date=start, to_date=end,
        versions_before=versions_before, versions_after=_versions(after),
        tco2e_before=tco2e_before, tco2e_after=_total_t(after), event_days=len(days),
    )
    # the deliveries whose rows on those days changed (before or after) contribute anew to the summary
    refresh_delivery_summary(lake, [scenario], sorted(deliveries | _deliveries(after)), run_id)
    refresh_daily_summary(lake, [scenario], days, run_id)
    record = lake.spark.createDataFrame([(
        result.restatement_id, scenario, start, end, requested_by, dt.datetime.now(dt.timezone.utc),
        result.versions_before, result.versions_after, result.tco2e_before, result.tco2e_after, run_id,
    )], RESTATEMENTS_SCHEMA)
    lake.append(tables.RESTATEMENTS, record)
    refresh_progress(lake, config, start, run_id)
    return result
