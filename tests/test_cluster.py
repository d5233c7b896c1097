"""The daily pipeline on a real Spark standalone cluster (master + one worker on 127.0.0.1),
submitted with spark-submit exactly as on a cluster (with Delta Lake's jars and settings, writing
with the delta-spark backend) and tracked by a real ``mlflow server``, must publish the same tables
as a local-mode run (delta-rs) on the same input. Run it alone with
``pytest -m cluster``."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark
import pytest

from scope3plus import deltajars
from scope3plus.config import load_config
from scope3plus.generate import generate
from scope3plus.lake import open_lake
from scope3plus.pipeline import tables
from scope3plus.pipeline.daily import run_day
from scope3plus.spark import ensure_java

from .support import free_port, register_approved

ROOT = Path(__file__).resolve().parents[1]  # the checkout: jobs/ and conf/

pytestmark = pytest.mark.cluster
SPARK_HOME = Path(pyspark.__file__).parent
DAY = dt.date(2026, 11, 1)
LINEAGE = ("run_id", "latest_run_id")  # which run wrote a row: differs between any two runs


def master_state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A standalone master and one worker, started with pyspark's own spark-class; always stopped."""
    work = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "JAVA_HOME": ensure_java(), "SPARK_HOME": str(SPARK_HOME), "SPARK_LOG_DIR": str(work)}
    port, ui = free_port(), free_port()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    logs = [open(work / "master.log", "w"), open(work / "worker.log", "w")]
    procs = [subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(ui)], env=env, stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        procs.append(subprocess.Popen([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                       "--cores", "2", "--memory", "3g", "--webui-port", str(free_port()),
                                       "--work-dir", str(work / "worker"), f"spark://127.0.0.1:{port}"],
                                      env=env, stdout=logs[1], stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 90
        while True:
            try:
                if master_state(ui).get("aliveworkers", 0) >= 1:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                pytest.fail(f"the standalone cluster did not start; see {work}/master.log and worker.log")
            time.sleep(1)
        yield {"master": f"spark://127.0.0.1:{port}", "ui": ui, "env": env, "work": work}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 with a sqlite backend; always stopped."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
         "--workers", "1"], stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail(f"mlflow server did not start; see {root / 'server.log'}")
            time.sleep(1)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def published(spark, lake_root: str) -> dict:
    lake = open_lake(spark, lake_root)
    out = {}
    for name in (tables.GOLD_AVOIDED, tables.GOLD_DAILY, tables.GOLD_PROGRESS, tables.silver("green_trip")):
        df = lake.read(name)
        kept = [c for c in df.columns if c not in LINEAGE]
        out[name] = df.select(*kept).orderBy(*kept).collect()
    return out


def test_spark_submit_on_a_standalone_cluster_publishes_what_local_mode_publishes(spark, cluster, mlflow_server, tmp_path):
    landing = tmp_path / "landing"
    generate(spark, DAY, 1, 2000, landing, seed=5, dirty=0.02)
    local = load_config(None, landing=str(landing), lake=str(tmp_path / "local" / "lake"), lake_backend="delta-rs")
    profile = tmp_path / "cluster.yaml"  # the local profile, tracked by the MLflow server
    profile.write_text((ROOT / "conf" / "local.yaml").read_text(encoding="utf-8").replace(
        "  tracking_uri: null", f"  tracking_uri: {mlflow_server}"), encoding="utf-8")
    remote = load_config(str(profile), landing=str(landing), lake=str(tmp_path / "cluster" / "lake"))
    assert remote.tracking_uri() == mlflow_server
    for config in (local, remote):
        register_approved(config)
    run_day(spark, local, DAY)

    zip_path = tmp_path / "scope3plus.zip"
    subprocess.run([sys.executable, str(ROOT / "jobs" / "build_pyfiles.py"), str(zip_path)], check=True)
    delta = [arg for key, value in deltajars.SESSION_CONF.items() for arg in ("--conf", f"{key}={value}")]
    submit = subprocess.run(
        [str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster["master"], "--py-files", str(zip_path),
         "--jars", ",".join(deltajars.local_jars()), *delta,  # Delta Lake on Spark, as --packages gives it
         "--conf", f"spark.pyspark.python={sys.executable}", "--conf", "spark.executor.memory=1g",
         "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.ui.enabled=false",
         str(ROOT / "jobs" / "s3p_job.py"), "run", "--date", DAY.isoformat(), "--conf", str(profile),
         "--landing", str(landing), "--lake", remote.lake, "--backend", "delta-spark"],
        env={**cluster["env"], "PYSPARK_PYTHON": sys.executable}, capture_output=True, text=True, timeout=600)
    # spark-submit's PythonRunner merges the driver's stderr into its stdout; Spark's INFO chatter aside
    said = "\n".join(line for line in (submit.stdout + submit.stderr).splitlines() if " INFO " not in line)
    assert submit.returncode == 0, said[-3000:]
    assert "Traceback" not in said
    assert f"[{DAY}] gold:" in said, said[-3000:]  # the job's own progress lines came through
    # the gate's strict line parser came out of the --py-files zip and reached the cluster's executor (ADD JAR)
    assert "strict line parser" not in said, said[-3000:]

    state = master_state(cluster["ui"])
    apps = state.get("completedapps", []) + state.get("activeapps", [])
    assert any(app["name"] == "s3p-run" for app in apps), apps  # it really ran on the cluster
    assert published(spark, local.lake) == published(spark, remote.lake)

    # the run is in the MLflow server, with its parameters and metrics, read back through the client
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name(remote.mlflow_experiment)
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`s3p.job` = 'run'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    job_run = open_lake(spark, remote.lake).read(tables.JOB_RUNS).select("run_id", "mlflow_run_id").distinct().collect()
    assert [(r.run_id, r.mlflow_run_id) for r in job_run] == [(run.data.tags["s3p.run_id"], run.info.run_id)]
    backends = open_lake(spark, remote.lake).read(tables.JOB_RUNS).select("lake_backend").distinct().collect()
    assert [r.lake_backend for r in backends] == ["delta-spark"]  # the cluster wrote with Delta Lake on Spark
    assert run.data.params["landing_date"] == DAY.isoformat()
    landed = sum(1 for p in landing.glob("green_trip/*.jsonl") for _ in p.open())
    assert run.data.metrics["green_trip.landed_lines"] == landed
    assert "run_summary.json" in [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "s3p-methodology-green_trip" in [m.name for m in client.search_registered_models()]

