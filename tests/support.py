"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

MAINTAINERS = "scope3plus-methodology-maintainers"


def register_approved(config) -> None:
    """Register every approved methodology version in ``config``'s MLflow store, as
    ``s3p methodology approve ID@VERSION --reviewer ...`` does (runs refuse unregistered specs)."""
    from scope3plus.methodology.approval import register_shipped

    register_shipped(config, MAINTAINERS)
