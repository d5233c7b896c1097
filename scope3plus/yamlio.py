"""Reading the project's YAML files (config profiles, contracts, suites, reported aggregates)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import S3PError


def read_yaml_mapping(path: Path, what: str, empty: dict | None = None) -> dict:
    """The YAML mapping in ``path``; any problem is one S3PError naming ``what`` and the file.
    An empty file gives ``empty`` when given (else it is an error, as any non-mapping is)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise S3PError(f"cannot read {what} {path}: {exc}") from exc
    if data is None and empty is not None:
        return dict(empty)
    if not isinstance(data, dict):
        raise S3PError(f"{path}: {what} must be a YAML mapping")
    return data
