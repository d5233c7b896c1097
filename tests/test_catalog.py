"""The table catalogue (schemas/tables) and tables by name: registration on both lake backends, comments
and properties in the catalog, ``s3p sql`` and ``s3p catalog``.

The test session has no Hive support: it registers in its in-memory catalog (``catalog_kind``), as
any session already running without the metastore settings does; one test runs ``s3p sql`` in a
process of its own, with the embedded metastore under ``<lake>/_catalog``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable, write_deltalake

from scope3plus import catalog
from scope3plus.catalog import load_catalogue, register, table
from scope3plus.cli import main
from scope3plus.config import load_config
from scope3plus.contracts import SCENARIOS, load_contracts
from scope3plus.errors import S3PError
from scope3plus.lake import open_lake
from scope3plus.pipeline import tables

from .support import register_approved

ROOT = Path(__file__).resolve().parents[1]  # the checkout

DAY = dt.date(2026, 11, 1)


def describe(spark, name: str) -> dict[str, tuple[str, str]]:
    return {r.col_name: (r.data_type, r.comment) for r in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()}


def properties(spark, name: str) -> dict[str, str]:
    return {r.key: r.value for r in spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}


def progress_rows(spark, scope: str):
    """One gold/progress row in the catalogue's columns (the others null)."""
    t = table(tables.GOLD_PROGRESS)
    return spark.createDataFrame([tuple({"scope": scope, "as_of": DAY, "cumulative_t": 1.5}.get(c) for c in t.column_names)],
                                 t.schema)


# ---- the declaration ----
def test_every_table_is_declared_with_its_partitioning():
    declared = load_catalogue()
    expected = {tables.GOLD_AVOIDED: ["scenario", "event_date", "landing_date"],
                tables.GOLD_DELIVERY: ["scenario", "landing_date"], tables.GOLD_DAILY: ["scenario", "event_date"],
                tables.GOLD_PROGRESS: [], tables.JOB_RUNS: ["job"], tables.RESTATEMENTS: [], tables.DQ_RESULTS: [],
                tables.REPORTED_AGGREGATES: [],
                **{f(s): ["landing_date"] for s in SCENARIOS for f in (tables.bronze, tables.bronze_files, tables.silver, tables.quarantine)}}
    assert {n: list(t.partition_by) for n, t in declared.items()} == expected
    assert table("silver/green_trip").sql_name() == "scope3plus.silver_green_trip"
    assert table("gold/progress").sql_name("analytics", "main") == "main.analytics.gold_progress"
    assert all(t.comment and all(c.comment for c in t.columns) for t in declared.values())


def test_silver_takes_its_event_columns_and_comments_from_the_contract():
    silver, contract = table("silver/green_trip"), load_contracts()["green_trip"]
    assert silver.column_names == ["landing_date", "event_date", "event_id", "event_time", "city", "mode",
                                   "distance_km", "duration_min", "navigation_verified", "user_id_key",
                                   "source_file", "run_id"]
    comments = {f.name: f.metadata.get("comment") for f in silver.schema.fields}
    assert comments["navigation_verified"] == contract.get("navigation_verified").description
    assert "user_id" not in comments and "HMAC-SHA256" in comments["user_id_key"]
    assert silver.schema["distance_km"].dataType.simpleString() == "double"


def test_a_bad_catalog_setting_is_one_clear_error(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("catalog: {schema: my-schema}\n")
    with pytest.raises(S3PError, match=r"catalog.schema must be a SQL identifier"):
        load_config(profile)
    profile.write_text("catalog: {schema: analytics, name: main}\n")
    config = load_config(profile)
    assert (config.catalog_schema, config.catalog_name, catalog.namespace(config)) == ("analytics", "main", "main.analytics")


def test_every_table_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = {re.sub(f"/({'|'.join(SCENARIOS)})(_files)?$", lambda m: "/<scenario>" + (m.group(2) or ""), n)
             for n in load_catalogue()}
    missing = sorted(n for n in names if n not in readme)
    assert not missing, f"tables of schemas/tables missing from the README's pipeline section: {missing}"


def test_the_local_metastore_lives_under_the_lake(tmp_path):
    conf = catalog.catalog_conf(str(tmp_path / "lake"))
    assert conf["spark.sql.catalogImplementation"] == "hive"
    assert f"databaseName={tmp_path}/lake/_catalog/metastore_db" in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]
    assert catalog.catalog_conf("s3://bucket/lake") == {}


# ---- registration, on both backends ----
@pytest.mark.parametrize("backend", ["delta-rs", "delta-spark"])
def test_registration_names_documents_and_is_idempotent(spark, tmp_path, backend):
    config = dataclasses.replace(load_config(None, lake=str(tmp_path / "lake")), catalog_schema=f"t_{backend.replace('-', '_')}")
    lake = open_lake(spark, config.lake, backend)
    lake.overwrite(tables.GOLD_PROGRESS, progress_rows(spark, "total"))
    # the writer carried the column comments: they are in the Delta table before any registration
    fields = {f.name: f.metadata for f in DeltaTable(lake.path(tables.GOLD_PROGRESS)).schema().fields}
    assert fields["as_of"] == {"comment": "the as-of date"}
    # a table written without the comments (by an earlier version): registration documents it
    write_deltalake(lake.path(tables.RESTATEMENTS), spark.createDataFrame([], table(tables.RESTATEMENTS).ddl).toArrow())

    done = {r.name: r for r in register(lake, config)}
    assert set(done) == {tables.GOLD_PROGRESS, tables.RESTATEMENTS}
    assert {r.action for r in done.values()} == {"created"}
    name = f"{config.catalog_schema}.gold_progress"
    cols = describe(spark, name)
    assert cols["Comment"][0] == table(tables.GOLD_PROGRESS).comment
    assert cols["scope"] == ("string", "scenario id, or total") and cols["Provider"][0] == "delta"
    props = properties(spark, name)
    assert props["s3p.layer"] == "gold" and props["s3p.owner"] == "scope3plus-measurement"
    assert "green_trip: " in props["s3p.methodology_versions"]
    assert describe(spark, f"{config.catalog_schema}.ops_restatements")["tco2e_after"][1] == "tCO2e of those days after"
    assert properties(spark, f"{config.catalog_schema}.ops_restatements")["s3p.layer"] == "ops"
    assert spark.table(name).collect()[0]["cumulative_t"] == 1.5

    # again: nothing to do, and no commit to the tables
    versions = {n: lake.version(n) for n in done}
    assert {r.action for r in register(lake, config)} == {"unchanged"}
    assert {n: lake.version(n) for n in done} == versions
    # a later write keeps the comments and properties (the writer carries the column comments)
    lake.overwrite(tables.GOLD_PROGRESS, progress_rows(spark, "green_trip"))
    assert describe(spark, name)["as_of"][1] == "the as-of date"
    assert properties(spark, name)["s3p.layer"] == "gold"
    assert [r.scope for r in spark.table(name).collect()] == ["green_trip"]


def test_a_name_registered_for_another_lake_is_moved_to_this_one(spark, tmp_path):
    base = dataclasses.replace(load_config(None), catalog_schema="t_moved")
    first, second = (open_lake(spark, str(tmp_path / d), "delta-rs") for d in ("one", "two"))
    first.overwrite(tables.GOLD_PROGRESS, progress_rows(spark, "one"))
    second.overwrite(tables.GOLD_PROGRESS, progress_rows(spark, "two"))
    register(first, dataclasses.replace(base, lake=first.root), document=False)
    assert [r.action for r in register(second, dataclasses.replace(base, lake=second.root), document=False)] == ["moved"]
    assert [r.scope for r in spark.table("t_moved.gold_progress").collect()] == ["two"]
    assert first.exists(tables.GOLD_PROGRESS)  # dropping the external entry left the other lake's files alone


# ---- after a run: tables by name, s3p sql ----
@pytest.fixture(scope="module")
def ran(spark, tmp_path_factory):
    from scope3plus.generate import generate

    root = tmp_path_factory.mktemp("catalog")
    profile = root / "profile.yaml"
    profile.write_text(f"landing: {root / 'landing'}\nlake: {root / 'lake'}\nmlflow: {{mlflow_dir: {root / 'mlflow'}}}\n"
                       "pseudonymisation: {dev_key: test-key}\nspark: {spark.master: 'local[2]'}\n")
    generate(spark, DAY, 1, 100, root / "landing", seed=3)
    register_approved(load_config(profile))
    assert main(["run", "--date", str(DAY), "--conf", str(profile)]) == 0  # registers what it wrote when it ends
    return profile, root / "lake"


def test_a_run_registers_its_tables_by_name(spark, ran):
    progress = spark.table("scope3plus.gold_progress")
    assert sorted(r.scope for r in progress.select("scope").collect()) == sorted([*SCENARIOS, "total"])
    names = {r.tableName for r in spark.sql("SHOW TABLES IN scope3plus").collect()}
    assert {"bronze_green_trip", "silver_green_trip", "quarantine_green_trip", "gold_avoided_emissions",
            "ops_job_runs", "ops_dq_results"} <= names
    assert describe(spark, "scope3plus.silver_green_trip")["navigation_verified"][1] == "trip recorded with navigation on"


def test_what_a_run_writes_is_what_the_catalogue_declares(ran):
    from scope3plus.lake import spark_schema

    _, lake = ran
    written = [t for t in load_catalogue().values() if DeltaTable.is_deltatable(str(lake / t.name))]
    assert len(written) == 4 * len(SCENARIOS) + 6  # bronze, its manifest, silver, quarantine; all but ops/restatements and gold/reported_aggregates
    for t in written:
        delta = DeltaTable(str(lake / t.name))
        assert [(f.name, f.dataType.simpleString()) for f in spark_schema(delta).fields] == \
            [(c.name, spark_type_string(c.type)) for c in t.columns], t.name
        assert list(delta.metadata().partition_columns) == list(t.partition_by), t.name
        # every write carried the declared column comments into the Delta schema
        assert {f.name: f.metadata.get("comment") for f in delta.schema().fields} == \
            {c.name: c.comment for c in t.columns}, t.name


def spark_type_string(declared: str) -> str:
    return catalog.spark_type(declared).simpleString()


def test_sql_prints_a_table_csv_and_json(ran, capsys):
    profile, _ = ran
    query = "SELECT scope, as_of, events FROM gold_progress ORDER BY scope"
    assert main(["sql", query, "--conf", str(profile), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["scope"] for r in rows] == sorted([*SCENARIOS, "total"])
    assert rows[0]["as_of"] == str(DAY) and isinstance(rows[0]["events"], int)

    assert main(["sql", query, "--conf", str(profile), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "scope,as_of,events" and len(lines) == 1 + len(SCENARIOS) + 1

    assert main(["sql", "SELECT * FROM scope3plus.gold_avoided_emissions", "--conf", str(profile), "--limit", "3"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 + 3 and out.splitlines()[0].startswith("scenario")
    assert "the first 3 shown" in err


@pytest.mark.parametrize("statement, message", [
    ("SELECT * FROM gold_progress WHERE scope =", r"bad SQL: \[PARSE_SYNTAX_ERROR\]"),
    ("SELECT nope FROM gold_progress", r"bad SQL: \[UNRESOLVED_COLUMN"),
    ("DROP TABLE scope3plus.gold_progress", r"runs queries only"),
])
def test_bad_sql_is_one_line_and_exit_2(spark, ran, capsys, statement, message):
    profile, _ = ran
    assert main(["sql", statement, "--conf", str(profile)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and re.search(message, err)
    assert spark.catalog.tableExists("scope3plus.gold_progress")


def test_catalog_list_names_every_table(ran, capsys):
    profile, _ = ran
    assert main(["catalog", "list", "--conf", str(profile), "--format", "json"]) == 0
    listed = {r["table"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(load_catalogue())
    assert listed["gold/progress"]["sql_name"] == "scope3plus.gold_progress"


def test_sql_in_a_process_of_its_own_uses_the_metastore_under_the_lake(ran):
    profile, lake = ran
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "scope3plus.cli", "sql", "SELECT count(*) AS n FROM ops_job_runs",
                          "--conf", str(profile), "--format", "json"], capture_output=True, text=True, env=env,
                         timeout=300, cwd=str(lake.parent))
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)[0]["n"] > 0
    assert (lake / "_catalog" / "metastore_db").is_dir() and not (lake.parent / "derby.log").exists()
    assert json.loads((lake / "_catalog" / "registered.json").read_text())["names"]  # the next command skips the metastore
