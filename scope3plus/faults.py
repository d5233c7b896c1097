"""Fault injection for the crash-safety tests: ``S3P_FAULT_AT=<point>[:<n>]`` kills the process
with SIGKILL the n-th time (default the first) it reaches ``fault_point(<point>)``. With
``S3P_FAULT_SIGNAL=SIGSTOP`` the process stops there instead, so that a test can change the world
under it (delete a file it has listed) and let it go on with SIGCONT.

A SIGKILL gives the process no chance to clean up: exactly what a lost node, an OOM killer or
a cancelled cluster job does. The points sit between the steps whose order makes a rerun safe:

* ``ingest.committed``       a scenario's bronze partition and its manifest are committed, nothing gated yet
* ``gate.staged``            the routed batch is in the staging folder, silver not committed
* ``gate.silver_committed``  silver is committed, quarantine is not
* ``lake.before_commit``     a write's files are in the table's folders, its Delta commit not made
* ``compute.staged``         gold is computed and checked, not committed
* ``rollup.before_progress`` gold and the daily summary are committed, progress is not
* ``run.before_record``      everything is published, ops/job_runs and MLflow not yet written
* ``release.silver_committed``    a quarantine release's rows are in silver, still in quarantine too
* ``release.quarantine_committed`` ... and out of quarantine; gold, summary and progress not refreshed
* ``ingest.files_listed``    Spark has listed a scenario's landing files and planned their read, not read them

Unset (always, outside tests), a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "S3P_FAULT_AT"
SIGNAL_ENV = "S3P_FAULT_SIGNAL"  # the signal sent at the point: SIGKILL unless it names another
RUN_POINTS = ("ingest.committed", "gate.staged", "gate.silver_committed", "lake.before_commit", "compute.staged",
              "rollup.before_progress", "run.before_record")  # reached by `s3p run`
RELEASE_POINTS = ("release.silver_committed", "release.quarantine_committed")  # by `s3p quarantine release`
FILE_POINTS = ("ingest.files_listed",)  # where a stopped run's files can vanish (tests/test_cli_arguments.py)
POINTS = RUN_POINTS + RELEASE_POINTS + FILE_POINTS
_reached: dict[str, int] = {}
_lock = threading.Lock()  # scenarios run side by side reach the same points


def fault_point(name: str) -> None:
    """Kill this process here (SIGKILL, or the signal ``S3P_FAULT_SIGNAL`` names) if ``S3P_FAULT_AT`` names
    this point (and count)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    with _lock:
        _reached[name] = _reached.get(name, 0) + 1
        if _reached[name] == int(nth or 1):
            os.kill(os.getpid(), getattr(signal, os.environ.get(SIGNAL_ENV) or "SIGKILL"))
