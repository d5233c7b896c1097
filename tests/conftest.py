"""Shared fixtures: one SparkSession for the whole test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def spark():
    from scope3plus.spark import build_session

    # with Delta Lake on Spark loaded (make install fetches its jars), so both lake backends run. A 2 GB
    # driver: this one session serves every test's lakes for half an hour (Delta's log caches, MLflow,
    # the status store), and with the default 1 GB it ran out of heap in test_quality's corpus run, on
    # writing its 10 MB line, after ~400 tests (alone, that run needs far less). The bench measures
    # the 1 GB target in a session of its own (`s3p bench --driver-memory`).
    session = build_session({"spark.master": "local[2]", "spark.sql.shuffle.partitions": "4",
                             "spark.driver.memory": "2g"}, "scope3plus-tests", backend="delta-spark")
    yield session
    session.stop()


@pytest.fixture
def root(tmp_path) -> Path:
    """A private copy of the project's methodologies folder (the governance and review tests edit it)."""
    import shutil

    from scope3plus.paths import methodologies_dir

    target = tmp_path / "methodologies"
    shutil.copytree(methodologies_dir(), target)
    return target
