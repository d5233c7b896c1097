"""Faults of the machine met by a real `s3p run` (issue 23 item 5): a disk that fills, a file or a lake s3p may
not read or write. Each ends in one line on stderr saying what and where, a non-zero exit, no Java frames, a
record of the run (or a line saying it could not be recorded), and no half-written table.

The full disks are real: a small tmpfs mounted (as root) where the lake or the MLflow store is, filled while
the run is stopped at a fault point (S3P_FAULT_SIGNAL=SIGSTOP), so that it fills exactly between two steps.
Root reads and writes every file whatever its mode, so the permission cases run s3p as nobody (uid 65534)."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from scope3plus.faults import ENV, SIGNAL_ENV

from .support import register_approved, wait_until_stopped

DAY = dt.date(2026, 11, 1)
NOBODY = 65534
#: the system's Python of the venv's version: the venv's own interpreter sits under /root, which nobody cannot enter
SYSTEM_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
WORKTREE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared(spark):
    """A folder every user can read (pytest's own tmp folders are root's alone), holding one generated day
    of 300 events in ``landing/``; removed at the end."""
    from scope3plus.generate import generate

    base = Path(tempfile.mkdtemp(prefix="s3p-faults-", dir="/tmp"))
    try:
        base.chmod(0o755)
        generate(spark, DAY, 1, 300, base / "landing", seed=23)
        for folder, dirs, files in os.walk(base):
            for name in dirs:
                Path(folder, name).chmod(0o755)
            for name in files:
                Path(folder, name).chmod(0o644)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` mounted at ``path`` (made), unmounted whatever happens."""
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        print(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(folder: Path) -> None:
    """Write a file into ``folder`` until its file system has no space left (ENOSPC)."""
    with open(folder / "filler", "wb", buffering=0) as filler:
        for chunk in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * chunk)
    with pytest.raises(OSError) as full:
        (folder / "one-more").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC


def tables(lake: Path) -> dict[str, tuple[int, int]]:
    """Each Delta table under ``lake``: its version and its rows, as they read back."""
    import deltalake

    found = {}
    for log in sorted(lake.rglob("_delta_log")):
        table = deltalake.DeltaTable(str(log.parent))
        found[str(log.parent.relative_to(lake))] = (table.version(), table.to_pyarrow_table().num_rows)
    return found


def run_stopped_at(point: str, landing: Path, lake: Path, while_stopped) -> subprocess.CompletedProcess:
    """`s3p run` of DAY, stopped at the fault point ``point``; ``while_stopped()`` is called there, then it goes on."""
    env = {**{k: v for k, v in os.environ.items() if k != "S3P_DEBUG"}, ENV: point, SIGNAL_ENV: "SIGSTOP"}
    command = [sys.executable, "-m", "scope3plus.cli", "run", "--date", DAY.isoformat(), "--landing", str(landing),
               "--lake", str(lake)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_stopped(proc)
        while_stopped()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def no_java_frames(stderr: str) -> None:
    assert "\tat " not in stderr and "Py4JJavaError" not in stderr and "Traceback" not in stderr, stderr


def job_runs(lake: Path) -> list[dict]:
    import deltalake

    return deltalake.DeltaTable(str(lake / "ops" / "job_runs")).to_pyarrow_table().to_pylist()


# --------------------------------------------------------------------------- full disks


def test_a_lake_that_fills_before_gold_is_committed_says_so_in_one_line_and_leaves_every_table_as_it_was(shared):
    """The lake's disk fills once gold is computed and staged (compute.staged): a later write fails. Every
    table of the first stage reads back at the version it had when the disk filled; the run cannot be recorded in ops/job_runs on
    that full disk either, and the one line says so."""
    from scope3plus.config import load_config

    base = Path(tempfile.mkdtemp(prefix="full-lake-", dir=shared))
    lake = base / "lake"
    with tmpfs(lake, "16m"):
        register_approved(load_config(None, lake=str(lake)))  # MLflow's store is beside the lake, not on it
        before = {}
        out = run_stopped_at("compute.staged", shared / "landing", lake,
                             lambda: (before.update(tables(lake)), fill(lake)))
        no_java_frames(out.stderr)
        assert out.returncode == 1, out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith(f"s3p: error: no space left on device, writing {lake}/"), out.stderr
        assert "the run is not recorded in ops/job_runs (no space left on device there too)" in last, last
        assert before and "silver/green_trip" in before and not any(t.startswith("gold/") for t in before), before
        after = tables(lake)  # each reads back whole (a half-written commit would not load or read)
        # the tables of the run's first stage stay at the version they had when the disk filled; gold's commit,
        # whose files were staged before the fill, may have been made whole before the next write met the full disk
        assert {name: after[name] for name in before} == before
        assert set(after) - set(before) <= {"gold/avoided_emissions"}, after


def test_an_mlflow_store_that_fills_after_the_publish_warns_and_the_run_is_published(shared):
    """MLflow's sqlite store fills once gold and progress are published (run.before_record): the run's tracking
    warns in one line (MLflow's own error log kept quiet), the run is recorded in ops/job_runs as succeeded,
    and exits 0."""
    from scope3plus.config import load_config

    base = Path(tempfile.mkdtemp(prefix="full-mlflow-", dir=shared))
    lake = base / "lake"
    with tmpfs(base / "mlflow", "32m"):
        register_approved(load_config(None, lake=str(lake)))  # the store's tables: in base/mlflow, on the tmpfs
        out = run_stopped_at("run.before_record", shared / "landing", lake, lambda: fill(base / "mlflow"))
        no_java_frames(out.stderr)
        assert out.returncode == 0, out.stderr
        assert "is not fully tracked: MLflow" in out.stderr, out.stderr
        [publish] = [r for r in job_runs(lake) if r["stage"] == "publish"]
        # the store filled at run.before_record: the calls that failed came after the record was written, so
        # the record cannot name them (test_operations covers the note of an earlier failure); the warning does
        assert publish["status"] == "succeeded", publish
        assert "gold/progress" in tables(lake)


# --------------------------------------------------------------------------- permissions, as nobody


def as_nobody(base: Path, *args: str) -> subprocess.CompletedProcess:
    """`s3p ARGS` run as nobody (uid and gid 65534, no groups), with the system's Python on the venv's packages,
    this worktree's code and a copy of the Delta jars nobody can read."""
    import sysconfig

    from scope3plus.deltajars import coordinates, jar_path, local_jars

    if not Path(SYSTEM_PYTHON).is_file():
        print(f"no {SYSTEM_PYTHON} to run s3p as nobody")
        pytest.skip(f"no {SYSTEM_PYTHON} to run s3p as nobody (the venv's interpreter is under /root)")
    jars = base / "m2"
    if not jars.exists():
        assert local_jars(), "the Delta jars are not in the local Maven repository (make install fetches them)"
        for coordinate in coordinates():
            target = jar_path(coordinate, jars)
            target.parent.mkdir(parents=True)
            shutil.copyfile(jar_path(coordinate), target)
        for folder in ("home", "tmp"):
            (base / folder).mkdir()
            os.chown(base / folder, NOBODY, NOBODY)
        for folder, dirs, files in os.walk(jars):
            for name in dirs + files:
                Path(folder, name).chmod(0o755 if name in dirs else 0o644)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(base / "home"), "TMPDIR": str(base / "tmp"), "LANG": "C.UTF-8",
           "PYTHONPATH": f"{WORKTREE}:{sysconfig.get_paths()['purelib']}", "S3P_MAVEN_REPO": str(jars)}
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", SYSTEM_PYTHON,
                           "-m", "scope3plus.cli", *args], env=env, cwd=base / "home", capture_output=True, text=True,
                          timeout=300)


def owned_by_nobody(*paths: Path) -> None:
    for path in paths:
        for folder, dirs, files in os.walk(path):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.chown(name, NOBODY, NOBODY)


def test_a_landing_file_nobody_may_read_is_one_line_naming_it_and_the_run_is_recorded(shared):
    from scope3plus.config import load_config

    base = Path(tempfile.mkdtemp(prefix="denied-file-", dir=shared))
    base.chmod(0o755)
    shutil.copytree(shared / "landing", base / "landing")
    lake = base / "lake"
    register_approved(load_config(None, lake=str(lake)))
    owned_by_nobody(base / "mlflow")
    lake.mkdir(exist_ok=True)
    os.chown(lake, NOBODY, NOBODY)
    [secret] = sorted((base / "landing" / "green_trip").glob(f"{DAY}*.jsonl"))[:1]
    secret.chmod(0o000)  # root's, mode 000: nobody may not read it
    out = as_nobody(base, "run", "--date", DAY.isoformat(), "--landing", str(base / "landing"), "--lake", str(lake))
    no_java_frames(out.stderr)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"s3p: error: cannot read or write {secret}: permission denied (details in "), out.stderr
    [publish] = [r for r in job_runs(lake) if r["stage"] == "publish"]
    assert publish["status"] == "failed" and publish["message"] == f"cannot read or write {secret}: permission denied"
    assert not any(t.startswith("gold/") for t in tables(lake))  # nothing published


def test_a_lake_nobody_may_write_is_one_line_naming_it(shared):
    """The lake and its lock folder are root's: nobody's run stops before it writes anything, and says where."""
    from scope3plus.config import load_config

    base = Path(tempfile.mkdtemp(prefix="denied-lake-", dir=shared))
    base.chmod(0o755)
    lake = base / "lake"
    register_approved(load_config(None, lake=str(lake)))
    lake.mkdir(exist_ok=True)
    before = sorted(p.relative_to(lake) for p in lake.rglob("*"))
    out = as_nobody(base, "run", "--date", DAY.isoformat(), "--landing", str(shared / "landing"), "--lake", str(lake))
    no_java_frames(out.stderr)
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line == f"s3p: error: cannot open the lake lock {lake}/_s3p/lock: Permission denied", line
    assert sorted(p.relative_to(lake) for p in lake.rglob("*")) == before
