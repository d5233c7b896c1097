"""Run records: every job run goes to MLflow and to the ``ops/job_runs`` Delta table."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
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


#: tags every job's MLflow run carries: the machine and process that ran it (stale runs are found by them)
HOST_TAG, PID_TAG = "s3p.host", "s3p.pid"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def close_dead_runs(client, experiment: str) -> list[str]:
    """Mark ``KILLED`` the runs of ``experiment`` still ``RUNNING`` whose process, on this machine, is gone
    (a job killed with SIGKILL or by the OOM killer cannot end its own run). Runs of other machines
    are left alone: their processes cannot be checked from here. Returns the run ids closed."""
    host = socket.gethostname()
    closed = []
    for run in client.search_runs([experiment], filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
                                   max_results=200):
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            client.set_tag(run.info.run_id, "s3p.closed_as_killed_by", f"{host}:{os.getpid()}")
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


class MlflowRun:
    """One MLflow run: params at start, metrics and artifacts as they come, status at the end.

    Through the client API (no process-wide active run), so that a job may run another inside it
    (a backfill runs days, each with its run). Starting one first closes the runs of dead processes."""

    def __init__(self, config: Config, run_name: str, tags: dict):
        self.client = mlflow_client(config)
        experiment = experiment_id(self.client, config, config.mlflow_experiment, "runs")
        closed = close_dead_runs(self.client, experiment)
        if closed:
            print(f"note: closed {len(closed)} MLflow run(s) of killed jobs as KILLED: {', '.join(closed)}",
                  file=sys.stderr)
        tags = {**tags, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
        self.run = self.client.create_run(experiment, tags=tags, run_name=run_name)  # a store that fails here stops
        self.run_id = self.run.info.run_id                                         # the job before it writes
        self.problems: list[str] = []  # what the store failed to take (see _logged)

    def _logged(self, what: str, log) -> None:
        """``log()``, and if the tracking store fails (full, gone, unreachable): one warning line and a note in
        :attr:`problems`, never an exception. The job's tables are its result, MLflow is their trace: a store
        that fails after a job published must not turn the published job into a failed one."""
        try:
            log()
        except Exception as exc:  # noqa: BLE001
            problem = f"MLflow {what}: {type(exc).__name__}: {next(iter(str(exc).strip().splitlines()), '')[:200]}"
            self.problems.append(problem)
            print(f"warning: run {self.run_id} is not fully tracked: {problem}", file=sys.stderr)

    def tags(self, values: dict) -> None:
        def log():
            for key, value in values.items():
                self.client.set_tag(self.run_id, key, str(value))
        self._logged("tags", log)

    def params(self, values: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:500]) for k, v in values.items()]

        def log():
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params in one batch
                self.client.log_batch(self.run_id, params=items[i:i + 100])
        self._logged("params", log)

    def metrics(self, values: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in values.items() if v is not None]

        def log():
            for i in range(0, len(items), 1000):  # and at most 1000 metrics
                self.client.log_batch(self.run_id, metrics=items[i:i + 1000])
        self._logged("metrics", log)

    def artifact(self, data: dict, name: str) -> None:
        self._logged(f"artifact {name}",
                     lambda: self.client.log_dict(self.run_id, json.loads(json.dumps(data, default=str)), name))

    def artifacts(self, folder: str | Path, path: str) -> None:
        """Every file of ``folder`` under ``path`` among the run's artifacts."""
        self._logged(f"artifacts {path}/", lambda: self.client.log_artifacts(self.run_id, str(folder), artifact_path=path))

    def end(self, ok: bool) -> None:
        self._logged("end", lambda: self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED"))


def tracking_note(problems: list[str]) -> str:
    """What a run record says when the MLflow store failed to take some of the run's trace ("" when none)."""
    return f"MLflow tracking incomplete ({len(problems)} call(s) failed; first: {problems[0]})" if problems else ""


@contextmanager
def mlflow_run(config: Config, run_name: str, tags: dict):
    run = MlflowRun(config, run_name, tags)
    ok = False
    try:
        yield run
        ok = True
    finally:
        run.end(ok)


@dataclass
class JobTrace:
    """What a job without records of its own leaves: its MLflow run, and the ops/job_runs row it fills."""

    tracker: MlflowRun
    message: str = ""
    columns: dict = field(default_factory=dict)


@contextmanager
def job_run(lake: Lake, config: Config, job: str, run_id: str, run_name: str = "", **columns):
    """Trace a job that keeps no run records of its own (restate, rollup, aggregates load): an MLflow run
    tagged ``s3p.job`` / ``s3p.run_id``, and one ``ops/job_runs`` row (stage = the job) that ends
    ``succeeded``, or ``failed`` with the error's first line. The job sets ``trace.message`` and
    ``trace.columns`` for its row. A failure to write the row only warns: the job's own outcome stands."""
    started_at = dt.datetime.now(dt.timezone.utc)
    with mlflow_run(config, run_name or job, {"s3p.run_id": run_id, "s3p.job": job}) as tracker:
        trace, status = JobTrace(tracker, columns=dict(columns)), "failed"
        try:
            yield trace
            status = "succeeded"
        except BaseException as exc:
            trace.message = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise
        finally:
            message = "; ".join(m for m in (trace.message, tracking_note(tracker.problems)) if m)
            row = job_row(run_id, job, job, status, started_at, message, lake_backend=lake.backend,
                          mlflow_run_id=tracker.run_id, **trace.columns)
            try:
                record_job_runs(lake, [row])
            except Exception as exc:  # noqa: BLE001
                print(f"warning: {job} {run_id} is not recorded in {tables.JOB_RUNS}: {type(exc).__name__}: "
                      f"{next(iter(str(exc).splitlines()), '')}", file=sys.stderr)
