"""`s3p eventlog`: a Spark event log summarised per SQL execution, and `s3p bench --event-log`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scope3plus import bench, eventlog
from scope3plus.cli import main
from scope3plus.errors import S3PError


def _stage(stage_id, run_ms, cpu_ns, shuffle_write, spill, tasks=2, start=0, end=1000):
    acc = [{"Name": "internal.metrics.executorRunTime", "Value": run_ms},
           {"Name": "internal.metrics.executorCpuTime", "Value": cpu_ns},
           {"Name": "internal.metrics.shuffle.write.bytesWritten", "Value": shuffle_write},
           {"Name": "internal.metrics.diskBytesSpilled", "Value": spill}]
    return {"Event": "SparkListenerStageCompleted", "Stage Info": {
        "Stage ID": stage_id, "Stage Name": f"stage {stage_id}", "Number of Tasks": tasks,
        "Submission Time": start, "Completion Time": end, "Accumulables": acc}}


EVENTS = [
    {"Event": "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart", "executionId": 7,
     "description": "parquet at gate", "time": 10_000},
    {"Event": "SparkListenerJobStart", "Job ID": 3, "Stage IDs": [5, 6], "Properties": {"spark.sql.execution.id": "7"}},
    _stage(5, run_ms=3_000, cpu_ns=2_500_000_000, shuffle_write=2 * 2**20, spill=0, end=1_600),
    _stage(6, run_ms=1_500, cpu_ns=1_000_000_000, shuffle_write=0, spill=2**20, tasks=8),
    {"Event": "SparkListenerJobStart", "Job ID": 4, "Stage IDs": [9], "Properties": {}},  # not SQL: left out
    _stage(9, run_ms=99_000, cpu_ns=0, shuffle_write=0, spill=0),
    {"Event": "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd", "executionId": 7, "time": 12_500},
]


def test_a_summary_adds_up_its_stages():
    (x,) = eventlog.summarise(EVENTS)
    assert (x.execution_id, x.description, x.wall_s) == (7, "parquet at gate", 2.5)  # 12,500 - 10,000 ms
    assert [s.stage_id for s in x.stages] == [5, 6]
    assert x.task_s == pytest.approx(4.5)  # 3,000 + 1,500 ms of task time
    first, second = x.stages
    assert (first.wall_s, first.cpu_s, first.shuffle_write_mb) == (1.6, 2.5, 2.0)
    assert (second.tasks, second.spill_mb) == (8, 1.0)
    text = eventlog.as_text([x])
    assert "SQL 7" in text and "4.5 task-s" in text and "spill     1.0 MB" in text


def test_short_executions_are_hidden_but_counted():
    (x,) = eventlog.summarise(EVENTS)
    assert eventlog.as_text([x], min_seconds=3).splitlines() == [
        "0 of 1 SQL executions took at least 3 s; task seconds 4.5 in all"]


def test_a_file_that_is_not_an_event_log_is_one_line(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    assert main(["eventlog", str(bad)]) == 2
    assert main(["eventlog", str(tmp_path / "missing")]) == 2
    squeezed = tmp_path / "events_1_app.zstd"
    squeezed.write_bytes(b"\x28\xb5\x2f\xfd")
    assert main(["eventlog", str(squeezed)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "not a Spark event log" in err[0] and "no such event log" in err[1]
    assert "compressed" in err[2]


def test_bench_refuses_an_event_log_in_a_session_without_one(spark, tmp_path):
    with pytest.raises(S3PError, match="new Spark session"):
        bench.bench(1_000, root=tmp_path / "b", event_log=tmp_path / "log")


@pytest.mark.e2e
def test_bench_writes_an_event_log_that_the_summary_reads(tmp_path):
    logs = tmp_path / "log"
    out = subprocess.run([sys.executable, "-m", "scope3plus.cli", "bench", "--events", "3000", "--format", "json",
                          "--root", str(tmp_path / "b"), "--event-log", str(logs)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["events"] == 3000
    executions = eventlog.summarise(eventlog.read_events(logs))  # the folder holds exactly one log
    writes = [x for x in executions if x.stages and x.task_s > 0]
    assert len(writes) >= 10  # the floor's five writes, and each scenario's ingest and gate
    assert any(s.shuffle_write_mb > 0 for x in executions for s in x.stages)  # the gate's dedupe shuffle


def test_an_event_log_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    """An "Event" that is not a name, and a known event without its fields: one line each, exit 2."""
    not_a_name = tmp_path / "events_1_app"
    not_a_name.write_text('{"Event": 5}\n')
    truncated = tmp_path / "events_2_app"
    truncated.write_text('{"Event": "SparkListenerJobStart", "Stage IDs": [1]}\n')
    assert main(["eventlog", str(not_a_name)]) == 2
    assert main(["eventlog", str(truncated)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a Spark event log" in err[0], err
    assert "not a Spark event log" in err[1] and "SparkListenerJobStart" in err[1] and "Job ID" in err[1], err
