"""Lake locations: URIs stay URIs, folders become absolute paths, and delta-rs refuses an object store."""

from __future__ import annotations

import os

import pytest

from scope3plus.errors import S3PError
from scope3plus.lake import open_lake
from scope3plus.lakeuri import is_uri, join, local_path, normalise
from scope3plus.lock import lock_path


@pytest.mark.parametrize("location, uri", [
    ("s3://bucket/lake", True), ("abfss://c@acct.dfs.core.windows.net/lake", True), ("gs://b/l", True),
    ("file:///data/lake", True), ("dbfs:/mnt/lake", True), ("data/lake", False), ("/data/lake", False),
    ("C:\\\\data\\\\lake", False),
])
def test_is_uri(location, uri):
    assert is_uri(location) is uri


def test_object_store_uris_stay_uris_and_folders_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalise("s3://bucket/lake/") == "s3://bucket/lake"  # not <cwd>/s3:/bucket/lake
    assert normalise("abfss://c@acct.dfs.core.windows.net/lake") == "abfss://c@acct.dfs.core.windows.net/lake"
    assert normalise("data/lake") == os.path.join(str(tmp_path), "data", "lake")
    assert normalise("file:///srv/lake") == "file:///srv/lake"


def test_local_path_of_a_folder_a_file_uri_and_an_object_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert local_path("file:///srv/my%20lake") == "/srv/my lake"
    assert local_path("file://localhost/srv/lake") == "/srv/lake"
    assert local_path("lake") == os.path.join(str(tmp_path), "lake")
    assert local_path("s3://bucket/lake") is None and local_path("file://otherhost/srv") is None


def test_join_keeps_the_scheme():
    assert join("s3://bucket/lake/", "gold/avoided_emissions") == "s3://bucket/lake/gold/avoided_emissions"
    assert join("/srv/lake", "_s3p", "staging") == "/srv/lake/_s3p/staging"


def test_the_lock_lives_on_a_filesystem_only():
    assert lock_path("s3://bucket/lake") is None
    assert str(lock_path("file:///srv/lake")) == "/srv/lake/_s3p/lock"


def test_delta_spark_takes_an_object_store_uri_and_delta_rs_refuses_it_naming_delta_spark(spark):
    lake = open_lake(spark, "s3://bucket/lake/", backend="delta-spark")
    assert lake.root == "s3://bucket/lake" and lake.path("gold/progress") == "s3://bucket/lake/gold/progress"
    assert lake.staging_path("x") == "s3://bucket/lake/_s3p/staging/x"
    with pytest.raises(S3PError, match=r"^the delta-rs backend moves data files on a filesystem, and the lake "
                                       r"s3://bucket/lake is on an object store: use the delta-spark backend"):
        open_lake(spark, "s3://bucket/lake", backend="delta-rs")


def test_a_file_uri_lake_works_on_both_backends(spark, tmp_path):
    for backend in ("delta-rs", "delta-spark"):
        lake = open_lake(spark, f"file://{tmp_path}/{backend}", backend=backend)
        lake.append("t", spark.range(5).withColumnRenamed("id", "n"))
        assert lake.read("t").count() == 5 and lake.version("t") == 0


def test_mlflow_beside_an_object_store_lake_is_a_clear_error_and_a_folder_lake_keeps_it_beside(tmp_path):
    from scope3plus.config import load_config

    config = load_config(None, lake="s3://bucket/lake")
    with pytest.raises(S3PError, match="on an object store, so MLflow's local store cannot sit beside it: set "
                                       "mlflow.tracking_uri"):
        config.tracking_uri()
    assert load_config(None, lake="s3://bucket/lake", mlflow_tracking_uri="http://127.0.0.1:5000").tracking_uri() \
        == "http://127.0.0.1:5000"
    assert load_config(None, lake=str(tmp_path / "lake")).mlflow_folder == tmp_path / "mlflow"
