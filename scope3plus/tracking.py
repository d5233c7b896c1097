"""Run records: every job run goes to MLflow and to the ``ops/job_runs`` Delta table."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

from .catalog import table
from .config import Config
from .lake import Lake
from .pipeline import tables

JOB_RUNS_SCHEMA = table(tables.JOB_RUNS).ddl  # declared in schemas/tables/ops.yaml
JOB_RUNS_COLUMNS = table(tables.JOB_RUNS).column_names


def new_run_id(job: str, day: dt.date | None = None) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{job}-{day.isoformat() if day else 'na'}-{stamp}-{uuid.uuid4().hex[:6]}"


def job_row(run_id: str, job: str, stage: str, status: str, started_at: dt.datetime, message: str = "",
            **columns) -> dict:
    """One ``ops/job_runs`` record ending now: the given columns, the others null."""
    unknown = set(columns) - set(JOB_RUNS_COLUMNS)
    if unknown:
        raise ValueError(f"not ops/job_runs columns: {sorted(unknown)}")
    ended_at = dt.datetime.now(dt.timezone.utc)
    return {"run_id": run_id, "job": job, "stage": stage, "status": status, "started_at": started_at,
            "ended_at": ended_at, "seconds": (ended_at - started_at).total_seconds(), "message": message, **columns}


#: ops/job_runs gains a file or two with every job; past this many it is compacted (one file per job)
JOB_RUNS_MAX_FILES = 32


def record_job_runs(lake: Lake, rows: list[dict]) -> None:
    """Append run records (a handful of rows) to ``ops/job_runs``, compacting the table when its
    files pile up (every run reads it: the latest status, the volume check's history)."""
    if not rows:
        return
    data = [tuple(row.get(c) for c in JOB_RUNS_COLUMNS) for row in rows]
    df = lake.spark.createDataFrame(data, JOB_RUNS_SCHEMA)
    lake.append(tables.JOB_RUNS, df, partition_by=table(tables.JOB_RUNS).partition_by)
    try:
        lake.compact_if_fragmented(tables.JOB_RUNS, JOB_RUNS_MAX_FILES, rows[0].get("run_id"))
    except Exception as exc:  # noqa: BLE001 - the record is written; compaction is retried next time
        print(f"warning: could not compact {tables.JOB_RUNS}: {type(exc).__name__}: "
              f"{next(iter(str(exc).splitlines()), '')} (s3p maintain compacts it too)", file=sys.stderr)


def mlflow_client(config: Config):
    """An MlflowClient on the configured store, for tracking and the model registry alike."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    uri = config.tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client, config: Config, name: str, artifact_folder: str) -> str:
    """The experiment ``name``, created on first use; with the local store its artifacts go to
    ``<mlflow_dir>/artifacts/<artifact_folder>`` rather than the current directory."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if config.mlflow_tracking_uri is None:
        folder = config.mlflow_folder / "artifacts" / artifact_folder
        folder.mkdir(parents=True, exist_ok=True)
        location = folder.as_uri()
    return client.create_experiment(name, artifact_location=location)


class MlflowRun:
    """One MLflow run: params at start, metrics and artifacts as they come, status at the end."""

    def __init__(self, config: Config, run_name: str, tags: dict):
        import mlflow

        self.mlflow = mlflow
        experiment = experiment_id(mlflow_client(config), config, config.mlflow_experiment, "runs")
        mlflow.set_tracking_uri(config.tracking_uri())
        self.run = mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags)
        self.run_id = self.run.info.run_id

    def params(self, values: dict) -> None:
        self.mlflow.log_params({k: str(v)[:500] for k, v in values.items()})

    def metrics(self, values: dict) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in values.items() if v is not None})

    def artifact(self, data: dict, name: str) -> None:
        self.mlflow.log_dict(json.loads(json.dumps(data, default=str)), name)

    def end(self, ok: bool) -> None:
        self.mlflow.end_run("FINISHED" if ok else "FAILED")


@contextmanager
def mlflow_run(config: Config, run_name: str, tags: dict):
    run = MlflowRun(config, run_name, tags)
    ok = False
    try:
        yield run
        ok = True
    finally:
        run.end(ok)
