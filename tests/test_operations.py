"""Operations: `s3p backfill` (resumable, in order), `s3p maintain` (compaction, vacuum under the
time-travel guard, checkpoints) and the lake lock (a second writer stops with one clear line).

One module-scoped lake lives through an operator's week: a backfill interrupted in the middle
of its second day, maintenance, the resumed backfill, a backfill with nothing left to do. The
tests below check what each step left behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from scope3plus import cli
from scope3plus.config import load_config
from scope3plus.paths import conf_dir
from scope3plus.contracts import SCENARIOS
from scope3plus.errors import LakeBusy
from scope3plus.generate import generate
from scope3plus.lake import open_lake
from scope3plus.lock import lake_lock
from scope3plus.maintain import find_tables
from scope3plus.pipeline import tables
from scope3plus.pipeline.backfill import DONE, RUN, ProgressBar, duration, plan, run_backfill
from scope3plus.tracking import mlflow_client

from .support import register_approved

D1, D2, D3 = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)  # D3: nothing delivered
PROGRESS_BACKDATED_HOURS = 200


class Interrupt(io.StringIO):
    """stderr of a backfill that is interrupted (Ctrl-C) right after the first scenario of ``day``
    was ingested and gated: bronze and silver of that day are written, nothing is published."""

    def __init__(self, day: dt.date):
        super().__init__()
        self.prefix, self.fired = f"[{day}] ", False

    def write(self, text):
        super().write(text)
        if not self.fired and text.startswith(self.prefix):
            self.fired = True
            raise KeyboardInterrupt
        return len(text)


def rows(path: str, version: int | None = None) -> list[str]:
    """A Delta table's rows (partition values included), sorted, read with delta-rs + pyarrow;
    ``version`` time-travels."""
    table = DeltaTable(path, version=version)
    out = []
    for action in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        parts = {k.removeprefix("partition."): v for k, v in action.items() if k.startswith("partition.")}
        for row in pq.read_table(os.path.join(path, unquote(action["path"]))).to_pylist():
            out.append(repr(sorted({**row, **parts}.items())))
    return sorted(out)


def versions(lake_root: str) -> dict[str, int]:
    return {name: DeltaTable(f"{lake_root}/{name}").version() for name in find_tables(lake_root)}


def backdate_removes(path: str, version: int, hours: int) -> list[str]:
    """Rewrite commit ``version``'s remove actions as if it had been committed ``hours`` ago (the only
    way to age a commit past a 7-day window in a test); return the removed files."""
    log = Path(path) / "_delta_log" / f"{version:020d}.json"
    when = int((time.time() - hours * 3600) * 1000)
    actions, removed = [], []
    for line in log.read_text(encoding="utf-8").splitlines():
        action = json.loads(line)
        if "remove" in action:
            action["remove"]["deletionTimestamp"] = when
            removed.append(unquote(action["remove"]["path"]))
        actions.append(json.dumps(action))
    log.write_text("\n".join(actions) + "\n", encoding="utf-8")
    return removed


def cli_main(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def week(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("operations")
    config = load_config(None, landing=str(root / "landing"), lake=str(root / "lake"), mlflow_dir=str(root / "mlflow"))
    # the local profile, but bronze keeps its lines as delivered whatever today's date: maintenance here is
    # about files and versions (the privacy step, which would rewrite bronze once D1 is 37 days old, is
    # tests/test_minimise.py's)
    profile = root / "local-keep-lines.yaml"
    profile.write_text((conf_dir() / "local.yaml").read_text(encoding="utf-8")
                       .replace("raw_line_retention_days: null", "raw_line_retention_days: 3660"))
    keep = ("--conf", str(profile))
    generate(spark, D1, 2, 200, Path(config.landing), seed=11, dirty=0.02)
    register_approved(config)
    lake = open_lake(spark, config.lake)
    state = {"config": config, "lake": lake, "maintain_profile": profile}

    # 1. a backfill interrupted in the middle of D2
    state["interrupted_err"] = Interrupt(D2)
    with pytest.raises(KeyboardInterrupt):
        run_backfill(spark, config, D1, D2, stream=state["interrupted_err"])

    # 2. progress republished as it is (a version inside the window that is no longer current), then
    #    maintenance, with gold/progress's version 1 (which replaced version 0) aged past the 7-day window
    lake.overwrite(tables.GOLD_PROGRESS, lake.read(tables.GOLD_PROGRESS))
    progress_path = f"{config.lake}/{tables.GOLD_PROGRESS}"
    state["tables"] = find_tables(config.lake)
    state["before"] = {name: rows(f"{config.lake}/{name}") for name in state["tables"]}
    state["gold_before"] = sorted(map(repr, lake.read(tables.GOLD_AVOIDED).collect()))
    state["progress_versions"] = {v: rows(progress_path, v) for v in range(DeltaTable(progress_path).version() + 1)}
    state["aged_files"] = backdate_removes(progress_path, 1, PROGRESS_BACKDATED_HOURS)
    state["versions_before"] = versions(config.lake)
    # what a writer killed before its commit leaves: a Parquet file in a table's folder that no commit added
    silver = Path(config.lake) / tables.silver("green_trip")
    committed = sorted(silver.glob("landing_date=*/*.parquet"))[0]
    state["untracked"] = (committed.parent / "part-99999-killed-writer.c000.snappy.parquet").relative_to(silver).as_posix()
    (silver / state["untracked"]).write_bytes(committed.read_bytes())
    state["refused"] = cli_main("maintain", "--lake", config.lake, "--retention-hours", "1", *keep)
    state["dry_run"] = cli_main("maintain", "--lake", config.lake, "--dry-run", *keep)
    state["versions_after_dry_run"] = versions(config.lake)
    state["maintain"] = cli_main("maintain", "--lake", config.lake, *keep)
    state["after"] = {name: rows(f"{config.lake}/{name}") for name in state["tables"]}
    state["gold_after"] = sorted(map(repr, lake.read(tables.GOLD_AVOIDED).collect()))

    # 3. the backfill again, over a range that ends with a day nobody delivered: resumes at D2
    state["resumed_err"] = io.StringIO()
    state["resumed"] = run_backfill(spark, config, D1, D3, stream=state["resumed_err"])
    # 4. and once more: nothing left to do
    state["again"] = run_backfill(spark, config, D1, D3, stream=io.StringIO())
    # 5. the jobs that keep no records of their own leave a trace too
    state["rollup"] = cli_main("rollup", "--lake", config.lake)
    state["aggregates"] = cli_main("aggregates", "load", "--lake", config.lake)
    return state


def test_an_interrupted_backfill_resumes_where_it_stopped_and_counts_nothing_twice(week):
    config, lake = week["config"], week["lake"]
    err = week["interrupted_err"].getvalue()
    assert f"backfill 1/2 {D1} ... (never run;" in err and f"backfill 1/2 {D1} done in" in err
    assert f"backfill stopped at {D2}: KeyboardInterrupt; run the same command again to resume" in err
    resumed = week["resumed"]
    assert resumed.ran == [D2] and [d for d, _ in resumed.skipped] == [D1] and resumed.no_files == [D3]
    out = week["resumed_err"].getvalue().splitlines()
    assert out[0].startswith(f"backfill 1/3 {D1} skipped: published by run-{D1}-")
    assert out[1].startswith(f"backfill 2/3 {D2} ... (last run failed; elapsed ")
    assert out[-1] == f"backfill 3/3 {D3} skipped: no landing files"
    assert any(line.startswith(f"backfill 2/3 {D2} done in ") and line.endswith(", ETA 0.0 s") for line in out)
    assert week["again"].ran == [] and [d for d, _ in week["again"].skipped] == [D1, D2]
    # exactly once: the half-written bronze/silver of the interrupted D2 run were replaced, not added to
    for scenario in SCENARIOS:
        landed = sum(len(p.read_bytes().splitlines()) for p in (Path(config.landing) / scenario).glob(f"{D2}*.jsonl"))
        assert lake.read(tables.bronze(scenario)).filter(F.col("landing_date") == F.lit(D2)).count() == landed
        silver = lake.read(tables.silver(scenario))
        assert silver.count() == silver.select("event_id").distinct().count()
    runs = lake.read(tables.JOB_RUNS).filter((F.col("job") == "run") & (F.col("stage") == "publish"))
    assert sorted((r.landing_date, r.status) for r in runs.collect()) == [(D1, "succeeded"), (D2, "failed"), (D2, "succeeded")]
    backfills = sorted(lake.read(tables.JOB_RUNS).filter(F.col("job") == "backfill").collect(), key=lambda r: r.started_at)
    assert [(b.status, b.touched_dates) for b in backfills] == [("failed", str(D1)), ("succeeded", str(D2)), ("succeeded", "")]
    assert backfills[0].message.endswith(f"; stopped at {D2}: KeyboardInterrupt")
    assert backfills[1].message == f"{D1}..{D3}: 1 day(s) run, 1 skipped (already published, landing unchanged), 1 without landing files"


def test_a_changed_landing_file_or_rerun_makes_a_published_day_run_again(week):
    config, lake = week["config"], week["lake"]
    assert [p.action for p in plan(lake, config, D1, D2)] == [DONE, DONE]
    assert [p.action for p in plan(lake, config, D1, D2, rerun=True)] == [RUN, RUN]
    redelivered = sorted((Path(config.landing) / "green_trip").glob(f"{D1}*.jsonl"))[0]
    later = time.time() + 60
    os.utime(redelivered, (later, later))
    assert [(p.action, p.reason) for p in plan(lake, config, D1, D2)][0] == (RUN, "landing files changed since the last run")
    assert plan(lake, config, D2, D2)[0].action == DONE


def test_backfill_arguments_fail_in_one_line_before_anything_runs(week):
    config = week["config"]
    code, _, err = cli_main("backfill", "--from", "2026-01-01", "--to", "2026-01-03", "--landing", config.landing, "--lake", config.lake)
    assert code == 2 and err == (f"s3p: error: no landing files for any date from 2026-01-01 to 2026-01-03 under "
                                 f"{config.landing} (expected <landing>/<scenario>/<YYYY-MM-DD>*.jsonl)\n")
    code, _, err = cli_main("backfill", "--from", str(D1), "--to", "2035-12-30", "--landing", config.landing, "--lake", config.lake)
    assert code == 2 and err.startswith("s3p: error: delivery date 2035-12-30 is in the future: today is ")
    code, _, err = cli_main("backfill", "--from", str(D2), "--to", str(D1), "--landing", config.landing, "--lake", config.lake)
    assert code == 2 and err == f"s3p: error: --to {D1} is before --from {D2}\n"


def test_progress_bar_rewrites_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    bar = ProgressBar(term)
    bar.show("backfill 1/2 2026-11-01 ...")
    bar.note("[2026-11-01] green_trip: 10 lines")
    bar.show("backfill 1/2 2026-11-01 done in 1.0 s, ETA 1.0 s")
    bar.close()
    assert term.getvalue() == ("\r\x1b[Kbackfill 1/2 2026-11-01 ...\r\x1b[K[2026-11-01] green_trip: 10 lines\n"
                               "backfill 1/2 2026-11-01 ...\r\x1b[Kbackfill 1/2 2026-11-01 done in 1.0 s, ETA 1.0 s\n")
    assert (duration(12.34), duration(86), duration(7500)) == ("12.3 s", "1 min 26 s", "2 h 5 min")


def test_maintain_compacts_and_checkpoints_without_changing_any_table(week):
    config = week["config"]
    code, out, err = week["maintain"]
    assert code == 0, err
    after = {**week["after"], tables.JOB_RUNS: [r for r in week["after"][tables.JOB_RUNS] if "('job', 'maintain')" not in r]}
    assert len(after[tables.JOB_RUNS]) == len(week["after"][tables.JOB_RUNS]) - len(week["tables"])  # its own records
    assert after == week["before"]  # every table, every row
    assert week["gold_after"] == week["gold_before"]  # and as Spark reads it
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    assert set(lines) == set(week["tables"]) >= {tables.GOLD_AVOIDED, tables.JOB_RUNS, tables.silver("green_trip")}
    assert ": compacted 0 file(s)" not in lines[tables.JOB_RUNS]  # one append per run: small files in job=run
    for name in week["tables"]:
        checkpoint = int(re.search(r"checkpoint at version (\d+)", lines[name]).group(1))
        assert (Path(config.lake) / name / "_delta_log" / f"{checkpoint:020d}.checkpoint.parquet").is_file(), name
    assert err.strip().endswith("maintained %d table(s), vacuum retention 168 h; recorded in ops/job_runs" % len(week["tables"]))


def test_vacuum_keeps_every_version_of_the_window_and_only_those(week):
    config = week["config"]
    path = f"{config.lake}/{tables.GOLD_PROGRESS}"
    before = week["progress_versions"]
    # D1's run wrote progress twice, the interrupted D2 run its failed status once, then it was republished
    assert len(before) == 4
    for version in (1, 2, 3):  # current at some moment inside the window: still readable, unchanged
        assert rows(path, version) == before[version], version
    with pytest.raises(FileNotFoundError):  # superseded 200 h ago, outside the 168 h window: vacuumed
        rows(path, 0)
    assert f"vacuum removed {len(week['aged_files'])} file(s)" in week["maintain"][1]
    for name in set(week["tables"]) - {tables.GOLD_PROGRESS}:
        assert " vacuum removed 0 file(s)" in next(l for l in week["maintain"][1].splitlines() if l.startswith(name + ":"))


def test_dry_run_lists_what_vacuum_would_delete_and_changes_nothing(week):
    code, out, _ = week["dry_run"]
    assert code == 0
    assert week["versions_after_dry_run"] == week["versions_before"]
    would = sorted(line.removeprefix("  would delete ") for line in out.splitlines()
                   if line.startswith("  would delete ") and not line.startswith("  would delete untracked "))
    assert would == sorted(week["aged_files"]) and would
    assert f"{tables.GOLD_PROGRESS}: version" in out and "could be compacted" in out


def test_a_file_no_commit_added_is_listed_by_the_dry_run_and_deleted_by_maintain(week):
    config, untracked = week["config"], week["untracked"]
    name = tables.silver("green_trip")
    assert f"  would delete untracked {untracked}" in week["dry_run"][1].splitlines()
    assert f"{name}: version" in week["dry_run"][1] and "and 1 untracked file(s)" in week["dry_run"][1]
    assert "and 1 untracked file(s), checkpoint" in next(l for l in week["maintain"][1].splitlines() if l.startswith(name + ":"))
    assert not (Path(config.lake) / name / untracked).exists()
    assert week["after"][name] == week["before"][name]  # it was in no version: every row is still there


def test_every_job_leaves_an_mlflow_run_and_a_record(week):
    """backfill, rollup and aggregates load (restate: tests/test_restate.py): an ops/job_runs row whose
    MLflow run carries the job's tag and ends as the job did (issue 22, item 7)."""
    config, lake = week["config"], week["lake"]
    assert week["rollup"][0] == 0 and week["aggregates"][0] == 0, (week["rollup"], week["aggregates"])
    client = mlflow_client(config)
    records = lake.read(tables.JOB_RUNS).filter(F.col("job").isin("backfill", "rollup", "aggregates load")).collect()
    seen = sorted((r.job, r.status, client.get_run(r.mlflow_run_id).info.status,
                   client.get_run(r.mlflow_run_id).data.tags["s3p.job"]) for r in records)
    assert seen == [("aggregates load", "succeeded", "FINISHED", "aggregates load"),
                    ("backfill", "failed", "FAILED", "backfill"),  # the interrupted one
                    ("backfill", "succeeded", "FINISHED", "backfill"), ("backfill", "succeeded", "FINISHED", "backfill"),
                    ("rollup", "succeeded", "FINISHED", "rollup")]


def test_progress_says_which_deliveries_are_late(week):
    """The week's deliveries are dated 2026-11-01 and 02; the clock is later: each scenario is overdue."""
    code, out, err = cli_main("progress", "--lake", week["config"].lake, "--format", "json")
    assert code == 0, err
    shown = {s: v["freshness"] for s, v in json.loads(out)["scenarios"].items()}
    assert {s: (f["latest_delivery"], f["next_due_at"]) for s, f in shown.items()} == {
        s: (str(D2), "2026-11-04T06:00:00+08:00") for s in SCENARIOS}
    now = dt.datetime.now(dt.timezone.utc)
    hours = (now - dt.datetime(2026, 11, 3, 22, tzinfo=dt.timezone.utc)).total_seconds() / 3600
    assert all(f["status"] == ("error" if hours > 24 else "warn" if hours > 0 else "fresh") for f in shown.values())
    code, out, _ = cli_main("progress", "--lake", week["config"].lake)
    assert code == 0 and ("Deliveries LATE for " in out) == (hours > 0)


KILLED_JOB = """
import sys, time
from scope3plus.config import load_config
from scope3plus.tracking import MlflowRun
run = MlflowRun(load_config(None, lake=sys.argv[1], mlflow_dir=sys.argv[2]), "killed job", {"s3p.job": "ingest"})
print(run.run_id, flush=True)
time.sleep(120)
"""


def test_the_next_job_closes_the_mlflow_run_of_a_killed_job_as_killed(tmp_path):
    from scope3plus.tracking import MlflowRun

    config = load_config(None, lake=str(tmp_path / "lake"), mlflow_dir=str(tmp_path / "mlflow"))
    job = subprocess.Popen([sys.executable, "-c", KILLED_JOB, config.lake, str(tmp_path / "mlflow")],
                           stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        killed = job.stdout.readline().strip()
        alive = MlflowRun(config, "a job beside it", {"s3p.job": "rollup"})  # the killed one is still running
        client = mlflow_client(config)
        assert client.get_run(killed).info.status == "RUNNING"
        alive.end(True)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
    later = MlflowRun(config, "the next job", {"s3p.job": "rollup"})
    later.end(True)
    run = client.get_run(killed)
    assert run.info.status == "KILLED" and run.data.tags["s3p.closed_as_killed_by"].endswith(f":{os.getpid()}")
    assert client.get_run(later.run_id).info.status == "FINISHED"


def test_a_tracking_store_that_fails_after_the_start_warns_and_never_fails_the_job(tmp_path, capsys):
    """Issue 23, item 5: MLflow is a job's trace, its tables are its result. The run's artifact folder is made
    a file (a real ENOTDIR from the store, as a full or gone store would fail): logging there warns, the
    failure is noted for the run's record, and the rest of the trace is still kept."""
    from urllib.parse import urlparse

    from scope3plus.tracking import MlflowRun, tracking_note

    config = load_config(None, lake=str(tmp_path / "lake"), mlflow_dir=str(tmp_path / "mlflow"))
    run = MlflowRun(config, "a published job", {"s3p.job": "rollup"})
    artifacts = Path(urlparse(run.run.info.artifact_uri).path)
    artifacts.parent.mkdir(parents=True, exist_ok=True)
    artifacts.write_text("not a folder", encoding="utf-8")
    run.artifact({"published": True}, "run_summary.json")  # fails: a warning, no exception
    run.metrics({"gold_rows": 3})
    run.end(True)
    assert len(run.problems) == 1 and run.problems[0].startswith("MLflow artifact run_summary.json: ")
    assert f"warning: run {run.run_id} is not fully tracked: MLflow artifact run_summary.json: " in capsys.readouterr().err
    assert tracking_note(run.problems).startswith("MLflow tracking incomplete (1 call(s) failed; first: MLflow artifact")
    assert tracking_note([]) == ""
    kept = mlflow_client(config).get_run(run.run_id)
    assert (kept.info.status, kept.data.metrics) == ("FINISHED", {"gold_rows": 3.0})


def test_a_retention_below_the_time_travel_window_is_refused(week):
    code, out, err = week["refused"]
    assert code == 2 and out == ""
    assert err == ("s3p: error: --retention-hours 1 is below time_travel_retention_hours 168 "
                   f"({week['maintain_profile']}): vacuum would break time travel inside the window\n")


def test_maintain_is_recorded_per_table_and_in_mlflow(week):
    config, lake = week["config"], week["lake"]
    records = lake.read(tables.JOB_RUNS).filter(F.col("job") == "maintain").collect()
    assert sorted(r.stage for r in records) == sorted(week["tables"])
    assert {r.status for r in records} == {"succeeded"} and len({r.run_id for r in records}) == 1
    assert all(r.message.startswith(r.stage + ": compacted ") for r in records)
    client = mlflow_client(config)
    run = client.get_run(records[0].mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["s3p.job"] == "maintain"
    assert run.data.params["retention_hours"] == "168"
    assert run.data.metrics[f"{tables.JOB_RUNS}.files_compacted"] > 0
    assert "maintain_summary.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


HOLDER = """
import sys, time
from scope3plus.lock import lake_lock
with lake_lock(sys.argv[1], "run", "2026-11-03"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_stops_with_one_clear_line_and_a_killed_holder_frees_the_lock(week):
    config = week["config"]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, config.lake], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        before = versions(config.lake)
        run = subprocess.run([sys.executable, "-m", "scope3plus.cli", "run", "--date", str(D1), "--landing", config.landing,
                              "--lake", config.lake], capture_output=True, text=True, timeout=120)
        assert run.returncode == 4
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
        assert lines[0].startswith(f"s3p: error: another job holds the lake lock: run 2026-11-03 (pid {holder.pid} on ")
        assert lines[0].endswith("Z); rerun when it ends, or pass --wait SECONDS")
        assert versions(config.lake) == before  # nothing written

        t0 = time.monotonic()
        with pytest.raises(LakeBusy, match=r"waited 1 s; rerun when it ends, or pass a longer --wait"):
            with lake_lock(config.lake, "maintain", "test", wait_seconds=1, poll_seconds=0.2):
                pass
        assert time.monotonic() - t0 >= 1

        threading.Timer(0.5, holder.send_signal, (signal.SIGKILL,)).start()  # killed while we wait
        with lake_lock(config.lake, "maintain", "test", wait_seconds=60, poll_seconds=0.1) as held:
            assert holder.wait(10) == -signal.SIGKILL
            assert held["pid"] == os.getpid()
            assert json.loads((Path(config.lake) / "_s3p" / "lock").read_text())["job"] == "maintain"
    finally:
        holder.kill()
        holder.wait()
    with lake_lock(config.lake, "run", "again"):  # released on leaving the block
        pass
