"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

MAINTAINERS = "scope3plus-methodology-maintainers"


def free_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (for a server a test starts, or finds absent)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def register_approved(config) -> None:
    """Register every approved methodology version in ``config``'s MLflow store, as
    ``s3p methodology approve ID@VERSION --reviewer ...`` does (runs refuse unregistered specs)."""
    from scope3plus.methodology.approval import register_shipped

    register_shipped(config, MAINTAINERS)


def assert_same_rows(actual, expected, label: str = "", show: int = 5) -> None:
    """Assert two DataFrames hold the same rows (as multisets, any order), naming the rows that differ.

    ``pyspark.testing.assertDataFrameEqual`` would say what differs too, but with pyspark 4.1.1 and
    pandas 3.1 (pinned in constraints.txt) it fails on importing pandas-on-Spark before comparing
    anything. Both differences are computed on the executors; only ``show`` rows of each reach here."""
    assert actual.columns == expected.columns, f"{label}: columns {actual.columns} != {expected.columns}"
    extra, missing = actual.exceptAll(expected), expected.exceptAll(actual)
    extra_rows, missing_rows = extra.limit(show).collect(), missing.limit(show).collect()
    if extra_rows or missing_rows:
        raise AssertionError(
            f"{label}: {extra.count()} row(s) only in actual, {missing.count()} only in expected; "
            f"e.g. only in actual: {extra_rows}; only in expected: {missing_rows}")


def edit_file(path: Path, *replacements: tuple[str, str]) -> None:
    """Replace each ``old`` of ``replacements`` (which must be there) by its ``new``, once, in the text file ``path``."""
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")


def wait_until_stopped(proc, seconds: float = 240) -> None:
    """Wait until ``proc`` has stopped itself (S3P_FAULT_SIGNAL=SIGSTOP at its fault point)."""
    import time
    from pathlib import Path

    deadline = time.monotonic() + seconds
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run never reached its fault point"
        time.sleep(0.2)
