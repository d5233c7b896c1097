"""Shared fixtures: one SparkSession for the whole test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from scope3plus.spark import build_session

    session = build_session({"spark.master": "local[2]", "spark.sql.shuffle.partitions": "4"}, "scope3plus-tests")
    yield session
    session.stop()

