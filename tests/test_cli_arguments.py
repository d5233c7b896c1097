"""Hostile arguments, profiles, pipes and faults at the s3p command line (issue 22 item 10, issue 23
items 5 and 6): each ends in one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest


def s3p(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "scope3plus.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def one_error_line(out, code: int = 2) -> str:
    """The one stderr line of a failed command (asserting that there is one, and no traceback)."""
    assert out.returncode == code, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("s3p"), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def tiny_lake(root) -> str:
    """A lake holding a gold/progress table of one total row, all zero, written with delta-rs (no Spark)."""
    import datetime as dt

    import deltalake
    import pyarrow as pa

    from scope3plus.pipeline.rollup import PROGRESS_COLUMNS, TOTAL

    row = {**dict.fromkeys(PROGRESS_COLUMNS, 0.0), "scope": TOTAL, "as_of": dt.date(2026, 11, 7),
           "fiscal_year": "FY2027", "growth_method": "", "methodology_versions": "", "latest_run_status": "",
           "latest_run_id": "", "run_id": "", "latest_run_landing_date": dt.date(2026, 11, 7)}
    deltalake.write_deltalake(str(root / "gold" / "progress"), pa.Table.from_pylist([row]))
    return str(root)


# --------------------------------------------------------------------------- pipes (issue 22 item 10)


@pytest.mark.parametrize("command", [("progress", "--format", "csv"), ("maintain", "--dry-run")])
def test_a_closed_stdout_ends_the_command_quietly_as_unix_tools_do(tmp_path, command):
    """`s3p progress | head -1`: the reader of stdout has gone before s3p writes; s3p ends with the code a shell
    reports for a coreutils tool killed by SIGPIPE (141), and nothing on stderr."""
    lake = tiny_lake(tmp_path / "lake")
    proc = subprocess.Popen([sys.executable, "-m", "scope3plus.cli", *command, "--lake", lake],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader goes away before s3p has started up, so its first write meets a closed pipe
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, stderr
    assert stderr == ""


def test_a_closed_stdout_in_a_shell_pipeline_gives_141():
    out = subprocess.run(["bash", "-c", f"{sys.executable} -m scope3plus.cli methodology list | true; "
                                        "echo ${PIPESTATUS[0]}"], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "141" and out.stderr == ""


# --------------------------------------------------------------------------- profiles (issue 23 item 6)


@pytest.mark.parametrize("line, message", [
    ("goal: [1]", "goal must be a mapping (tonnes, start, end), got [1]"),
    ("mlflow: 5", "mlflow must be a mapping (tracking_uri, mlflow_dir, experiment), got 5"),
    ("late_data_horizon_days: thirty", "late_data_horizon_days must be a whole number, from 0 to 3660, got 'thirty'"),
    ("goal: {tonnes: lots}", "goal.tonnes must be a finite number of tonnes above 0"),
    ("goal: {start: [1]}", "goal.start must be a date YYYY-MM-DD, got [1]"),
    ("pseudonymisation: {key_env: [S3P_KEY]}", "pseudonymisation.key_env must be text, got ['S3P_KEY']"),
    ("pseudonymisation: key", "pseudonymisation must be a mapping (key_env, dev_key), got 'key'"),
    ("mlflow: {tracking_uri: 5}", "mlflow.tracking_uri must be text, got 5"),
    ("landing: {a: 1}", "landing must be text, got {'a': 1}"),
    ("local_timezone: 8", "local_timezone must be text, got 8"),
    ("spark: [spark.master]", "spark must be a mapping of Spark settings to text or numbers, got ['spark.master']"),
    ("spark: {spark.jars: [a, b]}", "spark must be a mapping of Spark settings to text or numbers"),
    ("late_data_horizon_day: 60", "unknown key 'late_data_horizon_day' (did you mean 'late_data_horizon_days'?)"),
    ("mlflow: {tracking_url: http://x}", "unknown key 'tracking_url' (did you mean 'tracking_uri'?) in mlflow"),
    ("goal: {tonnes: 1.5e9, ending: 2035-12-31}", "unknown key 'ending' (did you mean 'end'?) in goal"),
])
def test_a_profile_value_of_the_wrong_kind_is_one_line_naming_the_key(tmp_path, line, message):
    profile = tmp_path / "bad.yaml"
    profile.write_text(line + "\n", encoding="utf-8")
    error = one_error_line(s3p("progress", "--conf", str(profile), "--lake", str(tmp_path / "lake")))
    assert error == f"s3p: error: {profile}: {message}" or error.startswith(f"s3p: error: {profile}: {message}")


def test_a_null_profile_value_takes_its_default(tmp_path):
    from scope3plus.config import load_config

    profile = tmp_path / "nulls.yaml"
    profile.write_text("goal: null\npseudonymisation: {dev_key: null}\nmlflow: {experiment: null}\nspark: null\n"
                       "late_data_horizon_days: null\n", encoding="utf-8")
    config, default = load_config(profile), load_config(None)
    assert (config.goal_tonnes, config.goal_end, config.mlflow_experiment, config.late_data_horizon_days) == (
        default.goal_tonnes, default.goal_end, default.mlflow_experiment, default.late_data_horizon_days)
    assert config.spark == {} and config.pseudonym_dev_key is None


def test_a_profiles_spark_settings_reach_spark_as_spark_spells_them(tmp_path):
    """YAML's true/false become Spark's ``true``/``false`` (Python's ``True`` is refused by Spark's
    boolean settings); numbers and text stay as written."""
    from scope3plus.config import load_config

    profile = tmp_path / "spark.yaml"
    profile.write_text("spark: {spark.sql.ansi.enabled: false, spark.sql.shuffle.partitions: 8, "
                       "spark.ui.enabled: 'False', spark.driver.memory: 2g}\n", encoding="utf-8")
    assert load_config(profile).spark == {"spark.sql.ansi.enabled": "false", "spark.sql.shuffle.partitions": "8",
                                          "spark.ui.enabled": "False", "spark.driver.memory": "2g"}


def test_the_shipped_profiles_have_the_shape_they_are_checked_against():
    from scope3plus import paths
    from scope3plus.config import load_config

    for name in ("local.yaml", "cluster.yaml"):
        config = load_config(paths.conf_dir() / name)
        assert config.goal_tonnes == 1.5e9 and config.late_data_horizon_days == 30, name


# --------------------------------------------------------------------------- arguments (issue 23 item 6)


@pytest.mark.parametrize("args, message", [
    (("run", "--date", "9999-12-31", "--days", "2"), "argument --date: must be a date in 2000-01-01 … 2099-12-31: "
                                                     "'9999-12-31'"),
    (("run", "--date", "2099-12-31", "--days", "2"), "--days 2 from 2099-12-31 ends after 2099-12-31, the last date "
                                                     "s3p takes"),
    (("run", "--date", "2026-11-01", "--days", "99999999999999"), "argument --days: must be at most 36525"),
    (("generate", "--start", "2099-12-01", "--days", "40", "--landing", "x"), "--days 40 from 2099-12-01 ends after"),
    (("backfill", "--from", "1999-12-31", "--to", "2026-11-01"), "argument --from: must be a date in 2000-01-01"),
    (("ingest", "--scenario", "green_trip", "--trigger", "99999999999999999999 hours"),
     "bad trigger '99999999999999999999 hours': expected available-now or an interval from 1 second to 24 hours"),
    (("ingest", "--scenario", "green_trip", "--trigger", "25 hours"), "bad trigger '25 hours'"),
    (("maintain", "--retention-hours", "99999999999999999"), "argument --retention-hours: must be at most 87840"),
    (("ingest", "--scenario", "green_trip", "--max-files-per-trigger", "99999999999"),
     "argument --max-files-per-trigger: must be at most 2147483647"),
    (("sql", "SELECT 1", "--limit", "99999999999"), "argument --limit: must be at most 2147483646"),
    (("sql", "SELECT 1", "--limit", "-1"), "argument --limit: must be at least 0: '-1'"),
])
def test_an_argument_out_of_range_is_one_line_before_anything_runs(tmp_path, args, message):
    (tmp_path / "landing" / "green_trip").mkdir(parents=True)
    paths = {"generate": (), "maintain": ("--lake", "lake"), "sql": ("--lake", "lake")}.get(
        args[0], ("--lake", "lake", "--landing", "landing"))
    error = one_error_line(s3p(*args, *paths, cwd=tmp_path))
    assert message in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landing"]  # nothing written


def test_an_interval_trigger_up_to_a_day_is_taken():
    from scope3plus.pipeline.stream_ingest import parse_trigger

    assert parse_trigger("24 hours") == {"processingTime": "24 hours"}
    assert parse_trigger("1 second") == {"processingTime": "1 second"}


@pytest.mark.parametrize("lake, what", [("/", "a filesystem root"), ("file:///", "a filesystem root"),
                                        ("/tmp/..", "a filesystem root"), ("~", "the home folder")])
def test_a_lake_at_a_filesystem_root_or_the_home_folder_is_refused(lake, what):
    lake = os.path.expanduser(lake)
    for args in (("progress", "--lake", lake), ("maintain", "--dry-run", "--lake", lake)):
        error = one_error_line(s3p(*args))
        assert error.startswith(f"s3p: error: the lake cannot be {lake} ({what}): give it a folder of its own")


def test_a_lake_at_a_filesystem_root_in_a_profile_is_refused_too(tmp_path):
    profile = tmp_path / "root.yaml"
    profile.write_text("lake: /\n", encoding="utf-8")
    assert "the lake cannot be / (a filesystem root)" in one_error_line(s3p("progress", "--conf", str(profile)))


# --------------------------------------------------------------------------- one line (issue 23 items 5 and 6)


def test_methodology_versions_not_registered_is_one_line_and_mlflow_details_only_with_s3p_debug(tmp_path):
    """A store MLflow must open (here an empty sqlite file) made MLflow add its INFO lines to the error."""
    def run(folder, **env):
        (folder / "landing" / "green_trip").mkdir(parents=True)
        (folder / "landing" / "green_trip" / "2026-11-01-part-00000.jsonl").write_text("{}\n", encoding="utf-8")
        (folder / "mlflow").mkdir()
        (folder / "mlflow" / "mlflow.db").touch()  # the store beside the lake
        plain = {k: v for k, v in os.environ.items() if k not in ("S3P_DEBUG", "MLFLOW_LOGGING_LEVEL")}
        return s3p("run", "--date", "2026-11-01", "--landing", str(folder / "landing"), "--lake", str(folder / "lake"),
                   env={**plain, **env})

    error = one_error_line(run(tmp_path / "plain"))
    assert error.startswith("s3p: error: methodology versions not registered for this lake: secondhand_trade@1.0.0")
    debug = run(tmp_path / "debug", S3P_DEBUG="1")
    assert debug.returncode == 2 and "INFO mlflow" in debug.stderr, debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("s3p: error: methodology versions not registered")


def test_a_landing_file_that_vanishes_after_listing_is_one_line_naming_it_and_the_run_is_recorded(tmp_path):
    """Root reads every file, so the file is made unreadable the way root cannot bypass: the run stops itself
    once Spark has listed the landing files (S3P_FAULT_SIGNAL=SIGSTOP), the file is deleted, the run goes on.
    Spark then fails a task: 276 lines of Java frames and `internal error: Py4JJavaError` before."""
    import deltalake

    from scope3plus.config import load_config
    from scope3plus.faults import ENV, SIGNAL_ENV

    from .support import register_approved, wait_until_stopped

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    (landing / "green_trip").mkdir(parents=True)
    delivery = landing / "green_trip" / "2026-11-01-part-00000.jsonl"
    delivery.write_text('{"event_id": "e1"}\n', encoding="utf-8")
    register_approved(load_config(None, lake=str(lake)))
    env = {**{k: v for k, v in os.environ.items() if k != "S3P_DEBUG"},
           ENV: "ingest.files_listed", SIGNAL_ENV: "SIGSTOP"}
    proc = subprocess.Popen([sys.executable, "-m", "scope3plus.cli", "run", "--date", "2026-11-01", "--landing",
                             str(landing), "--lake", str(lake)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until_stopped(proc)
        delivery.unlink()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr
    assert "\tat " not in stderr and "Exception" not in stderr and "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"s3p: error: cannot read {delivery}: no such file (details in "), stderr
    records = deltalake.DeltaTable(str(lake / "ops" / "job_runs")).to_pyarrow_table().to_pylist()
    [publish] = [r for r in records if r["stage"] == "publish"]
    assert publish["status"] == "failed" and publish["message"] == f"cannot read {delivery}: no such file"
    [green_trip] = [r for r in records if r["scenario"] == "green_trip"]
    assert green_trip["status"] == "failed" and green_trip["message"].startswith(publish["message"])


def test_a_full_disk_is_said_in_one_line_from_python_and_from_the_jvm(spark, tmp_path):
    """/dev/full fails every write with ENOSPC, for root too: once in Python, once in the JVM (through py4j,
    as a Spark write's Py4JJavaError comes)."""
    from scope3plus.errors import DiskFull, fault_from

    with pytest.raises(OSError) as python_error:
        with open("/dev/full", "w", encoding="utf-8") as full:
            full.write("x")
    fault = fault_from(python_error.value, where="the lake /data/lake")
    assert isinstance(fault, DiskFull) and fault.exit_code == 1
    assert str(fault) == "no space left on device, writing the lake /data/lake: free space there and rerun"

    jvm = spark.sparkContext._jvm
    with pytest.raises(Exception) as java_error:
        jvm.java.io.FileOutputStream("/dev/full").write(65)  # one byte
    assert "Py4JJavaError" in type(java_error.value).__name__
    fault = fault_from(java_error.value, where="the lake /data/lake")
    assert isinstance(fault, DiskFull) and str(fault).startswith("no space left on device, writing the lake /data/lake")
    assert fault_from(ValueError("not a fault")) is None


def test_a_path_spark_cannot_find_is_said_as_a_missing_file(spark, tmp_path):
    from scope3plus.errors import fault_from

    missing = tmp_path / "landing" / "green_trip" / "2026-11-01-part-00000.jsonl"
    with pytest.raises(Exception) as error:
        spark.read.text(str(missing))
    fault = fault_from(error.value)
    assert fault is not None and fault.exit_code == 2 and str(fault) == f"cannot read {missing}: no such file"
