"""Both lake backends publish the same tables.

The same generated, dirty deliveries go through the whole life of a lake twice, once with each backend
(delta-rs: Spark writes Parquet and delta-rs commits; delta-spark: Delta Lake on Spark's own writer):

1. the daily run of two delivery dates, then a rerun of the second;
2. a third date ingested by the streaming ingest (available-now, one checkpoint per scenario) and
   gated from bronze;
3. a quarantine release after a methodology fix (second-hand e-bikes, quarantined as unknown first);
4. a restatement under a newly approved green-trip version.

Then every Delta table under the two lakes is compared, row for row, leaving out only the lineage
columns (which run wrote a row, when, how long it took, which backend). One module-scoped fixture
runs both lives; each test checks one promise.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scope3plus.config import load_config
from scope3plus.contracts import SCENARIOS
from scope3plus.generate import generate
from scope3plus.lake import LAKE_BACKENDS, open_lake
from scope3plus.maintain import find_tables
from scope3plus.methodology import load_registry
from scope3plus.paths import methodologies_dir
from scope3plus.pipeline import tables
from scope3plus.pipeline.daily import run_day
from scope3plus.pipeline.quarantine import run_release
from scope3plus.pipeline.restate import restate
from scope3plus.pipeline.stream_ingest import ingest_stream

from .support import assert_same_rows, register_approved
from .test_quarantine import SALE, add_secondhand_v1_1_with_e_bikes
from .test_restate import add_green_trip_v1_1

pytestmark = pytest.mark.e2e
D1, D2, D3 = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)
#: Lineage: which run wrote a row, when, how long it took, with which backend, and MLflow's ids. They
#: differ between any two runs; every other column must be equal.
LINEAGE = {"run_id", "latest_run_id", "ingest_run_id", "ingested_at", "quarantined_at", "started_at", "ended_at",
           "seconds", "checked_at", "restated_at", "restatement_id", "mlflow_run_id", "lake_backend", "message",
           "details", "line_position"}  # line_position: where Spark split a file to read it (it orders a file's lines)


def deliveries(spark, landing: Path, streamed: Path) -> None:
    """Two dirty days of every scenario for the daily run, plus e-bike sales on D1 (unknown until
    v1.1: quarantined); a third day in a landing folder of its own for the stream (a stream takes every
    file it has not seen, so it must not see the days `run` already read)."""
    generate(spark, D1, 2, 300, landing, seed=17, dirty=0.03)
    generate(spark, D3, 1, 300, streamed, seed=18, dirty=0.03)
    bikes = [json.dumps({**SALE, "event_id": f"bike-{i}", "category": "e_bike", "sale_price_cny": 900, "condition": 0.8})
             for i in range(3)]
    (landing / "secondhand_trade" / f"{D1}-part-bikes.jsonl").write_text("\n".join(bikes) + "\n", encoding="utf-8")


def life_of_a_lake(spark, root: Path, landing: Path, streamed: Path, backend: str):
    specs = root / "methodologies"
    shutil.copytree(methodologies_dir(), specs)
    config = load_config(None, landing=str(landing), lake=str(root / "lake"), mlflow_dir=str(root / "mlflow"),
                         methodologies_dir=str(specs), lake_backend=backend)
    register_approved(config)
    lake = open_lake(spark, config.lake, backend)
    summaries = [run_day(spark, config, day) for day in (D1, D2, D2)]  # D2 twice: a rerun
    streams = [ingest_stream(spark, lake, streamed, scenario) for scenario in SCENARIOS]
    summaries.append(run_day(spark, config, D3, ingest_files=False))
    add_secondhand_v1_1_with_e_bikes(specs)
    register_approved(config)
    released = run_release(spark, config, "secondhand_trade", D1, progress=lambda _m: None)
    add_green_trip_v1_1(specs, D2, "approved")
    register_approved(config)
    restated = restate(lake, config, "green_trip", load_registry(specs).approved("green_trip"), D1, D3,
                       "reviewer-b", f"restate-{backend}")
    return {"config": config, "lake": lake, "summaries": summaries, "streams": streams, "released": released,
            "restated": restated}


@pytest.fixture(scope="module")
def lives(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("backends")
    landing, streamed = root / "landing", root / "streamed"
    deliveries(spark, landing, streamed)
    return {backend: life_of_a_lake(spark, root / backend, landing, streamed, backend) for backend in LAKE_BACKENDS}


def without_lineage(df):
    return df.select(*[c for c in df.columns if c not in LINEAGE])


def test_each_life_ran_on_its_own_backend_and_did_each_step(lives):
    for backend, life in lives.items():
        assert life["lake"].backend == backend
        assert [s.lake_backend for s in life["summaries"]] == [backend] * 4
        assert all(stream.rows_added > 0 for stream in life["streams"])  # D3's files, through the stream
        assert life["released"].released == 3 and life["released"].conserved  # the three e-bikes
        assert life["restated"].versions_after == "green_trip@1.0.0, green_trip@1.1.0"
        backends = {r.lake_backend for r in life["lake"].read(tables.JOB_RUNS).select("lake_backend").distinct().collect()}
        assert backends == {backend}


def test_both_backends_publish_the_same_tables(spark, lives):
    roots = {backend: life["config"].lake for backend, life in lives.items()}
    names = {backend: find_tables(root) for backend, root in roots.items()}
    assert names["delta-rs"] == names["delta-spark"]
    expected = {tables.GOLD_AVOIDED, tables.GOLD_DAILY, tables.GOLD_DELIVERY, tables.GOLD_PROGRESS, tables.JOB_RUNS,
                tables.DQ_RESULTS, tables.RESTATEMENTS} | {f(s) for s in SCENARIOS
                                                          for f in (tables.bronze, tables.silver, tables.quarantine)}
    assert expected <= set(names["delta-rs"])
    rs, ds = lives["delta-rs"]["lake"], lives["delta-spark"]["lake"]
    for name in names["delta-rs"]:
        assert_same_rows(without_lineage(ds.read(name)), without_lineage(rs.read(name)), name)


def test_the_tables_hold_what_the_steps_did(lives):
    """Not just equal: each life's gold holds credited rows of all three event days and both green-trip
    versions (the restatement from D2 on), and the e-bikes released into silver and gold."""
    lake = lives["delta-spark"]["lake"]
    gold = lake.read(tables.GOLD_AVOIDED)
    versions = {(r.event_date, r.methodology_version)
                for r in gold.filter(F.col("scenario") == "green_trip").select("event_date", "methodology_version").distinct().collect()}
    assert {v for d, v in versions if d < D2} == {"1.0.0"} and {v for d, v in versions if d >= D2} == {"1.1.0"}
    assert gold.filter(F.col("source_file").endswith(f"{D1}-part-bikes.jsonl")).count() == 3
