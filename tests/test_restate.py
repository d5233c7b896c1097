"""Methodology versions over time: an effective-date switch, what-if impact, restatement."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scope3plus import cli
from scope3plus.config import load_config
from scope3plus.generate import generate
from scope3plus.lake import open_lake, read_small_table
from scope3plus.methodology import load_registry
from scope3plus.paths import methodologies_dir
from scope3plus.pipeline import tables
from scope3plus.pipeline.compute import avoided_emissions
from scope3plus.pipeline.daily import run_day
from scope3plus.methodology.approval import MethodologyTampered
from scope3plus.pipeline.restate import impact, restate
from scope3plus.tracking import mlflow_client

from .support import register_approved

D1 = dt.date(2026, 11, 1)
DAYS = [D1, D1 + dt.timedelta(days=1), D1 + dt.timedelta(days=2)]
V11_METRO_G_PER_KM = 50.0


def add_green_trip_v1_1(root: Path, effective_from: dt.date, status: str) -> None:
    """A v1.1.0 that credits metro at 50 g/pkm from ``effective_from``."""
    folder = root / "green_trip"
    v1 = (folder / "1.0.0.yaml").read_text(encoding="utf-8")
    table = (folder / "factors" / "mode_reduction.csv").read_text(encoding="utf-8")
    table = re.sub(r"^metro,46\.7,g/km,[^\n]*", f"metro,{V11_METRO_G_PER_KM},g/km,not published; assumption,assumption,"
                   '"Test revision: a what-if metro factor for the restatement tests."', table, flags=re.M)
    (folder / "factors" / "mode_reduction_1_1.csv").write_text(table, encoding="utf-8")
    v11 = (v1.replace("version: 1.0.0", "version: 1.1.0")
           .replace("effective_from: 2021-01-01", f"effective_from: {effective_from}")
           .replace("status: approved", f"status: {status}")
           .replace("factors/mode_reduction.csv", "factors/mode_reduction_1_1.csv")
           .replace("changelog:\n", "changelog:\n  - {version: 1.1.0, date: 2026-11-24, change: \"Metro at 50 g/pkm (test).\"}\n"))
    (folder / "1.1.0.yaml").write_text(v11, encoding="utf-8")


@pytest.fixture()
def specs(tmp_path):
    root = tmp_path / "methodologies"
    shutil.copytree(methodologies_dir(), root)
    return root


def test_an_effective_date_switch_splits_results_by_event_date(spark, specs):
    add_green_trip_v1_1(specs, DAYS[1], "approved")  # supersedes 1.0.0 from DAYS[1] on; 1.0.0 is not edited
    approved = load_registry(specs).approved("green_trip")
    assert [m.version for m in approved] == ["1.0.0", "1.1.0"]
    silver = spark.createDataFrame(
        [(f"t{i}", d, "metro", 10.0, True) for i, d in enumerate(DAYS)],
        "event_id string, event_date date, mode string, distance_km double, navigation_verified boolean",
    ).select("*", F.lit(None).cast("timestamp").alias("event_time"), F.lit("Beijing").alias("city"),
             F.lit(D1).alias("landing_date"), F.lit("f").alias("source_file"))
    rows = avoided_emissions(silver, "green_trip", approved, "r").orderBy("event_date").collect()
    assert [(r.event_date, r.methodology_version, float(r.avoided_kg)) for r in rows] == [
        (DAYS[0], "1.0.0", 0.467),   # 46.7 g/pkm × 10 km, the day before the switch
        (DAYS[1], "1.1.0", 0.5),     # 50 g/pkm × 10 km from the switch date on
        (DAYS[2], "1.1.0", 0.5),
    ]


def test_impact_equals_what_restate_publishes_and_restating_twice_changes_nothing(spark, specs, tmp_path, capsys):
    # a draft taking effect on the range's second day: used only in the what-if, never published. Its
    # effective_from inside the range is the edge where a what-if applying B to every day overstated
    # what restate publishes (issue 22, item 1)
    add_green_trip_v1_1(specs, DAYS[1], "draft")
    config = load_config(None, landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                         mlflow_dir=str(tmp_path / "mlflow"), methodologies_dir=str(specs))
    generate(spark, D1, len(DAYS), 600, Path(config.landing), seed=11)
    register_approved(config)
    for day in DAYS:
        run_day(spark, config, day)
    lake = open_lake(spark, config.lake)
    registry = load_registry(specs)
    v10, v11 = registry.get("green_trip", "1.0.0"), registry.get("green_trip", "1.1.0")
    days = impact(lake, "green_trip", registry.approved_if(v10, instead_of=v11), registry.approved_if(v11), D1, DAYS[-1])
    assert [d.event_date for d in days] == DAYS
    assert days[0].change_t == 0  # before 1.1.0's effective_from both sides apply 1.0.0
    gold = lake.read(tables.GOLD_AVOIDED, {"scenario": ["green_trip"], "event_date": DAYS})
    assert {r.methodology_version for r in gold.select("methodology_version").distinct().collect()} == {"1.0.0"}
    published_t = float(gold.agg(F.sum("avoided_kg")).first()[0]) / 1000
    assert sum(d.tco2e_a for d in days) == pytest.approx(published_t)  # the draft changed nothing published
    assert sum(d.tco2e_b for d in days) > sum(d.tco2e_a for d in days)  # metro 50 > 46.7 g/pkm
    other_before = lake.read(tables.GOLD_AVOIDED).filter(F.col("scenario") != "green_trip").drop("run_id").collect()

    # the reviewer approves v1.1.0 (in force from DAYS[1] on, superseding 1.0.0), then restates
    v11_path = specs / "green_trip" / "1.1.0.yaml"
    v11_path.write_text(v11_path.read_text(encoding="utf-8").replace("status: draft", "status: approved"), encoding="utf-8")
    approved = load_registry(specs).approved("green_trip")
    with pytest.raises(MethodologyTampered, match="not registered for this lake: green_trip@1.1.0; register them with: s3p methodology approve --all-shipped"):
        restate(lake, config, "green_trip", approved, D1, DAYS[-1], "reviewer-a", "restate-0")
    register_approved(config)
    first = restate(lake, config, "green_trip", approved, D1, DAYS[-1], "reviewer-a", "restate-1")
    assert (first.versions_before, first.versions_after) == ("green_trip@1.0.0", "green_trip@1.0.0, green_trip@1.1.0")
    assert float(first.tco2e_before) == pytest.approx(sum(d.tco2e_a for d in days))
    assert float(first.tco2e_after) == pytest.approx(sum(d.tco2e_b for d in days))  # impact == what restate publishes
    restated = lake.read(tables.GOLD_AVOIDED, {"scenario": ["green_trip"], "event_date": DAYS})
    per_day = {r.event_date: float(r.t) for r in restated.groupBy("event_date").agg(
        (F.sum("avoided_kg") / 1000).cast("decimal(38,12)").alias("t")).collect()}
    assert per_day == {d.event_date: pytest.approx(d.tco2e_b, abs=1e-9) for d in days}  # and so on each day
    assert lake.read(tables.GOLD_AVOIDED).filter(F.col("scenario") != "green_trip").drop("run_id").collect() == other_before

    progress = {r["scope"]: r for r in read_small_table(lake.path(tables.GOLD_PROGRESS)).to_pylist()}
    change = float(first.tco2e_after - first.tco2e_before)
    assert progress["green_trip"]["restatement_change_t"] == pytest.approx(change)
    assert progress["green_trip"]["as_reported_cumulative_t"] == pytest.approx(progress["green_trip"]["cumulative_t"] - change)
    assert progress["total"]["restatement_change_t"] == pytest.approx(change)

    # with both approved, the command compares "1.1.0 never approved" with "approved": restate's before and after
    assert cli.main(["methodology", "impact", "green_trip@1.0.0", "green_trip@1.1.0", "--from", str(D1),
                     "--to", str(DAYS[-1]), "--format", "json", "--methodologies", str(specs), "--lake", config.lake]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["in_force_b"] == [f"green_trip@1.0.0 {D1}..{D1}", f"green_trip@1.1.0 {DAYS[1]}..{DAYS[-1]}"]
    assert (shown["tco2e_a"], shown["tco2e_b"]) == (pytest.approx(float(first.tco2e_before)),
                                                    pytest.approx(float(first.tco2e_after)))

    gold_after_first = lake.read(tables.GOLD_AVOIDED).drop("run_id").orderBy("scenario", "event_id").collect()
    second = restate(lake, config, "green_trip", approved, D1, DAYS[-1], "reviewer-a", "restate-2")
    assert second.tco2e_before == second.tco2e_after == first.tco2e_after
    assert lake.read(tables.GOLD_AVOIDED).drop("run_id").orderBy("scenario", "event_id").collect() == gold_after_first
    traces = [r for r in read_small_table(lake.path(tables.JOB_RUNS)).to_pylist() if r["job"] == "restate"]
    assert sorted((r["run_id"], r["status"], r["scenario"]) for r in traces) == [
        ("restate-0", "failed", "green_trip"), ("restate-1", "succeeded", "green_trip"), ("restate-2", "succeeded", "green_trip")]
    client = mlflow_client(config)
    assert {r["run_id"]: client.get_run(r["mlflow_run_id"]).info.status for r in traces} == {
        "restate-0": "FAILED", "restate-1": "FINISHED", "restate-2": "FINISHED"}  # every restatement leaves an MLflow run
    records = read_small_table(lake.path(tables.RESTATEMENTS)).to_pylist()
    assert [(r["restatement_id"], r["requested_by"]) for r in sorted(records, key=lambda r: r["restatement_id"])] == [
        ("restate-1", "reviewer-a"), ("restate-2", "reviewer-a")]
