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
from ..lake import Lake, replayed
from ..tracking import new_run_id
from . import tables
from .ingest import (DATED_FILES, IngestResult, delivery_dates, ingest, landing_date_of, landing_files, to_bronze,
                     with_source_file)

Progress = Callable[[str], None]

AVAILABLE_NOW = "available-now"
_INTERVAL = re.compile(r"(\d+)\s*(second|minute|hour)s?")
STOP_GRACE_SECONDS = 120  # on Ctrl-C / SIGTERM, how long the current micro-batch may take to finish


def _quiet(_: str) -> None:
    pass


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
    if not m or int(m.group(1)) < 1:
        raise S3PError(f"bad trigger {text!r}: expected {AVAILABLE_NOW} or an interval such as '30 seconds', "
                       "'1 minute', '2 hours'")
    n, unit = int(m.group(1)), m.group(2)
    return {"processingTime": f"{n} {unit}{'s' if n > 1 else ''}"}


def landing_folder(landing: str | Path, scenario: str) -> Path:
    folder = Path(landing) / scenario
    if not folder.is_dir():
        raise S3PError(f"landing folder not found: {folder} (expected <landing>/<scenario>/<YYYY-MM-DD>*.jsonl)")
    return folder.resolve()  # as ingest.landing_files names files: source_file is the same in both modes


# --------------------------------------------------------------------------------------
# batch
# --------------------------------------------------------------------------------------
def dates_in_bronze(lake_root: str, scenario: str) -> set[dt.date]:
    """The landing dates bronze holds rows for, from the Delta log (no Spark, no data read)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    path = f"{str(lake_root).rstrip('/')}/{tables.bronze(scenario)}"
    if not DeltaTable.is_deltatable(path):
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


def check_bronze(lake_root: str, day: dt.date) -> None:
    """Fail early when bronze holds nothing at all for ``day`` (``s3p run --from-bronze``)."""
    if not any(day in dates_in_bronze(lake_root, s) for s in SCENARIOS):
        raise S3PError(f"bronze holds nothing for {day} under {lake_root}: ingest it first "
                       "(s3p ingest --scenario ID), or run without --from-bronze")


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
                 progress: Progress = _quiet) -> dict[dt.date, IngestResult]:
    """Replace bronze's partition of each date of ``dates_to_ingest`` with that date's files."""
    results = {}
    for day in dates_to_ingest(lake.root, landing, scenario, dates):
        t0 = time.monotonic()
        results[day] = result = ingest(spark, lake, landing, scenario, day, new_run_id("ingest", day))
        progress(f"[ingest {scenario}] {day}: {len(result.files)} file(s), {result.landed_lines:,} lines → "
                 f"{tables.bronze(scenario)} (partition replaced, {result.commit.rows_removed:,} rows before; "
                 f"Delta version {result.commit.version}, {time.monotonic() - t0:.1f} s)")
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
    """The ``foreachBatch`` function: one micro-batch → one bronze append with its app transaction."""

    def __init__(self, lake: Lake, scenario: str, run_id: str, result: StreamResult, progress: Progress,
                 lock: LockFactory | None, stopping: Callable[[], bool]):
        self.lake, self.scenario, self.run_id = lake, scenario, run_id
        self.name, self.app_id = tables.bronze(scenario), app_id(scenario)
        self.result, self.progress, self.lock, self.stopping = result, progress, lock, stopping
        self.failure: BaseException | None = None

    def __call__(self, lines: DataFrame, batch_id: int) -> None:
        try:
            with self._locked(batch_id):
                self._write(lines, batch_id)
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

    def _write(self, lines: DataFrame, batch_id: int) -> None:
        t0, tag = time.monotonic(), f"[ingest {self.scenario}] batch {batch_id}"
        committed = self.lake.app_version(self.name, self.app_id)
        if replayed(committed, batch_id):
            self.result.batches.append(MicroBatch(batch_id, 0, 0, [], True, self.lake.version(self.name)))
            self.progress(f"{tag}: replay of a batch already committed to {self.name} (app transaction "
                          f"{self.app_id} at {committed}); skipped")
            return
        rows = to_bronze(lines, landing_date_of(F.col("source_file")), self.run_id)
        # counted as the micro-batch is written (one pass over it): lines, delivery dates, files, and
        # the files whose names start with no valid date (not a delivery, as for `s3p run`: left out)
        seen = Observation(f"ingest-{self.run_id}-{batch_id}")
        dated = F.col("landing_date").isNotNull()
        rows = rows.observe(
            seen, F.count_if(dated).alias("lines"), F.collect_set(F.col("landing_date")).alias("dates"),
            F.collect_set(F.when(dated, F.col("source_file"))).alias("files"),
            F.collect_set(F.when(~dated, F.col("source_file"))).alias("undated")).filter(dated)
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
            return
        if commit.rows_added != landed:
            raise GateFailed(f"{tag}: {landed:,} lines read but {commit.rows_added:,} rows committed to {self.name} "
                             f"(Delta version {commit.version})")
        self.result.batches.append(MicroBatch(batch_id, files, landed, dates, False, commit.version))
        self.progress(f"{tag}: {files} file(s), {landed:,} lines → {self.name} landing_date "
                      f"{', '.join(d.isoformat() for d in dates) or '-'} (Delta version {commit.version}, "
                      f"{time.monotonic() - t0:.1f} s)")


def ingest_stream(spark, lake: Lake, landing: str | Path, scenario: str, trigger: str = AVAILABLE_NOW,
                  max_files_per_trigger: int | None = None, progress: Progress = _quiet,
                  stop: threading.Event | None = None, lock: LockFactory | None = None) -> StreamResult:
    """Run the ingest stream of ``scenario``: with ``available-now`` until everything new is in
    bronze, with an interval until Ctrl-C, SIGTERM or ``stop`` is set (the micro-batch under way
    finishes first). Restarting resumes from the checkpoint. ``lock``, when given, is taken
    around each micro-batch's write (for a long-running stream, rather than for its whole life)."""
    trigger_args = parse_trigger(trigger)
    folder = landing_folder(landing, scenario)
    result = StreamResult(scenario, checkpoint_location(lake.root, scenario))
    signals: list[str] = []

    def stopping() -> bool:
        return bool(signals) or (stop is not None and stop.is_set())

    writer = _BatchWriter(lake, scenario, new_run_id("ingest"), result, progress, lock, stopping)
    reader = spark.readStream.format("text").option("pathGlobFilter", DATED_FILES)
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
    query = (with_source_file(reader.load(str(folder))).writeStream
             .queryName(f"s3p-ingest-{scenario}")
             .option("checkpointLocation", result.checkpoint)
             .foreachBatch(writer)
             .trigger(**trigger_args)
             .start())
    restore = _on_stop_signals(signals)
    try:
        while query.isActive and not stopping():
            query.awaitTermination(0.5)
        if stopping():
            result.stopped_by = signals[0] if signals else "request"
            _stop_after_current_batch(query, signals, progress, scenario)
        else:
            query.awaitTermination()  # ended by itself: raises if it failed
    except Exception:
        if writer.failure is None:
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
