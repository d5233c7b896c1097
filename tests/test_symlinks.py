"""Symbolic links and files that look like deliveries (issue 23, items 4 and 6): a landing file or scenario folder
that resolves outside the landing folder is refused with its reason recorded, a link inside it is followed; every
other file named like a delivery but not taken is warned about; the lake lock is never opened through a link; an
internal error's traceback goes to a private file of the run's own."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scope3plus import cli
from scope3plus.errors import S3PError
from scope3plus.lock import lake_lock
from scope3plus.pipeline import tables
from scope3plus.pipeline.ingest import DATE, NAME, OUTSIDE, TYPE, delivery_dates, landing_files, scan_landing

D1, D2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
SECRET = "SECRET-LINE-FROM-OUTSIDE"


def s3p(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scope3plus.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def write(path: Path, text: str = '{"event_id": "e-1"}\n') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def listed(path: Path) -> str:
    """How the landing scan names a file: its folder resolved, its own name kept."""
    return str(path.parent.resolve() / path.name)


def outside_file(tmp_path: Path) -> Path:
    return write(tmp_path / "elsewhere" / "secret.jsonl", f'{{"event_id": "{SECRET}"}}\n')


# ---------------------------------------------------------------------------------------------------------
# landing discovery (no Spark)
# ---------------------------------------------------------------------------------------------------------
def test_a_landing_file_linked_outside_the_landing_folder_is_refused_with_its_reason(tmp_path):
    landing = tmp_path / "landing"
    kept = write(landing / "green_trip" / "2026-11-01-part-00000.jsonl")
    link = landing / "green_trip" / "2026-11-01-part-00001.jsonl"
    link.symlink_to(outside_file(tmp_path))
    found = scan_landing(landing, "green_trip", D1)
    assert found.files == [str(kept.resolve())]
    (refused,) = found.not_taken
    assert (refused.path, refused.kind, refused.claimed) == (listed(link), OUTSIDE, D1)
    assert refused.reason == (f"refused: it resolves to {(tmp_path / 'elsewhere' / 'secret.jsonl').resolve()}, "
                              f"outside the landing folder {landing.resolve()}")
    assert landing_files(landing, "green_trip", D1) == [str(kept.resolve())]


def test_a_scenario_folder_linked_outside_the_landing_folder_is_refused(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    write(tmp_path / "elsewhere" / "box_recycling" / "2026-11-01.jsonl")
    (landing / "box_recycling").symlink_to(tmp_path / "elsewhere" / "box_recycling", target_is_directory=True)
    found = scan_landing(landing, "box_recycling", D1)
    assert found.files == [] and [(n.kind, n.claimed) for n in found.not_taken] == [(OUTSIDE, D1)]
    assert delivery_dates(landing, "box_recycling") == []


def test_a_link_that_stays_inside_the_landing_folder_is_followed_under_its_own_name(tmp_path):
    landing = tmp_path / "landing"
    target = write(landing / "archive" / "green_trip-2026-11-02.jsonl")
    link = landing / "green_trip" / "2026-11-02-part-00000.jsonl"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    (landing / "box_recycling").symlink_to(landing / "archive", target_is_directory=True)  # a folder link inside
    write(landing / "archive" / "2026-11-02.jsonl")
    assert scan_landing(landing, "green_trip", D2).files == [listed(link)]
    assert scan_landing(landing, "green_trip").not_taken == []
    assert landing_files(landing, "box_recycling", D2) == [str((landing / "archive" / "2026-11-02.jsonl").resolve())]
    assert delivery_dates(landing, "green_trip") == [D2]


def test_files_that_look_like_deliveries_but_are_not_taken_say_why(tmp_path):
    landing = tmp_path / "landing"
    folder = landing / "green_trip"
    taken = write(folder / "2026-11-01-part-00000.jsonl")
    write(folder / "2026-11-01.JSONL")
    write(folder / "2026-11-1.jsonl")
    write(folder / "2026-11-01-readme.txt")
    (folder / "2026-11-01-part-00001.jsonl").mkdir()
    (folder / "2026-11-01-part-00002.jsonl").symlink_to(tmp_path / "gone.jsonl")  # dangling
    write(folder / "2026-02-30.jsonl")  # claims no date, so no run's date: listed only with every date
    write(folder / ".2026-11-01-part-00003.jsonl.tmp")  # being written: hidden names are not looked at
    write(folder / "README.md")  # nothing like a delivery
    found = scan_landing(landing, "green_trip", D1)
    assert found.files == [listed(taken)]
    assert {Path(n.path).name: (n.kind, n.reason) for n in found.not_taken} == {
        "2026-11-01.JSONL": (NAME, "not taken: its name ends in .JSONL, not .jsonl (names are case-sensitive)"),
        "2026-11-1.jsonl": (NAME, "not taken: its name does not start with a YYYY-MM-DD date"),
        "2026-11-01-readme.txt": (NAME, "not taken: its name does not end in .jsonl"),
        "2026-11-01-part-00001.jsonl": (TYPE, "not taken: a directory, not a file"),
        "2026-11-01-part-00002.jsonl": (TYPE, f"not taken: a symbolic link to nothing ({tmp_path / 'gone.jsonl'})"),
    }
    everything = scan_landing(landing, "green_trip")
    undated = [(Path(n.path).name, n.kind) for n in everything.not_taken if n.claimed is None]
    assert undated == [("2026-02-30.jsonl", DATE)]
    assert delivery_dates(landing, "green_trip") == [D1]


def test_a_day_whose_files_are_all_not_taken_is_refused_naming_them(tmp_path):
    landing = tmp_path / "landing"
    write(landing / "green_trip" / "2026-11-01.JSONL")
    out = s3p("run", "--date", "2026-11-01", "--landing", str(landing), "--lake", str(tmp_path / "lake"))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"s3p: error: no landing files for 2026-11-01 under {landing} (expected <landing>/<scenario>/2026-11-01*.jsonl)"
        f"; 1 file(s) named like deliveries are not taken, e.g. {landing.resolve() / 'green_trip' / '2026-11-01.JSONL'}"
        ": not taken: its name ends in .JSONL, not .jsonl (names are case-sensitive)")


# ---------------------------------------------------------------------------------------------------------
# the lake lock and the error log (no Spark)
# ---------------------------------------------------------------------------------------------------------
def test_a_symlinked_lake_lock_is_refused_and_its_target_left_alone(tmp_path):
    lake, victim = tmp_path / "lake", write(tmp_path / "precious.txt", "precious\n")
    (lake / "_s3p").mkdir(parents=True)
    (lake / "_s3p" / "lock").symlink_to(victim)
    with pytest.raises(S3PError, match=r"the lake lock .*/_s3p/lock is a symbolic link: refused"):
        with lake_lock(lake, "run", "test"):
            pass
    assert victim.read_text(encoding="utf-8") == "precious\n"
    out = s3p("aggregates", "load", "--lake", str(lake))  # a writing command: refused before Spark starts
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (f"s3p: error: the lake lock {lake / '_s3p' / 'lock'} is a symbolic link: refused "
                                  f"(a run would write through it to {victim}); remove the link")
    assert victim.read_text(encoding="utf-8") == "precious\n"

    dangling = tmp_path / "would-be-created"  # O_CREAT through a dangling link would create its target
    (lake / "_s3p" / "lock").unlink()
    (lake / "_s3p" / "lock").symlink_to(dangling)
    with pytest.raises(S3PError, match="symbolic link"):
        with lake_lock(lake, "run", "test"):
            pass
    assert not dangling.exists()


def test_error_logs_are_private_per_run_files_that_never_write_through_a_link(tmp_path, monkeypatch):
    victim = write(tmp_path / "victim.txt", "keep\n")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what $TMPDIR gives
    (tmp_path / "s3p-last-error.log").symlink_to(victim)  # the old fixed name, planted
    first, second = cli.write_error_log("trace one\n"), cli.write_error_log("trace two\n")
    assert first != second and first.parent == second.parent == tmp_path
    for log, text in ((first, "trace one\n"), (second, "trace two\n")):
        assert log.name.startswith("s3p-error-") and log.suffix == ".log" and not log.is_symlink()
        assert stat.S_IMODE(log.stat().st_mode) == 0o600 and log.read_text(encoding="utf-8") == text
    assert victim.read_text(encoding="utf-8") == "keep\n"


def test_an_internal_error_names_its_own_private_log(tmp_path):
    (tmp_path / "tmp").mkdir()
    victim = write(tmp_path / "victim.txt", "keep\n")
    (tmp_path / "tmp" / "s3p-last-error.log").symlink_to(victim)
    write(tmp_path / "events", "[" * 100_000 + "\n")  # JSON nested past Python's recursion limit: an internal error today
    out = s3p("eventlog", str(tmp_path / "events"), TMPDIR=str(tmp_path / "tmp"))
    assert out.returncode == 1, out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("s3p: internal error: ") and f"(traceback in {tmp_path / 'tmp'}/s3p-error-" in line
    log = Path(line.rsplit("(traceback in ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text(encoding="utf-8") and stat.S_IMODE(log.stat().st_mode) == 0o600
    assert victim.read_text(encoding="utf-8") == "keep\n"


# ---------------------------------------------------------------------------------------------------------
# the pipeline (Spark)
# ---------------------------------------------------------------------------------------------------------
def test_the_daily_run_leaves_out_and_records_a_file_linked_outside_the_landing_folder(spark, tmp_path):
    from scope3plus.config import load_config
    from scope3plus.generate import generate
    from scope3plus.lake import open_lake
    from scope3plus.pipeline.daily import run_day
    from scope3plus.tracking import mlflow_client

    from .support import register_approved

    config = load_config(None, landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                         mlflow_dir=str(tmp_path / "mlflow"))
    generate(spark, D1, 1, 40, Path(config.landing), seed=5)
    folder = Path(config.landing) / "green_trip"
    link = folder / "2026-11-01-part-99999.jsonl"
    link.symlink_to(outside_file(tmp_path))
    write(folder / "2026-11-01.JSONL", f'{{"event_id": "{SECRET}-2"}}\n')
    register_approved(config)
    messages: list[str] = []
    summary = run_day(spark, config, D1, progress=messages.append, quality=False)

    lake = open_lake(spark, config.lake)
    for name in (tables.bronze("green_trip"), tables.quarantine("green_trip")):
        assert lake.read(name).filter(F.col("value").contains(SECRET)).count() == 0, name
    assert lake.read(tables.bronze("green_trip")).filter(F.col("source_file").contains("part-99999")).count() == 0
    warnings, root = [m for m in messages if ": warning: " in m], Path(config.landing).resolve()
    assert warnings == [
        f"[{D1}] green_trip: warning: {listed(link)}: refused: it resolves to "
        f"{(tmp_path / 'elsewhere' / 'secret.jsonl').resolve()}, outside the landing folder {root}",
        f"[{D1}] green_trip: warning: {folder.resolve() / '2026-11-01.JSONL'}: not taken: its name ends in .JSONL, "
        "not .jsonl (names are case-sensitive)"]
    assert summary.scenarios["green_trip"].conserved and len(summary.scenarios["green_trip"].not_taken) == 2
    rows = {r.scenario: r.message for r in lake.read(tables.JOB_RUNS).filter(F.col("stage") == "scenario").collect()}
    assert rows["green_trip"].startswith(f"2 file(s) named like deliveries not taken: {listed(link)}: refused: ")
    assert "not taken" not in rows["box_recycling"]  # its record says nothing of files not taken
    run = mlflow_client(config).get_run(summary.mlflow_run_id)
    metrics = run.data.metrics
    assert metrics["green_trip.files_not_taken"] == 2 and metrics["box_recycling.files_not_taken"] == 0


def test_the_ingest_stream_leaves_out_and_records_a_file_linked_outside_the_landing_folder(spark, tmp_path):
    from scope3plus.lake import open_lake
    from scope3plus.pipeline.stream_ingest import ingest_batch, ingest_stream

    landing, lake = tmp_path / "landing", open_lake(spark, tmp_path / "lake")
    write(landing / "green_trip" / "2026-11-01-part-00000.jsonl", '{"event_id": "a"}\n{"event_id": "b"}\n')
    link = landing / "green_trip" / "2026-11-01-part-00001.jsonl"
    link.symlink_to(outside_file(tmp_path))
    (landing / "green_trip" / "2026-11-02 copy.jsonl").symlink_to(outside_file(tmp_path))  # a name to URI-encode
    messages: list[str] = []
    result = ingest_stream(spark, lake, landing, "green_trip", progress=messages.append)
    assert result.rows_added == 2
    bronze = lake.read(tables.bronze("green_trip"))
    assert bronze.filter(F.col("value").contains(SECRET)).count() == 0 and bronze.count() == 2
    assert sum(f"warning: {listed(link)}: refused: it resolves to " in m for m in messages) == 1
    (record,) = lake.read(tables.JOB_RUNS).filter(F.col("job") == "ingest").collect()
    assert record.status == "succeeded" and (record.landed_lines, record.bronze_rows) == (2, 2)
    assert f"2 file(s) named like deliveries not taken: {listed(link)}: refused: " in record.message

    batch_lake, batch_messages = open_lake(spark, tmp_path / "batch-lake"), []  # `s3p ingest --mode batch` alike
    assert list(ingest_batch(spark, batch_lake, landing, "green_trip", progress=batch_messages.append)) == [D1]
    batch = batch_lake.read(tables.bronze("green_trip"))
    assert batch.filter(F.col("value").contains(SECRET)).count() == 0 and batch.count() == 2
    assert sum(f"warning: {listed(link)}: refused: it resolves to " in m for m in batch_messages) == 1
    (record,) = batch_lake.read(tables.JOB_RUNS).filter(F.col("job") == "ingest").collect()
    assert f"; 1 file(s) named like deliveries not taken: {listed(link)}: refused: " in record.message
