"""Quarantined rows: count them, look at them, and release them after a fix.

``release`` re-gates the quarantined rows of one scenario and delivery date with the contracts
and approved methodologies of NOW, and the gate settings of that delivery (same late-data
horizon, same pseudonymisation key):

* rows that now pass, and whose ``event_id`` is not in silver yet (earlier deliveries within
  the horizon, or this delivery), are appended to the delivery's silver partition;
* rows that now pass but duplicate a silver event, or an earlier released row, are counted as
  duplicates removed (as the daily gate would have);
* the others stay in quarantine, with their reasons as evaluated now.

Gold is then recomputed for the delivery of the released rows (and the daily summary and progress
for their event days), through the gold suite: the gold rows are computed from silver plus the
released rows and validated BEFORE silver, quarantine or gold are written, so a fail moves nothing.

Exactly once: a released row leaves quarantine in the same release that puts it in silver, and
silver never takes an event_id twice, so releasing again finds nothing new (it writes nothing),
and rerunning the delivery with ``s3p run`` re-gates its landed lines from scratch (they now
pass) and replaces its silver and quarantine partitions: each event is still in silver once. A
release killed between its commits is finished by the next one (``ReleaseMarker``).

Conservation is recorded in ``ops/job_runs`` (job ``release``) on the counts the Delta log
reports after the writes: bronze = silver + quarantine + duplicates removed for the delivery.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window, functions as F

from ..config import DEV_KEY_NOTE, DEV_KEY_TAG, Config
from ..contracts import SCENARIOS, check_scenario, load_contracts
from ..errors import GateFailed, S3PError
from ..faults import fault_point
from ..lake import Lake, small_table_dataset, table_exists, table_path
from . import tables
from .compute import GoldSlice, gold_frame, write_gold
from .gate import (CARRIED, DUPLICATE, HISTORY_JOIN_CONNECT, QUARANTINE, SILVER, GateSettings, check_pseudonym_key,
                   history_ids, line_sha256, parse_and_check, quarantine_rows, route, silver_rows)
from .quality import DataQuality, load_suites
from .rollup import refresh_daily_summary, refresh_delivery_summary, refresh_progress


def reason_regex(pattern: str) -> str:
    """A regex (Java's and RE2's alike) for a reason-code glob (``enum:*``, ``range:distance_km``)."""
    return "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"


def _batches(lake_root: str, scenario: str, day: dt.date | None, reason: str | None, columns: list[str],
             batch_rows: int = 65_536):
    """The quarantined lines of ``scenario`` (delivered on ``day``; with a reason matching the glob
    ``reason``) as pyarrow record batches of ``columns``: only the day's files are opened, and only
    those columns read, a batch at a time (never the whole table at once). No Spark needed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dataset = small_table_dataset(table_path(lake_root, tables.quarantine(scenario)), {"landing_date": [day]} if day else None)
    read = columns + ["reasons"] if reason and "reasons" not in columns else columns
    for batch in dataset.to_batches(columns=read, batch_size=batch_rows):
        if reason:
            reasons = batch.column("reasons")
            hit = pc.match_substring_regex(pc.list_flatten(reasons), reason_regex(reason))
            lines = pc.filter(pc.list_parent_indices(reasons), hit)
            batch = batch.filter(pc.is_in(pa.array(range(batch.num_rows), pa.int64()), value_set=lines.cast(pa.int64())))
            batch = batch.select(columns)
        if batch.num_rows:
            yield batch


def _scenarios(lake_root: str, scenario: str | None) -> list[str]:
    scenarios = [check_scenario(scenario)] if scenario else list(SCENARIOS)
    return [s for s in scenarios if table_exists(lake_root, tables.quarantine(s))]


def summary(lake_root: str, scenario: str | None = None, day: dt.date | None = None,
            reason: str | None = None) -> list[dict]:
    """Quarantined lines per scenario, landing date and reason code (a line with two reasons
    counts under both), with the suite expectation each reason implements; plus one row per
    scenario and date with reason ``*``: the lines in quarantine. Read with pyarrow, two columns
    a batch at a time, counted per batch (memory: a batch and the counts)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counts: dict[tuple, int] = {}
    for s in _scenarios(lake_root, scenario):
        for batch in _batches(lake_root, s, day, reason, ["landing_date", "reasons"]):
            reasons = batch.column("reasons")
            lines = pa.table({"landing_date": batch.column("landing_date"), "reason": pa.repeat("*", batch.num_rows)})
            codes = pa.table({"landing_date": pc.take(batch.column("landing_date"), pc.list_parent_indices(reasons)),
                              "reason": pc.list_flatten(reasons)})
            for part in (lines, codes):
                grouped = part.group_by(["landing_date", "reason"]).aggregate([([], "count_all")])
                for landing, code, n in zip(*(grouped.column(c).to_pylist() for c in ("landing_date", "reason", "count_all"))):
                    counts[(s, landing, code)] = counts.get((s, landing, code), 0) + n
    if not counts:
        return []
    suites = load_suites()
    out = [{"scenario": s, "landing_date": landing, "reason": code,
            "rule": "" if code == "*" else (suites[(s, "silver")].rule_of(code) or ""), "rows": n}
           for (s, landing, code), n in counts.items()]
    return sorted(out, key=lambda r: (r["scenario"], r["landing_date"], r["reason"] != "*", r["reason"]))


def show(lake_root: str, scenario: str, day: dt.date | None = None, reason: str | None = None,
         limit: int = 20, max_chars: int = 300) -> list[dict]:
    """Up to ``limit`` quarantined lines (first ``max_chars`` characters of each raw line, its
    length, reasons, file and run), oldest delivery and file first. Read with pyarrow a batch at a
    time, keeping the first ``limit`` lines so far (memory: a batch and those lines)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    order = [("landing_date", "ascending"), ("source_file", "ascending"), ("line", "ascending")]
    first = None
    columns = ["landing_date", "source_file", "reasons", "run_id", "quarantined_at", "value"]
    for batch in _batches(lake_root, check_scenario(scenario), day, reason, columns, batch_rows=4_096):
        value = batch.column("value")
        lines = pa.Table.from_batches([batch.drop_columns(["value"])]).append_column(
            "line", pc.utf8_slice_codeunits(value, 0, max_chars)).append_column("line_chars", pc.utf8_length(value))
        first = (lines if first is None else pa.concat_tables([first, lines])).sort_by(order).slice(0, limit)
    return [] if first is None else first.to_pylist()


# ---------------------------------------------------------------------------------------
# release
# ---------------------------------------------------------------------------------------
@dataclass
class ReleaseResult:
    run_id: str
    scenario: str
    landing_date: dt.date
    examined: int = 0            # rows in quarantine before
    released: int = 0            # now in silver
    duplicates: int = 0          # passed, but their event_id was already in silver
    still_quarantined: int = 0
    touched_dates: list = field(default_factory=list)
    gold_rows: int = 0
    bronze_rows: int | None = None
    silver_rows: int | None = None
    duplicates_removed: int | None = None
    conserved: bool | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.released or self.duplicates)


def _duplicates_before(lake: Lake, scenario: str, day: dt.date) -> int | None:
    """Duplicates removed so far for this delivery: the latest run or release record."""
    if not lake.exists(tables.JOB_RUNS):
        return None
    rows = (lake.read_small(tables.JOB_RUNS)
            .filter((F.col("stage") == "scenario") & (F.col("scenario") == scenario) & (F.col("landing_date") == F.lit(day))
                    & F.col("job").isin("run", "release") & (F.col("status") == "succeeded"))
            .orderBy(F.desc("ended_at")).limit(1).collect())
    return int(rows[0].duplicates_removed) if rows and rows[0].duplicates_removed is not None else None


def release(lake: Lake, config: Config, scenario: str, day: dt.date, run_id: str,
            progress: Callable[[str], None] = lambda _m: None, tracker=None,
            result: ReleaseResult | None = None) -> ReleaseResult:
    """Re-gate the quarantined rows of ``scenario`` delivered on ``day`` (see the module docstring);
    the counts go into ``result`` (a new one by default) as they are known."""
    from ..methodology import load_registry
    from ..methodology.approval import verify

    started = time.monotonic()
    check_scenario(scenario)
    name = tables.quarantine(scenario)
    if not lake.exists(name):
        raise S3PError(f"no quarantine table for {scenario} under {lake.root} (has `s3p run` been run?)")
    contract = load_contracts()[scenario]
    approved = load_registry(Path(config.methodologies_dir)).approved(scenario)
    verify(approved, config)  # the fix must be an approved, registered methodology version
    key, is_dev_key = config.pseudonym_key()
    if is_dev_key:
        progress(f"warning: ${config.pseudonym_key_env} is not set; user ids are hashed with the development key, "
                 f"which gives no privacy (README, Privacy)")
    settings = GateSettings(day, config.local_timezone, config.goal_start, config.future_tolerance_days,
                            config.late_data_horizon_days, key)
    check_pseudonym_key(lake, scenario, settings.key_fingerprint)  # before anything is written
    result = result or ReleaseResult(run_id, scenario, day)
    marker = ReleaseMarker(lake, scenario, day)
    interrupted = marker.interrupted()
    if interrupted and interrupted["stage"] == "published":  # silver and quarantine committed: gold is left
        progress(f"{scenario} {day}: finishing release {interrupted['run_id']} (killed before gold was refreshed)")
        for key in RESULT_COUNTS:
            setattr(result, key, interrupted[key])
        result.touched_dates = [dt.date.fromisoformat(d) for d in interrupted["touched_dates"]]
        return _publish(lake, config, approved, marker, result, started, progress)
    resumed = interrupted["run_id"] if interrupted else None  # killed after its silver commit
    if resumed:
        progress(f"{scenario} {day}: finishing release {resumed} (killed after its silver commit)")
    quarantined = bronze_lines(lake, scenario, day)
    checked = parse_and_check(quarantined, contract, approved, settings)
    delivery_silver = lake.read(tables.silver(scenario), {"landing_date": [day]})
    if resumed:  # its released rows are in silver already: route as it did, then keep them
        delivery_silver = delivery_silver.filter(F.col("run_id") != resumed)
    seen = [delivery_silver.select("event_id")]
    earlier, history_path = history_ids(lake, scenario, settings, quarantined,
                                        lake.partition_rows(name, {"landing_date": [day]}))
    if history_path == HISTORY_JOIN_CONNECT:
        progress(f"{scenario} {day}: earlier deliveries' event ids matched by the exact join, without the Bloom "
                 "pre-filter (a Spark Connect session cannot build it; the same rows are released)")
    if earlier is not None:
        seen.append(earlier.select("event_id"))
    history = seen[0] if len(seen) == 1 else seen[0].unionByName(seen[1])
    routed = route(checked, history).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts, dates = {}, set()
        for r in routed.groupBy("disposition", "event_date").count().collect():
            counts[r.disposition] = counts.get(r.disposition, 0) + r["count"]
            if r.disposition == SILVER:
                dates.add(r.event_date)
        result.examined = sum(counts.values())
        result.released, result.duplicates = counts.get(SILVER, 0), counts.get(DUPLICATE, 0)
        result.still_quarantined = counts.get(QUARANTINE, 0)
        result.touched_dates = sorted(dates)
        resumed_rows = (lake.read(tables.silver(scenario), {"landing_date": [day]})
                        .filter(F.col("run_id") == resumed).count() if resumed else 0)
        if resumed and resumed_rows != result.released:  # e.g. an approval changed since it was killed
            raise S3PError(f"{scenario} {day}: release {resumed} was killed after putting {resumed_rows:,} row(s) in "
                           f"silver, and the quarantined lines now route differently ({result.released:,} would be "
                           f"released); rerun the delivery, which re-gates it from bronze: s3p run --date {day}")
        if not result.changed:
            progress(f"{scenario} {day}: nothing to release ({result.examined:,} rows still fail their rules)")
            result.seconds = time.monotonic() - started
            marker.clear()
            return result
        released = silver_rows(routed, contract, run_id)
        dq = DataQuality(lake, day, run_id, job="release", progress=progress)
        try:
            if result.touched_dates:  # the gold rows silver + released rows give, checked before any write
                dq.check_gold(gold_frame(lake, {scenario: approved}, GoldSlice.deliveries([day]), run_id,
                                         extra_silver=None if resumed else {scenario: released}), [scenario])
        finally:
            dq.record(tracker)
        dup_before = _duplicates_before(lake, scenario, day)
        bronze = lake.partition_rows(tables.bronze(scenario), {"landing_date": [day]})
        silver_before = lake.partition_rows(tables.silver(scenario), {"landing_date": [day]})
        if silver_before is not None:
            silver_before -= resumed_rows  # the silver rows as they were before the killed release
        if dup_before is None and None not in (bronze, silver_before):
            dup_before = bronze - silver_before - result.examined
        # Two tables, two commits: the marker names this release from before its silver commit until
        # gold is refreshed, so a release killed on the way is finished by the next one (its silver
        # rows are kept, not added again).
        if resumed:
            released_rows = resumed_rows
        else:
            marker.write(run_id, "silver")
            released_rows = lake.append(tables.silver(scenario), released, tables.BATCH_PARTITION,
                                        metadata={"run_id": run_id, "job": "release",
                                                  "pseudonym_key": settings.key_fingerprint}).rows_added
        fault_point("release.silver_committed")
        quarantine_commit = lake.replace_partitions(name, quarantine_rows(routed, run_id, contract, key), tables.BATCH_PARTITION,
                                                    {"landing_date": [day]}, metadata={"run_id": run_id, "job": "release"})
        result.bronze_rows = bronze
        result.silver_rows = lake.partition_rows(tables.silver(scenario), {"landing_date": [day]})
        result.duplicates_removed = None if dup_before is None else dup_before + result.duplicates
        q_after = lake.partition_rows(name, {"landing_date": [day]})
        result.conserved = (released_rows == result.released
                            and quarantine_commit.rows_added == result.still_quarantined
                            and None not in (bronze, result.silver_rows, q_after, result.duplicates_removed)
                            and bronze == result.silver_rows + q_after + result.duplicates_removed)
        if not result.conserved:
            raise GateFailed(f"{scenario} {day}: row conservation broken by the release: bronze {bronze}, silver "
                             f"{result.silver_rows} + quarantine {q_after} + duplicates {result.duplicates_removed}; "
                             "gold and progress were not updated")
        marker.write(resumed or run_id, "published", result)
        fault_point("release.quarantine_committed")
    finally:
        routed.unpersist()
    return _publish(lake, config, approved, marker, result, started, progress)


def bronze_lines(lake: Lake, scenario: str, day: dt.date) -> DataFrame:
    """The bronze rows of the lines quarantined for ``scenario`` on ``day`` (quarantine keeps no raw id, so
    release re-gates from bronze): each quarantine row finds a bronze row of its file by ``line_sha256``
    (n identical quarantined lines, n of the identical bronze lines). Refused when a line is no longer in
    bronze as delivered (past the raw-line retention, ``s3p maintain``)."""
    keys = ["source_file", "line_sha256"]
    # a row quarantined before quarantine kept line_sha256 (null there) still holds its line: hashed here
    wanted = (lake.read(tables.quarantine(scenario), {"landing_date": [day]})
              .select("source_file", F.coalesce(F.col("line_sha256"), line_sha256()).alias("line_sha256"))
              .groupBy(*keys).agg(F.count("*").alias("_wanted")))
    copy = F.row_number().over(Window.partitionBy(*keys).orderBy("line_position"))  # identical lines: the first ones
    found = (lake.read(tables.bronze(scenario), {"landing_date": [day]})
             .select(*CARRIED).withColumn("line_sha256", line_sha256())
             .join(F.broadcast(wanted), keys).withColumn("_copy", copy)
             .filter(F.col("_copy") <= F.col("_wanted")).select(*CARRIED))
    missing = (lake.partition_rows(tables.quarantine(scenario), {"landing_date": [day]}) or 0) - found.count()
    if missing:
        raise S3PError(f"{scenario} {day}: {missing:,} quarantined line(s) are no longer in bronze as delivered "
                       "(past the raw-line retention: README, Privacy); they cannot be released")
    return found


#: the counts a release marker carries once silver and quarantine are committed
RESULT_COUNTS = ("examined", "released", "duplicates", "still_quarantined", "bronze_rows", "silver_rows",
                 "duplicates_removed", "conserved")


def _publish(lake: Lake, config: Config, approved, marker: "ReleaseMarker", result: ReleaseResult, started: float,
             progress: Callable[[str], None]) -> ReleaseResult:
    """Gold of the released rows' delivery from silver alone, then the daily summary of their
    event days and progress; the release is then complete (its marker removed)."""
    scenario, day, run_id = result.scenario, result.landing_date, result.run_id
    if result.touched_dates:
        delivery = GoldSlice.deliveries([day])
        gold = gold_frame(lake, {scenario: approved}, delivery, run_id)
        result.gold_rows = write_gold(lake, gold, [scenario], delivery, run_id).rows_added
        refresh_delivery_summary(lake, [scenario], [day], run_id)
        refresh_daily_summary(lake, [scenario], result.touched_dates, run_id)
        refresh_progress(lake, config, day, run_id)
    marker.clear()
    result.seconds = time.monotonic() - started
    progress(f"{scenario} {day}: released {result.released:,} row(s) to silver, {result.duplicates:,} duplicate(s) "
             f"removed, {result.still_quarantined:,} still quarantined; gold of delivery {day} recomputed "
             f"({len(result.touched_dates)} event day(s) changed)")
    return result


class ReleaseMarker:
    """``<lake>/_s3p/releases/<scenario>/<date>.json``: the release of that delivery that is
    writing, from just before its silver commit (stage ``silver``) through its quarantine commit
    (stage ``published``, with its counts) until gold and progress are refreshed.

    A marker left behind names a killed release. If silver holds rows of that run, the next
    release finishes it: from stage ``silver`` it routes the quarantined rows as the killed one
    did and commits quarantine, keeping the silver rows; from stage ``published`` it only
    refreshes gold, the daily summary and progress. If silver holds none (killed before its
    silver commit, or the delivery was rerun with ``s3p run`` since), the marker is stale and the
    next release starts afresh."""

    def __init__(self, lake: Lake, scenario: str, day: dt.date):
        self.lake, self.scenario, self.day = lake, scenario, day
        self.path = Path(lake.root) / "_s3p" / "releases" / scenario / f"{day.isoformat()}.json"

    def interrupted(self) -> dict | None:
        """The killed release's marker, or None (a stale marker is removed)."""
        if not self.path.exists():
            return None
        state = json.loads(self.path.read_text(encoding="utf-8"))
        silver = self.lake.read(tables.silver(self.scenario), {"landing_date": [self.day]})
        if silver.filter(F.col("run_id") == state["run_id"]).limit(1).count():
            return state
        self.clear()
        return None

    def write(self, run_id: str, stage: str, result: ReleaseResult | None = None) -> None:
        state = {"run_id": run_id, "stage": stage}
        if result is not None:
            state.update({key: getattr(result, key) for key in RESULT_COUNTS})
            state["touched_dates"] = [d.isoformat() for d in result.touched_dates]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".writing")
        scratch.write_text(json.dumps(state), encoding="utf-8")
        os.replace(scratch, self.path)  # atomic: the marker is whole or absent

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def job_row(result: ReleaseResult, status: str, message: str, started_at: dt.datetime,
            mlflow_run_id: str | None, backend: str) -> dict:
    """The release's record in ops/job_runs (job ``release``, counts after the release)."""
    return {
        "run_id": result.run_id, "job": "release", "stage": "scenario", "scenario": result.scenario,
        "landing_date": result.landing_date, "status": status, "started_at": started_at,
        "ended_at": dt.datetime.now(dt.timezone.utc), "seconds": result.seconds,
        "landed_lines": result.bronze_rows, "bronze_rows": result.bronze_rows, "silver_rows": result.silver_rows,
        "quarantined_rows": result.still_quarantined, "duplicates_removed": result.duplicates_removed,
        "gold_rows": result.gold_rows, "touched_dates": ",".join(d.isoformat() for d in result.touched_dates),
        "conservation_ok": result.conserved, "lake_backend": backend, "mlflow_run_id": mlflow_run_id,
        "message": message or (f"released {result.released} of {result.examined} quarantined rows "
                               f"({result.duplicates} duplicates, {result.still_quarantined} still quarantined)"),
    }


def run_release(spark, config: Config, scenario: str, day: dt.date, progress: Callable[[str], None]) -> ReleaseResult:
    """``s3p quarantine release``: the release in an MLflow run, recorded in ops/job_runs."""
    from ..lake import open_lake
    from ..tracking import mlflow_run, new_run_id, record_job_runs

    lake = open_lake(spark, config.lake, config.lake_backend)
    run_id = new_run_id("release", day)
    started_at = dt.datetime.now(dt.timezone.utc)
    result = ReleaseResult(run_id, scenario, day)
    with mlflow_run(config, f"release {scenario} {day}", {"s3p.run_id": run_id, "s3p.job": "release"}) as tracker:
        tracker.params({"scenario": scenario, "landing_date": day, "lake": config.lake})
        dev_key = config.pseudonym_key()[1]
        if dev_key:
            tracker.tags({DEV_KEY_TAG: "true"})
        status, message = "failed", "unexpected error, see the log"
        try:
            release(lake, config, scenario, day, run_id, progress, tracker, result)
            status, message = "succeeded", ""
            tracker.metrics({k: v for k, v in asdict(result).items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        except S3PError as exc:
            message = str(exc)
            raise
        finally:
            if result.changed or status == "failed":
                row = job_row(result, status, message, started_at, tracker.run_id, lake.backend)
                if dev_key:
                    row["message"] = f"{row['message']}; {DEV_KEY_NOTE}"
                record_job_runs(lake, [row])
    return result
