"""``s3p ingest``: landing files → bronze, per delivery date (batch) or as a stream.

* **batch**: for each delivery date whose files bronze does not hold yet (or each date
  asked for), replace that bronze ``landing_date`` partition with the date's files, exactly
  as the daily run's ingest step does (``ingest.ingest``).
* **stream**: a Spark Structured Streaming query over ``<landing>/<scenario>/`` (files
  named ``<YYYY-MM-DD>*.jsonl``) with one checkpoint per scenario under
  ``<lake>/_checkpoints/ingest/<scenario>``. Each micro-batch is appended to bronze in one
  Delta commit carrying the application transaction (``s3p-ingest-<scenario>``, batch id).
  A micro-batch replayed after a crash between the Delta commit and the checkpoint's own
  commit is recognised by that transaction and skipped, so every line lands exactly once.
  Each line's ``landing_date`` is the date in its file's name, so a file delivered late for
  an earlier date joins that date's partition.

Both modes record themselves as every other job does (``IngestRecorder``, ``ingest_run``): one MLflow
run per ``s3p ingest`` and, once each micro-batch or delivery date is over (after its bronze commit,
which alone decides whether it landed), ``ops/job_runs`` rows of job ``ingest``: ``succeeded``,
``skipped`` (a replay) or ``failed`` (with the error, before it propagates).
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

from pyspark.sql import DataFrame, Observation, functions as F

from ..contracts import SCENARIOS
from ..errors import GateFailed, LakeBusy, S3PError
from ..lake import Lake, read_small_table, replayed, table_exists, table_path
from ..tracking import job_row, mlflow_run, new_run_id, record_job_runs
from . import tables
from .ingest import (DATE, DATED_FILES, OUTSIDE, IngestResult, delivery_dates, ingest, landing_date_of, landing_files,
                     local_path, not_taken_note, scan_landing, to_bronze, text_lines, with_source_file)

Progress = Callable[[str], None]

AVAILABLE_NOW = "available-now"
_INTERVAL = re.compile(r"(\d+)\s*(second|minute|hour)s?")
_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
LONGEST_INTERVAL_S = 24 * 3600  # looking for files less often than daily is a scheduler's job (available-now)
STOP_GRACE_SECONDS = 120  # on Ctrl-C / SIGTERM, how long the current micro-batch may take to finish
JOB = "ingest"  # ops/job_runs ``job``, MLflow tag ``s3p.job``


def _quiet(_: str) -> None:
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def check_stream_session(spark=None) -> None:
    """S3PError when the stream would run on Spark Connect (``s3p --remote``, ``$SPARK_REMOTE``, or a
    Connect ``spark``): its ``foreachBatch`` function keeps its state in this process (the micro-batches
    done, the lake lock, progress lines, the failure to raise), and under Spark Connect the server runs
    that function in a Python worker of its own instead. Batch mode has no such function."""
    import os

    from ..spark import is_connect

    if (spark is None and os.environ.get("SPARK_REMOTE")) or (spark is not None and is_connect(spark)):
        raise S3PError("s3p ingest --mode stream does not run on Spark Connect (its micro-batch function keeps "
                       "its state in this process): use --mode batch, or run without --remote / $SPARK_REMOTE")


def app_id(scenario: str) -> str:
    """The Delta application transaction id of ``scenario``'s ingest stream."""
    return f"s3p-ingest-{scenario}"


def checkpoint_location(lake_root: str, scenario: str) -> str:
    return f"{str(lake_root).rstrip('/')}/_checkpoints/ingest/{scenario}"


def parse_trigger(text: str) -> dict:
    """``available-now`` or an interval such as ``"1 minute"`` → keyword arguments of ``DataStreamWriter.trigger``."""
    text = text.strip().lower()
    if text == AVAILABLE_NOW:
        return {"availableNow": True}
    m = _INTERVAL.fullmatch(text)
    if not m or not 1 <= int(m.group(1)) * _SECONDS[m.group(2)] <= LONGEST_INTERVAL_S:
        raise S3PError(f"bad trigger {text!r}: expected {AVAILABLE_NOW} or an interval from 1 second to 24 hours "
                       "such as '30 seconds', '1 minute', '2 hours'")
    n, unit = int(m.group(1)), m.group(2)
    return {"processingTime": f"{n} {unit}{'s' if n > 1 else ''}"}


def landing_folder(landing: str | Path, scenario: str) -> Path:
    folder = Path(landing) / scenario
    if not folder.is_dir():
        raise S3PError(f"landing folder not found: {folder} (expected <landing>/<scenario>/<YYYY-MM-DD>*.jsonl)")
    return folder.resolve()  # as ingest.landing_files names files: source_file is the same in both modes


# --------------------------------------------------------------------------------------
# run records
# --------------------------------------------------------------------------------------
class IngestRecorder:
    """The run records of one ``s3p ingest``: ``ops/job_runs`` rows (job ``ingest``, ``stage`` = the
    mode) written as each micro-batch or delivery date ends, and the counts of its MLflow run.

    One row per delivery date of a batch rather than one row listing its dates in ``touched_dates``:
    ``landing_date`` holds one date and ``landed_lines``/``bronze_rows`` one count each, so a row per
    date keeps each date's count queryable (and comparable with the daily run's row of that
    ``landing_date``, which ``s3p run --from-bronze`` gates), and ``touched_dates`` keeps its meaning
    elsewhere (event dates a run recomputed). The rows of one micro-batch share its start and message.
    A batch with no dated line, a replay and a failure write one row with no ``landing_date``."""

    def __init__(self, lake: Lake, scenario: str, mode: str, run_id: str | None = None,
                 mlflow_run_id: str | None = None):
        self.lake, self.scenario, self.mode = lake, scenario, mode
        self.run_id, self.mlflow_run_id = run_id or new_run_id(JOB), mlflow_run_id
        self.batches = self.lines = self.replays = self.failures = 0

    def record(self, status: str, started_at: dt.datetime, message: str,
               counts: dict[dt.date | None, tuple[int | None, int | None]] | None = None,
               lines: int | None = None) -> None:
        """Append the rows of one micro-batch or delivery date: ``counts`` maps each landing date to
        (landed_lines, bronze_rows); none given, one row without a date and without counts. ``lines``:
        the lines it landed in all, for the MLflow metrics (by default the sum of ``counts``)."""
        rows = [job_row(self.run_id, JOB, self.mode, status, started_at, message, scenario=self.scenario,
                        landing_date=day, landed_lines=landed, bronze_rows=bronze, lake_backend=self.lake.backend,
                        mlflow_run_id=self.mlflow_run_id)
                for day, (landed, bronze) in (counts or {None: (None, None)}).items()]
        record_job_runs(self.lake, rows)
        if status == "succeeded":
            self.batches += 1
            self.lines += lines if lines is not None else sum(n or 0 for n, _ in (counts or {}).values())
        elif status == "skipped":
            self.replays += 1
        else:
            self.failures += 1

    def record_failure(self, started_at: dt.datetime, what: str, exc: BaseException,
                       counts: dict | None = None, progress: Progress = _quiet) -> None:
        """Record ``what`` as failed with the error's first line; a failure to record is reported and
        swallowed, so that the error itself is what propagates."""
        error = next((line for line in str(exc).splitlines() if line.strip()), "")
        try:
            self.record("failed", started_at, f"{what}: {type(exc).__name__}: {error}"[:2000], counts)
        except Exception as failed:  # noqa: BLE001 - the batch's own error matters more
            progress(f"[ingest {self.scenario}] warning: could not record the failure in {tables.JOB_RUNS}: "
                     f"{next(iter(str(failed).splitlines()), type(failed).__name__)}")

    def metrics(self) -> dict:
        return {"batches": self.batches, "lines_ingested": self.lines, "replays_skipped": self.replays,
                "batches_failed": self.failures}


@contextmanager
def ingest_run(config, lake: Lake, scenario: str, mode: str, **params):
    """One MLflow run around one ``s3p ingest`` (tags ``s3p.job`` = ingest, ``s3p.run_id``; params
    scenario, mode and ``params``; metrics from the recorder at the end, failed or not): yields the
    ``IngestRecorder`` its batches record into, whose run id is the MLflow run's ``s3p.run_id``."""
    run_id = new_run_id(JOB)
    with mlflow_run(config, f"ingest {scenario} {mode}", {"s3p.run_id": run_id, "s3p.job": JOB}) as tracker:
        tracker.params({"scenario": scenario, "mode": mode, "lake": config.lake, "lake_backend": lake.backend,
                        **{k: v for k, v in params.items() if v is not None}})
        recorder = IngestRecorder(lake, scenario, mode, run_id, tracker.run_id)
        try:
            yield recorder
        finally:
            tracker.metrics(recorder.metrics())


# --------------------------------------------------------------------------------------
# batch
# --------------------------------------------------------------------------------------
def dates_in_bronze(lake_root: str, scenario: str) -> set[dt.date]:
    """The landing dates bronze holds rows for, from the Delta log (no Spark, no data read)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    path = table_path(lake_root, tables.bronze(scenario))
    if not table_exists(lake_root, tables.bronze(scenario)):
        return set()
    held = set()
    for action in pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pylist():
        value = action.get("partition.landing_date")
        if value is not None and action.get("num_records") != 0:
            held.add(value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)))
    return held


def bronze_rows(lake: Lake, scenario: str, day: dt.date) -> int | None:
    """Rows in bronze's ``day`` partition, from the Delta log (counted when a file has no count);
    None when ``scenario`` has no bronze table yet."""
    name, partition = tables.bronze(scenario), {"landing_date": [day]}
    if not lake.exists(name):
        return None
    rows = lake.partition_rows(name, partition)
    return rows if rows is not None else lake.read(name, partition).count()


def minimised_in_bronze(lake_root: str, scenario: str, day: dt.date) -> bool:
    """Whether bronze's lines of ``day`` include minimised ones (``line_sha256`` set: ``pipeline.minimise``),
    from the Delta log's per-file null counts (no data read; a file without them is read, that column only)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    if not table_exists(lake_root, tables.bronze(scenario)):
        return False
    path = table_path(lake_root, tables.bronze(scenario))
    table = DeltaTable(path)
    if "line_sha256" not in table.schema().to_arrow().names:
        return False  # written before bronze could minimise
    for action in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        value = action.get("partition.landing_date")
        if value is None or (value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))) != day:
            continue
        nulls = action.get("null_count.line_sha256")
        if nulls is None:
            column = read_small_table(path, {"landing_date": [day]}, columns=["line_sha256"]).column("line_sha256")
            return pc.count(column, mode="only_valid").as_py() > 0
        if nulls < action.get("num_records", 0):
            return True
    return False


def check_bronze(lake_root: str, day: dt.date) -> None:
    """Fail early when bronze holds nothing at all for ``day`` (``s3p run --from-bronze``), or lines of it
    that ``s3p maintain`` has minimised: gating them again would pseudonymise pseudonyms."""
    if not any(day in dates_in_bronze(lake_root, s) for s in SCENARIOS):
        raise S3PError(f"bronze holds nothing for {day} under {lake_root}: ingest it first "
                       "(s3p ingest --scenario ID), or run without --from-bronze")
    minimised = [s for s in SCENARIOS if minimised_in_bronze(lake_root, s, day)]
    if minimised:
        raise S3PError(f"bronze's lines of {day} for {', '.join(minimised)} are minimised (past "
                       "raw_line_retention_days: README, Privacy) and cannot be gated again: run without "
                       "--from-bronze, from the archived landing files")


def dates_to_ingest(lake_root: str, landing: str | Path, scenario: str, dates: list[dt.date] | None = None) -> list[dt.date]:
    """``dates`` (each must have files), or else every delivery date with files that bronze does not hold."""
    landing_folder(landing, scenario)
    if dates:
        for day in dates:
            if not landing_files(landing, scenario, day):
                raise S3PError(f"no landing files for {day} under {Path(landing) / scenario} "
                               f"(expected {day}*.jsonl)")
        return sorted(set(dates))
    held = dates_in_bronze(lake_root, scenario)
    return [d for d in delivery_dates(landing, scenario) if d not in held]


def ingest_batch(spark, lake: Lake, landing: str | Path, scenario: str, dates: list[dt.date] | None = None,
                 progress: Progress = _quiet, recorder: IngestRecorder | None = None) -> dict[dt.date, IngestResult]:
    """Replace bronze's partition of each date of ``dates_to_ingest`` with that date's files; each
    date is recorded in ``ops/job_runs`` once its commit is done (or as failed), by ``recorder``
    (by default one of its own, without an MLflow run)."""
    recorder = recorder or IngestRecorder(lake, scenario, "batch")
    results = {}
    days = dates_to_ingest(lake.root, landing, scenario, dates)
    for not_taken in scan_landing(landing, scenario).not_taken:  # each once; each date's record lists its own
        progress(f"[ingest {scenario}] warning: {not_taken}")
    for day in days:
        t0, started_at = time.monotonic(), _now()
        try:
            results[day] = result = ingest(spark, lake, landing, scenario, day, recorder.run_id)
            if result.landed_lines != result.commit.rows_added:  # as the stream checks each micro-batch
                raise GateFailed(f"[ingest {scenario}] {day}: {result.landed_lines:,} lines in the files (counted in "
                                 f"their bytes) but {result.commit.rows_added:,} rows committed to "
                                 f"{tables.bronze(scenario)}: a file changed while it was read? rerun the date")
        except BaseException as exc:
            recorder.record_failure(started_at, f"{day}", exc, {day: (None, None)}, progress)
            raise
        summary = (f"{len(result.files)} file(s), {result.landed_lines:,} lines → {tables.bronze(scenario)} "
                   f"(partition replaced, {result.commit.rows_removed:,} rows before; "
                   f"Delta version {result.commit.version}")
        note = not_taken_note(result.not_taken)
        recorder.record("succeeded", started_at, summary + ")" + (f"; {note}" if note else ""),
                        {day: (result.landed_lines, result.commit.rows_added)})
        progress(f"[ingest {scenario}] {day}: {summary}, {time.monotonic() - t0:.1f} s)")
    if not results:
        progress(f"[ingest {scenario}] nothing new: bronze holds every delivery date under {Path(landing) / scenario}")
    return results


# --------------------------------------------------------------------------------------
# stream
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MicroBatch:
    batch_id: int
    files: int
    rows: int
    landing_dates: list
    skipped: bool  # a replay of a batch already committed to bronze
    version: int | None


@dataclass
class StreamResult:
    scenario: str
    checkpoint: str
    batches: list[MicroBatch] = field(default_factory=list)
    stopped_by: str | None = None  # "SIGINT", "SIGTERM" or "request" when stopped before it ended by itself

    @property
    def rows_added(self) -> int:
        return sum(b.rows for b in self.batches if not b.skipped)

    @property
    def replays_skipped(self) -> int:
        return sum(1 for b in self.batches if b.skipped)


class StopRequested(S3PError):
    """A stop was asked for while a micro-batch waited for the lake lock: it runs again on restart."""


LockFactory = Callable[[str, float], ContextManager]  # (run label, seconds to wait) → the lake lock, held


class _BatchWriter:
    """The ``foreachBatch`` function: one micro-batch → one bronze append with its app transaction,
    then its ``ops/job_runs`` rows."""

    def __init__(self, lake: Lake, landing: str | Path, scenario: str, recorder: IngestRecorder, result: StreamResult,
                 progress: Progress, lock: LockFactory | None, stopping: Callable[[], bool]):
        self.lake, self.landing, self.scenario = lake, landing, scenario
        self.recorder, self.run_id = recorder, recorder.run_id
        self.warned: set[str] = set()  # files named like deliveries, not taken, already warned about
        self.name, self.app_id = tables.bronze(scenario), app_id(scenario)
        self.result, self.progress, self.lock, self.stopping = result, progress, lock, stopping
        self.failure: BaseException | None = None

    def __call__(self, lines: DataFrame, batch_id: int) -> None:
        try:
            with self._locked(batch_id):  # the records are written under the lake lock too
                started_at = _now()
                try:
                    status, message, counts, landed = self._write(lines, batch_id)
                except BaseException as exc:
                    self.recorder.record_failure(started_at, f"micro-batch {batch_id}", exc, progress=self.progress)
                    raise
                # Recorded only now that the bronze commit (or the replay check) is done: that commit
                # alone decides whether the batch landed. If recording fails, the query stops before
                # the checkpoint commits the batch, and the restart finds it committed: a replay.
                self.recorder.record(status, started_at, message, counts, landed)
        except BaseException as exc:  # kept to be raised as itself once the query has stopped
            self.failure = exc
            raise

    @contextmanager
    def _locked(self, batch_id: int):
        """The lake lock around one micro-batch (when asked for): waited for, second by second,
        saying once who holds it, until it is free or a stop is asked for."""
        if self.lock is None:
            yield
            return
        label, told = f"{self.scenario} batch {batch_id}", False
        while True:
            held = self.lock(label, 1.0)
            try:
                held.__enter__()
                break
            except LakeBusy as busy:
                if self.stopping():
                    raise StopRequested(f"stopped while batch {batch_id} waited for the lake lock") from None
                if not told:
                    who = str(busy).split("; ")[0]  # "another job holds the lake lock: <job> (<pid, host, since>)"
                    self.progress(f"[ingest {self.scenario}] batch {batch_id} waits: {who}")
                    told = True
        try:
            yield
        finally:
            held.__exit__(None, None, None)

    def _write(self, lines: DataFrame, batch_id: int) -> tuple[str, str, dict, int]:
        """Write the micro-batch; return what to record: status, message, (landed_lines, bronze_rows)
        per landing date, and the lines landed in all."""
        t0, tag = time.monotonic(), f"[ingest {self.scenario}] batch {batch_id}"
        committed = self.lake.app_version(self.name, self.app_id)
        if replayed(committed, batch_id):
            version = self.lake.version(self.name)
            self.result.batches.append(MicroBatch(batch_id, 0, 0, [], True, version))
            self.progress(f"{tag}: replay of a batch already committed to {self.name} (app transaction "
                          f"{self.app_id} at {committed}); skipped")
            return "skipped", (f"micro-batch {batch_id}: replay of a batch already committed to {self.name} "
                               f"(app transaction {self.app_id} at {committed}, table version {version}); "
                               "skipped, nothing written"), {None: (0, 0)}, 0
        # Spark's file source takes any name matching DATED_FILES; the landing rule (ingest.examine) refuses those
        # that resolve outside the landing folder (their lines are left out here), and names the other files
        # that look like deliveries but are not taken (warned about once, recorded with this batch)
        scan = scan_landing(self.landing, self.scenario)
        refused = [n.path for n in scan.not_taken if n.kind == OUTSIDE]
        fresh = [n for n in scan.not_taken if n.kind != DATE and n.path not in self.warned]  # DATE: "undated" below
        self.warned.update(n.path for n in fresh)
        for not_taken in fresh:
            self.progress(f"{tag}: warning: {not_taken}")
        rows = to_bronze(lines, landing_date_of(F.col("source_file")), self.run_id)
        # counted as the micro-batch is written (one pass over it): lines, delivery dates, files, and
        # the files whose names start with no valid date (not a delivery, as for `s3p run`: left out)
        seen = Observation(f"ingest-{self.run_id}-{batch_id}")
        dated = F.col("landing_date").isNotNull()
        taken = dated & ~local_path(F.col("source_file")).isin(refused) if refused else dated
        rows = rows.observe(
            seen, F.count_if(taken).alias("lines"), F.collect_set(F.when(taken, F.col("landing_date"))).alias("dates"),
            F.collect_set(F.when(taken, F.col("source_file"))).alias("files"),
            F.collect_set(F.when(~dated, F.col("source_file"))).alias("undated")).filter(taken)
        commit = self.lake.append(self.name, rows, partition_by=tables.BATCH_PARTITION, app_id=self.app_id,
                                  app_version=batch_id, metadata={"run_id": self.run_id, "job": "ingest",
                                                                  "mode": "stream", "batch_id": batch_id})
        m = seen.get if not commit.skipped else {"lines": 0, "dates": [], "files": [], "undated": []}
        landed, dates, files = m["lines"], sorted(m["dates"]), len(m["files"])
        undated = sorted(m["undated"])
        if undated:
            self.progress(f"{tag}: warning: {len(undated)} file(s) left out, their names start with no valid "
                          f"date: {', '.join(undated[:3])}{' ...' if len(undated) > 3 else ''}")
        if commit.skipped:  # committed by another writer since the check above (no lake lock held)
            self.result.batches.append(MicroBatch(batch_id, files, 0, dates, True, commit.version))
            self.progress(f"{tag}: committed meanwhile under app transaction {self.app_id}; skipped")
            return "skipped", (f"micro-batch {batch_id}: a replay, committed meanwhile by another writer under "
                               f"app transaction {self.app_id}; skipped, nothing written"), {None: (0, 0)}, 0
        if commit.rows_added != landed:
            raise GateFailed(f"{tag}: {landed:,} lines read but {commit.rows_added:,} rows committed to {self.name} "
                             f"(Delta version {commit.version})")
        self.result.batches.append(MicroBatch(batch_id, files, landed, dates, False, commit.version))
        self.progress(f"{tag}: {files} file(s), {landed:,} lines → {self.name} landing_date "
                      f"{', '.join(d.isoformat() for d in dates) or '-'} (Delta version {commit.version}, "
                      f"{time.monotonic() - t0:.1f} s)")
        message = (f"micro-batch {batch_id}: {files} file(s), {landed:,} lines → {self.name} on "
                   f"{len(dates)} landing date(s) (Delta version {commit.version})"
                   + (f"; {len(undated)} file(s) left out, their names start with no valid date" if undated else "")
                   + (f"; {not_taken_note(fresh)}" if fresh else ""))
        return "succeeded", message, self._counts(dates, landed, commit.version), landed

    def _counts(self, dates: list[dt.date], landed: int, version: int | None) -> dict:
        """(landed_lines, bronze_rows) per landing date of the batch. One date: the lines counted as
        the batch was written (the same as the rows committed: checked above). Several: the rows the
        commit added per date, from the Delta log (no data read); unknown (null) if the log cannot say."""
        if not dates:
            return {None: (landed, landed)}
        if len(dates) == 1:
            return {dates[0]: (landed, landed)}
        try:
            added = rows_added_by_date(self.lake, self.name, version)
        except Exception as exc:  # noqa: BLE001 - the counts are for the record only; the batch has landed
            self.progress(f"[ingest {self.scenario}] warning: rows per landing date of Delta version {version} "
                          f"unknown: {next(iter(str(exc).splitlines()), type(exc).__name__)}")
            added = {}
        return {d: (added.get(d), added.get(d)) for d in dates}


def rows_added_by_date(lake: Lake, name: str, version: int) -> dict[dt.date, int | None]:
    """The rows Delta version ``version`` of ``name`` (an append) added per ``landing_date``: the
    record counts of its files, those not in the version before, from the Delta log; None for a
    date when a file has no count."""
    import pyarrow as pa
    from deltalake import DeltaTable

    def files(v: int) -> list[dict]:
        return pa.table(DeltaTable(lake.path(name), version=v).get_add_actions(flatten=True)).to_pylist()

    before = {f["path"] for f in files(version - 1)} if version > 0 else set()
    added: dict[dt.date, int | None] = {}
    for f in files(version):
        if f["path"] in before:
            continue
        value = f.get("partition.landing_date")
        day = value if isinstance(value, dt.date) or value is None else dt.date.fromisoformat(str(value))
        count, so_far = f.get("num_records"), added.get(day, 0)
        added[day] = None if count is None or so_far is None else so_far + int(count)
    return added


def ingest_stream(spark, lake: Lake, landing: str | Path, scenario: str, trigger: str = AVAILABLE_NOW,
                  max_files_per_trigger: int | None = None, progress: Progress = _quiet,
                  stop: threading.Event | None = None, lock: LockFactory | None = None,
                  recorder: IngestRecorder | None = None) -> StreamResult:
    """Run the ingest stream of ``scenario``: with ``available-now`` until everything new is in
    bronze, with an interval until Ctrl-C, SIGTERM or ``stop`` is set (the micro-batch under way
    finishes first). Restarting resumes from the checkpoint. ``lock``, when given, is taken
    around each micro-batch's write (for a long-running stream, rather than for its whole life).
    Each micro-batch is recorded in ``ops/job_runs`` by ``recorder`` (by default one of its own,
    without an MLflow run), whose run id the bronze rows carry as ``ingest_run_id``."""
    check_stream_session(spark)
    trigger_args = parse_trigger(trigger)
    folder = landing_folder(landing, scenario)
    result = StreamResult(scenario, checkpoint_location(lake.root, scenario))
    signals: list[str] = []

    def stopping() -> bool:
        return bool(signals) or (stop is not None and stop.is_set())

    recorder = recorder or IngestRecorder(lake, scenario, "stream")
    writer = _BatchWriter(lake, landing, scenario, recorder, result, progress, lock, stopping)
    reader = text_lines(spark.readStream).option("pathGlobFilter", DATED_FILES)
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
    started_at = _now()
    try:
        query = (with_source_file(reader.load(str(folder))).writeStream
                 .queryName(f"s3p-ingest-{scenario}")
                 .option("checkpointLocation", result.checkpoint)
                 .foreachBatch(writer)
                 .trigger(**trigger_args)
                 .start())
    except Exception as exc:  # e.g. an unreadable checkpoint: no micro-batch is there to record it
        recorder.record_failure(started_at, "stream start", exc, progress=progress)
        raise
    restore = _on_stop_signals(signals)
    try:
        while query.isActive and not stopping():
            query.awaitTermination(0.5)
        if stopping():
            result.stopped_by = signals[0] if signals else "request"
            _stop_after_current_batch(query, signals, progress, scenario)
        else:
            query.awaitTermination()  # ended by itself: raises if it failed
    except Exception as exc:
        if writer.failure is None:  # the stream failed outside a micro-batch (which records its own)
            recorder.record_failure(started_at, "stream", exc, progress=progress)
            raise
    finally:
        restore()
        if query.isActive:
            query.stop()
    if writer.failure is not None and not isinstance(writer.failure, StopRequested):
        raise writer.failure
    return result


def _on_stop_signals(received: list[str]) -> Callable[[], None]:
    """Make SIGINT and SIGTERM ask for a clean stop (recorded in ``received``); return the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum, _frame):
        received.append(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def restore():
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _stop_after_current_batch(query, signals: list[str], progress: Progress, scenario: str) -> None:
    """Let the micro-batch under way finish (up to STOP_GRACE_SECONDS, or until a second signal), then stop."""
    if query.isActive and query.status.get("isTriggerActive"):
        progress(f"[ingest {scenario}] stopping after the micro-batch under way (again to stop at once)")
        deadline, seen = time.monotonic() + STOP_GRACE_SECONDS, len(signals)
        while (query.isActive and query.status.get("isTriggerActive") and len(signals) <= seen
               and time.monotonic() < deadline):
            time.sleep(0.2)
    query.stop()
