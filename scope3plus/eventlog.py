"""Where a run's time went, from a Spark event log: one line per SQL execution (a write, a collect),
with its stages' task time, CPU, GC, shuffle and spill.

``s3p bench --event-log DIR`` (or any job with ``spark.eventLog.enabled=true``) writes the log;
``s3p eventlog PATH`` prints this summary. Task seconds, summed over tasks, are what the 2 cores
spend: a stage whose wall time is far above task seconds / cores left a core idle (too few tasks,
a straggler), and spill or GC names the memory-bound ones (BENCHMARKS.md reads its profiles this way).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .errors import S3PError


def event_log_conf(directory: str | Path) -> dict:
    """Settings that make a new session write an uncompressed event log into ``directory`` (the
    summary reads plain JSON lines; Spark 4 compresses with zstd by default)."""
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": Path(directory).resolve().as_uri(),
            "spark.eventLog.compress": "false"}


@dataclass
class Stage:
    stage_id: int
    name: str
    tasks: int
    wall_s: float
    task_s: float  # executor run time summed over the stage's tasks
    cpu_s: float
    gc_s: float
    shuffle_write_mb: float
    shuffle_read_mb: float
    spill_mb: float
    records_in: int


@dataclass
class Execution:
    execution_id: int
    description: str
    started_ms: int
    wall_s: float = 0.0
    stages: list[Stage] = field(default_factory=list)

    @property
    def task_s(self) -> float:
        return sum(s.task_s for s in self.stages)


def event_files(path: str | Path) -> list[Path]:
    """The files of an event log: a single file, or a rolling log's folder (``eventlog_v2_*``)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("events_*"), key=_part_number)
        if not files:
            logs = sorted(p for p in path.iterdir() if p.name.startswith(("eventlog_v2_", "local-", "app-")))
            if len(logs) == 1:
                return event_files(logs[0])
            raise S3PError(f"{path}: no event log here" + (f"; it holds {len(logs)} logs, name one" if logs else ""))
        return files
    if not path.exists():
        raise S3PError(f"{path}: no such event log")
    return [path]


def _part_number(file: Path) -> int:
    """A rolling log's part number: ``events_<n>_<app id>``."""
    part = file.name.split("_")[1] if file.name.count("_") >= 1 else ""
    return int(part) if part.isdigit() else 0


def read_events(path: str | Path) -> Iterator[dict]:
    for f in event_files(path):
        if f.suffix in (".zstd", ".lz4", ".snappy", ".lzf"):
            raise S3PError(f"{f}: a compressed event log; decompress it (e.g. zstd -d) or write it with "
                           "spark.eventLog.compress=false (s3p bench --event-log does)")
        with open(f, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    raise S3PError(f"{f}:{number}: not a Spark event log (a line that is not JSON)") from None
                if not isinstance(event, dict) or not isinstance(event.get("Event"), str):
                    raise S3PError(f"{f}:{number}: not a Spark event log (no \"Event\" name)")
                yield event


def _metric(accumulables: dict, name: str) -> float:
    value = accumulables.get(f"internal.metrics.{name}")
    return float(value) if value not in (None, "") else 0.0


def summarise(events: Iterable[dict]) -> list[Execution]:
    """SQL executions in start order, each with the stages of its jobs."""
    executions: dict[int, Execution] = {}
    job_execution: dict[int, int] = {}
    stage_job: dict[int, int] = {}
    for e in events:
        try:
            _add_event(e, executions, job_execution, stage_job)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise S3PError(f"not a Spark event log: a {e.get('Event')} event without a readable {exc}") from None
    return sorted(executions.values(), key=lambda x: x.started_ms)


def _add_event(e: dict, executions: dict, job_execution: dict, stage_job: dict) -> None:
    """Take one event into ``executions`` (by id), ``job_execution`` and ``stage_job``."""
    kind = e["Event"]
    if kind.endswith("SQLExecutionStart"):
        executions[e["executionId"]] = Execution(e["executionId"], e.get("description", ""), e["time"])
    elif kind.endswith("SQLExecutionEnd") and e["executionId"] in executions:
        execution = executions[e["executionId"]]
        execution.wall_s = (e["time"] - execution.started_ms) / 1000
    elif kind == "SparkListenerJobStart":
        execution = e.get("Properties", {}).get("spark.sql.execution.id")
        if execution is not None:
            job_execution[e["Job ID"]] = int(execution)
        for stage in e.get("Stage IDs", []):
            stage_job[stage] = e["Job ID"]
    elif kind == "SparkListenerStageCompleted":
        info = e["Stage Info"]
        acc = {a["Name"]: a.get("Value") for a in info.get("Accumulables", []) if "Name" in a}
        execution = job_execution.get(stage_job.get(info["Stage ID"], -1))
        if execution not in executions:
            return
        mb = 2 ** 20
        executions[execution].stages.append(Stage(
            info["Stage ID"], info.get("Stage Name", "")[:60], info.get("Number of Tasks", 0),
            (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1000,
            _metric(acc, "executorRunTime") / 1000, _metric(acc, "executorCpuTime") / 1e9,
            _metric(acc, "jvmGCTime") / 1000, _metric(acc, "shuffle.write.bytesWritten") / mb,
            (_metric(acc, "shuffle.read.localBytesRead") + _metric(acc, "shuffle.read.remoteBytesRead")) / mb,
            _metric(acc, "diskBytesSpilled") / mb, int(_metric(acc, "input.recordsRead"))))


def as_text(executions: list[Execution], min_seconds: float = 0.3) -> str:
    shown = [x for x in executions if x.wall_s >= min_seconds]
    lines = [f"{len(shown)} of {len(executions)} SQL executions took at least {min_seconds:g} s; "
             f"task seconds {sum(x.task_s for x in executions):.1f} in all"]
    for x in shown:
        lines.append(f"SQL {x.execution_id:<5} {x.wall_s:7.2f} s wall {x.task_s:7.1f} task-s  {x.description[:70]}")
        for s in x.stages:
            lines.append(f"    stage {s.stage_id:<5} {s.wall_s:6.2f} s  tasks {s.tasks:<4} task-s {s.task_s:6.1f} cpu {s.cpu_s:6.1f} "
                         f"gc {s.gc_s:5.1f}  shuffle w/r {s.shuffle_write_mb:7.1f}/{s.shuffle_read_mb:7.1f} MB  "
                         f"spill {s.spill_mb:7.1f} MB  rows in {s.records_in:,}")
    return "\n".join(lines)
