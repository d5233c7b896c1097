"""Issue 23, item 1: bronze keeps raw lines only for the raw-line retention; then ``s3p maintain``
minimises them (personal fields replaced by their pseudonyms, raw bytes dropped, the original line's
SHA-256 kept), and quarantine rows from before line_sha256 the same way, whatever their age.

Dates are relative to today (the profile's local time zone), so the test does not age: one delivery
just past the default retention (late-data horizon 30 days + time-travel window 7 days = 37 days),
one of yesterday.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from scope3plus.cli import main
from scope3plus.config import load_config
from scope3plus.errors import S3PError
from scope3plus.lake import open_lake
from scope3plus.pipeline import tables
from scope3plus.pipeline.stream_ingest import check_bronze

from .support import register_approved
from .test_gate import trip

KEY = b"test-key"


def pseudonym(text: str) -> str:
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()


def line_on(day: dt.date, event_id: str, user: str) -> str:
    return trip(event_id=event_id, user_id=user, event_time=f"{day}T08:00:00+08:00")


@pytest.fixture(scope="module")
def aged(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("minimise")
    profile = root / "profile.yaml"
    profile.write_text(f"landing: {root / 'landing'}\nlake: {root / 'lake'}\n"
                       f"mlflow: {{mlflow_dir: {root / 'mlflow'}}}\npseudonymisation: {{dev_key: test-key}}\n")
    config = load_config(profile)
    assert config.raw_line_days == 30 + 7
    today = config.local_today()
    old, young = today - dt.timedelta(days=37 + 3), today - dt.timedelta(days=1)
    lines = {old: [line_on(old, "o-1", "u-RAW-OLD-1"), '{"event_id": "o-bad", "user_id": "u-RAW-OLD-2", '],
             young: [line_on(young, "y-1", "u-RAW-YOUNG-1")]}
    folder = root / "landing" / "green_trip"
    folder.mkdir(parents=True)
    for day, day_lines in lines.items():
        (folder / f"{day}.jsonl").write_text("".join(f"{line}\n" for line in day_lines), encoding="utf-8")
    register_approved(config)
    for day in (old, young):
        assert main(["run", "--date", str(day), "--conf", str(profile)]) == 0
    lake = open_lake(spark, config.lake)
    # a quarantine row from before quarantine kept line_sha256: raw text, hash null
    quarantine = tables.quarantine("green_trip")
    legacy = '{"event_id": "q-old", "user_id": "u-RAW-OLD-3", "mode": '
    row = {"landing_date": young, "source_file": "legacy.jsonl", "value": legacy, "reasons": ["malformed_json"],
           "run_id": "legacy", "quarantined_at": dt.datetime(2026, 1, 1)}
    schema = lake.table_schema(quarantine)
    lake.append(quarantine, spark.createDataFrame([tuple(row.get(f.name) for f in schema.fields)], schema),
                tables.BATCH_PARTITION)
    before = {name: {r.landing_date: r["count"] for r in lake.read(name).groupBy("landing_date").count().collect()}
              for name in (tables.bronze("green_trip"), quarantine)}
    first = main(["maintain", "--conf", str(profile)])
    again = main(["maintain", "--conf", str(profile)])
    return {"profile": profile, "config": config, "lake": lake, "old": old, "young": young, "lines": lines,
            "legacy": legacy, "before": before, "codes": (first, again)}


def test_bronze_lines_past_the_retention_are_minimised_and_younger_ones_kept(aged):
    lake, old, young, lines = aged["lake"], aged["old"], aged["young"], aged["lines"]
    assert aged["codes"] == (0, 0)
    rows = lake.read(tables.bronze("green_trip"))
    by_day = {d: sorted(((r.value, r.raw_bytes, r.line_sha256) for r in rows.filter(F.col("landing_date") == d).collect()),
                        key=lambda t: t[2] or "") for d in (old, young)}
    # the old delivery: each line with the user id replaced by the pseudonym silver carries (the HMAC of the
    # id as JSON reads it; for the malformed line, of the id's text as written), and its original SHA-256
    expected = sorted(((line.replace(f'"{user}"', f'"{pseudonym(user)}"'), None, hashlib.sha256(line.encode()).hexdigest())
                       for line, user in zip(lines[old], ("u-RAW-OLD-1", "u-RAW-OLD-2"))), key=lambda t: t[2])
    assert by_day[old] == expected
    assert by_day[young] == [(lines[young][0], None, None)]  # within the retention: as delivered
    # silver's pseudonym of the old event is the one in its minimised bronze line
    [silver] = lake.read(tables.silver("green_trip")).filter(F.col("event_id") == "o-1").collect()
    assert silver.user_id_key == pseudonym("u-RAW-OLD-1") and silver.user_id_key in by_day[old][0][0] + by_day[old][1][0]


def test_quarantine_rows_from_before_line_sha256_are_minimised_whatever_their_age(aged):
    lake = aged["lake"]
    legacy = [r for r in lake.read(tables.quarantine("green_trip")).collect() if r.source_file == "legacy.jsonl"]
    assert [(r.value, r.line_sha256) for r in legacy] == [
        (aged["legacy"].replace('"u-RAW-OLD-3"', f'"{pseudonym("u-RAW-OLD-3")}"'),
         hashlib.sha256(aged["legacy"].encode()).hexdigest())]


def test_no_raw_id_is_left_in_the_current_versions_and_no_row_is_lost(aged):
    lake = aged["lake"]
    for name in (tables.bronze("green_trip"), tables.quarantine("green_trip")):
        table = lake.read(name)
        assert {r.landing_date: r["count"] for r in table.groupBy("landing_date").count().collect()} == aged["before"][name]
        raw = table.filter(F.col("value").contains("u-RAW-OLD") | F.col("raw_bytes").isNotNull()).count()
        assert raw == 0, name
    assert lake.read(tables.bronze("green_trip")).filter(F.col("value").contains("u-RAW-YOUNG-1")).count() == 1


def test_maintain_minimises_once_records_it_and_refuses_to_gate_minimised_bronze_again(aged):
    lake, config = aged["lake"], aged["config"]
    stages = [r.stage for r in lake.read(tables.JOB_RUNS).filter(F.col("job") == "maintain").collect()
              if r.stage.startswith("minimise ")]
    # the first maintain rewrote bronze (the old delivery) and quarantine (the legacy row); the second, nothing
    assert sorted(stages) == ["minimise bronze/green_trip", "minimise quarantine/green_trip"]
    with pytest.raises(S3PError, match=f"bronze's lines of {aged['old']} for green_trip are minimised"):
        check_bronze(config.lake, aged["old"])
    check_bronze(config.lake, aged["young"])  # kept as delivered: may be gated again
    assert main(["run", "--date", str(aged["old"]), "--from-bronze", "--conf", str(aged["profile"])]) == 2


@pytest.mark.parametrize("value, message", [
    ("0", "raw_line_retention_days"), ("thirty", "raw_line_retention_days"), ("99999", "raw_line_retention_days"),
])
def test_a_bad_raw_line_retention_is_refused_naming_the_key(tmp_path, value, message):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"raw_line_retention_days: {value}\n")
    with pytest.raises(S3PError, match=message):
        load_config(profile)
    profile.write_text("raw_line_retention_days: 5\n")
    assert load_config(profile).raw_line_days == 5


def test_a_key_spelled_with_escapes_does_not_carry_a_raw_id_past_the_mask(spark):
    """``"\\u0075ser_id"`` is user_id to a JSON reader but not to the key pattern: such a line has every value
    redacted. A line whose values alone hold escapes (an escaped city name) is masked as usual."""
    from scope3plus.contracts import load_contracts
    from scope3plus.pipeline.gate import REDACTED, masked_line

    escaped = '{"event_id": "e1", "\\u0075ser_id": "u-RAW-ESC", "distance_km": 3.5}'
    city = '{"event_id": "e2", "user_id": "u-RAW-2", "city": "\\u5317\\u4eac"}'
    rows = spark.createDataFrame([(escaped,), (city,)], "value string").withColumn("user_id_key", F.lit(None).cast("string"))
    out = [r[0] for r in rows.select(masked_line(load_contracts()["green_trip"], KEY)).collect()]
    assert out[0] == f'{{"event_id": "{REDACTED}", "\\u0075ser_id": "{REDACTED}", "distance_km": "{REDACTED}"}}'
    assert out[1] == city.replace('"u-RAW-2"', f'"{pseudonym("u-RAW-2")}"')


def test_a_line_with_a_megabyte_string_is_masked_without_overflowing_the_stack(spark):
    """The mask's patterns read a JSON string as runs between escapes (``gate.JSON_STRING``). Read as
    ``(?:[^"\\\\]|\\\\.)*``, java.util.regex recursed once per character: test_quality's 10 MB line
    overflowed a task's stack, and Spark ended the JVM (every later test: "Connection refused").
    If this regresses, this test fails with StackOverflowError and the session's JVM is gone."""
    from scope3plus.contracts import load_contracts
    from scope3plus.pipeline.gate import REDACTED, masked_line

    long_value = "a\\n" * 300_000 + "x" * 1_000_000  # 1.6 M characters, 300 k escapes
    plain = '{"event_id": "e1", "user_id": "u-RAW-1", "note": "' + long_value + '"}'
    escaped = '{"\\u0075ser_id": "u-RAW-2", "note": "' + long_value + '"}'
    rows = spark.createDataFrame([(plain,), (escaped,)], "value string").withColumn("user_id_key", F.lit(None).cast("string"))
    out = [r[0] for r in rows.select(masked_line(load_contracts()["green_trip"], KEY)).collect()]
    assert out[0] == plain.replace('"u-RAW-1"', f'"{pseudonym("u-RAW-1")}"')
    assert out[1] == f'{{"\\u0075ser_id": "{REDACTED}", "note": "{REDACTED}"}}'
