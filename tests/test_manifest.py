"""The landing manifest (issue 26): ``bronze/<scenario>_files`` records each file ingest read, with its size,
its lines counted in its bytes and its SHA-256, so an auditor proves that bronze came from the archived files
(README, Tracing an event to its bytes)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from pyspark.sql import functions as F

from scope3plus.lake import open_lake
from scope3plus.pipeline import tables
from scope3plus.pipeline.ingest import ingest, landed_file
from .support import assert_same_rows

DAY = dt.date(2026, 11, 1)


def trip(event_id: str) -> str:
    return ('{"event_id":"%s","event_time":"2026-11-01T08:00:00+08:00","user_id":"u1","city":"Beijing",'
            '"mode":"metro","distance_km":3.0}' % event_id)


@pytest.fixture
def landing(tmp_path):
    """Three delivery files of one day: CRLF lines and a last line without LF (in a folder whose name has a
    space and a '+', which Spark writes into its URI), an empty file, and plain LF lines."""
    folder = tmp_path / "landing" / "green_trip"
    folder.mkdir(parents=True)
    (folder / f"{DAY}-a b+c.jsonl").write_bytes(f"{trip('a1')}\r\n{trip('a2')}\r\n\n{trip('a3')}".encode())
    (folder / f"{DAY}-empty.jsonl").write_bytes(b"")
    (folder / f"{DAY}-plain.jsonl").write_bytes(f"{trip('p1')}\n{trip('p2')}\n".encode())
    return tmp_path / "landing"


@pytest.mark.parametrize("content, lines", [
    (b"", 0), (b"\n", 1), (b"a\n", 1), (b"a", 1), (b"a\n\n", 2), (b"a\nb", 2), (b"a\r\nb\rc\n", 2),  # a CR ends nothing
])
def test_lines_are_counted_in_the_bytes_as_the_text_read_splits_them(tmp_path, content, lines):
    path = tmp_path / "f.jsonl"
    path.write_bytes(content)
    # chunks of 1 byte: a line split across reads counts once
    found = landed_file(str(path), chunk_bytes=1)
    assert (found.lines, found.size_bytes, found.sha256) == (lines, len(content), hashlib.sha256(content).hexdigest())


def test_ingest_records_each_file_with_its_size_lines_and_sha256(spark, tmp_path, landing):
    lake = open_lake(spark, str(tmp_path / "lake"))
    result = ingest(spark, lake, landing, "green_trip", DAY, "run-1")
    # by hand: 'a b+c' holds 2 CRLF lines, an empty line and a last line without LF = 4; 'empty' 0; 'plain' 2
    assert result.landed_lines == 4 + 0 + 2 == result.commit.rows_added

    folder = landing / "green_trip"
    expected = spark.createDataFrame(
        [(str(p), p.stat().st_size, n, hashlib.sha256(p.read_bytes()).hexdigest(), "run-1")
         for p, n in ((folder / f"{DAY}-a b+c.jsonl", 4), (folder / f"{DAY}-empty.jsonl", 0),
                      (folder / f"{DAY}-plain.jsonl", 2))],
        "path string, size_bytes long, lines long, sha256 string, ingest_run_id string")
    manifest = lake.read(tables.bronze_files("green_trip"), {"landing_date": [DAY]})
    assert_same_rows(manifest.select(*expected.columns), expected, "manifest")

    # source_file is bronze's name of the file (Spark's URI): every bronze row finds its file's row, and
    # the file's line count is its bronze rows; a file with no line has none
    bronze = lake.read(tables.bronze("green_trip"), {"landing_date": [DAY]})
    per_file = bronze.groupBy("source_file").agg(F.count(F.lit(1)).alias("lines"))
    assert_same_rows(manifest.filter(F.col("source_file").isNotNull()).select("source_file", "lines"), per_file, "lines per file")
    assert manifest.filter(F.col("source_file").isNull()).select("path").first().path.endswith("-empty.jsonl")


def test_a_rerun_replaces_the_manifest_of_its_delivery(spark, tmp_path, landing):
    lake = open_lake(spark, str(tmp_path / "lake"))
    ingest(spark, lake, landing, "green_trip", DAY, "run-1")
    (landing / "green_trip" / f"{DAY}-plain.jsonl").write_bytes(f"{trip('p1')}\n".encode())  # redelivered, shorter
    ingest(spark, lake, landing, "green_trip", DAY, "run-2")
    manifest = lake.read(tables.bronze_files("green_trip"), {"landing_date": [DAY]})
    assert sorted((r.lines, r.ingest_run_id) for r in manifest.collect()) == [(0, "run-2"), (1, "run-2"), (4, "run-2")]
