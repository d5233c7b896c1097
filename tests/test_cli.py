"""The s3p command line, as a user runs it: clear one-line errors, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scope3plus.contracts import SCENARIOS


def s3p(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "scope3plus.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_help_lists_the_commands():
    out = s3p("--help")
    assert out.returncode == 0
    for command in ("generate", "run", "progress"):
        assert command in out.stdout
    assert "--remote sc://HOST:PORT" in out.stdout and "$SPARK_REMOTE" in out.stdout


@pytest.mark.parametrize("args, message", [
    ((), "required: COMMAND"),
    (("run",), "--date"),
    (("run", "--date", "2026-13-01"), "not a date YYYY-MM-DD: '2026-13-01'"),
    (("run", "--date", "2035-12-30"), "delivery date 2035-12-30 is in the future: today is "),  # issue 21
    (("run", "--date", "2026-11-01", "--landing", "/nonexistent/landing"), "landing folder not found: /nonexistent/landing"),
    (("run", "--date", "2026-11-01", "--conf", "/nonexistent.yaml"), "config file not found: /nonexistent.yaml"),
    (("progress", "--lake", "/nonexistent/lake"), "no progress table at /nonexistent/lake/gold/progress"),
    (("progress", "--format", "xml"), "invalid choice: 'xml'"),
    (("generate", "--start", "2026-11-01", "--landing", "x", "--dirty", "2"), "must be between 0 and 1: '2'"),
    (("generate", "--start", "2026-11-01", "--landing", "x", "--days", "0"), "must be at least 1: '0'"),
    (("--remote", "http://x:15002", "progress"), "argument --remote: not a Spark Connect address sc://HOST[:PORT]: "
                                                 "'http://x:15002'"),
    (("--remote", "sc://127.0.0.1:1", "bench", "--events", "10"), "s3p bench measures a session of its own"),
    (("--remote", "sc://127.0.0.1:1", "ingest", "--scenario", "green_trip"),
     "s3p ingest --mode stream does not run on Spark Connect"),
])
def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(args, message):
    out = s3p(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("s3p") and message in lines[0]
    assert "Traceback" not in out.stderr


def test_a_spark_connect_server_that_is_not_there_is_a_clear_error_at_once(tmp_path):
    """``s3p --remote`` and ``$SPARK_REMOTE`` alike: one line, without the Connect client's minutes of retries."""
    import os
    import time

    from scope3plus.config import load_config

    from .support import free_port, register_approved

    port = free_port()
    register_approved(load_config(None, lake=str(tmp_path / "lake")))  # past the registry check, to the session
    (tmp_path / "landing" / "green_trip").mkdir(parents=True)
    (tmp_path / "landing" / "green_trip" / "2026-11-01-part-00000.jsonl").write_text("{}\n", encoding="utf-8")
    args = ["run", "--date", "2026-11-01", "--landing", str(tmp_path / "landing"), "--lake", str(tmp_path / "lake")]
    for command, env in ((["--remote", f"sc://127.0.0.1:{port}", *args], os.environ),
                         (args, {**os.environ, "SPARK_REMOTE": f"sc://127.0.0.1:{port}"})):
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "scope3plus.cli", *command], capture_output=True, text=True,
                             env=env, timeout=120)
        assert out.returncode == 2 and time.monotonic() - started < 60
        assert out.stderr.strip().splitlines()[-1].startswith(
            f"s3p: error: cannot reach the Spark Connect server at sc://127.0.0.1:{port}: "), out.stderr


def test_a_day_with_no_deliveries_is_a_clear_error(tmp_path):
    (tmp_path / "landing" / "green_trip").mkdir(parents=True)
    out = s3p("run", "--date", "2026-11-01", "--landing", str(tmp_path / "landing"), "--lake", str(tmp_path / "lake"))
    assert out.returncode == 2
    assert out.stderr.strip() == (f"s3p: error: no landing files for 2026-11-01 under {tmp_path / 'landing'} "
                                  "(expected <landing>/<scenario>/2026-11-01*.jsonl)")


def test_write_commands_print_one_json_object_for_an_orchestrator(spark, tmp_path, capsys):
    """`s3p run --format json`: one object on stdout with the run id, the counts per scenario and every
    table committed with its Delta version; a failure prints one too, with its exit code and error."""
    import datetime as dt
    import json

    from scope3plus.cli import main
    from scope3plus.config import load_config
    from scope3plus.generate import generate
    from scope3plus.lake import open_lake
    from scope3plus.pipeline import tables

    from .support import register_approved

    day = dt.date(2026, 11, 1)
    config = load_config(None, landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"))
    generate(spark, day, 1, 200, tmp_path / "landing", seed=3)
    register_approved(config)
    capsys.readouterr()
    code = main(["run", "--date", str(day), "--landing", config.landing, "--lake", config.lake, "--format", "json"])
    out = json.loads(capsys.readouterr().out)  # the whole of stdout is the one object
    assert code == 0 and (out["command"], out["status"], out["exit_code"], out["error"]) == ("run", "succeeded", 0, None)
    [run] = out["runs"]
    lake = open_lake(spark, config.lake)
    job_runs = {r.run_id for r in lake.read(tables.JOB_RUNS).select("run_id").distinct().collect()}
    assert job_runs == {run["run_id"]} and run["landing_date"] == str(day)
    landed = sum(len(p.read_bytes().splitlines()) for p in (tmp_path / "landing").glob(f"*/{day}*.jsonl"))
    assert sum(c["landed_lines"] for c in run["scenarios"].values()) == landed
    assert all(c["conserved"] for c in run["scenarios"].values()) and len(run["scenarios"]) == len(SCENARIOS)
    committed = {t["table"]: t for t in out["tables"]}
    for name in (tables.GOLD_AVOIDED, tables.GOLD_PROGRESS, tables.silver("green_trip"), tables.bronze("green_trip")):
        assert committed[name]["version"] == lake.version(name), name  # the version the command left
    assert committed[tables.GOLD_AVOIDED]["rows_added"] == run["gold_rows"]

    code = main(["run", "--date", "2026-12-01", "--landing", config.landing, "--lake", config.lake, "--format", "json"])
    failed = json.loads(capsys.readouterr().out)
    assert code == 2 and failed["status"] == "failed" and failed["exit_code"] == 2
    assert "no landing files" in failed["error"] and failed["tables"] == [] and failed["runs"] == []
