"""``s3p backfill``: the daily run for every delivery date of a range, in date order, resumable.

Each date is one ``run_day`` (so one set of atomic Delta commits and one ``ops/job_runs`` record,
exactly as ``s3p run`` makes them). A date is **skipped** when its latest daily run (stage
``publish``) succeeded and no landing file of that date changed since that run started (file
mtime and ctime, so a file copied in with its old mtime kept still counts as new); ``--rerun``
runs it anyway. A date without landing files is reported and skipped. After a crash, running
the same backfill again therefore resumes at the first date not yet published. The backfill
stops at the first date that fails (later deliveries dedupe against earlier ones, so order
matters) and records itself in ``ops/job_runs`` (job ``backfill``).

Limitation: a landing file deleted after its date was published is not noticed; use ``--rerun``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from ..argtypes import date_range
from ..config import Config
from ..contracts import SCENARIOS
from ..errors import S3PError
from . import tables
from .ingest import landing_files

RUN, DONE, NO_FILES = "run", "published", "no landing files"


@dataclass
class DayPlan:
    day: dt.date
    action: str  # RUN, DONE or NO_FILES
    reason: str = ""


@dataclass
class BackfillResult:
    run_id: str
    start: dt.date
    end: dt.date
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (date, reason): already published
    no_files: list = field(default_factory=list)
    status: str = "failed"
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.start}..{self.end}: {len(self.ran)} day(s) run, {len(self.skipped)} skipped (already "
                f"published, landing unchanged), {len(self.no_files)} without landing files")


def landing_by_date(config: Config, start: dt.date, end: dt.date) -> dict[dt.date, list[str]]:
    """Every date of the range → its landing files (all scenarios). Fails, before anything is
    written, when the range is backwards or no date of it has any file."""
    days = date_range(start, end)
    if not os.path.isdir(config.landing):
        raise S3PError(f"landing folder not found: {config.landing}")
    found = {d: [f for s in SCENARIOS for f in landing_files(config.landing, s, d)] for d in days}
    if not any(found.values()):
        raise S3PError(f"no landing files for any date from {start} to {end} under {config.landing} "
                       f"(expected <landing>/<scenario>/<YYYY-MM-DD>*.jsonl)")
    return found


def _changed_at(files: list[str]) -> float:
    """When the newest of ``files`` appeared or changed (epoch seconds)."""
    return max((max(st.st_mtime, st.st_ctime) for st in map(os.stat, files)), default=0.0)


def latest_publish_runs(lake, start: dt.date, end: dt.date) -> dict[dt.date, tuple[str, float, str]]:
    """Per landing date of the range, its latest daily run's publish record: (status, started_at as
    epoch seconds, run_id)."""
    if not lake.exists(tables.JOB_RUNS):
        return {}
    from pyspark.sql import functions as F

    rows = (lake.read_small(tables.JOB_RUNS)
            .filter((F.col("job") == "run") & (F.col("stage") == "publish")
                    & F.col("landing_date").between(F.lit(start), F.lit(end)))
            .select("landing_date", "status", "run_id", F.col("started_at").cast("double").alias("started"),
                    F.col("ended_at").cast("double").alias("ended"))
            .collect())
    latest: dict = {}
    for r in sorted(rows, key=lambda r: (r.ended or 0.0, r.started or 0.0)):
        latest[r.landing_date] = (r.status, r.started or 0.0, r.run_id)
    return latest


def plan(lake, config: Config, start: dt.date, end: dt.date, rerun: bool = False) -> list[DayPlan]:
    """What the backfill will do with each date of the range (see the module docstring)."""
    files = landing_by_date(config, start, end)
    published = {} if rerun else latest_publish_runs(lake, start, end)
    out = []
    for day, day_files in files.items():
        status, started, run_id = published.get(day, (None, 0.0, None))
        if not day_files:
            out.append(DayPlan(day, NO_FILES, "no landing files"))
        elif status == "succeeded" and _changed_at(day_files) < started:
            out.append(DayPlan(day, DONE, f"published by {run_id}; no landing file changed since"))
        else:
            why = ("--rerun" if rerun else "never run" if status is None else
                   f"last run {status}" if status != "succeeded" else "landing files changed since the last run")
            out.append(DayPlan(day, RUN, why))
    return out


def duration(seconds: float) -> str:
    """12.3 s, 1 min 26 s, 2 h 5 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


class ProgressBar:
    """One status line on stderr: rewritten in place (``\\r``) on a terminal, plain lines otherwise.
    ``note`` prints a log line above it."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.line = ""

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.line = text
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text + "\n" + self.line)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.line:
            self.stream.write("\n")
            self.stream.flush()
        self.line = ""


def run_backfill(spark, config: Config, start: dt.date, end: dt.date, rerun: bool = False,
                 stream: TextIO | None = None) -> BackfillResult:
    """Run every date of ``start..end`` that needs it, in order (see the module docstring). The
    caller holds the lake lock (``s3p backfill`` does)."""
    from ..lake import open_lake
    from ..tracking import job_row, mlflow_run, new_run_id, record_job_runs
    from .daily import run_day

    started, started_at = time.monotonic(), dt.datetime.now(dt.timezone.utc)
    lake = open_lake(spark, config.lake, config.lake_backend)
    days = plan(lake, config, start, end, rerun)
    result = BackfillResult(new_run_id("backfill", start), start, end)
    bar = ProgressBar(stream)
    to_run = sum(1 for p in days if p.action == RUN)
    took: list[float] = []  # seconds per date run

    def eta() -> str:
        return f"ETA {duration(sum(took) / len(took) * (to_run - len(took)))}" if took else "ETA -"

    message = ""
    with mlflow_run(config, f"backfill {start}..{end}", {"s3p.run_id": result.run_id, "s3p.job": "backfill"}) as tracker:
        tracker.params({"from": start, "to": end, "rerun": rerun, "dates_to_run": to_run})
        try:
            for i, p in enumerate(days, 1):
                head = f"backfill {i}/{len(days)} {p.day}"
                if p.action != RUN:
                    if p.action == NO_FILES:
                        result.no_files.append(p.day)
                    else:
                        result.skipped.append((p.day, p.reason))
                    bar.show(f"{head} skipped: {p.reason}")
                    continue
                bar.show(f"{head} ... ({p.reason}; elapsed {duration(time.monotonic() - started)}, {eta()})")
                t0 = time.monotonic()
                try:
                    run_day(spark, config, p.day, progress=bar.note)
                except BaseException as exc:
                    message = f"stopped at {p.day}: {(str(exc).splitlines() or [type(exc).__name__])[0]}"
                    bar.note(f"backfill {message}; run the same command again to resume (published days are skipped)")
                    raise
                took.append(time.monotonic() - t0)
                result.ran.append(p.day)
                bar.show(f"{head} done in {duration(took[-1])}, {eta()}")
            result.status = "succeeded"
        finally:
            bar.close()
            result.seconds = time.monotonic() - started
            tracker.metrics({"dates_run": len(result.ran), "seconds": result.seconds})
            record_job_runs(lake, [job_row(
                result.run_id, "backfill", "backfill", result.status, started_at,
                result.summary() + (f"; {message}" if message else ""), landing_date=start,
                touched_dates=",".join(d.isoformat() for d in result.ran), lake_backend=lake.backend,
                mlflow_run_id=tracker.run_id)])
    return result
