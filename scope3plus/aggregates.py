"""Reported aggregates: Scope 3+ totals published before event-level data existed.

The versioned file (``conf/reported_aggregates.yaml``) gives each total's period, tonnes and
source. ``s3p aggregates load`` validates it and replaces ``gold/reported_aggregates`` with it.

How they count (``rollup.progress`` applies it):

* an aggregate counts once its period has ended (``period_end <= as_of``);
* it is a total over all scenarios, shown apart from event-derived numbers
  (``reported_cumulative_t``), and counts in ``combined_cumulative_t``;
* event-derived tonnes dated inside a counted aggregate's period are left out of the combined
  cumulative (``overlap_excluded_t``): the reported total wins, nothing is counted twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path


from .catalog import table
from .config import Config, positive_tonnes
from .pipeline import tables
from .errors import S3PError
from .yamlio import read_yaml_mapping
from .lake import CommitResult, Lake, read_small_table, table_exists, table_path

REPORTED_AGGREGATES = tables.REPORTED_AGGREGATES
SCHEMA = table(REPORTED_AGGREGATES).ddl  # declared in schemas/tables/gold.yaml


@dataclass(frozen=True)
class ReportedAggregate:
    """One published total: tCO2e avoided over all scenarios from ``period_start`` to ``period_end`` (inclusive)."""

    aggregate_id: str
    period_start: dt.date
    period_end: dt.date
    tco2e: float
    source: str
    note: str = ""

    def overlaps(self, other: "ReportedAggregate") -> bool:
        return self.period_start <= other.period_end and other.period_start <= self.period_end


def counted_as_of(aggregates, as_of: dt.date) -> list[ReportedAggregate]:
    """The aggregates that count as of ``as_of``: those whose period has ended."""
    return [a for a in aggregates if a.period_end <= as_of]


def read_file(path: str | Path, config: Config) -> list[ReportedAggregate]:
    """Parse and check the aggregates file; any problem is one S3PError naming the file and entry."""
    source = Path(path)
    if not source.is_file():
        raise S3PError(f"reported aggregates file not found: {source}")
    raw = read_yaml_mapping(source, "reported aggregates file", empty={})
    entries = raw.get("aggregates")
    if not isinstance(entries, list):
        raise S3PError(f"{source}: expected a list under 'aggregates:'")
    aggregates = [_parse(entry, i, source) for i, entry in enumerate(entries, 1)]
    check(aggregates, config, source)
    return aggregates


def _parse(entry, index: int, source: Path) -> ReportedAggregate:
    where = f"{source}: aggregate #{index}"
    if not isinstance(entry, dict):
        raise S3PError(f"{where}: expected a mapping with id, period_start, period_end, tco2e, source")
    missing = [k for k in ("id", "period_start", "period_end", "tco2e", "source") if entry.get(k) in (None, "")]
    if missing:
        raise S3PError(f"{where}: missing {', '.join(missing)}")
    where = f"{source}: aggregate {entry['id']}"
    start, end = (_as_date(entry[k], k, where) for k in ("period_start", "period_end"))
    tonnes = positive_tonnes(entry["tco2e"], f"{where}: tco2e")
    if end < start:
        raise S3PError(f"{where}: period_end {end} is before period_start {start}")
    return ReportedAggregate(str(entry["id"]), start, end, tonnes, str(entry["source"]).strip(),
                             " ".join(str(entry.get("note") or "").split()))


def _as_date(value, key: str, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise S3PError(f"{where}: {key} must be a date YYYY-MM-DD, got {value!r}") from None


def check(aggregates: list[ReportedAggregate], config: Config, source: str | Path = "reported aggregates") -> None:
    """Unique ids, periods inside the goal window, no two periods overlapping."""
    seen: set[str] = set()
    for a in aggregates:
        if a.aggregate_id in seen:
            raise S3PError(f"{source}: aggregate id {a.aggregate_id} appears twice")
        seen.add(a.aggregate_id)
        if a.period_start < config.goal_start or a.period_end > config.goal_end:
            raise S3PError(f"{source}: aggregate {a.aggregate_id} ({a.period_start}..{a.period_end}) is outside "
                           f"the goal window {config.goal_start}..{config.goal_end}")
    ordered = sorted(aggregates, key=lambda a: a.period_start)
    for before, after in zip(ordered, ordered[1:]):
        if before.overlaps(after):
            raise S3PError(f"{source}: aggregates {before.aggregate_id} and {after.aggregate_id} overlap "
                           f"({before.period_start}..{before.period_end} and {after.period_start}..{after.period_end})")


def load(lake: Lake, path: str | Path, config: Config, run_id: str) -> tuple[list[ReportedAggregate], CommitResult]:
    """Replace gold/reported_aggregates with the (checked) file's entries, in one commit."""
    aggregates = read_file(path, config)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    now = dt.datetime.now(dt.timezone.utc)
    rows = [(a.aggregate_id, a.period_start, a.period_end, a.tco2e, a.source, a.note, str(path), digest, now, run_id)
            for a in aggregates]
    commit = lake.overwrite(REPORTED_AGGREGATES, lake.spark.createDataFrame(rows, SCHEMA),
                            metadata={"run_id": run_id, "job": "aggregates"})
    return aggregates, commit


def load_and_refresh(lake: Lake, path: str | Path, config: Config, run_id: str) -> tuple[list[ReportedAggregate], dt.date | None]:
    """``s3p aggregates load``: :func:`load`, then refresh gold.progress as of its current date (if any)."""
    from .pipeline.rollup import previous_as_of, refresh_progress
    from .tracking import job_run

    with job_run(lake, config, "aggregates load", run_id, f"aggregates load {Path(path).name}") as trace:
        trace.tracker.params({"file": path})
        loaded, _ = load(lake, path, config, run_id)
        as_of = previous_as_of(lake)
        if as_of is not None:
            as_of, _ = refresh_progress(lake, config, as_of, run_id)
        trace.columns["landing_date"] = as_of
        trace.message = f"{len(loaded)} reported aggregate(s) from {path}"
    return loaded, as_of


def read_table(lake_root: str | Path) -> list[ReportedAggregate]:
    """The loaded aggregates (none when nothing was loaded), ordered by period; no Spark needed."""
    if not table_exists(lake_root, REPORTED_AGGREGATES):
        return []
    rows = read_small_table(table_path(lake_root, REPORTED_AGGREGATES)).to_pylist()
    return sorted((ReportedAggregate(r["aggregate_id"], r["period_start"], r["period_end"], float(r["tco2e"]),
                                     r["source"], r["note"] or "") for r in rows), key=lambda a: a.period_start)


def as_table(aggregates: list[ReportedAggregate]) -> str:
    """The loaded aggregates, one line each, for ``s3p aggregates list``."""
    from .progress_report import format_date, format_tonnes

    if not aggregates:
        return "no reported aggregates loaded (see: s3p aggregates load)"
    lines = []
    for a in aggregates:
        lines.append(f"{a.aggregate_id}  {format_date(a.period_start)} – {format_date(a.period_end)}  "
                     f"{format_tonnes(a.tco2e)} CO2e  source: {a.source}")
        if a.note:
            lines.append(f"    {a.note}")
    return "\n".join(lines)
