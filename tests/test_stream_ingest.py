"""`s3p ingest`: landing files → bronze as a Structured Streaming query (exactly once per
micro-batch through Delta application transactions) or per delivery date, and the daily run
gating what the stream wrote (`s3p run --from-bronze`)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scope3plus import cli
from scope3plus.config import load_config
from scope3plus.lake import commit_metadata, open_lake
from scope3plus.pipeline import daily, tables
from scope3plus.errors import S3PError
from scope3plus.pipeline import stream_ingest
from scope3plus.pipeline.stream_ingest import app_id, ingest_batch, ingest_stream
from scope3plus.tracking import mlflow_client

from .support import register_approved
from .test_pipeline_e2e import without_run_id

D1, D2, D3 = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)
BRONZE = tables.bronze("green_trip")
APP = app_id("green_trip")


def deliver(landing: Path, name: str, lines: list[str], scenario: str = "green_trip") -> None:
    """Deliver ``name`` atomically (written aside, then renamed), as platforms must."""
    folder = landing / scenario
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f".{name}.tmp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / f".{name}.tmp").rename(folder / name)


def land(landing: Path, name: str, lines: int, scenario: str = "green_trip", tag: str = "") -> None:
    """Deliver ``name`` with ``lines`` distinct lines (their content does not matter to bronze)."""
    deliver(landing, name, [f'{{"event_id": "{name}{tag}-{i}"}}' for i in range(lines)], scenario)


def per_date(lake) -> dict:
    rows = lake.read(BRONZE).groupBy("landing_date").count().collect()
    return {r.landing_date: r["count"] for r in rows}


def ingest_runs(lake, run_id: str | None = None) -> list:
    """The ``ops/job_runs`` rows of job ``ingest`` (of one run id), in the order they were written."""
    runs = lake.read(tables.JOB_RUNS).filter(F.col("job") == "ingest")
    if run_id is not None:
        runs = runs.filter(F.col("run_id") == run_id)
    return sorted(runs.collect(), key=lambda r: (r.ended_at, str(r.landing_date)))


def counts(runs) -> dict:
    """{landing_date: (landed_lines, bronze_rows, status)} of job_runs rows."""
    return {r.landing_date: (r.landed_lines, r.bronze_rows, r.status) for r in runs}


def crash_before_checkpoint_commit(checkpoint: str) -> int:
    """Delete the newest batch's commit file: as if the process died after the Delta commit but
    before the checkpoint recorded it. Returns that batch id."""
    commits = Path(checkpoint) / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    (commits / str(last)).unlink()
    (commits / f".{last}.crc").unlink(missing_ok=True)  # Hadoop's checksum beside it
    return last


def test_available_now_ingests_every_file_once_with_its_delivery_date(spark, tmp_path):
    landing, lake = tmp_path / "landing", open_lake(spark, tmp_path / "lake")
    land(landing, "2026-11-01-part-00000.jsonl", 7)
    land(landing, "2026-11-02-part-00000.jsonl", 5)
    land(landing, "notes.jsonl", 3)  # no delivery date in the name: not a delivery
    land(landing, "2026-02-30-part-00000.jsonl", 2)  # nor is a date that does not exist
    (landing / "green_trip" / "2026-11-02-readme.txt").write_text("not json lines\n", encoding="utf-8")
    messages: list[str] = []

    first = ingest_stream(spark, lake, landing, "green_trip", max_files_per_trigger=1, progress=messages.append)
    assert [b.batch_id for b in first.batches] == [0, 1, 2] and first.rows_added == 12 and first.replays_skipped == 0
    assert sorted(d for b in first.batches for d in b.landing_dates) == [D1, D2]
    assert per_date(lake) == {D1: 7, D2: 5}
    bronze = lake.read(BRONZE)
    assert bronze.columns == ["landing_date", "source_file", "value", "raw_bytes", "line_position", "line_sha256",
                              "ingest_run_id", "ingested_at"]
    assert bronze.filter(~F.col("source_file").endswith(".jsonl") | F.col("ingest_run_id").isNull()).count() == 0
    assert lake.app_version(BRONZE, APP) == 2  # the last micro-batch
    assert any("1 file(s), " in m and "→ bronze/green_trip landing_date" in m for m in messages)
    assert sum("file(s) left out, their names start with no valid date: " in m and "2026-02-30-part" in m
               for m in messages) == 1

    # one ops/job_runs row per micro-batch (each held one file here): its landing date and lines
    runs = ingest_runs(lake)
    run_id = lake.read(BRONZE).select("ingest_run_id").distinct().collect()
    assert [r.ingest_run_id for r in run_id] == [runs[0].run_id] and {r.run_id for r in runs} == {runs[0].run_id}
    assert counts(runs) == {D1: (7, 7, "succeeded"), D2: (5, 5, "succeeded"), None: (0, 0, "succeeded")}
    assert {(r.stage, r.scenario, r.lake_backend, r.mlflow_run_id) for r in runs} == {
        ("stream", "green_trip", lake.backend, None)}
    assert all(r.started_at <= r.ended_at and r.seconds >= 0 for r in runs)
    assert sorted(r.message.split(":")[0] for r in runs) == ["micro-batch 0", "micro-batch 1", "micro-batch 2"]
    assert "file(s) left out" in next(r.message for r in runs if r.landing_date is None)

    version = lake.version(BRONZE)
    again = ingest_stream(spark, lake, landing, "green_trip")
    assert again.batches == [] and lake.version(BRONZE) == version and per_date(lake) == {D1: 7, D2: 5}
    assert len(ingest_runs(lake)) == 3  # no micro-batch, no record


def test_a_micro_batch_over_two_delivery_dates_is_recorded_per_date(spark, tmp_path):
    landing, lake = tmp_path / "landing", open_lake(spark, tmp_path / "lake")
    land(landing, "2026-11-01-part-00000.jsonl", 7)
    land(landing, "2026-11-01-part-00001.jsonl", 4)
    land(landing, "2026-11-02-part-00000.jsonl", 5)
    result = ingest_stream(spark, lake, landing, "green_trip")
    assert [(b.batch_id, b.landing_dates) for b in result.batches] == [(0, [D1, D2])]
    runs = ingest_runs(lake)
    # each date's own count (from the commit's files in the Delta log), not the batch's 16 lines
    assert counts(runs) == {D1: (11, 11, "succeeded"), D2: (5, 5, "succeeded")}
    assert len({(r.message, r.started_at) for r in runs}) == 1
    assert runs[0].message.startswith("micro-batch 0: 3 file(s), 16 lines → bronze/green_trip on 2 landing date(s)")


def test_a_replayed_batch_is_skipped_and_new_files_land_exactly_once(spark, tmp_path):
    landing, lake = tmp_path / "landing", open_lake(spark, tmp_path / "lake")
    land(landing, "2026-11-01-part-00000.jsonl", 4)
    land(landing, "2026-11-02-part-00000.jsonl", 6)
    first = ingest_stream(spark, lake, landing, "green_trip")
    assert [b.batch_id for b in first.batches] == [0] and lake.app_version(BRONZE, APP) == 0
    version = lake.version(BRONZE)

    # the crash window: batch 0 is in Delta, the checkpoint does not know it finished
    assert crash_before_checkpoint_commit(first.checkpoint) == 0
    messages: list[str] = []
    replay = ingest_stream(spark, lake, landing, "green_trip", progress=messages.append)
    assert [(b.batch_id, b.skipped) for b in replay.batches] == [(0, True)] and replay.rows_added == 0
    assert lake.version(BRONZE) == version and per_date(lake) == {D1: 4, D2: 6}
    assert lake.app_version(BRONZE, APP) == 0
    assert any("batch 0: replay of a batch already committed" in m for m in messages)
    first_run, = {r.run_id for r in ingest_runs(lake) if r.status == "succeeded"}
    skipped = [r for r in ingest_runs(lake) if r.run_id != first_run]
    assert [(r.status, r.landing_date, r.landed_lines, r.bronze_rows) for r in skipped] == [("skipped", None, 0, 0)]
    assert skipped[0].message.startswith("micro-batch 0: replay of a batch already committed to bronze/green_trip")

    land(landing, "2026-11-01-part-00001.jsonl", 2, tag="late")  # late for D1: joins D1's partition
    land(landing, "2026-11-03-part-00000.jsonl", 3)
    new = ingest_stream(spark, lake, landing, "green_trip")
    assert [(b.batch_id, b.skipped, b.rows) for b in new.batches] == [(1, False, 5)]
    assert per_date(lake) == {D1: 6, D2: 6, D3: 3} and lake.app_version(BRONZE, APP) == 1
    bronze = lake.read(BRONZE)
    assert bronze.count() == bronze.select("value").distinct().count()  # no line twice
    commit = commit_metadata(lake.history(BRONZE, 1)[0])
    assert commit["s3p.batch_id"] == "1" and commit["s3p.mode"] == "stream"
    latest = ingest_runs(lake)[-2:]  # the late D1 file and D3 in one micro-batch, one row per date
    assert counts(latest) == {D1: (2, 2, "succeeded"), D3: (3, 3, "succeeded")}
    assert all(r.message.startswith("micro-batch 1: ") for r in latest)


def test_a_failed_micro_batch_is_recorded_before_its_error_propagates(spark, tmp_path, monkeypatch):
    landing, lake = tmp_path / "landing", open_lake(spark, tmp_path / "lake")
    land(landing, "2026-11-01-part-00000.jsonl", 4)
    real_append = lake.append

    def append(name, *args, **kwargs):
        if name == BRONZE:
            raise S3PError("bronze is read-only today\nsecond line")
        return real_append(name, *args, **kwargs)

    monkeypatch.setattr(lake, "append", append)
    with pytest.raises(S3PError, match="bronze is read-only today"):
        ingest_stream(spark, lake, landing, "green_trip")
    failed, = ingest_runs(lake)
    assert (failed.status, failed.stage, failed.landing_date, failed.landed_lines) == ("failed", "stream", None, None)
    assert failed.message == "micro-batch 0: S3PError: bronze is read-only today"
    assert not lake.exists(BRONZE)

    monkeypatch.setattr(lake, "append", real_append)  # the batch runs again on restart, and lands
    again = ingest_stream(spark, lake, landing, "green_trip")
    assert [(b.batch_id, b.rows) for b in again.batches] == [(0, 4)]
    assert [(r.status, r.landing_date, r.landed_lines) for r in ingest_runs(lake)] == [
        ("failed", None, None), ("succeeded", D1, 4)]


def test_a_stream_that_fails_before_its_first_micro_batch_is_recorded(spark, tmp_path):
    """An unreadable checkpoint stops the stream before any micro-batch: the failure still gets
    its ops/job_runs row (no date, no counts) before the error propagates."""
    landing, lake = tmp_path / "landing", open_lake(spark, tmp_path / "lake")
    land(landing, "2026-11-01-part-00000.jsonl", 4)
    checkpoint = Path(stream_ingest.checkpoint_location(str(lake.root), "green_trip"))
    checkpoint.mkdir(parents=True)
    (checkpoint / "metadata").write_text("this is not the checkpoint's JSON\n", encoding="utf-8")
    with pytest.raises(Exception):
        ingest_stream(spark, lake, landing, "green_trip")
    failed, = ingest_runs(lake)
    assert (failed.status, failed.stage, failed.landing_date, failed.landed_lines) == ("failed", "stream", None, None)
    assert failed.message.startswith(("stream start: ", "stream: ")) and not lake.exists(BRONZE)


def test_an_interval_stream_picks_up_new_files_until_it_is_stopped(spark, tmp_path):
    landing, lake = tmp_path / "landing", open_lake(spark, tmp_path / "lake")
    land(landing, "2026-11-01-part-00000.jsonl", 3)
    stop, out = threading.Event(), {}

    def stream():
        try:
            out["result"] = ingest_stream(spark, lake, landing, "green_trip", "1 second", stop=stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            out["error"] = exc

    def wait_for(rows: int) -> None:
        deadline = time.monotonic() + 90
        while sum(per_date(lake).values() if lake.exists(BRONZE) else [0]) < rows and "error" not in out:
            assert time.monotonic() < deadline, f"bronze did not reach {rows} rows"
            time.sleep(0.3)

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        wait_for(3)
        land(landing, "2026-11-02-part-00000.jsonl", 2)
        wait_for(5)
    finally:
        stop.set()
        thread.join(120)
    assert "error" not in out and not thread.is_alive()
    result = out["result"]
    assert result.stopped_by == "request" and result.rows_added == 5 and per_date(lake) == {D1: 3, D2: 2}


def test_batch_mode_replaces_the_dates_bronze_does_not_hold(spark, tmp_path):
    landing, lake = tmp_path / "landing", open_lake(spark, tmp_path / "lake")
    land(landing, "2026-11-01-part-00000.jsonl", 3, scenario="box_recycling")
    land(landing, "2026-11-02-part-00000.jsonl", 2, scenario="box_recycling")
    done = ingest_batch(spark, lake, landing, "box_recycling")
    assert sorted(done) == [D1, D2] and [done[d].landed_lines for d in (D1, D2)] == [3, 2]
    assert ingest_batch(spark, lake, landing, "box_recycling") == {}  # nothing new
    land(landing, "2026-11-02-part-00001.jsonl", 4, scenario="box_recycling")
    again = ingest_batch(spark, lake, landing, "box_recycling", dates=[D2])  # a date asked for: replaced whole
    assert again[D2].landed_lines == 6 and again[D2].commit.rows_removed == 2
    rows = lake.read(tables.bronze("box_recycling")).groupBy("landing_date").count().collect()
    assert {r.landing_date: r["count"] for r in rows} == {D1: 3, D2: 6}
    runs = ingest_runs(lake)
    assert [(r.stage, r.scenario, r.landing_date, r.landed_lines, r.bronze_rows, r.status) for r in runs] == [
        ("batch", "box_recycling", D1, 3, 3, "succeeded"), ("batch", "box_recycling", D2, 2, 2, "succeeded"),
        ("batch", "box_recycling", D2, 6, 6, "succeeded")]
    assert runs[0].run_id == runs[1].run_id != runs[2].run_id  # one run id per call, as the bronze rows carry
    assert "partition replaced, 2 rows before" in runs[2].message


def test_a_failed_delivery_date_in_batch_mode_is_recorded_and_raised(spark, tmp_path, monkeypatch):
    landing, lake = tmp_path / "landing", open_lake(spark, tmp_path / "lake")
    land(landing, "2026-11-01-part-00000.jsonl", 3, scenario="box_recycling")
    land(landing, "2026-11-02-part-00000.jsonl", 2, scenario="box_recycling")
    real_ingest = stream_ingest.ingest

    def ingest(spark, lake, landing, scenario, day, run_id):
        if day == D2:
            raise S3PError("landing disk went away")
        return real_ingest(spark, lake, landing, scenario, day, run_id)

    monkeypatch.setattr(stream_ingest, "ingest", ingest)
    with pytest.raises(S3PError, match="landing disk went away"):
        ingest_batch(spark, lake, landing, "box_recycling")
    done, failed = ingest_runs(lake)
    assert (done.landing_date, done.status, done.landed_lines) == (D1, "succeeded", 3)
    assert done.message.startswith("1 file(s), 3 lines → bronze/box_recycling (partition replaced")
    assert (failed.landing_date, failed.status, failed.landed_lines, failed.bronze_rows) == (D2, "failed", None, None)
    assert failed.message == "2026-11-02: S3PError: landing disk went away" and failed.run_id == done.run_id


def box_events(prefix: str, n: int, day: dt.date = D1) -> list[str]:
    """``n`` valid box_recycling events (every third one reuses a box, which is credited)."""
    return [json.dumps({"event_id": f"{prefix}-{i}", "event_time": f"{day}T{8 + i % 12:02d}:15:00+08:00",
                        "user_id": f"u{i:05d}", "city": "Hangzhou", "station_id": f"st{i % 7:03d}",
                        "action": "reuse_ship" if i % 3 == 0 else "drop_off", "box_count": 1 + i % 4})
            for i in range(n)]


def test_the_daily_run_gates_streamed_bronze_as_it_gates_the_files(spark, tmp_path, capsys, monkeypatch):
    landing, lake_dir = tmp_path / "landing", tmp_path / "lake"
    first = box_events("a", 24) + ["{not json", box_events("a", 1)[0]]  # a malformed line, a duplicate
    first += [json.dumps({**json.loads(box_events("z", 1)[0]), "box_count": 0})]  # out of range: quarantined
    deliver(landing, f"{D1}-part-00000.jsonl", first, "box_recycling")
    config = load_config(None, landing=str(landing), lake=str(lake_dir))  # as the CLI builds it
    register_approved(config)
    ingest = ["ingest", "--scenario", "box_recycling", "--landing", str(landing), "--lake", str(lake_dir)]
    assert cli.main(ingest) == 0
    deliver(landing, f"{D1}-part-00001.jsonl", box_events("b", 6) + box_events("late", 2, D1 - dt.timedelta(days=2)),
            "box_recycling")
    assert cli.main(ingest) == 0  # the late file for D1 joins D1's bronze partition
    real_run_day = daily.run_day  # both runs skip the batch data-quality suites: they do not change silver
    monkeypatch.setattr(daily, "run_day", lambda *args, **kwargs: real_run_day(*args, **kwargs, quality=False))
    assert cli.main(["run", "--date", str(D1), "--from-bronze", "--landing", str(landing), "--lake", str(lake_dir)]) == 0
    err = capsys.readouterr().err
    assert err.count("gate each with `s3p run --date DATE --from-bronze`") == 2
    assert "green_trip: no bronze table yet" in err

    lake = open_lake(spark, lake_dir)
    run = lake.read(tables.JOB_RUNS).filter((F.col("stage") == "scenario") & (F.col("scenario") == "box_recycling")).first()
    assert (run.landed_lines, run.silver_rows, run.quarantined_rows, run.duplicates_removed) == (35, 32, 2, 1)
    names = [tables.silver("box_recycling"), tables.quarantine("box_recycling"), tables.GOLD_AVOIDED]
    from_bronze = {n: without_run_id(lake.read(n)).collect() for n in names}
    assert {r.event_date for r in from_bronze[tables.GOLD_AVOIDED]} == {D1, D1 - dt.timedelta(days=2)}

    real_run_day(spark, config, D1, quality=False)  # the same date from the files: replaces, nothing doubles
    for n in names:
        assert without_run_id(lake.read(n)).collect() == from_bronze[n], n


def test_each_ingest_command_is_one_mlflow_run_with_its_job_runs_rows(spark, tmp_path, capsys):
    landing, lake_dir = tmp_path / "landing", tmp_path / "lake"
    land(landing, "2026-11-01-part-00000.jsonl", 7)
    land(landing, "2026-11-02-part-00000.jsonl", 5)
    config = load_config(None, landing=str(landing), lake=str(lake_dir))  # MLflow beside the lake, under tmp_path
    paths = ["--landing", str(landing), "--lake", str(lake_dir)]
    assert cli.main(["ingest", "--scenario", "green_trip", "--max-files-per-trigger", "1", *paths]) == 0
    checkpoint = stream_ingest.checkpoint_location(str(lake_dir), "green_trip")
    crash_before_checkpoint_commit(checkpoint)
    assert cli.main(["ingest", "--scenario", "green_trip", *paths]) == 0  # batch 1 again: a replay
    assert cli.main(["ingest", "--scenario", "green_trip", "--mode", "batch", "--date", str(D2), *paths]) == 0
    err = capsys.readouterr().err
    assert err.count("; recorded in ops/job_runs (run id ingest-na-") == 3

    lake, client = open_lake(spark, lake_dir), mlflow_client(config)
    by_run: dict = {}
    for r in ingest_runs(lake):
        by_run.setdefault(r.run_id, []).append(r)
    assert [[(r.stage, r.status, r.landing_date, r.landed_lines) for r in rows] for rows in by_run.values()] == [
        [("stream", "succeeded", D1, 7), ("stream", "succeeded", D2, 5)],
        [("stream", "skipped", None, 0)],
        [("batch", "succeeded", D2, 5, )]]
    expected = [({"mode": "stream", "trigger": "available-now", "max_files_per_trigger": "1"},
                 {"batches": 2, "lines_ingested": 12, "replays_skipped": 0, "batches_failed": 0}),
                ({"mode": "stream", "trigger": "available-now"},
                 {"batches": 0, "lines_ingested": 0, "replays_skipped": 1, "batches_failed": 0}),
                ({"mode": "batch", "dates": str(D2)},
                 {"batches": 1, "lines_ingested": 5, "replays_skipped": 0, "batches_failed": 0})]
    for (run_id, rows), (params, metrics) in zip(by_run.items(), expected):
        mlflow_run_id, = {r.mlflow_run_id for r in rows}
        run = client.get_run(mlflow_run_id)
        assert run.info.status == "FINISHED"
        assert {k: run.data.tags[k] for k in ("s3p.job", "s3p.run_id")} == {"s3p.job": "ingest", "s3p.run_id": run_id}
        assert {k: v for k, v in run.data.params.items() if k not in ("lake", "lake_backend")} == {
            "scenario": "green_trip", **params}
        assert run.data.metrics == metrics


@pytest.mark.parametrize("args, message", [
    (["--scenario", "nope"], "s3p: error: unknown scenario 'nope'; expected one of: "),
    (["--scenario", "green_trip", "--trigger", "soon"], "s3p: error: bad trigger 'soon': expected available-now or"),
    (["--scenario", "green_trip", "--landing", "/nonexistent/landing"], "s3p: error: landing folder not found: "),
    (["--scenario", "green_trip", "--mode", "batch", "--trigger", "1 minute"], "--trigger and --max-files-per-trigger go with --mode stream"),
    (["--scenario", "green_trip", "--date", "2026-11-01"], "--date goes with --mode batch"),
    (["--scenario", "green_trip", "--max-files-per-trigger", "0"], "s3p ingest: error: argument --max-files-per-trigger: must be at least 1"),
    (["--mode", "stream"], "s3p ingest: error: the following arguments are required: --scenario"),
])
def test_ingest_argument_errors_are_one_line(args, message, capsys, tmp_path):
    (tmp_path / "landing" / "green_trip").mkdir(parents=True)
    argv = ["ingest", "--landing", str(tmp_path / "landing"), "--lake", str(tmp_path / "lake"), *args]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "lake").exists()  # nothing started, nothing written


def test_run_from_bronze_without_bronze_is_one_line(capsys, tmp_path):
    code = cli.main(["run", "--date", "2026-11-01", "--from-bronze", "--lake", str(tmp_path / "lake")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("s3p: error: bronze holds nothing for 2026-11-01 under ") and err.count("\n") == 1
