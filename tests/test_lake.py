"""The lake-layer contract, run against each backend: real Delta tables, real Spark writes.

Both backends run: the test session loads Delta Lake on Spark from the jars `make install`
fetched (scope3plus.deltajars).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from scope3plus.errors import S3PError
from scope3plus.lake import open_lake
from scope3plus.spark import delta_spark_available

D1, D2, D3 = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)
PARTS = ["scenario", "event_date"]


@pytest.fixture(params=["delta-rs", "delta-spark"])
def lake(request, spark, tmp_path):
    return open_lake(spark, tmp_path / "lake", backend=request.param)


def frame(spark, n=300):
    """n rows spread over scenarios a/b and three event dates."""
    return spark.range(n).select(
        F.col("id").alias("n"),
        F.when(F.col("id") % 2 == 0, "a").otherwise("b").alias("scenario"),
        F.date_add(F.lit(D1), (F.col("id") % 3).cast("int")).alias("event_date"),
        (F.col("id") * 1.5).alias("x"),
        F.array(F.lit("r")).alias("reasons"),
    )


def counts(df):
    return {(r.scenario, r.event_date): r["count"] for r in df.groupBy("scenario", "event_date").count().collect()}


def test_append_creates_a_delta_table_both_engines_read(spark, lake):
    result = lake.append("t", frame(spark), PARTS)
    assert (result.version, result.rows_added) == (0, 300)
    assert DeltaTable(lake.path("t")).to_pyarrow_dataset().count_rows() == 300  # delta-rs reads what Spark wrote
    back = lake.read("t")
    assert back.count() == 300
    assert back.agg(F.sum("n")).first()[0] == sum(range(300))
    assert dict(back.dtypes)["event_date"] == "date"


def test_replace_partitions_is_one_commit_and_touches_only_its_partitions(spark, lake):
    lake.append("t", frame(spark), PARTS)
    before = counts(lake.read("t"))
    new = frame(spark).filter((F.col("scenario") == "a") & (F.col("event_date") == D1)).limit(7)
    result = lake.replace_partitions("t", new, PARTS, {"scenario": ["a"], "event_date": [D1]})
    assert result.version == 1  # one commit: removes and adds together
    assert (result.rows_added, result.rows_removed) == (7, before[("a", D1)])
    after = counts(lake.read("t"))
    assert after[("a", D1)] == 7
    assert {k: v for k, v in after.items() if k != ("a", D1)} == {k: v for k, v in before.items() if k != ("a", D1)}
    assert lake.history("t", 1)[0]["operation"] == "WRITE"


def test_replace_with_empty_frame_empties_the_partition(spark, lake):
    lake.append("t", frame(spark), PARTS)
    lake.replace_partitions("t", frame(spark).limit(0), PARTS, {"scenario": ["b"], "event_date": [D2, D3]})
    after = counts(lake.read("t"))
    assert ("b", D2) not in after and ("b", D3) not in after and after[("b", D1)] == 50


def test_replacing_an_empty_partition_with_no_rows_is_still_one_commit(spark, lake):
    """A day whose scenario quarantines nothing, after a day that did: its quarantine partition is
    empty before and after (Delta Lake on Spark skips recording such an empty commit by default, and
    the write's commit must still be found)."""
    lake.append("t", frame(spark), PARTS)
    result = lake.replace_partitions("t", frame(spark).limit(0), PARTS, {"scenario": ["c"], "event_date": [D1]})
    assert (result.version, result.rows_added, result.rows_removed) == (1, 0, 0)
    assert lake.read("t").count() == 300


def test_replace_refuses_rows_outside_its_partitions_and_leaves_the_table_alone(spark, lake):
    lake.append("t", frame(spark), PARTS)
    version = lake.version("t")
    with pytest.raises(Exception, match="outside the partitions being replaced|does not conform to partial table overwrite|replaceWhere"):
        lake.replace_partitions("t", frame(spark), PARTS, {"scenario": ["a"], "event_date": [D1]})
    assert lake.version("t") == version and lake.read("t").count() == 300


def test_read_prunes_partitions(spark, lake):
    lake.append("t", frame(spark), PARTS)
    assert lake.read("t", {"scenario": ["a"], "event_date": [D1]}).count() == 50
    assert lake.read("t", {"event_date": [D2, D3]}).count() == 200


def test_application_transaction_makes_a_replayed_append_a_no_op(spark, lake):
    first = lake.append("t", frame(spark), PARTS, app_id="ingest-a", app_version=0)  # a stream's batch 0
    replay = lake.append("t", frame(spark), PARTS, app_id="ingest-a", app_version=0)
    assert not first.skipped and replay.skipped
    assert lake.read("t").count() == 300 and lake.app_version("t", "ingest-a") == 0
    second = lake.append("t", frame(spark), PARTS, app_id="ingest-a", app_version=1)
    assert not second.skipped and lake.read("t").count() == 600 and lake.app_version("t", "ingest-a") == 1


def test_overwrite_replaces_everything(spark, lake):
    lake.append("t", frame(spark), PARTS)
    result = lake.overwrite("t", frame(spark, 10), PARTS)
    assert (result.rows_added, result.rows_removed) == (10, 300)
    assert lake.read("t").count() == 10


def test_missing_table_is_a_clear_error(lake):
    with pytest.raises(S3PError, match="does not exist"):
        lake.read("nope")


def test_the_session_has_delta_lake_on_spark_and_says_so_without_the_jvm_gateway(spark):
    """The probe asks the session (its SQL extensions, then a read of the delta source), so it answers
    under Spark Connect too; the test session loads Delta Lake from the jars make install fetched."""
    assert delta_spark_available(spark)
    assert open_lake(spark, "/tmp/s3p-probe-lake").backend == "delta-spark"  # auto: Delta is there


def test_delta_spark_backend_refused_without_its_classes(tmp_path):
    """A session without Delta's jars (an empty Maven repository, backend delta-rs): the probe says no,
    `auto` takes delta-rs, and asking for delta-spark is one clear error."""
    import os
    import subprocess
    import sys

    script = f"""
from scope3plus.errors import S3PError
from scope3plus.lake import open_lake
from scope3plus.spark import build_session, delta_spark_available
spark = build_session({{"spark.master": "local[1]"}}, "no-delta", backend="delta-rs")
print("available", delta_spark_available(spark))
print("auto", open_lake(spark, {str(tmp_path)!r}).backend)
try:
    open_lake(spark, {str(tmp_path)!r}, backend="delta-spark")
except S3PError as exc:
    print("refused", exc)
"""
    env = {**os.environ, "S3P_MAVEN_REPO": str(tmp_path / "empty-m2")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "available False" in out.stdout and "auto delta-rs" in out.stdout
    assert "refused lake backend delta-spark asked for, but the Delta Lake classes are not on the Spark classpath" in out.stdout


def test_read_skips_files_whose_statistics_are_outside_a_range(spark, lake):
    """Two appends, n in [0, 300) and [1000, 1300): a range read on n only reads the matching file
    (delta-rs prunes files by their min/max; delta-spark's data skipping does the same)."""
    lake.append("t", frame(spark), ["scenario"])
    lake.append("t", frame(spark).withColumn("n", F.col("n") + 1000), ["scenario"])
    pruned = lake.read("t", ranges={"n": (1000, 1299)})
    assert pruned.filter(F.col("n") < 1000).count() == 0 and pruned.count() == 300
    assert lake.read("t", ranges={"n": (5000, 6000)}).count() == 0
    small = lake.read("t", {"scenario": ["a"]}, ranges={"n": (0, 10)})  # may keep the rest of the file's rows
    assert small.filter(F.col("n") <= 10).count() == 6 and small.count() <= 150


def test_writing_a_table_with_another_partitioning_is_refused_with_the_way_out(spark, lake):
    """A table laid out by an older s3p (e.g. gold before it was partitioned by delivery) is not silently
    mixed with files of the new layout: the write fails, the table is untouched."""
    lake.append("t", frame(spark), ["scenario", "event_date"])
    with pytest.raises(S3PError, match=r"partitioned by \['scenario', 'event_date'\].*\['scenario'\].*move the table aside"):
        lake.append("t", frame(spark), ["scenario"])
    assert lake.version("t") == 0 and lake.read("t").count() == 300


def _files_under(path) -> set:
    import os

    return {os.path.join(d, n) for d, _, names in os.walk(path) for n in names if n.endswith(".parquet")}


@pytest.mark.parametrize("change, message", [
    (lambda df: df.withColumn("x", F.col("x").cast("string")), "column x is double in the table and string in the write"),
    (lambda df: df.drop("x"), r"column x \(double\) is missing from the write"),
    (lambda df: df.withColumn("n", F.col("n").cast("decimal(10,2)")), "column n is bigint in the table and decimal"),
    (lambda df: df.withColumn("note", F.lit("new")).withColumn("x", F.col("x").cast("string")),
     "column x is double in the table and string in the write"),  # an added column does not excuse a re-typed one
])
def test_a_write_that_would_change_the_tables_columns_is_refused_and_writes_nothing(spark, lake, change, message):
    """delta-rs commits a partition replacement's schema as the table's: a re-typed or missing column
    would silently re-type (or hide) the column of every file already there. The write is refused before any file moves into the table, in append
    and in partition-replacement mode alike; Delta Lake on Spark is held to the same contract (by
    itself it would fill a missing column with nulls)."""
    lake.append("t", frame(spark), PARTS)
    files = _files_under(lake.path("t"))
    for write in (lambda df: lake.append("t", df, PARTS),
                  lambda df: lake.replace_partitions("t", df.filter(F.col("scenario") == "a"), PARTS, {"scenario": ["a"]})):
        with pytest.raises(S3PError, match=f"{message}.*nothing was written.*move the table aside"):
            write(change(frame(spark)))
    assert lake.version("t") == 0 and _files_under(lake.path("t")) == files
    assert dict(lake.read("t").dtypes)["x"] == "double" and lake.read("t").count() == 300


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_write_with_a_new_nullable_column_adds_it_to_the_table_in_its_commit(spark, lake, mode):
    """The one schema upgrade: a table written by an earlier s3p (here: without ``note``) takes a write that
    only adds a column; the table gains it, nullable, its old rows read null, and the rows commit in one
    version (delta-rs's append: a metadata-only commit just before it)."""
    lake.append("t", frame(spark, 30), PARTS)
    new = frame(spark, 4).filter(F.col("scenario") == "a").withColumn("note", F.lit("new"))  # n = 0 and 2 on a
    if mode == "append":
        result = lake.append("t", new, PARTS)
        rows, nulls = 30 + 2, 30  # 30 old rows, 2 new
    else:
        result = lake.replace_partitions("t", new, PARTS, {"scenario": ["a"]})
        rows, nulls = 15 + 2, 15  # the 15 rows of b stay (odd n of 0..29), a's 15 are replaced by 2
        assert (result.rows_added, result.rows_removed, result.version) == (2, 15, 1)
    back = lake.read("t")
    assert back.count() == rows and back.filter(F.col("note").isNull()).count() == nulls
    assert sorted(r.n for r in back.filter(F.col("note") == "new").collect()) == [0, 2]
    field = lake.table_schema("t")["note"]  # the Delta log's schema
    assert field.nullable and field.dataType.simpleString() == "string"
    with pytest.raises(S3PError, match="column x is double in the table and string in the write"):
        lake.append("t", new.withColumn("x", F.col("x").cast("string")), PARTS)  # still refused after the upgrade


def test_a_read_has_the_catalogues_columns_before_the_first_write_adds_them(spark, lake):
    """A quarantine table written without ``line_sha256`` (by an s3p that did not have it yet) reads with the
    catalogue's columns, that one null."""
    from scope3plus.catalog import table as declared
    from scope3plus.pipeline import tables

    name = tables.quarantine("green_trip")
    old = declared(name).schema
    old = type(old)([f for f in old.fields if f.name != "line_sha256"])
    row = {"landing_date": D1, "source_file": "f.jsonl", "value": "{}", "reasons": ["malformed_json"],
           "run_id": "r1", "quarantined_at": dt.datetime(2026, 11, 1)}
    lake.append(name, spark.createDataFrame([tuple(row.get(f.name) for f in old.fields)], old), ["landing_date"])
    back = lake.read(name, {"landing_date": [D1]})
    assert sorted(back.columns) == sorted(declared(name).column_names) and back.first().line_sha256 is None


def test_an_overwrite_may_change_the_columns(spark, lake):
    """An overwrite replaces every file, so the table takes the write's columns."""
    lake.append("t", frame(spark), PARTS)
    lake.overwrite("t", frame(spark, 5).withColumn("x", F.col("x").cast("string")), PARTS)
    assert dict(lake.read("t").dtypes)["x"] == "string" and lake.read("t").count() == 5


def test_a_narrower_decimal_is_written_in_the_tables_wider_type(spark, lake):
    """A table created with decimal(28,9) (gold before session 9) keeps that type when a later version
    writes decimal(18,9): the values are cast up, exactly, and the table's schema does not change."""
    def amounts(precision):
        return frame(spark, 30).withColumn("kg", (F.col("n") * F.lit(0.000000001)).cast(f"decimal({precision},9)"))
    lake.append("t", amounts(28), PARTS)
    lake.replace_partitions("t", amounts(18).filter(F.col("scenario") == "a"), PARTS, {"scenario": ["a"]})
    back = lake.read("t")
    assert dict(back.dtypes)["kg"] == "decimal(28,9)"
    assert back.agg(F.sum("kg")).first()[0] == sum(range(30)) * Decimal("0.000000001")  # 435e-9: exact


def test_small_tables_read_without_spark_and_compact_when_fragmented(spark, lake):
    """read_small (pyarrow on the driver) gives the rows, types and partition values Spark reads;
    compact_if_fragmented rewrites each partition's files as one, same rows, once past the limit."""
    for i in range(4):  # 4 appends, each with a file or more in each of 6 partitions (2 scenarios x 3 dates)
        lake.append("t", frame(spark, 30).withColumn("n", F.col("n") + 100 * i), PARTS)
    small, full = lake.read_small("t"), lake.read("t")
    assert small.dtypes == full.dtypes and small.count() == 120  # (nullability is the Delta schema's)
    assert small.exceptAll(full).count() == 0 == full.exceptAll(small).count()
    files = lambda: len(DeltaTable(lake.path("t")).file_uris())  # noqa: E731
    before = files()
    assert before >= 24
    assert not lake.compact_if_fragmented("t", max_files=before)  # at the limit: left alone
    assert lake.compact_if_fragmented("t", max_files=10, run_id="r1")
    assert files() == 6 and counts(lake.read("t")) == counts(full)
    assert lake.read("t").exceptAll(full).count() == 0


def test_delta_rs_writes_a_log_checkpoint_every_ten_commits(spark, tmp_path):
    """Each open of a table replays the JSON commits since its last checkpoint: s3p checkpoints every
    CHECKPOINT_EVERY (10) commits rather than Delta's default 100."""
    from scope3plus.lake.deltars import CHECKPOINT_EVERY

    lake = open_lake(spark, tmp_path / "lake", backend="delta-rs")
    for i in range(12):  # versions 0 .. 11
        lake.append("t", frame(spark, 3).withColumn("n", F.col("n") + 10 * i), PARTS)
    log = tmp_path / "lake" / "t" / "_delta_log"
    assert CHECKPOINT_EVERY == 10
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == ["00000000000000000010.checkpoint.parquet"]
    assert lake.read("t").count() == 36

