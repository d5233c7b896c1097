"""The lake lock: one s3p job writes a lake at a time.

Every command that writes the lake (each ``@command(..., writes=True)``: run, backfill, restate,
rollup, quarantine release, aggregates load, maintain, ingest, catalog register) holds an exclusive ``fcntl.flock`` on ``<lake>/_s3p/lock``
for as long as it runs. The kernel drops the lock when the holder's process ends, however it
ends (SIGKILL, out-of-memory, a crashed host's NFS lease expiring), so a killed job never
leaves a stale lock behind. The file records who holds it (job, label, pid, host, since) so
that a second job can say who is in its way:

    s3p: error: another job holds the lake lock: run 2026-11-03 (pid 1234 on etl-1, since 07:30:02Z);
    rerun when it ends, or pass --wait SECONDS

A command takes it through its context (``scope3plus.command``): ``ctx.session(label)`` or
``ctx.lake(label)``, after the command's cheap checks and before Spark starts; the command's end
releases it. Its parser gets ``--wait SECONDS`` (:func:`add_wait_argument`) from its declaration.

Limitation: ``flock`` works on a local filesystem and on POSIX shared filesystems that support
it (NFS v4 with locking). On object storage (``s3://``, ``abfss://`` ... lake roots) there is no
lock file; there the scheduler's one-run-at-a-time setting (``max_concurrent_runs: 1`` in
``resources/scope3plus.job.yml``, the Databricks bundle's job) is the guard.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import LakeBusy, S3PError
from .lakeuri import local_path

LOCK_FILE = "_s3p/lock"
POLL_SECONDS = 0.5


def lock_path(lake_root: str | Path) -> Path | None:
    """``<lake>/_s3p/lock``; None for an object-store lake (``scheme://...`` other than ``file://``)."""
    root = local_path(str(lake_root))
    return None if root is None else Path(root) / LOCK_FILE


def _target(link: Path) -> str:
    try:
        return os.readlink(link)
    except OSError:
        return "?"


def _holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 65536, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def busy_message(holder: dict, waited: float) -> str:
    """The one line a job that cannot get the lock prints."""
    who = " ".join(str(holder[k]) for k in ("job", "label") if holder.get(k)) or "a job"
    since = ""
    if holder.get("started_at"):
        try:
            started = dt.datetime.fromisoformat(holder["started_at"])
            today = started.date() == dt.datetime.now(dt.timezone.utc).date()
            since = ", since " + started.strftime("%H:%M:%SZ" if today else "%Y-%m-%d %H:%M:%SZ")
        except ValueError:
            pass
    where = f"pid {holder['pid']} on {holder.get('host', '?')}{since}" if holder.get("pid") else "holder not recorded yet"
    advice = (f"waited {waited:g} s; rerun when it ends, or pass a longer --wait" if waited
              else "rerun when it ends, or pass --wait SECONDS")
    return f"another job holds the lake lock: {who} ({where}); {advice}"


@contextmanager
def lake_lock(lake_root: str | Path, job: str, run_label: str = "", wait_seconds: float = 0,
              poll_seconds: float = POLL_SECONDS):
    """Hold the lake's lock for the ``with`` block; yields the holder record (None on object storage).

    If another process holds it, retry every ``poll_seconds`` for up to ``wait_seconds``, then
    raise ``LakeBusy`` naming the holder.
    """
    path = lock_path(lake_root)
    if path is None:
        yield None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # never through a symbolic link: the holder record would overwrite the link's target
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o664)  # not inherited by child processes (PEP 446)
    except OSError as exc:
        if exc.errno == errno.ELOOP and path.is_symlink():
            raise S3PError(f"the lake lock {path} is a symbolic link: refused (a run would write through it to "
                           f"{_target(path)}); remove the link") from None
        raise S3PError(f"cannot open the lake lock {path}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + max(0.0, wait_seconds)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise S3PError(f"cannot lock {path}: {exc.strerror or exc}") from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LakeBusy(busy_message(_holder(fd), wait_seconds)) from None
                time.sleep(min(poll_seconds, left))
        holder = {"job": job, "label": run_label, "pid": os.getpid(), "host": socket.gethostname(),
                  "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        try:
            yield holder
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def add_wait_argument(parser: argparse.ArgumentParser) -> None:
    """``--wait SECONDS`` for a command that writes the lake."""
    parser.add_argument("--wait", metavar="SECONDS", type=_seconds, default=0.0,
                        help="if another s3p job is writing the lake, wait up to SECONDS for it to end "
                             "(default 0: stop at once with exit code 4, saying which job holds the lake)")
