"""Shared fixtures: one SparkSession for the whole test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from scope3plus.spark import build_session

    # with Delta Lake on Spark loaded (make install fetches its jars), so both lake backends run
    session = build_session({"spark.master": "local[2]", "spark.sql.shuffle.partitions": "4"}, "scope3plus-tests",
                            backend="delta-spark")
    yield session
    session.stop()

