"""Freshness: is each scenario's latest delivery on time? (the way dbt's ``source freshness`` asks)

The profile says when a platform's daily delivery is due (``freshness`` in conf/*.yaml): the
delivery dated D is due by ``due`` (local time, ``local_timezone``) on the day after D, for every
scenario unless it has its own ``due``. A scenario's latest delivery is the latest delivery date
whose run or ingest landed at least one line (ops/job_runs). Once the next delivery's due time has
passed without it, the scenario is overdue: ``warn`` when overdue more than ``warn_after_hours``,
``error`` more than ``error_after_hours``. Read with delta-rs: no Spark.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .config import Config
from .contracts import SCENARIOS
from .lake import read_small_table, table_exists, table_path
from .pipeline import tables

FRESH, WARN, ERROR = "fresh", "warn", "error"


@dataclass(frozen=True)
class Freshness:
    scenario: str
    latest_delivery: dt.date | None  # None: no delivery recorded
    next_due_at: dt.datetime | None  # when the delivery after it is (or was) due, local time
    overdue_hours: float  # 0 when not overdue
    status: str  # fresh, warn or error

    def words(self) -> str:
        if self.latest_delivery is None:
            return "no delivery recorded"
        due = f"{self.next_due_at:%Y-%m-%d %H:%M} {self.next_due_at.tzname()}"
        if self.status == FRESH:
            return f"latest delivery {self.latest_delivery}; the next is due by {due}"
        return (f"LATE ({self.status}): latest delivery {self.latest_delivery}; the next was due by {due}, "
                f"{_duration(self.overdue_hours)} ago")

    def as_dict(self) -> dict:
        return {"status": self.status, "latest_delivery": self.latest_delivery,
                "next_due_at": self.next_due_at.isoformat() if self.next_due_at else None,
                "overdue_hours": round(self.overdue_hours, 2)}


def _duration(hours: float) -> str:
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def latest_deliveries(lake_root: str) -> dict[str, dt.date]:
    """Per scenario, the latest delivery date a run or an ingest landed lines of (ops/job_runs)."""
    if not table_exists(lake_root, tables.JOB_RUNS):
        return {}
    rows = read_small_table(table_path(lake_root, tables.JOB_RUNS),
                            columns=["job", "scenario", "landing_date", "landed_lines"]).to_pylist()
    latest: dict[str, dt.date] = {}
    for r in rows:
        if r["job"] in ("run", "ingest") and r["scenario"] and r["landing_date"] and (r["landed_lines"] or 0) > 0:
            latest[r["scenario"]] = max(latest.get(r["scenario"], r["landing_date"]), r["landing_date"])
    return latest


def freshness(config: Config, latest: dict[str, dt.date], now: dt.datetime | None = None) -> list[Freshness]:
    """Each scenario's freshness at ``now`` (default: the clock), given its latest delivery dates."""
    zone = ZoneInfo(config.local_timezone)
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(zone)
    out = []
    for scenario in SCENARIOS:
        rule = config.freshness.get(scenario) or config.freshness["default"]
        day = latest.get(scenario)
        if day is None:
            out.append(Freshness(scenario, None, None, 0.0, ERROR))
            continue
        # the delivery after ``day`` (dated day + 1) is due on the day after its date
        next_due = dt.datetime.combine(day + dt.timedelta(days=2), rule["due"], tzinfo=zone)
        overdue = max(0.0, (now - next_due).total_seconds() / 3600)
        status = (ERROR if overdue > rule["error_after_hours"] else WARN if overdue > rule["warn_after_hours"]
                  else FRESH) if overdue > 0 else FRESH
        out.append(Freshness(scenario, day, next_due, overdue, status))
    return out


def lake_freshness(config: Config, now: dt.datetime | None = None) -> list[Freshness]:
    return freshness(config, latest_deliveries(config.lake), now)


def annotate(rows: list[dict], config: Config, now: dt.datetime | None = None) -> list[dict]:
    """Progress rows with each scenario's :class:`Freshness` under ``"freshness"`` (what `s3p progress`
    and the report show beside the stored figures: it depends on the clock, so it is not stored)."""
    by_scenario = {f.scenario: f for f in lake_freshness(config, now)}
    return [{**r, "freshness": by_scenario[r["scope"]]} if r["scope"] in by_scenario else r for r in rows]
