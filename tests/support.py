"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

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
