"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

MAINTAINERS = "scope3plus-methodology-maintainers"


def register_approved(config) -> None:
    """Register every approved methodology version in ``config``'s MLflow store, as
    ``s3p methodology approve ID@VERSION --reviewer ...`` does (runs refuse unregistered specs)."""
    from pathlib import Path

    from scope3plus.methodology import load_registry
    from scope3plus.methodology.approval import register

    registry = load_registry(Path(config.methodologies_dir))
    for scenario in registry.scenarios():
        for m in registry.approved(scenario):
            register(registry.get(m.id, m.version), MAINTAINERS, config)
