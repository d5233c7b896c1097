"""ingest → bronze: every landed line, kept verbatim with where and when it came from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, functions as F

from ..lake import CommitResult, Lake
from . import tables


@dataclass(frozen=True)
class IngestResult:
    files: list[str]
    landed_lines: int
    commit: CommitResult


def landing_files(landing: str | Path, scenario: str, landing_date: dt.date) -> list[str]:
    """The files a platform delivered for ``landing_date``: ``<landing>/<scenario>/<date>*.jsonl``."""
    folder = Path(landing) / scenario
    return sorted(str(p.resolve()) for p in folder.glob(f"{landing_date.isoformat()}*.jsonl") if p.is_file())


def read_landing(spark, files: list[str]) -> DataFrame:
    """Raw lines of the given files, one row per line, with the file they came from."""
    return spark.read.text(files).select(
        F.col("value"), F.col("_metadata.file_path").alias("source_file")
    )


def to_bronze(lines: DataFrame, landing_date: dt.date, run_id: str) -> DataFrame:
    """Bronze rows: the line untouched plus ingest metadata. Malformed lines are kept."""
    return lines.select(
        F.lit(landing_date).alias("landing_date"),
        "source_file",
        "value",
        F.lit(run_id).alias("ingest_run_id"),
        F.current_timestamp().alias("ingested_at"),
    )


def empty_lines(spark) -> DataFrame:
    return spark.createDataFrame([], "value string, source_file string")


def ingest(spark, lake: Lake, landing: str | Path, scenario: str, landing_date: dt.date, run_id: str) -> IngestResult:
    """Replace bronze's ``landing_date`` partition with the day's landed lines, atomically."""
    files = landing_files(landing, scenario, landing_date)
    lines = read_landing(spark, files) if files else empty_lines(spark)
    landed = lines.count() if files else 0
    commit = lake.replace_partitions(
        tables.bronze(scenario), to_bronze(lines, landing_date, run_id), tables.BATCH_PARTITION,
        {"landing_date": [landing_date]}, metadata={"run_id": run_id, "job": "ingest"},
    )
    return IngestResult(files=files, landed_lines=landed, commit=commit)
