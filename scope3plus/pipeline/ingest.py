"""ingest → bronze: every landed line, kept verbatim with where and when it came from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, Observation, functions as F

from ..catalog import table
from ..contracts import SCENARIOS
from ..faults import fault_point
from ..lake import CommitResult, Lake
from . import tables


@dataclass(frozen=True)
class IngestResult:
    files: list[str]
    landed_lines: int
    commit: CommitResult


DATED_FILES = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*.jsonl"  # a delivery: <YYYY-MM-DD>*.jsonl (glob)


def landing_files(landing: str | Path, scenario: str, landing_date: dt.date) -> list[str]:
    """The files a platform delivered for ``landing_date``: ``<landing>/<scenario>/<date>*.jsonl``."""
    folder = Path(landing) / scenario
    return sorted(str(p.resolve()) for p in folder.glob(f"{landing_date.isoformat()}*.jsonl") if p.is_file())


#: What ends a line of a landing file: LF alone. A CRLF line keeps its CR in bronze's verbatim text (JSON
#: reads it as trailing white space), and a lone CR inside a line is part of the line. (Spark's text
#: source without ``lineSep`` also ends a line at a lone CR, so a CR inside an event split it into two
#: malformed lines: issue 21.)
LINE_SEPARATOR = "\n"


def text_lines(reader):
    """A batch or streaming text reader (``spark.read`` / ``spark.readStream``) that ends lines at LINE_SEPARATOR."""
    return reader.format("text").option("lineSep", LINE_SEPARATOR)


def read_landing(spark, files: list[str]) -> DataFrame:
    """Raw lines of the given files, one row per line, with the file they came from."""
    return with_source_file(text_lines(spark.read).load(files))


def with_source_file(text: DataFrame) -> DataFrame:
    """``value`` plus ``source_file`` (the file's URI) from a batch or streaming text read."""
    return text.select(F.col("value"), F.col("_metadata.file_path").alias("source_file"))


def landing_date_of(source_file: Column) -> Column:
    """The delivery date in a landing file's name (``.../<YYYY-MM-DD>*.jsonl``); null if it has none."""
    return F.try_to_date(F.regexp_extract(source_file, r"/(\d{4}-\d{2}-\d{2})[^/]*$", 1))


def delivery_dates(landing: str | Path, scenario: str) -> list[dt.date]:
    """Every delivery date with files under ``<landing>/<scenario>/``, from the names' date prefixes."""
    dates = set()
    for p in (Path(landing) / scenario).glob(DATED_FILES):
        try:
            dates.add(dt.date.fromisoformat(p.name[:10]))
        except ValueError:  # e.g. 2026-02-30: not a date, so no delivery date either
            continue
    return sorted(dates)


def verbatim(line: Column) -> dict[str, Column]:
    """A landed line as bronze keeps it, exactly: ``value``, its text, and ``raw_bytes``, its exact
    bytes when they are not valid UTF-8 (null otherwise). Spark's text source puts any bytes in a
    string; a string column holding invalid UTF-8 made the table unreadable to delta-rs, DataFusion
    and DuckDB (issue 21), so ``value`` holds such a line with U+FFFD for each invalid sequence."""
    return {"value": F.make_valid_utf8(line), "raw_bytes": F.when(~F.is_valid_utf8(line), line.cast("binary"))}


def to_bronze(lines: DataFrame, landing_date: dt.date | Column, run_id: str) -> DataFrame:
    """Bronze rows: the line verbatim (``verbatim``) plus ingest metadata. Malformed lines are kept.
    ``landing_date`` is a date, or a column such as ``landing_date_of(F.col("source_file"))``."""
    values = {"landing_date": F.lit(landing_date), "source_file": F.col("source_file"), **verbatim(F.col("value")),
              "ingest_run_id": F.lit(run_id), "ingested_at": F.current_timestamp()}
    return lines.select(*[values[c].alias(c) for c in table(tables.bronze(SCENARIOS[0])).column_names])  # bronze's, alike


def empty_lines(spark) -> DataFrame:
    return spark.createDataFrame([], "value string, source_file string")


def ingest(spark, lake: Lake, landing: str | Path, scenario: str, landing_date: dt.date, run_id: str) -> IngestResult:
    """Replace bronze's ``landing_date`` partition with the day's landed lines, atomically."""
    files = landing_files(landing, scenario, landing_date)
    lines = read_landing(spark, files) if files else empty_lines(spark)
    # Lines are counted as they are read, in the same pass as the write (an independent count
    # of what landed, checked against the rows the bronze commit reports).
    landed = Observation(f"ingest-{run_id}-{scenario}")
    commit = lake.replace_partitions(
        tables.bronze(scenario), to_bronze(lines.observe(landed, F.count(F.lit(1)).alias("lines")), landing_date, run_id),
        tables.BATCH_PARTITION, {"landing_date": [landing_date]}, metadata={"run_id": run_id, "job": "ingest"},
    )
    fault_point("ingest.committed")
    return IngestResult(files=files, landed_lines=landed.get["lines"] if files else 0, commit=commit)
