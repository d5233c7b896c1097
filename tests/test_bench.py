"""Smoke run of `s3p bench` (~200 k events): it works and its JSON carries every field.

Not a timed test: nothing here asserts a speed, only that the numbers exist and are consistent.
"""

from __future__ import annotations

import json

import pytest

from scope3plus import bench
from scope3plus.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def result(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    return root, bench.bench(100_000, days=2, root=root, dataflow=True)


def test_the_json_carries_every_field_with_consistent_numbers(result):
    _, r = result
    assert list(r) == list(bench.FIELDS)
    assert r["events"] == 100_000 and r["days"] == 2 and len(r["day_seconds"]) == 2
    assert r["seconds_end_to_end"] == r["day_seconds"][0] > 0
    assert r["events_per_s"] == pytest.approx(100_000 / r["seconds_end_to_end"], rel=1e-3)
    assert r["ratio_to_floor"] == pytest.approx(r["seconds_end_to_end"] / r["floor_seconds"], rel=1e-2)
    assert r["history_ratio"] == pytest.approx(r["day_seconds"][1] / r["day_seconds"][0], rel=1e-2)
    assert r["history_ratio_warm"] is None  # two days: no warm windows to compare
    assert list(r["dataflow_floor_stages"]) == list(r["parse_once_floor_stages"]) == list(bench.DATAFLOW_STAGES)
    assert r["parse_once_floor_seconds"] == pytest.approx(sum(r["parse_once_floor_stages"].values()), abs=0.01)
    assert r["dataflow_floor_seconds"] == pytest.approx(sum(r["dataflow_floor_stages"].values()), abs=0.01)
    assert r["ratio_to_dataflow_floor"] == pytest.approx(r["seconds_end_to_end"] / r["dataflow_floor_seconds"], rel=1e-2)
    stages = r["stages"]
    assert {"scenarios", "ingest", "gate", "silver_checks", "gold", "summary", "progress", "record"} <= set(stages)
    # stage 1's wall clock (ingest and gate add up the scenarios gated side by side) and the later stages
    # fit in the day; the gate includes its checks
    assert stages["scenarios"] + sum(stages[k] for k in ("gold", "summary", "progress", "record")) <= r["seconds_end_to_end"]
    assert stages["silver_checks"] <= stages["gate"]
    assert r["driver_peak_rss_mb"] == pytest.approx(r["driver_jvm_peak_rss_mb"] + r["driver_python_peak_rss_mb"], abs=0.2)
    assert 0 < r["driver_heap_max_mb"] and r["driver_jvm_peak_rss_mb"] > 0
    # what the driver keeps between days, after a full GC: some, and less than the cap
    assert 0 < r["driver_heap_live_mb_day1"] < r["driver_heap_max_mb"]
    assert 0 < r["driver_heap_live_mb"] < r["driver_heap_max_mb"]
    # every landed line of day 1 is accounted for: 100,000 generated = silver + quarantine + duplicates
    rows = r["rows"]
    assert rows["landed_lines"] == 100_000
    assert rows["silver_rows"] + rows["quarantined_rows"] + rows["duplicates_removed"] == 100_000
    assert 0 < rows["quarantined_rows"] < 3_000 and 0 < rows["gold_rows"] <= rows["silver_rows"]
    assert r["quality"] is True and r["lake_backend"] == "delta-rs"


def test_the_work_folder_holds_the_lake_it_ran(result):
    root, _ = result
    assert (root / "lake" / "gold" / "progress" / "_delta_log").is_dir()
    assert not (root / "floor").exists()  # the floor's Parquet is removed after it is timed
    assert not (root / "dataflow").exists()  # so is the data-flow floor's


def test_the_dataflow_floor_does_the_work_it_times(result, spark, tmp_path):
    """Every landed line in bronze; silver one row per event id; gold and summary one row / one total per
    silver row (so the floor cannot look cheap by skipping work)."""
    from pyspark.sql import functions as F

    root, _ = result
    from scope3plus.pipeline.ingest import landing_files

    landing = root / "landing"
    text = bench.dataflow_floor(spark, landing, bench.DEFAULT_START, tmp_path / "text", "Asia/Shanghai")
    once = bench.dataflow_floor(spark, landing, bench.DEFAULT_START, tmp_path / "once", "Asia/Shanghai", "parse_once")
    for timings in (text, once):
        assert list(timings) == list(bench.DATAFLOW_STAGES) and all(t > 0 for t in timings.values())
    for scenario in ("green_trip", "box_recycling"):
        lines = spark.read.text(landing_files(landing, scenario, bench.DEFAULT_START))  # the first day's
        ids = lines.select(F.get_json_object("value", "$.event_id").alias("id"))
        assert spark.read.parquet(str(tmp_path / "text" / "bronze" / scenario)).count() == lines.count()
        for flow in ("text", "once"):
            rows = spark.read.parquet(str(tmp_path / flow / "silver" / scenario))
            assert rows.count() == rows.select("event_id").distinct().count()  # deduplicated
            # one row per distinct id among the well-formed lines (text: malformed ones have a null id, one is
            # kept; parse once: they are left out); the generator's 1 % dirt duplicates lines, so some are removed
            distinct = ids.select("id").distinct()
            assert rows.count() == (distinct.count() if flow == "text" else distinct.dropna().count()) < lines.count()
            gold = spark.read.parquet(str(tmp_path / flow / "gold" / scenario))
            total = spark.read.parquet(str(tmp_path / flow / "summary" / scenario)).agg(F.sum("events")).first()[0]
            assert gold.count() == rows.count() == total > 0


def test_first_copies_keeps_the_first_row_of_each_id_in_file_order(spark):
    rows = spark.createDataFrame([
        ("a", "f1", (0, 1), 1.0), ("b", "f1", (0, 2), 2.0), ("a", "f1", (0, 3), 3.0),   # a twice in f1: 1.0 first
        ("c", "f2", (64, 0), 4.0), ("c", "f1", (0, 9), 5.0), ("d", "f2", (0, 5), 6.0),  # c: f1 sorts before f2
        ("c", "f2", (0, 7), 7.0),
    ], "event_id string, source_file string, line_position struct<split_offset:bigint,read_order:bigint>, x double")
    kept = {(r.event_id, r.x) for r in bench.first_copies(rows).collect()}
    assert kept == {("a", 1.0), ("b", 2.0), ("c", 5.0), ("d", 6.0)}


def test_warm_history_ratio_compares_medians_of_warm_days():
    # day 1 (60 s, the JIT warm-up) is left out; days 2-4 median 10, last three days median 12 -> 1.2
    assert bench.warm_history_ratio([60, 9, 10, 30, 11, 11, 12, 13]) == pytest.approx(12 / 10)
    assert bench.warm_history_ratio([60, 9, 10, 11, 12, 13]) is None  # windows would overlap


def test_bad_arguments_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--events", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--events" in err[0]


def test_text_and_json_renderings(result):
    _, r = result
    assert json.loads(bench.as_json(r)) == r
    text = bench.as_text(r)
    assert "ratio to floor" in text and "history ratio" in text and "target <= 3" in text
    assert "data-flow floor" in text and "nothing checked" in text
